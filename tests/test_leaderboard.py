"""The one image-model protocol and `prodgen leaderboard`.

Every registry generator implements the protocol (accepts, knobs, generate -> uint8, seeded); the
leaderboard measures in a FAST mode (small n), caches each row under the sha256 of the checkpoints it
depends on (a retrained model is re-measured, a second run reads the cache), and bad input is one line,
exit 2, no traceback.
"""
from __future__ import annotations

import json
import shutil
import time

import pytest
import torch

from prodgen import paths
from prodgen.cli import main
from prodgen.evaluation import leaderboard
from prodgen.models import registry
from prodgen.models.protocol import ACCEPTS, ImageModel, Knob, noise

from cli_helpers import in_a_subprocess, in_this_process

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py

SHIPPED = registry.generators(shipped=True)


def _requests(model: ImageModel, n: int = 2):
    """``n`` requests of the kind the model accepts."""
    return {"attributes": [{"category": "mug", "color": "red"}, {"size": "large"}, {}][:n],
            "text": ["a red striped mug by Acme", "大号黑色T恤"][:n],
            "nothing": n}[model.accepts]


# ----------------------------------------------------------------------------- the protocol
def test_the_registry_lists_every_shipped_image_model():
    assert SHIPPED == ["dcgan", "vae", "cgan-projection", "cgan-concat", "cgan-acgan", "cvae", "text2img",  # course
                       "text2img-embedding", "cgan-stable", "diffusion", "diffusion-text", "flow", "flow-text",
                       "flow-fast"]
    assert set(registry.generators()) <= {s.name for s in registry.specs()}
    assert "judge" not in registry.generators() and "text-gru" not in registry.generators()
    assert registry.generator_kinds() == {"dcgan": "nothing", "vae": "nothing", "cgan-projection": "attributes",
                                            "cgan-concat": "attributes", "cgan-acgan": "attributes",
                                            "cgan-stable": "attributes", "cvae": "attributes", "text2img": "text",
                                            "text2img-embedding": "text",
                                            "diffusion": "attributes", "diffusion-text": "text",
                                            "flow": "attributes", "flow-text": "text",
                                            "flow-fast": "attributes", "latent-64": "attributes",
                                            "latent-64-text": "text"}


def _other_whole(knob: Knob) -> int:
    """A whole-number setting other than the default inside the knob's range (5 diffusion steps; 2 of flow-fast's
    1-4)."""
    return next(v for v in (5, 2, 1) if v != knob.default and (knob.low is None or knob.low <= v)
                and (knob.high is None or v <= knob.high))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_generator_implements_the_protocol(name):
    model = registry.load_generator(name)
    assert isinstance(model, ImageModel) and model.name == name and model.accepts in ACCEPTS
    for key, knob in model.knobs.items():  # every knob says its default, which is valid
        assert isinstance(knob, Knob) and knob.name == key
        assert knob.check(knob.default) == knob.default
    requests = _requests(model)
    a = model.generate(requests, seed=3)
    assert a.dtype == torch.uint8 and a.shape == (2, 3, 32, 32)
    assert torch.equal(a, model.generate(requests, seed=3))  # same seed, same bytes
    assert not torch.equal(a, model.generate(requests, seed=4))
    assert not torch.equal(a[0], a[1])
    for key, knob in model.knobs.items():  # a knob that is not at its default changes the images
        other = next(c for c in knob.choices if c != knob.default) if knob.choices \
            else _other_whole(knob) if isinstance(knob.default, int) else 0.3  # "learned" for unspecified
        assert not torch.equal(a, model.generate(requests, seed=3, **{key: other})), key
    assert len(model.understood(requests)) == 2
    if "guidance" not in model.knobs:
        with pytest.raises(ValueError, match=f"{name} has no knob guidance; its knobs: "):
            model.generate(requests, seed=0, guidance=3.0)
    wrong = {"attributes": 2, "text": 2, "nothing": ["a red mug"]}[model.accepts]
    with pytest.raises(ValueError, match=f"{name} is "):
        model.generate(wrong, seed=0)


def test_knob_ranges_and_choices_are_checked():
    model = registry.load_generator("cgan-projection")
    with pytest.raises(ValueError, match=r"truncation must be in \[0.05, 4.0\], got 9"):
        model.generate([{}], truncation=9)
    with pytest.raises(ValueError, match="unspecified must be one of random, learned"):
        model.generate([{}], unspecified="any")
    with pytest.raises(ValueError, match=r"temperature must be a number in \[0.0, 3.0\]"):
        registry.load_generator("vae").generate(1, temperature=float("nan"))


def test_a_whole_number_knob_refuses_fractions():
    steps = Knob("steps", 50, 1, 1000)
    assert steps.check(20.0) == 20 and isinstance(steps.check(20.0), int)
    with pytest.raises(ValueError, match=r"steps must be a whole number in \[1, 1000\], got 2.5"):
        steps.check(2.5)
    assert Knob("t", None, 0.05, 4.0).check(None) is None and Knob("t", 1.0, 0.0, 3.0).check(2) == 2.0


def test_protocol_keeps_the_lesson_functions_images():
    """Knobs at their defaults give exactly the images the family's own functions give (lessons 05 and 07)."""
    from prodgen.catalog import denormalize
    from prodgen.models import cgan
    from prodgen.models.condition import balanced_requests

    labels = balanced_requests(6, seed=1)
    model = registry.load_generator("cgan-projection")
    assert torch.equal(model.generate(labels, seed=5), denormalize(cgan.generate(model.network, labels, seed=5)))
    text = registry.load_generator("text2img")
    assert torch.equal(text.generate(["a red mug"] * 2, seed=2), denormalize(text.network.generate(["a red mug"] * 2,
                                                                                                   seed=2)))


def test_truncated_noise_stays_inside_the_threshold_and_is_seeded():
    z = noise(500, 64, torch.Generator().manual_seed(0), truncation=0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    assert torch.equal(z, noise(500, 64, torch.Generator().manual_seed(0), truncation=0.5))
    assert torch.equal(noise(4, 8, torch.Generator().manual_seed(1)), torch.randn(4, 8,
                                                                                  generator=torch.Generator().manual_seed(1)))


# ----------------------------------------------------------------------------- the cache
@pytest.fixture
def rows_folder(tmp_path, monkeypatch):
    """Rows cached in a private folder (the real photos' judge features stay in the shared cache)."""
    folder = tmp_path / "leaderboard"
    monkeypatch.setattr(leaderboard, "cache_folder", lambda: folder)
    return folder


@pytest.fixture
def fake_measure(monkeypatch):
    """``measure`` replaced by a recorder: the cache logic is tested without measuring."""
    calls = []

    def measure(model, n=2000, seed=0, judge=None, speed_seconds=1.0, _ref=None, progress=None, resolution=None):
        calls.append((model.name, n, seed))
        for stage, images in leaderboard.plan(model, n) if progress else ():
            progress(stage, images)  # as the real one: before each stage
        return {"model": model.name, "accepts": model.accepts, "n": n, "seed": seed,
                "protocol": leaderboard.PROTOCOL_VERSION, "fid": 1.0 + len(calls), "images_per_s": 10.0,
                "seconds": 2.5, "details": {}}

    monkeypatch.setattr(leaderboard, "measure", measure)
    monkeypatch.setattr(leaderboard, "_Session", lambda refresh=False: type("S", (), {
        "judge_at": lambda self, size=32: None, "ref_at": lambda self, size=32: None})())
    return calls


def _private_checkpoints(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    shutil.copytree(paths.checkpoints_dir(), folder)
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(folder))
    return folder


def test_a_second_run_reads_the_cache_and_a_retrained_model_is_measured_again(rows_folder, fake_measure, tmp_path,
                                                                              monkeypatch):
    first = leaderboard.evaluate_all(["cgan-projection", "dcgan"], n=64)
    assert [r["model"] for r in first] == ["cgan-projection", "dcgan"] and not any(r["cached"] for r in first)
    assert len(fake_measure) == 2 and len(list(rows_folder.glob("*.json"))) == 2
    again = leaderboard.evaluate_all(["cgan-projection", "dcgan"], n=64)
    assert all(r["cached"] for r in again) and len(fake_measure) == 2
    assert [r["fid"] for r in again] == [r["fid"] for r in first]
    leaderboard.evaluate_all(["dcgan"], n=64, seed=1)  # another seed or n is another row
    leaderboard.evaluate_all(["dcgan"], n=128)
    assert len(fake_measure) == 4
    leaderboard.evaluate_all(["dcgan"], n=64, refresh=True)
    assert len(fake_measure) == 5

    folder = _private_checkpoints(tmp_path, monkeypatch)  # "retrain" cgan-projection: other weights, new sha256
    before = leaderboard.cache_file("cgan-projection", 64)
    net = registry.load("cgan-projection")
    with torch.no_grad():
        next(net.parameters()).mul_(1.01)
    entry = registry.manifest()["cgan-projection"]
    registry.save("cgan-projection", net, entry["config"], metrics=entry["metrics"], training=entry["training"])
    assert registry.manifest()["cgan-projection"]["sha256"] != entry["sha256"]
    assert leaderboard.cache_file("cgan-projection", 64) != before
    rows = leaderboard.evaluate_all(["cgan-projection", "dcgan"], n=64)
    assert [r["cached"] for r in rows] == [False, True] and fake_measure[-1] == ("cgan-projection", 64, 0)
    assert rows[0]["sha256"] == registry.manifest()["cgan-projection"]["sha256"]

    shutil.copy(folder / "judge.pt", folder / "judge.bak")  # the judge is part of every key
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["judge"]["sha256"] = "0" * 64
    (folder / "judge.pt").write_bytes(b"not the judge")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="checkpoint for 'judge' is corrupt"):
        leaderboard.cache_file("dcgan", 64)


def test_text_models_are_keyed_by_their_reader_too(rows_folder):
    text = str(leaderboard.cache_file("text2img", 64))
    assert leaderboard._depends_on("text2img") == ["text2img", "judge", "ssl-encoder", "text-votes"]
    assert leaderboard._depends_on("cgan-projection") == ["cgan-projection", "judge", "ssl-encoder"]
    assert text.endswith(".json") and "text2img-n64-s0-" in text


def test_a_model_added_to_the_registry_appears_without_code_changes(rows_folder, fake_measure, tmp_path, monkeypatch):
    folder = _private_checkpoints(tmp_path, monkeypatch)
    manifest = json.loads((folder / "manifest.json").read_text())
    shutil.copy(folder / "cgan-projection.pt", folder / "cgan-copy.pt")
    manifest["cgan-copy"] = {**manifest["cgan-projection"], "file": "cgan-copy.pt"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    import dataclasses

    with registry.registered(dataclasses.replace(registry.spec("cgan-projection"), name="cgan-copy", lesson=99)):
        rows = leaderboard.evaluate_all(None, n=32)
    assert [r["model"] for r in rows] == SHIPPED + ["cgan-copy"]


def test_cached_rows_are_formatted(rows_folder, fake_measure):
    rows = leaderboard.evaluate_all(["cvae"], n=32)
    md = leaderboard.format_markdown(rows).splitlines()
    assert md[0].startswith("| model | FID | floor | FID (SSL) | floor (SSL) | FID∞ | KID |")
    assert md[1].startswith("|---|---:|")
    assert md[2].startswith("| cvae | 2.0 | – |")
    assert leaderboard.format_table(rows).splitlines()[2].startswith("cvae")


# ----------------------------------------------------------------------------- progress while measuring
def test_cached_row_reads_the_cache_and_never_measures(rows_folder, fake_measure):
    import dataclasses

    assert leaderboard.cached_row("dcgan", n=64) is None and not fake_measure  # not measured yet: None
    leaderboard.evaluate_all(["dcgan"], n=64)
    row = leaderboard.cached_row("dcgan", n=64)
    assert row["model"] == "dcgan" and row["cached"] is True and len(fake_measure) == 1
    assert leaderboard.cached_row("dcgan", n=128) is None and leaderboard.cached_row("dcgan", n=64, seed=1) is None
    assert len(fake_measure) == 1
    with registry.registered(dataclasses.replace(registry.spec("dcgan"), name="dcgan-unshipped", lesson=99)):
        assert leaderboard.cached_row("dcgan-unshipped") is None  # registered, no checkpoint
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        leaderboard.cached_row("no-such-model")


def test_the_estimate_comes_first_then_stages_then_each_row_as_it_finishes(rows_folder, fake_measure):
    """A cold run says up front how long each model should take, then a line per stage, then each row's figures
    before the next model starts (a cold `prodgen leaderboard` once sat 15 min on one line)."""
    lines = []
    real = leaderboard.measure
    leaderboard.measure = lambda model, *a, **k: (lines.append(f"<measure {model.name}>"), real(model, *a, **k))[1]
    try:
        rows = leaderboard.evaluate_all(["dcgan", "text2img"], n=64, progress=True, log=lines.append)
    finally:
        leaderboard.measure = real
    first = lines.index("<measure dcgan>")
    head = lines[:first]
    assert head[0] == "leaderboard: 0 row(s) cached, 2 to measure at n = 64; estimate (generation only):"
    assert head[1].startswith("  dcgan: 256 images at ") and "img/s (timed batch) ≈ " in head[1]
    text_images = sum(c for _, c in leaderboard.plan(registry.load_generator("text2img"), 64))
    assert head[2].startswith(f"  text2img: {text_images:,} images at ") and head[3].startswith("  total ≈ ")
    second = lines.index("<measure text2img>")
    dcgan = lines[first + 1:second]
    assert dcgan[0] == "measuring dcgan (256 images) ..."
    assert dcgan[1].startswith("  dcgan [1/2] unconditional images: 64 images (0/256 so far, ")
    assert dcgan[2].startswith("  dcgan [2/2] speed: 192 images (64/256 so far, ") and " left)" in dcgan[2]
    assert dcgan[3] == "  dcgan: FID 2.0 (floor –), 10 img/s (measured in 2 s)"  # the row, before text2img starts
    stages = [line.split("] ")[1].split(":")[0] for line in lines[second:] if line.startswith("  text2img [")]
    assert stages == ["balanced requests", "held-out pairs", "descriptions", "diversity", "speed"]
    assert lines[-1].startswith("  text2img: FID 3.0 (floor –), ") and [r["model"] for r in rows] == ["dcgan",
                                                                                                      "text2img"]
    lines.clear()
    leaderboard.evaluate_all(["dcgan", "text2img"], n=64, progress=True, log=lines.append)
    assert lines == []  # all cached: nothing to estimate or report


def test_a_cached_rate_of_the_same_checkpoint_makes_the_estimate(rows_folder, fake_measure):
    leaderboard.evaluate_all(["cvae"], n=32)  # a row with images_per_s 10.0 for cvae's checkpoint
    est = leaderboard.estimate(registry.load_generator("cvae"), n=2000)
    images = sum(c for _, c in leaderboard.plan(registry.load_generator("cvae"), 2000))
    assert est == {"images": images, "images_per_s": 10.0, "source": "cached row", "seconds": images / 10.0}
    assert leaderboard.estimate(registry.load_generator("vae"), n=2000)["source"] == "timed batch"


def test_the_command_prints_progress_on_stderr_and_the_table_on_stdout(rows_folder, fake_measure, capsys):
    assert main(["leaderboard", "--models", "cgan-projection,vae", "--n", "32"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("model ") and len(out.splitlines()) == 4  # header, rule, two rows
    err = err.splitlines()
    assert err[0].startswith("leaderboard: 0 row(s) cached, 2 to measure at n = 32")
    starts = [i for i, e in enumerate(err) if e.startswith("measuring ")]
    assert [err[i].split(" (")[0] for i in starts] == ["measuring cgan-projection", "measuring vae"]
    assert err[starts[1] - 1] == "  cgan-projection: FID 2.0 (floor –), 10 img/s (measured in 2 s)"  # before vae
    assert err[-1] == "  vae: FID 3.0 (floor –), 10 img/s (measured in 2 s)"
    assert main(["leaderboard", "--models", "cgan-projection,vae", "--n", "32", "--json"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", ["dcgan", "cgan-projection", "text2img"])
def test_the_plan_counts_the_images_measure_asks_for(name, rows_folder, monkeypatch):
    """The estimate and the progress lines count what :func:`leaderboard.measure` really generates, stage by
    stage (diversity at most the planned images, speed at least)."""
    model = registry.load_generator(name)
    made, seen = [], []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda r, *a, **k: (made.append(len(out := generate(r, *a, **k))), out)[1])
    leaderboard.measure(model, n=16, speed_seconds=0.01, progress=lambda stage, images: seen.append(
        (stage, images, len(made))))
    planned = leaderboard.plan(model, 16)
    assert [(s, i) for s, i, _ in seen] == planned
    bounds = [k for _, _, k in seen] + [len(made)]
    for (stage, images), a, b in zip(planned, bounds, bounds[1:]):
        got = sum(made[a:b])
        assert got <= images if stage == "diversity" else got >= images if stage == "speed" else got == images, stage


# ----------------------------------------------------------------------------- measuring, FAST mode
@pytest.mark.slow
def test_fast_leaderboard_measures_and_a_second_cli_run_is_instant(rows_folder, tmp_path, monkeypatch, capsys):
    """Two models at n = 64 (the real measurement, a few seconds each once the real photos' features are cached),
    then the CLI reads both rows from the cache."""
    rows = leaderboard.evaluate_all(["cgan-projection", "dcgan", "text2img"], n=64, speed_seconds=0.05)
    cgan, dcgan, text = rows
    for row in rows:
        assert row["n"] == 64 and row["protocol"] == leaderboard.PROTOCOL_VERSION and not row["cached"]
        assert row["fid"] > 0 and row["fid_floor"] > 0 and row["kid_std"] == 0  # n < subset size: one KID estimate
        for key in ("precision", "recall", "coverage"):
            assert 0 <= row[key] <= 1
        assert row["density"] > 0 and row["memorisation"] > 0 and row["images_per_s"] > 0
    assert dcgan["histogram_distance"] > 0 and dcgan["control_mean"] is None and dcgan["diversity"] is None
    for row in (cgan, text):
        assert row["histogram_distance"] is None
        assert 0.8 <= row["control_min"] <= row["control_mean"] <= 1 and 0.5 <= row["control_heldout"] <= 1
        assert row["control_min_attribute"] in ("category", "color", "size", "brand", "pattern")
        assert 0 < row["diversity"] < 2
    assert cgan["control_en"] is None and 0.8 <= text["control_en"] <= 1 and 0.8 <= text["control_zh"] <= 1
    assert set(text["details"]) >= {"control", "control_unseen_pairs", "test_en", "test_zh", "unseen_en",
                                    "unseen_zh", "new_phrasings"}
    assert dcgan["fid"] > cgan["fid"]  # the unconditional DCGAN is the weakest model on every earlier measurement
    assert json.loads(leaderboard.cache_file("dcgan", 64).read_text())["fid"] == dcgan["fid"]

    start = time.perf_counter()
    assert main(["leaderboard", "--models", "cgan-projection,dcgan,text2img", "--n", "64", "--json"]) == 0
    assert time.perf_counter() - start < 2
    listed = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in listed] == ["cgan-projection", "dcgan", "text2img"] and all(r["cached"] for r in listed)
    assert [r["fid"] for r in listed] == [r["fid"] for r in rows] and "details" not in listed[0]
    assert main(["leaderboard", "--models", "dcgan", "--n", "64", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| model | FID |")


@pytest.mark.slow
def test_evaluate_prints_the_protocols_measurements(rows_folder, capsys):
    assert main(["evaluate", "cvae", "--n", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "cvae" and result["n"] == 32
    assert {"control", "control_unseen_pairs", "control_partial_requests", "edits", "fid", "fid_floor", "precision",
            "recall", "fid_inf", "kid", "density", "coverage", "diversity", "memorisation"} <= set(result)
    assert result["control"]["mean"] > 0.8 and result["edits"]["mean"]["success"] > 0.8


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, message", [
    (["--models", "stylegan"], "unknown model 'stylegan'; generators: dcgan, vae, cgan-projection, cgan-concat, "
                               "cgan-acgan, cvae, text2img, text2img-embedding, cgan-stable"),
    (["--models", "judge"], "unknown model 'judge'; generators: dcgan,"),
    (["--models", " , "], "no model named; generators: dcgan,"),
    (["--n", "1"], "--n must be at least 16"),
    (["--n", "0"], "--n must be at least 16"),
    (["--n", "many"], "--n must be a whole number of samples"),
])
def test_bad_input_is_one_line_exit_2(args, message, monkeypatch, capsys):
    _check_bad_input(args, message, in_this_process(monkeypatch, capsys))


def test_bad_input_through_the_command():
    _check_bad_input(["--n", "many"], "--n must be a whole number of samples", in_a_subprocess)


def _check_bad_input(args, message, run):
    code, stdout, stderr = run(["leaderboard", *args])
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prodgen: error: ") and message in lines[0], stderr
    assert stdout == ""


def test_python_api_refuses_bad_n():
    for n in (1, 0, 15, 2.5, True, "64"):
        with pytest.raises(ValueError, match="n must be a whole number of samples >= 16"):
            leaderboard.evaluate_all(["dcgan"], n=n)


@pytest.mark.parametrize("broken, message", [
    (lambda f: f.masked_fill(torch.rand(f.shape) < 0.01, float("nan")), "NaN or infinite"),
    (lambda f: f[:, :128], "different feature dimensions (256 vs 128)"),
])
def test_broken_features_are_one_line_and_nothing_is_cached(rows_folder, monkeypatch, capsys, broken, message):
    leaderboard.Reference(registry.load("judge"))  # the real photos' features: cached intact before they can break
    real_judge = leaderboard._judge
    monkeypatch.setattr(leaderboard, "_judge", lambda judge, images: (broken(real_judge(judge, images)[0]),
                                                                      real_judge(judge, images)[1]))
    assert main(["leaderboard", "--models", "dcgan", "--n", "16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("prodgen: error: ") and message in err[-1] and "Traceback" not in "".join(err)
    assert not list(rows_folder.glob("*.json")) and not list(rows_folder.glob(".*.tmp"))


def test_a_reference_with_broken_features_is_never_cached(monkeypatch):
    """The real photos' features are what every later row is measured against: NaN in them is an error, never a
    cache file (a broken judge once left one behind that every later run reused)."""
    import prodgen.catalog

    small = prodgen.catalog.load_catalog("test", progress=False).subset(range(32))
    monkeypatch.setattr(prodgen.catalog, "load_catalog", lambda split, progress=False, size=32: small)
    shipped = registry.manifest()
    monkeypatch.setattr(registry, "manifest", lambda: {"judge": {"sha256": "0" * 64},  # a cache file of its own
                                                       "ssl-encoder": shipped["ssl-encoder"]})
    monkeypatch.setattr(leaderboard, "_judge", lambda judge, images: (torch.full((len(images), 8), float("nan")),
                                                                      torch.zeros(len(images), 5, dtype=torch.long)))
    with pytest.raises(ValueError, match="real train photos hold NaN or infinite values; nothing was cached"):
        leaderboard.Reference(judge=None)
    assert not list((paths.cache_dir() / "leaderboard").glob("reference-" + "0" * 20 + "*"))


# ----------------------------------------------------------------------------- resolutions (lesson 14)
class RealPhotos64(ImageModel):
    """A 64 px unconditional model that draws real 64 px photos (the validation split): its FID must sit near the
    real floor on the 64 px board, and on the 32 px board once downsampled."""

    image_size = 64

    def __init__(self, photos):
        super().__init__(torch.nn.Identity(), "photos-64")
        self.photos = photos

    def _latents(self, n, generator, **knobs):
        return {"pick": torch.randint(len(self.photos), (n,), generator=generator)}

    def _decode(self, latents, noise=None, **knobs):
        from prodgen.catalog import normalize

        return normalize(self.photos[latents["pick"]])


@pytest.mark.slow  # measures two rows for real (n = 100): about 4 s
def test_a_64px_model_is_measured_at_64px_or_downsampled_on_the_32px_board():
    from prodgen.catalog import load_catalog

    n = 100
    cats = {size: {split: load_catalog(split, n=n, size=size, progress=False) for split in ("train", "test", "val")}
            for size in (32, 64)}
    model = RealPhotos64(cats[64]["val"].images)
    judges = {32: registry.load("judge"), 64: registry.load("judge-64")}
    refs = {s: leaderboard.Reference(judges[s], cats[s]["train"], cats[s]["test"]) for s in (32, 64)}
    own = leaderboard.measure(model, n=n, judge=judges[64], _ref=refs[64], speed_seconds=0.01)
    down = leaderboard.measure(model, n=n, judge=judges[32], _ref=refs[32], speed_seconds=0.01, resolution=32)
    assert own["resolution"] == 64 and "downsampled_from" not in own
    assert down["resolution"] == 32 and down["downsampled_from"] == 64
    assert own["fid_floor"] == pytest.approx(refs[64].floor(n))
    assert down["fid_floor"] == pytest.approx(refs[32].floor(n))
    assert own["fid"] < 1.5 * own["fid_floor"] and down["fid"] < 1.5 * down["fid_floor"]  # real photos: near the floor
    with pytest.raises(ValueError, match="is measured at 64 px but the judge reads 32 px photos: use judge-64"):
        leaderboard.measure(model, n=16, judge=judges[32], _ref=refs[32])
    with pytest.raises(ValueError, match=r"no judge reads 128 px photos; the boards are 32, 64 px"):
        leaderboard.measure(model, n=16, resolution=128)
    small = registry.load_generator("dcgan")
    with pytest.raises(ValueError, match="dcgan makes 32 px images: measure it at 32 px or, downsampled, at a size"):
        leaderboard.measure(small, n=16, resolution=64)
    assert leaderboard.judge_name(64) == "judge-64" and leaderboard.judge_name(32) == "judge"
    with pytest.raises(ValueError, match="no judge reads 48 px photos; the boards are 32, 64 px"):
        leaderboard.judge_name(48)


def test_rows_say_their_board_and_have_files_of_their_own(rows_folder, fake_measure, tmp_path, monkeypatch):
    import dataclasses

    folder = _private_checkpoints(tmp_path, monkeypatch)
    manifest = json.loads((folder / "manifest.json").read_text())
    shutil.copy(folder / "dcgan.pt", folder / "dcgan-64.pt")  # a "64 px" model: its spec says so
    manifest["dcgan-64"] = {**manifest["dcgan"], "file": "dcgan-64.pt"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    big = dataclasses.replace(registry.spec("dcgan"), name="dcgan-64", lesson=99, resolution=64)
    with registry.registered(big):
        assert leaderboard._depends_on("dcgan-64") == ["dcgan-64", "judge-64", "ssl-encoder"]
        assert leaderboard._depends_on("dcgan-64", 32) == ["dcgan-64", "judge", "ssl-encoder"]
        own, down = leaderboard.cache_file("dcgan-64", 64), leaderboard.cache_file("dcgan-64", 64, resolution=32)
        assert own.name.startswith("dcgan-64-n64-s0-") and down.name.startswith("dcgan-64-at32px-n64-s0-")
        assert leaderboard.cache_file("dcgan", 64, resolution=32) == leaderboard.cache_file("dcgan", 64)
        with pytest.raises(ValueError, match="dcgan makes 32 px images"):
            leaderboard.cache_file("dcgan", 64, resolution=64)
        assert [r["model"] for r in leaderboard.evaluate_all(None, n=32, resolution=64)] == ["dcgan-64"]
        leaderboard.evaluate_all(["dcgan-64"], n=32, resolution=32)
        assert fake_measure[-1] == ("dcgan-64", 32, 0)
    rows = [{"model": "a", "fid": 1.0}, {"model": "b", "resolution": 64, "fid": 2.0},
            {"model": "c", "resolution": 32, "downsampled_from": 64, "fid": 3.0}]
    cells = [line.split("  ")[0].strip() for line in leaderboard.format_table(rows).splitlines()[2:]]
    assert cells == ["a", "b (64 px)", "c (64→32 px)"]


def test_retime_replaces_only_the_speed_of_cached_rows(rows_folder, fake_measure, monkeypatch, capsys):
    leaderboard.evaluate_all(["dcgan", "cgan-projection"], n=64)
    timed = []
    monkeypatch.setattr(leaderboard, "_speed", lambda model, requests, seconds: timed.append(
        (model.name, requests if isinstance(requests, int) else len(requests))) or 123.45)
    before = {r["model"]: r for r in leaderboard.evaluate_all(["dcgan", "cgan-projection"], n=64)}
    done, missing = leaderboard.retime(["dcgan", "cgan-projection", "cvae"], n=64)
    assert missing == ["cvae"] and timed == [("dcgan", 64), ("cgan-projection", 64)]
    after = {r["model"]: r for r in leaderboard.evaluate_all(["dcgan", "cgan-projection"], n=64)}
    for name, row in after.items():
        assert row["images_per_s"] == 123.5 and row["speed_measured_at"] and row["cached"]
        assert {k: v for k, v in row.items() if k not in ("images_per_s", "threads", "speed_measured_at")} == \
            {k: v for k, v in before[name].items() if k not in ("images_per_s", "threads")}
    assert len(fake_measure) == 2  # nothing else measured
    assert main(["leaderboard", "--retime", "--models", "dcgan,cvae", "--n", "64"]) == 0
    out = capsys.readouterr().out
    assert "dcgan: 123.5 -> 123.5 images/s" in out and "no cached row to re-time" in out and "cvae" in out

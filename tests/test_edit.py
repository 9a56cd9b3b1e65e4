"""`prodgen edit` and `prodgen.apps.edit`: change attributes of a real photo, before/after PNGs plus metadata.csv.

The diffusion cases use a tiny U-Net (width 8, random weights) saved in a temporary checkpoint folder
beside the shipped judge and cvae: what is tested (pixels outside the product mask kept, seeds, files,
bad input) holds for any weights, and the shipped diffusion checkpoint is not needed. Edits run
`prodgen.cli.main` in the test's process (tests/cli_helpers.py).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prodgen.apps.edit import METADATA_COLUMNS, STUDIO_GREY, edit_photo, load_photo
from prodgen.catalog import load_catalog
from prodgen.catalog.attributes import ATTRIBUTE_NAMES
from prodgen.models import diffusion, registry
from prodgen.models.condition import request_to_dict

from cli_helpers import in_a_subprocess, in_this_process

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "checkpoints"


@pytest.fixture(scope="module")
def photo():
    """``(uint8 3 x 32 x 32, its true attributes)``: test photo 0 (a small red plain lamp by Nova)."""
    cat = load_catalog("test", progress=False)
    return cat.images[0].clone(), request_to_dict(cat.labels[0])


def _save(image: torch.Tensor, path: Path, mode: str | None = None, **kw) -> Path:
    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    if mode == "P":
        picture = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode:
        picture = picture.convert(mode)
    picture.save(path, **kw)
    return path


def _checkpoints(folder: Path, names=("judge", "cvae"), diffusion_width: int | None = 8) -> Path:
    """A checkpoint folder holding the shipped ``names`` (linked) and, with ``diffusion_width``, a small random
    diffusion U-Net saved through the registry."""
    folder.mkdir(parents=True)
    manifest = json.loads((SHIPPED / "manifest.json").read_text(encoding="utf-8"))
    for name in names:
        (folder / manifest[name]["file"]).symlink_to(SHIPPED / manifest[name]["file"])
    (folder / "manifest.json").write_text(json.dumps({k: manifest[k] for k in names}), encoding="utf-8")
    if diffusion_width:
        torch.manual_seed(0)
        net = diffusion.UNet(diffusion_width)
        with torch.no_grad():  # zero-initialised output layers would make every prediction 0
            gen = torch.Generator().manual_seed(1)
            for p in net.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PRODGEN_CHECKPOINTS", str(folder))
            registry.save("diffusion", net, {"width": diffusion_width, "schedule": "cosine"})
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """``PRODGEN_CHECKPOINTS`` for the edits: the shipped judge and cvae, a tiny diffusion U-Net."""
    return {"PRODGEN_CHECKPOINTS": str(_checkpoints(tmp_path_factory.mktemp("edit") / "ckpt"))}


def _metadata(out: Path) -> list[dict]:
    with open(out / "metadata.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == METADATA_COLUMNS
        return list(reader)


def _pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def _edit(run, tmp_path, store, *args):
    return run(["edit", *map(str, args)], cwd=tmp_path, env=store)


# ----------------------------------------------------------------------------- happy paths
def test_cvae_edit_writes_before_after_and_metadata(tmp_path, photo, store, monkeypatch, capsys):
    image, truth = photo
    src = _save(image, tmp_path / "lamp.png")
    code, out, err = _edit(in_this_process(monkeypatch, capsys), tmp_path, store,
                           "--model", "cvae", "--image", src, "--set", "color=teal", "--out", "edited")
    assert code == 0, err
    folder = tmp_path / "edited"
    assert sorted(p.name for p in folder.iterdir()) == ["after-0.png", "before.png", "metadata.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    assert torch.equal(_pixels(folder / "before.png"), image)  # a 32 x 32 photo is used as it is
    before, after = _metadata(folder)
    assert {a: before[a] for a in ATTRIBUTE_NAMES} == truth  # the judge reads the photo right
    request = {**truth, "color": "teal"}
    for row in (before, after):
        assert {a: row[f"request_{a}"] for a in ATTRIBUTE_NAMES} == request
        assert row["changes"] == "color=teal" and row["note"] == ""
    assert (before["role"], before["model"], before["seed"]) == ("before", "", "")
    assert (after["file"], after["role"], after["model"], after["seed"]) == ("after-0.png", "after", "cvae", "")
    assert after["color"] == "teal"  # the shipped cvae recolours this lamp (the judge reads teal)
    lines = out.strip().splitlines()
    assert "note:" not in out and lines[-1].startswith("wrote before.png, 1 edited image(s)")
    assert "after-0.png: color=teal (asked color=teal)" in lines
    # deterministic: the seed changes nothing, a second run writes the same bytes
    code, _, _ = _edit(in_this_process(monkeypatch, capsys), tmp_path, store,
                       "--model", "cvae", "--image", src, "--set", "color=teal", "--seed", 7, "--out", "again")
    assert code == 0
    assert (tmp_path / "again" / "after-7.png").read_bytes() == (folder / "after-0.png").read_bytes()


def test_cvae_edit_in_python_matches_the_model(photo, store, tmp_path, monkeypatch):
    """edit_photo gives the registered editor's result: CVAE.edit with the labels the judge read."""
    from prodgen.catalog import denormalize, normalize
    from prodgen.models.condition import parse_request

    monkeypatch.setenv("PRODGEN_CHECKPOINTS", store["PRODGEN_CHECKPOINTS"])
    image, truth = photo
    before, afters, info = edit_photo("cvae", _save(image, tmp_path / "p.png"), {"pattern": "dotted"})
    assert before.shape == (1, 3, 32, 32) and afters.shape == (1, 3, 32, 32) and afters.dtype == torch.uint8
    assert info["read"] == truth and info["request"] == {**truth, "pattern": "dotted"} and info["seeds"] is None
    want = denormalize(registry.load("cvae").edit(image[None], parse_request(truth), {"pattern": "dotted"}))
    assert torch.equal(afters, want)
    judge = registry.load("judge")
    assert info["results"] == [request_to_dict(judge.predict(normalize(want))[0])]
    with pytest.raises(ValueError, match="takes no settings"):
        edit_photo("cvae", tmp_path / "p.png", {"color": "teal"}, steps=4)


def test_diffusion_edit_keeps_the_pixels_outside_the_product(tmp_path, photo, store, monkeypatch, capsys):
    image, truth = photo
    src = _save(image, tmp_path / "lamp.png")
    run = in_this_process(monkeypatch, capsys)
    code, out, err = _edit(run, tmp_path, store, "--model", "diffusion", "--image", src,
                           "--set", "color=teal,pattern=dotted", "--seed", 5, "--n", 2, "--out", "edited")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines[1:3]] == ["after-5.png", "after-6.png"] and "note:" not in out
    assert all(line.endswith("(asked color=teal, pattern=dotted)") for line in lines[1:3])
    folder = tmp_path / "edited"
    assert sorted(p.name for p in folder.iterdir()) == ["after-5.png", "after-6.png", "before.png", "metadata.csv"]
    rows = _metadata(folder)
    assert [(r["file"], r["role"], r["model"], r["seed"]) for r in rows] == [
        ("before.png", "before", "", ""), ("after-5.png", "after", "diffusion", "5"),
        ("after-6.png", "after", "diffusion", "6")]
    assert all({a: r[f"request_{a}"] for a in ATTRIBUTE_NAMES} == {**truth, "color": "teal", "pattern": "dotted"}
               for r in rows)
    before = _pixels(folder / "before.png")
    assert torch.equal(before, image)
    outside = diffusion.product_mask(before[None], diffusion.EDIT_GROW["color"])[0, 0] == 0  # 32 x 32
    assert 0.3 < outside.float().mean() < 0.95  # a real background and a real product
    afters = [_pixels(folder / f"after-{s}.png") for s in (5, 6)]
    for after in afters:
        assert torch.equal(after[:, outside], before[:, outside])  # the photo's own pixels, byte for byte
        assert (after[:, ~outside] != before[:, ~outside]).any()  # the product was redrawn
    assert not torch.equal(afters[0], afters[1])  # two seeds, two variants
    # variant i is what --seed S+i --n 1 writes: the variants are made in one batch, each from its own generator,
    # so they match up to the network's batch-size rounding (at most one grey level)
    code, _, err = _edit(run, tmp_path, store, "--model", "diffusion", "--image", src,
                         "--set", "color=teal,pattern=dotted", "--seed", 6, "--out", "one")
    assert code == 0, err
    alone = _pixels(tmp_path / "one" / "after-6.png")
    assert int((alone.int() - afters[1].int()).abs().max()) <= 1 and torch.equal(alone[:, outside], before[:, outside])
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["after-6.png", "before.png", "metadata.csv"]


def test_diffusion_edit_is_deterministic_and_takes_knobs(tmp_path, photo, store, monkeypatch):
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", store["PRODGEN_CHECKPOINTS"])
    src = _save(photo[0], tmp_path / "p.png")
    first = edit_photo("diffusion", src, {"size": "large"}, seed=3, steps=4, guidance=1.5)
    again = edit_photo("diffusion", src, {"size": "large"}, seed=3, steps=4, guidance=1.5)
    assert torch.equal(first[1], again[1]) and first[2]["seeds"] == [3]
    other = edit_photo("diffusion", src, {"size": "large"}, seed=3, steps=6, guidance=1.5)
    assert not torch.equal(first[1], other[1])  # the knobs reach the sampler
    grown = diffusion.product_mask(first[0], diffusion.EDIT_GROW["size"])[0, 0] == 0
    assert torch.equal(first[1][0][:, grown], first[0][0][:, grown])


# ----------------------------------------------------------------------------- photos of other sizes and modes
def test_other_sizes_are_fitted_with_a_note(tmp_path, photo, store, monkeypatch, capsys):
    big = torch.nn.functional.interpolate(photo[0][None].float(), size=(48, 64), mode="bilinear")[0]
    src = _save(big.round().clamp(0, 255).to(torch.uint8), tmp_path / "wide.png", mode="RGBA")
    code, out, err = _edit(in_this_process(monkeypatch, capsys), tmp_path, store,
                           "--model", "cvae", "--image", src, "--set", "brand=acme", "--out", "edited")
    assert code == 0, err
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == [("note: wide.png is 64x48: resized to 32x32 (fitted inside with Lanczos, centred on its "
                      f"border colour {_border(photo[0])})")], out
    before = _pixels(tmp_path / "edited" / "before.png")
    assert all(r["note"] == notes[0][len("note: "):] for r in _metadata(tmp_path / "edited"))
    assert (before[:, :4] == torch.tensor(_border(photo[0]))[:, None, None]).all()  # 64x48 -> 32x24: 4 px bars
    assert (before[:, 28:] == torch.tensor(_border(photo[0]))[:, None, None]).all()


def _border(image: torch.Tensor) -> tuple:
    """The border colour the fitted 64x48 version of ``image`` gets (computed as load_photo does)."""
    big = torch.nn.functional.interpolate(image[None].float(), size=(48, 64), mode="bilinear")[0]
    fitted = np.asarray(Image.fromarray(big.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
                        .resize((32, 24), Image.LANCZOS))
    border = np.concatenate([fitted[0], fitted[-1], fitted[:, 0], fitted[:, -1]])
    return tuple(int(c) for c in np.median(border, axis=0).round())


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "JPEG"])
def test_any_mode_is_read_as_rgb(tmp_path, photo, mode):
    path = tmp_path / {"JPEG": "p.jpg", "CMYK": "p.tif"}.get(mode, "p.png")
    _save(photo[0], path, None if mode == "JPEG" else mode, **({"quality": 95,
                                                                "subsampling": 0} if mode == "JPEG" else {}))
    image, note = load_photo(path)
    assert image.shape == (1, 3, 32, 32) and image.dtype == torch.uint8 and note is None
    diff = (image[0].int() - photo[0].int()).abs()
    if mode == "L":  # grey stays grey: three equal channels, the file's own values
        grey = torch.from_numpy(np.asarray(Image.open(path)).copy())
        assert all(torch.equal(image[0, c], grey) for c in range(3))
    elif mode == "P":  # the palette's colours, close to the photo's with 64 of them
        assert torch.equal(image[0], torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0,
                                                                                                                  1))
        assert diff.float().mean() < 3, diff.float().mean()
    elif mode == "JPEG":  # lossy
        assert diff.float().mean() < 3, diff.float().mean()
    else:  # opaque RGBA and CMYK (Pillow's plain conversion) come back exactly
        assert diff.max() == 0


def test_transparency_becomes_the_studio_grey(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (200, 30, 30, 255)  # an opaque red square on transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    image, note = load_photo(tmp_path / "cutout.png")
    assert "cutout.png is 40x40: resized to 32x32 (fitted inside with Lanczos)" == note
    assert tuple(image[0, :, 0, 0].tolist()) == STUDIO_GREY and tuple(image[0, :, 16, 16].tolist()) == (200, 30, 30)
    palette = Image.fromarray(rgba[:32, :32, :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])  # the black corner's index: see-through
    palette.save(tmp_path / "palette.png", transparency=palette.info["transparency"])
    image, note = load_photo(tmp_path / "palette.png")
    assert note is None and tuple(image[0, :, 0, 0].tolist()) == STUDIO_GREY
    assert tuple(image[0, :, 16, 16].tolist()) == (200, 30, 30)


# ----------------------------------------------------------------------------- bad input
def _not_an_image(t: Path) -> list:
    (t / "notes.png").write_text("not a picture", encoding="utf-8")
    return ["--image", "notes.png"]


def _full_out(t: Path) -> list:
    (t / "out").mkdir()
    (t / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    return []


CVAE = ["--model", "cvae", "--set", "color=teal"]
BAD_INPUT = {  # case: (arguments, setup(tmp_path) -> more arguments, what the line says)
    "missing photo": (CVAE + ["--image", "nowhere.png"], None, "no photo at nowhere.png"),
    "photo is a folder": (CVAE + ["--image", "."], None, "(it is a folder)"),
    "empty photo path": (CVAE + ["--image", ""], None, "--image needs the path of a photo"),
    "not an image": (CVAE, _not_an_image, "notes.png is not an image Pillow can read"),
    "unknown attribute": (["--model", "cvae", "--set", "colour=teal"], None, "unknown attribute 'colour'"),
    "unknown value": (["--model", "cvae", "--set", "color=chartreuse"], None, "unknown color 'chartreuse'; valid"),
    "not key=value": (["--model", "cvae", "--set", "teal"], None, "--set expects key=value pairs"),
    "empty --set": (["--model", "cvae", "--set", ""], None, "--set is empty"),
    "only commas": (["--model", "cvae", "--set", ",,"], None, "--set is empty; give key=value pairs"),
    "no value": (["--model", "cvae", "--set", "color="], None, "no change requested"),
    "cannot edit": (["--model", "cgan-projection", "--set", "color=teal"], None,
                    "cgan-projection cannot edit photos; models that can edit: cvae, diffusion, flow"),
    "unknown model": (["--model", "nonesuch", "--set", "color=teal"], None,
                      "unknown model 'nonesuch'; models that can edit: cvae, diffusion, flow"),
    "out not empty": (CVAE, _full_out, "is not empty; choose an empty or new folder"),
    "n zero": (CVAE + ["--n", "0"], None, "n must be between 1 and"),
    "n not a number": (CVAE + ["--n", "two"], None, "n must be a whole number of images"),
    "negative seed": (CVAE + ["--seed", "-1"], None, "--seed must be a whole number >= 0"),
    "seed not a number": (CVAE + ["--seed", "x"], None, "--seed must be a whole number >= 0, got 'x'"),
    "cvae variants": (CVAE + ["--n", "2"], None, "cvae's edit is deterministic (one result per photo)"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case, photo, store, monkeypatch, capsys):
    _check_bad_input(tmp_path, *BAD_INPUT[case], photo, store, in_this_process(monkeypatch, capsys))


@pytest.mark.slow  # a python -m prodgen.cli subprocess imports torch: ~6 s on the busy 2-core machine
def test_bad_input_through_the_command(tmp_path, photo, store):
    _check_bad_input(tmp_path, *BAD_INPUT["cannot edit"], photo, store, in_a_subprocess)


def test_an_editor_that_is_not_shipped_says_how_to_get_it(tmp_path, photo, monkeypatch, capsys):
    store = {"PRODGEN_CHECKPOINTS": str(_checkpoints(tmp_path / "ckpt", diffusion_width=None))}
    _check_bad_input(tmp_path, ["--model", "diffusion", "--set", "color=teal"], None,
                     "diffusion can edit photos but is not shipped yet; train it with `prodgen train diffusion`",
                     photo, store, in_this_process(monkeypatch, capsys))


def _check_bad_input(tmp_path, args, setup, message, photo, store, run):
    _save(photo[0], tmp_path / "lamp.png")
    more = setup(tmp_path) if setup else []
    if "--image" not in args + more:
        more += ["--image", "lamp.png"]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, stdout, stderr = run(["edit", *args, *more, "--out", "out"], cwd=tmp_path, env=store)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prodgen: error: "), stderr
    assert message in lines[0] and "Traceback" not in stderr, lines[0]
    assert stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    if setup is _full_out:
        assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    else:
        assert not (tmp_path / "out").exists()

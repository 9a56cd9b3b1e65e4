"""`prodgen tryon` and try-on models in the registry (lesson 15, issue 26 §4).

The registry finds try-on models by the protocol's capabilities (``can_try_on``, ``generates``), never by name: the
weightless cut-and-paste baseline and a fake learned try-on model registered here are try-on models and never image
generators (not offered to `prodgen generate`, the leaderboard or the studio). The command's cases run
`prodgen.cli.main` in the test's process (tests/cli_helpers.py) on scenes named SPLIT:INDEX, with catalog photos
(64 px test split) as products; the shipped judges read the photo and the results.
"""
from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from prodgen import checkpoints
from prodgen.apps.tryon import MAX_N, METADATA_COLUMNS, load_product
from prodgen.catalog import load_catalog
from prodgen.catalog.scenes import scene_at
from prodgen.evaluation import leaderboard
from prodgen.models import registry
from prodgen.models.condition import request_to_dict
from prodgen.models.protocol import ImageModel
from prodgen.models.registry import ModelSpec
from prodgen.models.tryon import CutPaste

from cli_helpers import in_a_subprocess, in_this_process, shipped_subset

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py

SCENE, TABLETOP = "test:17", "test:7"  # a mannequin (top, shoes, cap, bag) and a tabletop (table)
PRODUCTS = {"shirt": 33, "mug": 2, "cap": 6}  # 64 px test photos: a small pink plain t-shirt by Orbit, ...


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """``{name: (path of its 64 px PNG, its true attributes)}`` for the test photos in :data:`PRODUCTS`."""
    folder = tmp_path_factory.mktemp("photos")
    cat = load_catalog("test", size=64, progress=False)
    out = {}
    for name, i in PRODUCTS.items():
        Image.fromarray(cat.images[i].permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
        out[name] = (folder / f"{name}.png", request_to_dict(cat.labels[i]))
    return out


@pytest.fixture
def run(monkeypatch, capsys):
    return in_this_process(monkeypatch, capsys)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.size == (64, 64)
        return np.asarray(im).copy()


def _metadata(folder: Path) -> list[dict]:
    with open(folder / "metadata.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == METADATA_COLUMNS
        return list(reader)


# ----------------------------------------------------------------------------- the registry
class FakeNet(nn.Module):
    """A learned try-on model's stand-in: one learnable colour."""

    def __init__(self):
        super().__init__()
        self.colour = nn.Parameter(torch.tensor([40.0, 200.0, 90.0]))


class FakeTryOn(ImageModel):
    """Paints the slot's mask in the network's colour plus seeded noise (a try-on that draws)."""

    can_try_on = True
    try_on_draws = True
    generates = False
    image_size = 64

    def _try_on(self, inputs, seed, **knobs):
        noise = torch.rand(inputs.scenes.shape, generator=torch.Generator().manual_seed(seed)) * 30
        painted = (self.network.colour.detach().view(1, 3, 1, 1) + noise).round().clamp(0, 255).to(torch.uint8)
        return torch.where(inputs.masks[:, None], painted, inputs.scenes)


FAKE = ModelSpec("fake-tryon-64", "tryon", lambda config: FakeNet(), model=FakeTryOn, lesson=15, resolution=64,
                 summary="a fake learned try-on model (tests)")


def test_the_baseline_is_a_weightless_try_on_model_and_never_a_generator():
    found = registry.spec("cut-paste")
    assert found.is_tryon and found.weightless and not found.is_generator and found.model is CutPaste
    assert "cut-paste" in registry.tryon_models(shipped=True) and "cut-paste" not in registry.manifest()
    assert "cut-paste" not in registry.generators() and "cut-paste" not in registry.generator_kinds()
    assert not set(registry.tryon_models()) & set(registry.generators())
    model = registry.load_tryon("cut-paste")
    assert isinstance(model, CutPaste) and model.name == "cut-paste"
    with pytest.raises(ValueError, match="is not an image generator"):
        registry.load_generator("cut-paste")
    with pytest.raises(ValueError, match="has no weights to load"):
        registry.load("cut-paste")
    with pytest.raises(ValueError, match="has no weights to save"):
        registry.save("cut-paste", nn.Identity(), {})
    with pytest.raises(ValueError, match="does not generate images"):
        model.generate(2)
    with pytest.raises(ValueError, match="is not a try-on model; try-on models: cut-paste"):
        registry.load_tryon("dcgan")


def test_a_weightless_spec_needs_a_model_class_and_no_trainer():
    with pytest.raises(ValueError, match="weightless spec"):
        ModelSpec("nothing", "tryon", None)
    with pytest.raises(ValueError, match="weightless spec"):
        ModelSpec("trained", "tryon", None, train=lambda *a, **k: {}, model=CutPaste)


def test_a_checkpoint_file_claiming_a_weightless_model_is_refused(tmp_path):
    path = checkpoints.write_file(tmp_path / "fake.pt", {"state_dict": {}, "config": {}, "name": "cut-paste"})
    with pytest.raises(ValueError, match="a model without weights"):
        registry.load_file(path)


def test_a_learned_try_on_model_is_found_as_one_and_never_as_a_generator(tmp_path, monkeypatch, capsys, photos):
    run = in_this_process(monkeypatch, capsys)
    shipped_subset(tmp_path / "ckpt", ["judge-64", "scene-judge"], monkeypatch)
    with registry.registered(FAKE):
        assert registry.tryon_models() == ["cut-paste", "tryon-64", "fake-tryon-64"]  # tryon-64: not shipped
        assert registry.tryon_models(shipped=True) == ["cut-paste"]  # not trained yet
        assert "fake-tryon-64" not in registry.generators() and "fake-tryon-64" not in registry.generator_kinds()
        with pytest.raises(ValueError, match="unknown model 'fake-tryon-64'; generators"):
            leaderboard._check_models(["fake-tryon-64"])
        code, _, err = run(["generate", "--model", "fake-tryon-64", "--out", tmp_path / "gen"])
        assert code == 2 and "'fake-tryon-64' is not an image generator" in err
        code, _, err = run(["evaluate", "fake-tryon-64"])
        assert code == 2 and "'fake-tryon-64' is a try-on model: benchmarks/tryon.py measures it" in err
        args = ["tryon", "--scene", SCENE, "--slot", "top", "--product", photos["shirt"][0], "--model",
                "fake-tryon-64", "--n", "2", "--seed", "5", "--out"]
        code, _, err = run([*args, tmp_path / "early"])
        assert code == 2 and "fake-tryon-64 can try products on but is not shipped yet" in err
        assert not (tmp_path / "early").exists()

        torch.manual_seed(0)
        registry.save("fake-tryon-64", FakeNet(), {})  # into the private checkpoint folder
        assert registry.tryon_models(shipped=True) == ["cut-paste", "fake-tryon-64"]
        assert "fake-tryon-64" not in registry.generators(shipped=True)
        assert isinstance(registry.load_tryon("fake-tryon-64"), FakeTryOn)
        code, out, err = run(["models"])
        assert code == 0 and any(line.startswith("fake-tryon-64") and "prodgen tryon" in line
                                 for line in out.splitlines()), out
        assert any(line.startswith("cut-paste") and "no weights" in line for line in out.splitlines()), out
        code, out, err = run([*args, tmp_path / "tried"])
        assert code == 0, err
    folder = tmp_path / "tried"
    scene, mask = _pixels(folder / "scene.png"), _pixels(folder / "mask.png") > 0
    first, second = _pixels(folder / "result-5.png"), _pixels(folder / "result-6.png")
    assert (first[~mask] == scene[~mask]).all() and (second[~mask] == scene[~mask]).all()
    assert (first[mask] != second[mask]).any()  # a model that draws: seeds differ
    rows = [r for r in _metadata(folder) if r["role"] == "result"]
    assert [(r["file"], r["model"], r["seed"]) for r in rows] == [("result-5.png", "fake-tryon-64", "5"),
                                                                    ("result-6.png", "fake-tryon-64", "6")]


# ----------------------------------------------------------------------------- the command: happy paths
def test_tryon_writes_scene_product_mask_result_and_metadata(tmp_path, photos, run):
    path, truth = photos["shirt"]
    code, out, err = run(["tryon", "--scene", SCENE, "--slot", "top", "--product", path, "--out", tmp_path / "o"])
    assert code == 0, err
    folder = tmp_path / "o"
    assert sorted(p.name for p in folder.iterdir()) == ["mask.png", "metadata.csv", "product.png", "result-0.png",
                                                         "scene.png"]
    scene = scene_at("test", 0, 17)
    assert (_pixels(folder / "scene.png") == scene.image.transpose(1, 2, 0)).all()
    with Image.open(folder / "mask.png") as im:
        assert im.mode == "L" and (np.asarray(im) == scene.masks["top"] * 255).all()
    product, note = load_product(path)
    assert note is None and (_pixels(folder / "product.png") == product[0].permute(1, 2, 0).numpy()).all()
    expected = CutPaste().try_on(scene, "top", product)
    result = _pixels(folder / "result-0.png")
    assert (result == expected.permute(1, 2, 0).numpy()).all()

    rows = {r["file"]: r for r in _metadata(folder)}
    assert [rows[f]["role"] for f in rows] == ["scene", "product", "mask", "result"]
    assert all(r["scene"] == SCENE and r["slot"] == "top" for r in rows.values())
    worn, before = rows["result-0.png"], rows["scene.png"]
    assert (worn["model"], worn["seed"], worn["read_by"]) == ("cut-paste", "0", "scene-judge")
    assert worn["category"] == before["category"] == ""  # a shirt's slot shows no category: left empty
    assert {a: worn[a] for a in ("color", "brand", "pattern")} == {a: truth[a] for a in ("color", "brand", "pattern")}
    assert {a: before[a] for a in ("brand", "pattern")} == {"brand": "zenith", "pattern": "striped"}  # the old shirt
    assert rows["product.png"]["read_by"] == "judge-64" and rows["product.png"]["category"] == "t-shirt"
    assert "result-0.png: color=pink" in out and "wrote scene.png, product.png, mask.png, 1 result(s)" in out


def test_the_same_input_gives_the_same_bytes_and_outside_the_mask_is_kept(tmp_path, photos, run):
    for out in ("a", "b"):
        code, _, err = run(["tryon", "--scene", TABLETOP, "--product", photos["mug"][0], "--seed", "3", "--out",
                            tmp_path / out])
        assert code == 0, err
    for file in ("scene.png", "product.png", "mask.png", "result-3.png", "metadata.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    scene, result = _pixels(tmp_path / "a" / "scene.png"), _pixels(tmp_path / "a" / "result-3.png")
    mask = _pixels(tmp_path / "a" / "mask.png") > 0
    assert mask.any() and (result[~mask] == scene[~mask]).all()
    assert (result[mask] != scene[mask]).any()
    rows = _metadata(tmp_path / "a")
    assert {r["slot"] for r in rows} == {"table"}  # a tabletop's only slot, without --slot
    assert rows[-1]["category"] == "mug"  # the table slot shows the category: the scene judge reads a mug


def test_a_photo_of_another_size_is_fitted_with_a_note(tmp_path, photos, run):
    with Image.open(photos["cap"][0]) as im:
        im.resize((100, 80)).save(tmp_path / "wide.jpg")
    code, out, err = run(["tryon", "--scene", SCENE, "--slot", "cap", "--product", tmp_path / "wide.jpg",
                          "--out", tmp_path / "o"])
    assert code == 0, err
    assert "note: wide.jpg is 100x80: resized to 64x64" in out
    assert "wide.jpg is 100x80: resized to 64x64" in _metadata(tmp_path / "o")[1]["note"]


def test_list_slots_says_what_a_scene_holds(run):
    code, out, err = run(["tryon", "--list-slots", SCENE])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("test:17: a mannequin scene") and len(lines) == 5
    slots = scene_at("test", 0, 17).slots
    for line, slot in zip(lines[1:], ("top", "shoes", "cap", "bag")):
        attrs = slots[slot]
        assert line.split()[0] == slot and f"{attrs['color']} {attrs['pattern']} {attrs['category']}" in line


# ----------------------------------------------------------------------------- bad and hostile input
def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (an image bomb: a few bytes that would decode to GBs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def _setup(kind: str):
    def make(t: Path) -> list:
        if kind == "text":
            (t / "notes.png").write_text("not a picture", encoding="utf-8")
            return ["--product", "notes.png"]
        if kind == "link":
            (t / "link.png").symlink_to(t / "shirt.png")
            return ["--product", "link.png"]
        if kind in ("huge", "bomb"):
            return ["--product", _png_header(t / "big.png", *((8000, 8000) if kind == "huge" else (60000, 60000)))]
        if kind == "full":
            (t / "out").mkdir()
            (t / "out" / "keep.txt").write_text("mine", encoding="utf-8")
        if kind == "file":
            (t / "out").write_text("mine", encoding="utf-8")
        if kind == "out-link":
            (t / "elsewhere").mkdir()
            (t / "out").symlink_to(t / "elsewhere")
        return []
    return make


TOP = ["--scene", SCENE, "--slot", "top"]
BAD_INPUT = {  # case: (arguments, setup(tmp_path) -> more arguments, what the line says)
    "unknown split": (["--scene", "tst:17", "--slot", "top"], None, "unknown scene split 'tst'; valid splits: train"),
    "no index": (["--scene", "test", "--slot", "top"], None, "a scene is SPLIT:INDEX, e.g. test:17"),
    "index not a number": (["--scene", "test:x"], None, "the scene index must be a whole number 0-999, got 'x'"),
    "negative index": (["--scene", "test:-1"], None, "the scene index must be a whole number 0-999"),
    "index out of range": (["--scene", "test:1000"], None, "scene index 1000 is out of range: the test split has "
                                                           "scenes 0-999"),
    "unknown slot": (["--scene", SCENE, "--slot", "hat"], None, "scene test:17 (a mannequin) has no slot 'hat'; "
                                                                "its slots: top, shoes, cap, bag"),
    "slot the scene lacks": (["--scene", SCENE, "--slot", "table"], None, "has no slot 'table'"),
    "no slot on a mannequin": (["--scene", SCENE], None, "has slots top, shoes, cap, bag: choose one with --slot"),
    "a mug on the head": (["--scene", SCENE, "--slot", "cap", "--product", "mug.png"], None,
                          "slot 'cap' holds cap, not a mug (a mug goes in slot table of a tabletop scene)"),
    "a shirt on the table": (["--scene", TABLETOP, "--product", "shirt.png"], None, "slot 'table' holds mug, bottle, "
                                                                                   "lamp, not a t-shirt"),
    "not an image": (TOP, _setup("text"), "notes.png is not an image Pillow can read"),
    "symlinked photo": (TOP, _setup("link"), "link.png is a symbolic link; give the photo file itself"),
    "huge image": (TOP, _setup("huge"), "big.png is 8000x8000: more than 40,000,000 pixels"),
    "image bomb": (TOP, _setup("bomb"), "big.png has more than 40,000,000 pixels"),
    "missing photo": (TOP + ["--product", "nowhere.png"], None, "no photo at nowhere.png"),
    "photo is a folder": (TOP + ["--product", "."], None, "(it is a folder)"),
    "photo is a device": (TOP + ["--product", "/dev/zero"], None, "no photo at /dev/zero (not a regular file)"),
    "out not empty": (TOP, _setup("full"), "is not empty; choose an empty or new folder"),
    "out is a file": (TOP, _setup("file"), "exists and is not a folder"),
    "out is a symlink": (TOP, _setup("out-link"), "--out out is a symbolic link"),
    "unknown model": (TOP + ["--model", "nonesuch"], None, "'nonesuch' is not a try-on model; try-on models: "
                                                           "cut-paste"),
    "a generator as model": (TOP + ["--model", "dcgan"], None, "'dcgan' is not a try-on model"),
    "deterministic variants": (TOP + ["--n", "2"], None, "cut-paste's try-on is deterministic"),
    "n zero": (TOP + ["--n", "0"], None, "n must be between 1 and"),
    "n too many": (TOP + ["--n", str(MAX_N + 1)], None, f"at most {MAX_N} try-ons per run"),
    "negative seed": (TOP + ["--seed", "-1"], None, "--seed must be a whole number >= 0"),
    "no scene": (["--slot", "top"], None, "prodgen tryon needs --scene"),
    "list-slots with out": (["--list-slots", SCENE, "--out", "out"], None, "it takes no --out"),
    "list-slots bad scene": (["--list-slots", "test:5000"], None, "scene index 5000 is out of range"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case, photos, run):
    _check_bad_input(tmp_path, *BAD_INPUT[case], photos, run)


@pytest.mark.slow  # a python -m prodgen.cli subprocess imports torch: ~6 s on the busy 2-core machine
def test_bad_input_through_the_command(tmp_path, photos):
    _check_bad_input(tmp_path, *BAD_INPUT["a mug on the head"], photos, in_a_subprocess)


def _check_bad_input(tmp_path, args, setup, message, photos, run):
    for name, (path, _) in photos.items():
        (tmp_path / f"{name}.png").write_bytes(path.read_bytes())
    more = setup(tmp_path) if setup else []
    given = args + more
    if "--product" not in given and "--list-slots" not in given:
        more += ["--product", "shirt.png"]
    if "--out" not in given and "--list-slots" not in given:
        more += ["--out", "out"]
    before = sorted((p.relative_to(tmp_path), p.is_file() and p.read_bytes()) for p in tmp_path.rglob("*"))
    code, out, err = run(["tryon", *args, *more], cwd=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert sorted((p.relative_to(tmp_path), p.is_file() and p.read_bytes()) for p in tmp_path.rglob("*")) == before

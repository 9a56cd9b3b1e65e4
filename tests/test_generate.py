"""`prodgen generate`: PNGs plus metadata.csv from attributes, descriptions or a CSV of requests.

Bad input gives exit status 2 and one line on stderr, never a traceback, and writes nothing; an
interrupted run leaves nothing behind; the same seed gives byte-identical files.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import prodgen.apps.generate
from prodgen.apps.generate import METADATA_COLUMNS, MODELS, Request, Row, generate_catalog, read_requests
from prodgen.catalog import denormalize
from prodgen.catalog.attributes import ATTRIBUTE_NAMES
from prodgen.cli import main
from prodgen.models import cgan, registry
from prodgen.models.condition import parse_request

from cli_helpers import in_a_subprocess, in_this_process

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py

SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "data" / "checkpoints"


def _generate(*args) -> int:
    return main(["generate", *[str(a) for a in args]])


def _metadata(out: Path) -> list[dict]:
    with open(out / "metadata.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == METADATA_COLUMNS
        return list(reader)


def _pngs(out: Path) -> list[Path]:
    return sorted(out.glob("*.png"))


def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_metadata_columns():
    assert METADATA_COLUMNS == ("file", "category", "color", "size", "brand", "pattern", "description", "model",
                                "seed")
    assert {k for k, v in MODELS.items() if v == "text"} == {"text2img", "text2img-embedding", "diffusion-text",
                                                             "flow-text", "latent-64-text"}


# ----------------------------------------------------------------------------- one request
def test_text_request(tmp_path, capsys):
    out = tmp_path / "out"
    text = "a large red striped t-shirt by Acme"
    assert _generate("--model", "text2img", "--text", text, "--n", 3, "--seed", 4, "--out", out) == 0
    assert "wrote 3 image(s) from 1 request(s)" in capsys.readouterr().out
    pngs = _pngs(out)
    assert [p.name for p in pngs] == ["000000.png", "000001.png", "000002.png"]
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in pngs] + ["metadata.csv"]
    rows = _metadata(out)
    assert [r["file"] for r in rows] == [p.name for p in pngs]
    heard = {"category": "t-shirt", "color": "red", "size": "large", "brand": "acme", "pattern": "striped"}
    for r in rows:  # the attribute columns say what the reader heard in the description
        assert {a: r[a] for a in ATTRIBUTE_NAMES} == heard
        assert (r["description"], r["model"], r["seed"]) == (text, "text2img", "4")
    for p in pngs:
        with Image.open(p) as im:
            assert im.size == (32, 32) and im.mode == "RGB"
    want = denormalize(registry.load("text2img").generate([text] * 3, seed=4))
    got = torch.stack([torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1) for p in pngs])
    assert torch.equal(got, want)  # the files hold the model's images, losslessly


def test_chinese_text_request_fills_only_what_was_said(tmp_path):
    out = tmp_path / "out"
    assert _generate("--model", "text2img-embedding", "--text", "大号黑色马克杯", "--out", out) == 0
    (row,) = _metadata(out)
    assert {a: row[a] for a in ATTRIBUTE_NAMES} == {"category": "mug", "color": "black", "size": "large",
                                                    "brand": "", "pattern": ""}
    assert (row["description"], row["model"], row["seed"]) == ("大号黑色马克杯", "text2img-embedding", "0")


@pytest.mark.parametrize("model", ["cgan-projection", "cvae"])
def test_attribute_request(tmp_path, model):
    out = tmp_path / "out"
    assert _generate("--model", model, "--attrs", " category=mug , color=red,", "--n", 2, "--seed", 5,
                     "--out", out) == 0
    assert len(_pngs(out)) == 2
    rows = _metadata(out)
    assert [r["file"] for r in rows] == ["000000.png", "000001.png"]
    for r in rows:
        assert {a: r[a] for a in ATTRIBUTE_NAMES} == {"category": "mug", "color": "red", "size": "", "brand": "",
                                                      "pattern": ""}  # unspecified ones stay blank
        assert (r["description"], r["model"], r["seed"]) == ("", model, "5")
    if model == "cgan-projection":
        want = denormalize(cgan.generate(registry.load(model), parse_request({"category": "mug", "color": "red"})
                                         .repeat(2, 1), seed=5))
        got = torch.stack([torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1) for p in _pngs(out)])
        assert torch.equal(got, want)


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_unconditional_model_needs_no_request(tmp_path, capsys, model):
    out = tmp_path / "out"
    assert _generate("--model", model, "--n", 3, "--seed", 2, "--out", out) == 0
    assert "wrote 3 image(s) from 1 request(s)" in capsys.readouterr().out
    rows = _metadata(out)
    assert [r["file"] for r in rows] == ["000000.png", "000001.png", "000002.png"]
    for r in rows:
        assert {a: r[a] for a in ATTRIBUTE_NAMES} == dict.fromkeys(ATTRIBUTE_NAMES, "")
        assert (r["description"], r["model"], r["seed"]) == ("", model, "2")
    want = registry.load_generator(model).generate(3, seed=2)  # the protocol's images, losslessly
    got = torch.stack([torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1) for p in _pngs(out)])
    assert torch.equal(got, want)


@pytest.mark.parametrize("model, what", [
    ("cgan-projection", ["--attrs", "category=cap,pattern=dotted"]),
    ("cvae", ["--attrs", "color=blue"]),  # the CVAE fills the unspecified attributes at random: seeded too
    ("text2img", ["--text", "红色条纹T恤，Acme品牌"]),
    ("dcgan", []),  # unconditional: the noise alone, seeded
])
def test_same_seed_same_bytes_another_seed_differs(tmp_path, model, what):
    outs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        outs[name] = tmp_path / name
        assert _generate("--model", model, *what, "--n", 3, "--seed", seed, "--out", outs[name]) == 0
    files = {name: {p.name: p.read_bytes() for p in _pngs(out)} for name, out in outs.items()}
    assert len(files["a"]) == 3 and files["a"] == files["b"]
    assert (outs["a"] / "metadata.csv").read_bytes() == (outs["b"] / "metadata.csv").read_bytes()
    assert set(files["c"]) == set(files["a"])
    assert all(files["c"][k] != files["a"][k] for k in files["a"])
    assert len(set(files["a"].values())) == 3  # n images of one request are different images


# ----------------------------------------------------------------------------- a CSV of requests
def test_batch_of_attribute_requests(tmp_path, capsys):
    batch = _csv(tmp_path / "requests.csv", ["notes", "category", "color", "size", "n", "price"], [
        ["first", "mug", "red", "", "2", "9.99"],
        ["no n: --n applies", "cap", "", "large", "", ""],
        ["", "", "blue", "", "3", "x"],
    ])
    out = tmp_path / "out"
    assert _generate("--model", "cgan-projection", "--batch", batch, "--n", 2, "--seed", 10, "--out", out) == 0
    assert "wrote 7 image(s) from 3 request(s)" in capsys.readouterr().out
    rows = _metadata(out)
    assert len(_pngs(out)) == len(rows) == 2 + 2 + 3
    assert [r["file"] for r in rows] == [f"{k:06d}.png" for k in range(7)]
    got = [(r["category"], r["color"], r["size"], r["brand"], r["pattern"], r["seed"]) for r in rows]
    assert got == [("mug", "red", "", "", "", "10")] * 2 + [("cap", "", "large", "", "", "11")] * 2 + \
        [("", "blue", "", "", "", "12")] * 3  # in order; row r uses seed + r
    assert all(r["model"] == "cgan-projection" and r["description"] == "" for r in rows)


def test_batch_rows_do_not_depend_on_each_other(tmp_path):
    batch = _csv(tmp_path / "requests.csv", ["category", "color"], [["mug", "red"], ["lamp", "teal"]])
    assert _generate("--model", "cgan-projection", "--batch", batch, "--n", 2, "--seed", 3,
                     "--out", tmp_path / "both") == 0
    assert _generate("--model", "cgan-projection", "--attrs", "category=lamp,color=teal", "--n", 2, "--seed", 4,
                     "--out", tmp_path / "second") == 0
    both, second = _pngs(tmp_path / "both"), _pngs(tmp_path / "second")
    assert [p.read_bytes() for p in both[2:]] == [p.read_bytes() for p in second]


def test_batch_of_descriptions_in_english_and_chinese(tmp_path):
    batch = _csv(tmp_path / "requests.csv", ["description", "category", "color", "n", "comment"], [
        ["a large red striped t-shirt by Acme", "", "", "2", "ignored"],
        ["Nova品牌蓝色小号双肩包", "", "", "", ""],
        ["", "cap", "blue", "1", ""],  # attributes only: described for the text model
    ])
    out = tmp_path / "out"
    assert _generate("--model", "text2img", "--batch", batch, "--seed", 0, "--out", out) == 0
    rows = _metadata(out)
    assert len(_pngs(out)) == len(rows) == 4
    expected = ["a large red striped t-shirt by Acme"] * 2 + ["Nova品牌蓝色小号双肩包"]
    assert [r["description"] for r in rows[:3]] == expected
    assert rows[3]["description"].startswith("a ")  # an English description of the attributes
    assert [r["seed"] for r in rows] == ["0", "0", "1", "2"]
    assert {a: rows[0][a] for a in ATTRIBUTE_NAMES} == {"category": "t-shirt", "color": "red", "size": "large",
                                                        "brand": "acme", "pattern": "striped"}
    assert {a: rows[2][a] for a in ATTRIBUTE_NAMES} == {"category": "backpack", "color": "blue", "size": "small",
                                                        "brand": "nova", "pattern": ""}
    assert (rows[3]["category"], rows[3]["color"]) == ("cap", "blue")


def test_attribute_rows_for_a_text_model_are_deterministic(tmp_path):
    batch = _csv(tmp_path / "requests.csv", ["category", "color", "n"], [["cap", "blue", "6"], ["lamp", "pink", "6"]])
    runs = []
    for name in ("a", "b"):
        assert _generate("--model", "text2img", "--batch", batch, "--seed", 0, "--out", tmp_path / name) == 0
        rows = _metadata(tmp_path / name)
        runs.append(([p.read_bytes() for p in _pngs(tmp_path / name)], [r["description"] for r in rows]))
    for _, descriptions in runs:  # one request, one description
        assert len(set(descriptions[:6])) == 1 and len(set(descriptions[6:])) == 1
    assert runs[0] == runs[1]


def test_read_requests(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("\ufeff Color ,color, n ,description\nx,red,3,\ny,,,a mug\n", encoding="utf-8")  # BOM, spaces
    assert read_requests(path, default_n=5) == [Row(Request({"color": "red"}), 3),
                                                 Row(Request(text="a mug"), 5)]


# ----------------------------------------------------------------------------- bad input
def _exists_and_full(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    return {}


def _checkpoints(tmp_path, damage):
    store = tmp_path / "ckpt"
    shutil.copytree(SHIPPED_CHECKPOINTS, store)
    damage(store / "cgan-projection.pt")
    return {"PRODGEN_CHECKPOINTS": str(store)}


def _batch(text):
    def setup(tmp_path):
        (tmp_path / "requests.csv").write_text(text, encoding="utf-8")
        return {}
    return setup


ATTRS = ["--model", "cgan-projection", "--attrs"]
BATCH = ["--model", "cgan-projection", "--batch", "requests.csv"]
BAD_INPUT = {
    "unknown attribute": (ATTRS + ["colour=red"], None,
                          "unknown attribute 'colour'; valid attributes: category, color, size, brand, pattern"),
    "unknown value": (ATTRS + ["category=mug,color=purpl"], None,
                      "unknown color 'purpl'; valid values: red, orange, yellow, green, teal, blue, purple, pink, "
                      "brown, black"),
    "empty text": (["--model", "text2img", "--text", "   "], None, "the description is empty"),
    "no product word": (["--model", "text2img", "--text", "something nice for my sister"], None,
                        "names no product attribute the catalog knows"),
    "unknown model": (["--model", "stylegan", "--attrs", "color=red"], None,
                      "'stylegan' is not an image generator; generators: dcgan, vae, cgan-projection, cgan-concat, "
                      "cgan-acgan, cvae, text2img, text2img-embedding, cgan-stable"),
    "not an image model": (["--model", "judge", "--attrs", "color=red"], None, "'judge' is not an image generator"),
    "attributes for an unconditional model": (["--model", "dcgan", "--attrs", "color=red"], None,
                                              "dcgan is unconditional: it takes no attributes or description"),
    "text for an unconditional model": (["--model", "vae", "--text", "a red mug"], None, "vae is unconditional"),
    "no request for an attribute model": (
        ["--model", "cvae"], None, "cvae needs a request: give --attrs (e.g. category=mug,color=red) or --batch"),
    "malformed attrs": (ATTRS + ["color:red"], None, "--attrs expects key=value pairs"),
    "empty attrs": (ATTRS + [" , "], None, "--attrs is empty"),
    "n zero": (ATTRS + ["color=red", "--n", "0"], None, "n must be between 1 and 100000, got 0"),
    "n not a number": (ATTRS + ["color=red", "--n", "two"], None, "n must be a whole number"),
    "batch missing": (["--model", "cgan-projection", "--batch", "nope.csv"], None, "request file not found"),
    "batch without request columns": (BATCH, _batch("name,price\nmug,3\n"),
                                      "has no request columns; give a 'description' column and/or attribute columns"),
    "batch unknown value": (BATCH, _batch("category,color\nmug,red\ncap,bleu\n"),
                            "line 3: unknown color 'bleu'; valid values: red,"),
    "batch bad n": (BATCH, _batch("category,n\nmug,1\nmug,-4\n"), "line 3: n must be between 1 and"),
    "batch empty row": (BATCH, _batch("category,color\nmug,red\n,\n"), "line 3: the row asks for nothing"),
    "batch text row for an attribute model": (BATCH, _batch("description,color\nblue mug,blue\na red mug,\n"),
                                              "request 2: cgan-projection is controlled by attributes, not text"),
    "text for an attribute model": (ATTRS[:2] + ["--text", "a red mug"], None, "is controlled by attributes, not text"),
    "attributes without category for a text model": (["--model", "text2img", "--attrs", "color=red"], None,
                                                     "needs a description, or attributes that include a category"),
    "out not empty": (ATTRS + ["color=red"], _exists_and_full, "is not empty; choose an empty or new folder"),
    "missing checkpoint": (ATTRS + ["color=red"], lambda t: _checkpoints(t, Path.unlink),
                           "checkpoint for 'cgan-projection' is missing"),
    "corrupt checkpoint": (ATTRS + ["color=red"], lambda t: _checkpoints(t, lambda p: p.write_bytes(b"junk" * 100)),
                           "checkpoint for 'cgan-projection' is corrupt"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case, monkeypatch, capsys):
    _check_bad_input(tmp_path, case, in_this_process(monkeypatch, capsys))


@pytest.mark.parametrize("case", ["unknown model", "missing checkpoint"])
def test_bad_input_through_the_command(tmp_path, case):
    _check_bad_input(tmp_path, case, in_a_subprocess)


def _check_bad_input(tmp_path, case, run):
    args, setup, message = BAD_INPUT[case]
    env = setup(tmp_path) if setup else {}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, stdout, stderr = run(["generate", *args, "--out", "out"], cwd=tmp_path, env=env)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prodgen: error: "), stderr
    assert message in lines[0] and "Traceback" not in stderr
    assert stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    if case == "out not empty":
        assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    else:
        assert not (tmp_path / "out").exists()
    if "checkpoint" in case:
        path = tmp_path / "ckpt" / "cgan-projection.pt"
        assert "Restore it with `git checkout -- " in lines[0] and str(path) in lines[0]
        assert "prodgen train cgan-projection" in lines[0]


def test_empty_batch_argument_is_a_clear_error(tmp_path):
    assert _generate("--model", "cgan-projection", "--batch", "", "--out", tmp_path / "out") == 2


def test_batch_row_with_more_cells_than_the_header_is_a_clear_error(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("category,color\nmug,red,extra\n", encoding="utf-8")
    with pytest.raises(ValueError):
        read_requests(path)


def test_in_process_errors_name_what_was_wrong(tmp_path, capsys):
    out = tmp_path / "out"
    assert _generate("--model", "cvae", "--attrs", "size=huge", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("prodgen: error: unknown size 'huge'; valid values: small, medium, large")
    assert not out.exists()


# ----------------------------------------------------------------------------- nothing half-written
def _interrupt_second_request(monkeypatch, tmp_path, error=KeyboardInterrupt):
    """Make the 2nd batch of rows fail (one row a batch); returns what the temporary folder held at that moment."""
    monkeypatch.setattr(prodgen.apps.generate, "BATCH_IMAGES", 1)
    real = prodgen.apps.generate._generate_batch
    calls, seen = [], {}

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            (folder,) = [p for p in tmp_path.iterdir() if ".partial" in p.name]
            seen["files"] = sorted(p.name for p in folder.iterdir())
            raise error()
        return real(*args, **kwargs)

    monkeypatch.setattr(prodgen.apps.generate, "_generate_batch", flaky)
    return seen


def test_an_interrupted_run_leaves_nothing_behind(tmp_path, monkeypatch):
    seen = _interrupt_second_request(monkeypatch, tmp_path)
    out = tmp_path / "out"
    requests = [Row(Request({"color": "red"}), 2), Row(Request({"color": "blue"}), 2), Row(Request({"size": "small"}))]
    with pytest.raises(KeyboardInterrupt):
        generate_catalog("cgan-projection", requests, out, seed=0)
    assert seen["files"] == ["000000.png", "000001.png"]  # the run had written files before it stopped
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no ".partial" folder left either


def test_an_interrupted_run_into_an_empty_folder_leaves_it_empty(tmp_path, monkeypatch):
    _interrupt_second_request(monkeypatch, tmp_path, error=lambda: RuntimeError("boom"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        generate_catalog("cvae", [Row(Request({"color": "red"})), Row(Request({"color": "blue"}))], out)
    assert out.is_dir() and not any(out.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_cli_interrupt_says_nothing_was_left_behind(tmp_path, monkeypatch, capsys):
    _interrupt_second_request(monkeypatch, tmp_path)
    batch = _csv(tmp_path / "requests.csv", ["category"], [["mug"], ["cap"]])
    assert _generate("--model", "cgan-projection", "--batch", batch, "--out", tmp_path / "out") == 130
    assert "interrupted; nothing half-written was left behind" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["requests.csv"]

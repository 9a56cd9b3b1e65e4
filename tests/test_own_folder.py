"""Your own catalog folder (issue 13, lesson 12): any attribute columns, any image, one clear line for bad input.

The catalog here is drawn with plain Pillow by tests/drawn_catalog.py, not by prodgen's renderer.
"""
from __future__ import annotations

import csv
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prodgen.catalog import export_catalog, load_catalog
from prodgen.catalog.folder import MIN_PER_VALUE, describe_folder, fit_image, load_folder
from prodgen.catalog.schema import BUILTIN, Schema
from prodgen.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from drawn_catalog import COLOURS, SHAPES, draw_catalog


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """200 drawn products: 8 of each (shape, colour) pair, 40 of each value."""
    return draw_catalog(tmp_path_factory.mktemp("drawn") / "shapes", n=200, seed=0)


def _rows(folder):
    with open(folder / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write(folder, header, rows, images=None, size=8):
    """A small catalog folder: ``rows`` under ``header``; every listed ``.png`` gets a plain image unless
    ``images`` says otherwise (``{name: bytes or None}``; None: no file)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = images or {}
    for row in rows:
        name = row[header.index("file")] if "file" in header else ""
        if name in images:
            if images[name] is not None:
                (folder / name).write_bytes(images[name])
        elif name.endswith(".png"):
            Image.fromarray(np.full((size, size, 3), 90, np.uint8)).save(folder / name)
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return folder


# ------------------------------------------------------------------ the drawn catalog
def test_drawn_catalog_is_balanced_and_deterministic(tmp_path):
    a = draw_catalog(tmp_path / "a", n=50, seed=3)
    b = draw_catalog(tmp_path / "b", n=50, seed=3)
    c = draw_catalog(tmp_path / "c", n=50, seed=4)
    names = sorted(p.name for p in a.iterdir())
    assert len(names) == 51 and names == sorted(p.name for p in b.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert (a / "00000.png").read_bytes() != (c / "00000.png").read_bytes()
    pairs = [(r["shape"], r["colour"]) for r in _rows(a)]
    assert {p: pairs.count(p) for p in set(pairs)} == {(s, k): 2 for s in SHAPES for k in COLOURS}
    with pytest.raises(FileExistsError):
        draw_catalog(a, n=5)


def test_schema_is_inferred_from_the_columns(drawn):
    cat = load_folder(drawn)
    assert cat.schema == Schema({"shape": sorted(SHAPES), "colour": sorted(COLOURS)})
    assert cat.images.shape == (200, 3, 32, 32) and cat.labels.shape == (200, 2)
    assert cat.value_counts("shape") == {s: 40 for s in sorted(SHAPES)}
    assert cat.value_counts("colour") == {c: 40 for c in sorted(COLOURS)}
    rows = _rows(drawn)
    assert [cat.attributes(i) for i in (0, 1, 199)] == [{"shape": rows[i]["shape"], "colour": rows[i]["colour"]}
                                                        for i in (0, 1, 199)]
    assert cat.descriptions_en[0] == rows[0]["description_en"] and cat.descriptions_zh[0] == ""
    first = np.asarray(Image.open(drawn / rows[0]["file"]))  # a 32x32 RGB file is taken as it is
    assert np.array_equal(cat.images[0].permute(1, 2, 0).numpy(), first)


def test_a_given_schema_fixes_the_label_order(drawn):
    colours = tuple(sorted(COLOURS, reverse=True))
    schema = Schema({"colour": colours, "shape": sorted(SHAPES)})  # another order of columns and values
    cat = load_folder(drawn, schema=schema)
    assert cat.schema == schema
    rows = _rows(drawn)
    assert cat.labels[:5, 0].tolist() == [colours.index(r["colour"]) for r in rows[:5]]
    fewer = Schema({"shape": sorted(SHAPES), "colour": ["blue", "green", "purple", "red"]})
    first_yellow = next(i for i, r in enumerate(rows) if r["colour"] == "yellow")
    with pytest.raises(ValueError, match=rf"row {first_yellow + 2} \(file '{rows[first_yellow]['file']}'\): colour "
                                         r"'yellow' is not in the schema; valid values: blue, green, purple, red$"):
        load_folder(drawn, schema=fewer)
    with pytest.raises(ValueError, match=r"has the attribute columns shape, colour but the schema .* has category, "
                                         r"color, size, brand, pattern; missing: category, color, size, brand, "
                                         r"pattern; not in the schema: shape, colour"):
        load_folder(drawn, schema=BUILTIN)


def test_own_schema_exports_and_loads_back(drawn, tmp_path):
    cat = load_folder(drawn)
    out = export_catalog(cat, tmp_path / "again")
    assert _rows(out)[0].keys() == {"file", "shape", "colour", "description_en", "description_zh"}
    back = load_folder(out)
    assert back.schema == cat.schema
    assert torch.equal(back.labels, cat.labels) and torch.equal(back.images, cat.images)


def test_course_export_loads_back_as_the_builtin_schema(tmp_path):
    cat = load_catalog("test", n=300, size=32, cache=False, progress=False)
    back = load_folder(export_catalog(cat, tmp_path / "export"), min_per_value=1)
    assert back.schema == BUILTIN  # every value occurs, so the inferred schema is the course's, in its order
    assert torch.equal(back.labels, cat.labels) and torch.equal(back.images, cat.images)


def test_attributes_picks_the_columns(tmp_path):
    rows = [[f"{i}.png", ["circle", "star"][i % 2], f"{i}.99", ["red", "blue", ""][i % 3]] for i in range(12)]
    folder = _write(tmp_path / "f", ["file", "shape", "price", "colour"], rows)
    cat = load_folder(folder, attributes="shape, colour", min_per_value=3)
    assert cat.schema.names == ("shape", "colour")
    assert cat.values == {"shape": ["circle", "star"], "colour": ["blue", "red"]}
    assert int((cat.label("colour") == -1).sum()) == 4  # empty cells are unknown
    assert load_folder(folder, attributes=["colour"], min_per_value=3).schema.names == ("colour",)
    # Without attributes=, every column but file and the descriptions is one: here the price too.
    assert load_folder(folder, min_per_value=1).schema.names == ("shape", "price", "colour")
    with pytest.raises(ValueError,
                       match=r"too few images for price '0.99' \(1\), '1.99' \(1\), .*: the minimum is 2 per value"):
        load_folder(folder, min_per_value=2)
    with pytest.raises(ValueError, match="has no column 'size'; its attribute columns: shape, price, colour"):
        load_folder(folder, attributes=["shape", "size"])


# ------------------------------------------------------------------ bad input: one line, from Python and the CLI
def _not_utf8(folder):
    folder.mkdir()
    (folder / "metadata.csv").write_bytes("file,farbe\na.png,gr\xfcn\n".encode("latin-1"))


def _semicolons(folder):
    folder.mkdir()
    (folder / "metadata.csv").write_text("file;shape\na.png;star\n")


def _images_only(folder):
    _write(folder, ["file"], [["a.png"], ["b.png"]])
    (folder / "metadata.csv").unlink()


def _truncated(folder):
    whole = _png(Image.fromarray(np.arange(3 * 64 * 64, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8)))
    _write(folder, ["file", "shape"], [["a.png", "star"], ["b.png", "circle"]],
           images={"b.png": whole[:len(whole) // 2]})


def _few(n_circle, n_square):
    return lambda f: _write(f, ["file", "shape"], [[f"{i}.png", "circle" if i < n_circle else "square"]
                                                    for i in range(n_circle + n_square)])


BAD = [
    # (builder, min_per_value, exception, message)
    (lambda f: None, 0, FileNotFoundError, r"no catalog folder at .*nope$"),
    (lambda f: f.mkdir(), 0, FileNotFoundError, r"nope is empty; a catalog folder holds images plus a metadata.csv"),
    (_images_only, 0, FileNotFoundError, r"no metadata.csv in .*nope \(2 image\(s\) there\)"),
    (lambda f: _write(f, [], []) and (f / "metadata.csv").write_text(""), 0, ValueError, r"metadata.csv is empty"),
    (lambda f: _write(f, ["file", "shape"], []), 0, ValueError, r"metadata.csv lists no images"),
    (lambda f: _write(f, ["name", "shape"], [["a.png", "x"]]), 0, ValueError,
     r"has no 'file' column \(header: name, shape\)"),
    (_semicolons, 0, ValueError, r"it looks ';'-separated"),
    (lambda f: _write(f, ["file", "description_en"], [["a.png", "x"]]), 0, ValueError,
     r"has no attribute column \(header: file, description_en\)"),
    (lambda f: _write(f, ["file", "shape", "shape"], [["a.png", "x", "y"]]), 0, ValueError,
     r"column 'shape' appears twice in the header"),
    (lambda f: _write(f, ["file", "shape"], [["a.png", "star", "x"]]), 0, ValueError,
     r"row 2: 3 cells but the header has 2 columns"),
    (_not_utf8, 0, ValueError, r"is not UTF-8 text \(byte 0xfc"),
    (lambda f: _write(f, ["file", "shape"], [["a.png", "star"], ["b.png", "circle"], ["a.png", "star"]]), 0,
     ValueError, r"row 4: file 'a.png' is listed twice \(also row 2\)"),
    (lambda f: _write(f, ["file", "shape"], [["a.png", "star"], ["", "circle"]]), 0, ValueError,
     r"row 3: the 'file' cell is empty"),
    (lambda f: _write(f, ["file", "shape"], [["a.png", "star"], ["b.png", "star"]]), 0, ValueError,
     r"column 'shape' has a single value \('star'\): nothing to control"),
    (lambda f: _write(f, ["file", "shape", "colour"], [["a.png", "star", ""], ["b.png", "circle", ""]]), 0,
     ValueError, r"column 'colour' has no values \(every cell is empty\)"),
    (_few(2, 3), 3, ValueError, r"too few images for shape 'circle' \(2\): the minimum is 3 per value; add images"),
    (_few(MIN_PER_VALUE, MIN_PER_VALUE - 1), None, ValueError,
     rf"too few images for shape 'square' \({MIN_PER_VALUE - 1}\): the minimum is {MIN_PER_VALUE} per value"),
    (lambda f: _write(f, ["file", "shape"], [["a.png", "star"], ["b.png", "circle"]], images={"b.png": None}), 0,
     FileNotFoundError, r"metadata.csv, row 3 \(file 'b.png'\): image file is missing \(.*b.png\)"),
    (lambda f: _write(f, ["file", "shape"], [["a.png", "star"], ["b.png", "circle"]], images={"a.png": b"GIF89"}),
     0, ValueError, r"metadata.csv, row 2 \(file 'a.png'\): cannot be read as an image \(UnidentifiedImageError"),
    (_truncated, 0, ValueError, r"metadata.csv, row 3 \(file 'b.png'\): cannot be read as an image \(OSError"),
]


@pytest.mark.parametrize("build, minimum, error, message", BAD, ids=[m[:28] for *_, m in BAD])
def test_bad_folders_give_one_clear_line(tmp_path, capsys, build, minimum, error, message):
    folder = tmp_path / "nope"
    build(folder)
    kwargs = {} if minimum is None else {"min_per_value": minimum}
    with pytest.raises(error, match=message) as caught:
        load_folder(folder, **kwargs)
    assert "\n" not in str(caught.value)
    before = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None
    argv = ["data", "info", str(folder)] + ([] if minimum is None else ["--min-per-value", str(minimum)])
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and re.search(message, err) and err.startswith("prodgen: error: ")
    assert (sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None) == before  # nothing written


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "x.csv").write_text("file,shape\n")
    with pytest.raises(FileNotFoundError, match=r"x.csv is a file, not a catalog folder"):
        load_folder(tmp_path / "x.csv")


# ------------------------------------------------------------------ images of any size and mode
def _png(image: Image.Image, **kwargs) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format=kwargs.pop("format", "PNG"), **kwargs)
    return buf.getvalue()


def test_images_of_any_size_and_mode_become_32px_rgb(tmp_path):
    green, red, blue = (0, 200, 0), (230, 20, 20), (20, 20, 230)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, 16:] = (*red, 255)  # left half fully transparent
    wide = np.empty((20, 50, 3), np.uint8)
    wide[:] = green
    wide[7:13, 22:28] = red  # a product in the middle, far from the border
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8).repeat(8, 0).repeat(8, 1)).convert("P")
    palette.putpalette([0, 0, 0, *blue] + [0] * 762)
    palette.info["transparency"] = 0
    turned = np.empty((20, 40, 3), np.uint8)  # stored lying down; EXIF says "rotate 90 clockwise to display"
    turned[:, :20], turned[:, 20:] = red, blue
    exif = Image.Exif()
    exif[0x0112] = 6
    files = {
        "rgba.png": _png(Image.fromarray(rgba)),
        "la.png": _png(Image.merge("LA", [Image.new("L", (16, 16), 50), Image.new("L", (16, 16), 0)])),
        "l.png": _png(Image.fromarray(np.full((32, 32), 100, np.uint8))),
        "p.png": _png(palette),
        "wide.png": _png(Image.fromarray(wide)),
        "tall.png": _png(Image.fromarray(wide.transpose(1, 0, 2).copy())),
        "grey16.png": _png(Image.fromarray(np.full((32, 32), 32896, np.uint16))),
        "photo.jpg": _png(Image.fromarray(turned), format="JPEG", quality=95, exif=exif),
    }
    rows = [[name, ["a", "b"][i % 2]] for i, name in enumerate(files)]
    folder = _write(tmp_path / "mixed", ["file", "kind"], rows, images=files)
    cat = load_folder(folder, min_per_value=1)
    px = {name: cat.images[i].permute(1, 2, 0).numpy() for i, name in enumerate(files)}
    assert cat.images.shape == (8, 3, 32, 32) and cat.images.dtype == torch.uint8
    assert tuple(px["rgba.png"][5, 3]) == (255, 255, 255) and tuple(px["rgba.png"][5, 28]) == red  # on white
    assert (px["la.png"] == 255).all()  # fully transparent grey: white
    assert (px["l.png"] == 100).all()
    assert tuple(px["p.png"][0, 0]) == (255, 255, 255) and tuple(px["p.png"][31, 0]) == blue
    assert (px["grey16.png"] == 128).all()  # 16-bit grey scaled to 8 bits, not clipped to white
    # 50x20 -> 32x13 with Lanczos, centred on rows 9-21; the bars are the border colour.
    w = px["wide.png"]
    assert (w[:9] == green).all() and (w[22:] == green).all()
    assert w[15, 16, 0] > 150 and w[15, 16, 1] < 100  # the product is still red, not squashed away
    assert np.array_equal(px["tall.png"], w.transpose(1, 0, 2))
    with Image.open(folder / "wide.png") as im:
        assert np.array_equal(fit_image(im, 32), w)
    # EXIF orientation applied: upright it is 20 wide and 40 tall, red on top.
    j = px["photo.jpg"]
    assert j[4, 16, 0] > 180 and j[4, 16, 2] < 80 and j[28, 16, 2] > 180 and j[28, 16, 0] < 80
    assert (np.abs(j[:, :6].astype(int) - j[0, 0]) <= 3).all()  # side bars, not stretched
    info = describe_folder(folder, min_per_value=1)
    assert info["modes"] == {"RGBA": 1, "LA": 1, "L": 1, "P": 1, "RGB": 3, "I;16": 1}
    assert info["sizes"]["50x20"] == 1 and info["sizes"]["20x50"] == 1 and info["sizes"]["40x20"] == 1


# ------------------------------------------------------------------ prodgen data info
def test_data_info_reports_counts_duplicates_and_problems(drawn, tmp_path, capsys):
    folder = tmp_path / "shop"
    shutil.copytree(drawn, folder)
    rows = _rows(drawn)
    shutil.copy(folder / rows[0]["file"], folder / "copy.png")
    (folder / "stray.png").write_bytes((folder / rows[1]["file"]).read_bytes())  # not listed
    rows.append({**rows[0], "file": "copy.png"})
    for r in rows[10:15]:
        r["colour"] = ""
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["file", "shape", "colour", "description_en"])
        writer.writeheader()
        writer.writerows(rows)
    assert main(["data", "info", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    cat = load_folder(folder)
    shape, colour = rows[0]["shape"], rows[0]["colour"]
    assert f"{folder}: 201 images, 2 attribute(s), loaded as 32x32 RGB" in out
    line = next(x for x in out.splitlines() if x.startswith("  shape (5 values): "))
    assert f"{shape} 41" in line and all(f"{s} {cat.value_counts('shape')[s]}" in line for s in SHAPES)
    assert re.search(r"  colour \(5 values\): .* \| unknown 5$", out, re.MULTILINE)
    assert "image sizes: 32x32 201" in out and "image modes: RGB 201" in out
    assert f"exact duplicates: 1 (e.g. {rows[0]['file']} = copy.png)" in out
    assert "shape x colour: 25 of 25 combinations present" in out
    assert "warning: colour is unknown (empty) for 5 of 201 images" in out
    assert "warning: 1 image file(s) in the folder are not listed in metadata.csv" in out
    assert "other columns (not attributes): description_en" in out
    info = describe_folder(folder)
    assert info["counts"]["colour"][colour] == cat.value_counts("colour")[colour]
    assert info["duplicates"] == {"images": 1, "conflicting": 0, "examples": [(rows[0]["file"], "copy.png")]}
    assert info["unlisted"] == ["stray.png"]


def test_data_info_warns_about_imbalance_and_missing_pairs(tmp_path, capsys):
    rows = [[f"{i}.png", "circle" if i < 16 else "star", "red" if i < 12 or i >= 16 else "blue"]
            for i in range(20)]  # circle 16 / star 4; circle+blue 4, star+blue 0
    folder = _write(tmp_path / "skewed", ["file", "shape", "colour"], rows)
    assert main(["data", "info", str(folder), "--min-per-value", "2", "--attributes", "shape,colour"]) == 0
    out = capsys.readouterr().out
    assert "warning: shape is unbalanced: 'circle' has 16 images, 'star' only 4 (more than 3x)" in out
    assert "shape x colour: 3 of 4 combinations present" in out
    assert "warning: 1 of 4 shape x colour combinations never occur (e.g. star + blue)" in out
    assert "exact duplicates: 19" in out  # every image here is the same grey square
    assert main(["data", "info", str(folder), "--attributes", "shape"]) == 2  # star has 4 < 20
    assert "too few images for shape 'circle' (16), 'star' (4): the minimum is 20" in capsys.readouterr().err


def test_files_in_subfolders(tmp_path):
    rows = [[f"{k}s/{i}.png", k] for k in ("mug", "lamp") for i in range(3)]
    for k in ("mugs", "lamps"):
        (tmp_path / "sub" / k).mkdir(parents=True)
    folder = _write(tmp_path / "sub", ["file", "category"], rows)
    Image.new("RGB", (8, 8)).save(folder / "lamps" / "extra.png")
    cat = load_folder(folder, min_per_value=3)
    assert cat.values == {"category": ["mug", "lamp"]} and cat.label("category").tolist() == [0, 0, 0, 1, 1, 1]
    info = describe_folder(folder, min_per_value=0, schema=Schema({"category": ["lamp", "mug", "cap"]}))
    assert info["unlisted"] == ["lamps/extra.png"]
    assert info["counts"] == {"category": {"lamp": 3, "mug": 3, "cap": 0}}
    with pytest.raises(ValueError, match=r"too few images for category 'cap' \(0\)"):
        load_folder(folder, min_per_value=1, schema=Schema({"category": ["lamp", "mug", "cap"]}))


def test_data_info_help_states_the_minimum(capsys):
    with pytest.raises(SystemExit):
        main(["data", "info", "--help"])
    assert f"default {MIN_PER_VALUE}" in capsys.readouterr().out

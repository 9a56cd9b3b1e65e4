"""The product catalog: rendering, splits, descriptions, cache, export/import, bad input."""
from __future__ import annotations

import csv
import itertools
import re

import numpy as np
import pytest
import torch
from PIL import Image

from prodgen.catalog import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    HELD_OUT_PAIRS,
    TEMPLATES,
    describe,
    export_catalog,
    load_catalog,
    load_folder,
    render_catalog,
    render_product,
    values_of,
)
from prodgen.catalog import dataset as dataset_module
from prodgen.catalog.schema import BUILTIN, Schema


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache folder."""
    monkeypatch.setenv("PRODGEN_CACHE", str(tmp_path / "cache"))


def test_vocabulary_sizes():
    assert len(ATTRIBUTES["category"]) >= 8
    assert len(ATTRIBUTES["color"]) >= 10
    assert values_of("size") == ["small", "medium", "large"]
    assert len(ATTRIBUTES["brand"]) >= 4
    assert len(ATTRIBUTES["pattern"]) >= 4


def test_same_seed_same_bytes_across_worker_counts():
    a = render_catalog("train", 600, 32, seed=7, workers=1)
    b = render_catalog("train", 600, 32, seed=7, workers=2)
    assert a["images"].tobytes() == b["images"].tobytes()
    assert (a["labels"] == b["labels"]).all() and list(a["en"]) == list(b["en"]) and list(a["zh"]) == list(b["zh"])
    c = render_catalog("train", 600, 32, seed=8, workers=1)
    assert a["images"].tobytes() != c["images"].tobytes()


def test_smaller_catalog_is_a_prefix_of_a_larger_one():
    small = render_catalog("val", 40, 32, seed=3)
    large = render_catalog("val", 120, 32, seed=3)
    assert np.array_equal(small["images"], large["images"][:40])


@pytest.mark.parametrize("size", [32, 64, 128])
def test_any_supported_size_renders(size):
    img = render_product("sneaker", "teal", "large", "orbit", "checked", image_size=size, seed=1)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    # A light studio background in the corners, a product in the middle.
    assert img[:2, :2].mean() > 200
    assert np.abs(img[size // 2 - 2:size // 2 + 2, size // 2 - 2:size // 2 + 2].astype(int) - img[0, 0]).mean() > 30


def test_render_product_rejects_bad_input_with_the_valid_values():
    with pytest.raises(ValueError, match=r"unknown color 'reed'; valid values: red, orange"):
        render_product(color="reed")
    with pytest.raises(ValueError, match=r"unsupported image size 48; valid sizes: 32, 64, 128"):
        render_product(image_size=48)


def test_attributes_change_the_picture():
    base = dict(category="mug", color="red", size="medium", brand="acme", pattern="plain")
    ref = render_product(**base, image_size=64, seed=0).astype(int)
    for attr, other in [("category", "lamp"), ("color", "blue"), ("size", "large"), ("brand", "zenith"),
                        ("pattern", "striped")]:
        changed = render_product(**{**base, attr: other}, image_size=64, seed=0).astype(int)
        assert np.abs(changed - ref).mean() > 1.0, f"changing {attr} barely changed the image"


def test_unseen_split_holds_out_pairs():
    n_combos = np.prod([len(v) for v in ATTRIBUTES.values()])
    held_combos = len(HELD_OUT_PAIRS) * n_combos // (len(ATTRIBUTES["category"]) * len(ATTRIBUTES["color"]))
    assert held_combos / n_combos >= 0.05
    held = {(values_of("category").index(c), values_of("color").index(k)) for c, k in HELD_OUT_PAIRS}
    for split in ("train", "val", "test"):
        labels = render_catalog(split, 500, 32)["labels"]
        assert not {(int(a), int(b)) for a, b in labels[:, :2]} & held, split
    unseen = render_catalog("unseen", 300, 32)["labels"]
    assert {(int(a), int(b)) for a, b in unseen[:, :2]} <= held
    # Every category and every colour still appears in training.
    train = render_catalog("train", 800, 32)["labels"]
    assert len(set(train[:, 0])) == len(ATTRIBUTES["category"]) and len(set(train[:, 1])) == len(ATTRIBUTES["color"])


def test_template_counts_and_languages():
    assert len(TEMPLATES["en"]) >= 8 and len(TEMPLATES["zh"]) >= 8
    attrs = dict(category="t-shirt", color="red", size="large", brand="acme", pattern="striped")
    for i in range(len(TEMPLATES["zh"])):
        assert re.search(r"[\u4e00-\u9fff]", describe(attrs, "zh", template=i, rng=0))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_descriptions_name_exactly_the_mentioned_attributes(lang):
    data = render_catalog("train", 400, 32, seed=5)
    texts = data["en" if lang == "en" else "zh"]
    for labels, said, text in zip(data["labels"], data["mentioned"], texts):
        assert said[0], "the category is always named"
        for j, attr in enumerate(ATTRIBUTE_NAMES):
            value = ATTRIBUTES[attr][labels[j]]
            words = (value.en + value.en_phrase) if lang == "en" else value.zh
            if said[j]:
                assert any(w in text for w in words), (attr, value.key, text)
    assert not data["mentioned"].all(), "some descriptions should leave attributes out"
    assert len({t for t in texts}) > 300, "descriptions should vary"


def test_every_template_drops_omitted_attributes_cleanly():
    for lang, templates in TEMPLATES.items():
        for i in range(len(templates)):
            for keep in itertools.chain.from_iterable(
                    itertools.combinations(["color", "size", "brand", "pattern"], k) for k in range(5)):
                attrs = {"category": "mug", **{a: values_of(a)[1] for a in keep}}
                text = describe(attrs, lang, template=i, rng=0)
                assert not re.search(r"[{}\[\]]|\s\s|^[,，]|[,，]$|,,|，，", text), (lang, i, keep, text)


def test_describe_bad_input():
    with pytest.raises(ValueError, match="must name the category"):
        describe({"color": "red"})
    with pytest.raises(ValueError, match="valid languages: en, zh"):
        describe({"category": "mug"}, lang="fr")


def test_cache_round_trip_and_damaged_cache_is_rebuilt(tmp_path):
    first = load_catalog("val", n=300, progress=False)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz", "one cache file, no temp files left over"
    again = load_catalog("val", n=300, progress=False)
    assert torch.equal(first.images, again.images) and again.images.dtype == torch.uint8
    prefix = load_catalog("val", n=100, progress=False)  # served from the larger cache file
    assert torch.equal(prefix.images, first.images[:100]) and len(list((tmp_path / "cache").iterdir())) == 1
    files[0].write_bytes(b"not a zip file")
    rebuilt = load_catalog("val", n=300, progress=False)
    assert torch.equal(rebuilt.images, first.images)


def test_64px_splits_hold_the_32px_products_and_are_cached_beside_them(tmp_path):
    small = load_catalog("val", n=40, progress=False)
    big = load_catalog("val", n=40, size=64, progress=False, workers=1)  # lessons 14+
    assert big.images.shape == (40, 3, 64, 64) and big.image_size == 64 and big.images.dtype == torch.uint8
    assert torch.equal(big.labels, small.labels) and torch.equal(big.mentioned, small.mentioned)
    assert big.descriptions_en == small.descriptions_en and big.descriptions_zh == small.descriptions_zh
    assert render_catalog("val", 40, 64, workers=1)["images"].tobytes() == big.images.numpy().tobytes()
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert names == ["catalog-v9-val-32px-seed0-n40.npz", "catalog-v9-val-64px-seed0-n40.npz"]
    assert torch.equal(load_catalog("val", n=40, size=64, progress=False).images, big.images)  # from the cache
    down = torch.nn.functional.avg_pool2d(big.images.float(), 2)  # box-averaged: close to the 32 px photo
    assert (down - small.images.float()).abs().mean() < 6


def test_prodgen_data_build_refuses_a_size_it_cannot_render(capsys):
    from prodgen.cli import main

    assert main(["data", "build", "--size", "48", "--split", "val"]) == 2
    assert capsys.readouterr().err == "prodgen: error: unsupported image size 48; valid sizes: 32, 64, 128\n"
    assert main(["data", "build", "--size", "64", "--workers", "0"]) == 2
    assert "--workers must be a whole number >= 1" in capsys.readouterr().err


def test_catalog_dataset_interface():
    cat = load_catalog("test", n=64, progress=False)
    x, y = cat[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and -1 <= float(x.min()) and float(x.max()) <= 1
    assert y.shape == (5,) and cat.attributes(0)["category"] in values_of("category")
    xb, yb = next(cat.batches(16, generator=torch.Generator().manual_seed(0)))
    assert xb.shape == (16, 3, 32, 32) and yb.shape == (16, 5)
    assert sum(cat.value_counts("color").values()) == 64
    loader = torch.utils.data.DataLoader(cat, batch_size=8)
    assert next(iter(loader))[0].shape == (8, 3, 32, 32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="training"), "unknown split 'training'; valid splits: train, val, test, unseen"),
    (dict(n=0), "n must be a positive"),
    (dict(n=-5), "n must be a positive"),
    (dict(size=50), "unsupported image size 50; valid sizes: 32, 64, 128"),
    (dict(seed=-1), "seed must be a non-negative"),
])
def test_load_catalog_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_catalog(**kwargs)


# ------------------------------------------------------------------ export / import
def test_export_import_round_trip(tmp_path):
    cat = load_catalog("test", n=50, size=64, progress=False)
    out = export_catalog(cat, tmp_path / "export")
    with open(out / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "category", "color", "size", "brand", "pattern", "description_en", "description_zh"]
    assert len(rows) == 51 and len(list(out.glob("*.png"))) == 50
    back = load_folder(out, size=64, schema=BUILTIN, min_per_value=0)
    assert back.schema == BUILTIN
    assert torch.equal(back.images, cat.images)
    assert torch.equal(back.labels, cat.labels)
    assert back.descriptions_en == cat.descriptions_en and back.descriptions_zh == cat.descriptions_zh
    # The same export again is a no-op; a different one is refused and changes nothing.
    export_catalog(cat, out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(FileExistsError, match="already holds a different export"):
        export_catalog(load_catalog("test", n=40, size=64, progress=False), out)
    assert sorted(p.name for p in out.iterdir()) == before


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    cat = load_catalog("val", n=30, progress=False)
    calls = {"n": 0}
    real_save = Image.Image.save

    def flaky_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        export_catalog(cat, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def _own_catalog(folder, rows, header):
    folder.mkdir()
    for name in [r[0] for r in rows]:
        if name.endswith(".png") and not name.startswith("missing"):
            Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(folder / name)
    with open(folder / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def test_load_own_catalog_with_partial_columns(tmp_path):
    _own_catalog(tmp_path / "mine", [["a.png", "mug", "red", "9.99"], ["b.png", "lamp", "", "5"],
                                     ["c.png", "mug", "blue", "5"]],
                 ["file", "category", "color", "price"])
    cat = load_folder(tmp_path / "mine", size=32, attributes=["category", "color"], min_per_value=0)
    assert cat.images.shape == (3, 3, 32, 32)
    assert cat.schema.names == ("category", "color")
    assert cat.values == {"category": ["mug", "lamp"], "color": ["red", "blue"]}  # the course's order
    assert cat.attributes(0) == {"category": "mug", "color": "red"}
    assert cat.attributes(1) == {"category": "lamp"}  # an empty cell is unknown
    assert cat.label("color").tolist() == [0, -1, 1]
    # Without attributes=, the price is an attribute too: its values are sorted as text.
    assert load_folder(tmp_path / "mine", min_per_value=0).values["price"] == ["5", "9.99"]


def test_load_folder_errors_name_the_row(tmp_path):
    _own_catalog(tmp_path / "a", [["a.png", "mug"], ["missing.png", "lamp"]], ["file", "category"])
    with pytest.raises(FileNotFoundError, match=r"row 3 \(file 'missing.png'\): image file is missing"):
        load_folder(tmp_path / "a", min_per_value=0)
    _own_catalog(tmp_path / "b", [["a.png", "mug"], ["bad.png", "lamp"]], ["file", "category"])
    (tmp_path / "b" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"row 3 \(file 'bad.png'\): cannot be read as an image"):
        load_folder(tmp_path / "b", min_per_value=0)
    _own_catalog(tmp_path / "c", [["a.png", "dress"], ["b.png", "mug"]], ["file", "category"])
    # schema=BUILTIN (the course's vocabulary) refuses a value outside it; inferred, it is a value like any other.
    with pytest.raises(ValueError, match=r"attribute columns category but the schema .* has category, color"):
        load_folder(tmp_path / "c", schema=BUILTIN, min_per_value=0)
    one = Schema({"category": values_of("category")})
    with pytest.raises(ValueError, match=r"row 2 \(file 'a.png'\): category 'dress' is not in the schema; "
                                         r"valid values: t-shirt, mug"):
        load_folder(tmp_path / "c", schema=one, min_per_value=0)
    assert load_folder(tmp_path / "c", min_per_value=0).values["category"] == ["dress", "mug"]
    with pytest.raises(FileNotFoundError, match="no metadata.csv"):
        load_folder(tmp_path)


def test_cache_path_is_versioned():
    assert f"v{dataset_module.CACHE_VERSION}" in dataset_module.cache_path("train", 10, 32, 0).name

"""Scenes with ground truth (issue 26 §1, lesson 15): shapes, determinism, masks, swap, labels, bad input."""
import numpy as np
import pytest
import torch

from prodgen.catalog.attributes import ATTRIBUTE_NAMES, values_of
from prodgen.catalog.scenes import (
    KINDS,
    SLOT_NAMES,
    SLOTS,
    load_scenes,
    make_scene,
    random_product,
    render_scene,
    scene_parameters,
    slot_crops,
    swap,
)

SEEDS = (0, 1, 2, 3, 5)


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(s, kind) for s in SEEDS[:3] for kind in KINDS]


def test_image_and_mask_shapes(scenes):
    for sc in scenes:
        assert sc.image.shape == (3, 64, 64) and sc.image.dtype == np.uint8
        assert set(sc.masks) == set(KINDS[sc.params["kind"]]) == set(sc.slots)
        for slot, m in sc.masks.items():
            assert m.shape == (64, 64) and m.dtype == bool
            assert 20 < m.sum() < 0.4 * 64 * 64, (slot, m.sum())  # a product-sized region, not empty, not all


def test_same_seed_same_bytes_other_seed_other_scene():
    a, b, c = make_scene(7), make_scene(7), make_scene(8)
    assert a.image.tobytes() == b.image.tobytes() and a.slots == b.slots and a.params == b.params
    assert all((a.masks[s] == b.masks[s]).all() for s in a.masks)
    assert a.image.tobytes() != c.image.tobytes()


def test_swap_changes_only_pixels_inside_the_slot_mask(scenes):
    rng = np.random.default_rng(0)
    for sc in scenes:
        for slot in sc.slots:
            old = sc.slots[slot]
            new = random_product(slot, rng)
            while new["color"] == old["color"]:
                new = random_product(slot, rng)
            after = swap(sc, slot, new)
            changed = (after.image != sc.image).any(0)
            assert changed.any(), slot  # the product is visible
            assert not (changed & ~sc.masks[slot]).any(), f"{slot}: pixels outside the mask changed"
            assert (after.masks[slot] == sc.masks[slot]).all()
            assert after.slots[slot] == new and swap(after, slot, old).image.tobytes() == sc.image.tobytes()


def test_an_empty_slot_and_its_product_differ_only_inside_the_mask():
    params = scene_parameters(np.random.default_rng(3), "mannequin")
    full = {s: random_product(s, np.random.default_rng(i)) for i, s in enumerate(KINDS["mannequin"])}
    image, masks = render_scene(params, full)
    without_cap, _ = render_scene(params, {s: a for s, a in full.items() if s != "cap"})
    changed = (image != without_cap).any(0)
    assert changed.any() and not (changed & ~masks["cap"]).any()


def test_load_scenes_labels_masks_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRODGEN_CACHE", str(tmp_path))
    data = load_scenes("val", 12, seed=3)
    assert data.images.shape == (12, 3, 64, 64) and data.images.dtype == torch.uint8
    assert data.masks.shape == (12, len(SLOT_NAMES), 64, 64) and data.masks.dtype == torch.bool
    assert data.labels.shape == (12, len(SLOT_NAMES), len(ATTRIBUTE_NAMES)) and data.labels.dtype == torch.int64
    for i in range(12):
        kind = list(KINDS)[int(data.kinds[i])]
        for j, slot in enumerate(SLOT_NAMES):
            row = data.labels[i, j].tolist()
            if slot not in KINDS[kind]:
                assert row == [-1] * 5 and not data.masks[i, j].any()
                continue
            assert values_of("category")[row[0]] in SLOTS[slot].categories
            assert all(0 <= k < len(values_of(a)) for k, a in zip(row, ATTRIBUTE_NAMES))
            assert data.masks[i, j].any()
    assert torch.equal(data.images[5], torch.from_numpy(data.scene(5).image))  # scene i is rebuilt exactly
    assert len(list(tmp_path.glob("scenes-*.npz"))) == 1
    again = load_scenes("val", 8, seed=3)  # a smaller n reuses the cached file
    assert torch.equal(again.images, data.images[:8]) and torch.equal(again.masks, data.masks[:8])
    assert not torch.equal(load_scenes("test", 8, seed=3, cache=False).images, again.images)


def test_slot_crops_show_only_the_slot():
    sc = make_scene(4, "mannequin")
    img, mask = torch.from_numpy(sc.image)[None], torch.from_numpy(sc.masks["cap"])[None]
    crop = slot_crops(img, mask)
    assert crop.shape == (1, 3, 32, 32)
    assert (crop != 128).any() and (crop == 128).all(1).float().mean() > 0.3  # grey outside the cap's mask


def test_bad_input_names_what_is_valid():
    sc = make_scene(0, "mannequin")
    with pytest.raises(ValueError, match="unknown slot 'hat'.*valid slots: top, shoes, cap, bag"):
        swap(sc, "hat", random_product("cap", np.random.default_rng(0)))
    with pytest.raises(ValueError, match="unknown slot 'table' of a mannequin scene"):
        swap(sc, "table", random_product("table", np.random.default_rng(0)))
    mug = {"category": "mug", "color": "red", "size": "small", "brand": "acme", "pattern": "plain"}
    with pytest.raises(ValueError, match="a mug does not fit slot 'top'; valid categories: t-shirt"):
        swap(sc, "top", mug)
    with pytest.raises(ValueError, match="unknown color 'mauve'"):
        swap(sc, "top", {**mug, "category": "t-shirt", "color": "mauve"})
    with pytest.raises(ValueError, match="lacks brand"):
        swap(sc, "top", {"category": "t-shirt", "color": "red", "size": "small", "pattern": "plain"})
    with pytest.raises(ValueError, match="unknown scene kind 'beach'; valid kinds: mannequin, tabletop"):
        make_scene(0, "beach")
    with pytest.raises(ValueError, match="unknown split 'unseen'; valid splits: train, val, test"):
        load_scenes("unseen", 4, cache=False)
    with pytest.raises(ValueError, match="n must be a positive"):
        load_scenes("val", 0, cache=False)


def test_shipped_scene_judge_reads_every_slot_of_fresh_scenes():
    """The registry's scene-judge (benchmarks/scenes_judge.py --ship) met 98 % on every slot and attribute of
    the test split, and still reads freshly rendered scenes (60, not cached) through slot_crops."""
    from prodgen.catalog.dataset import normalize
    from prodgen.models import registry

    assert registry.available("scene-judge"), "data/checkpoints/scene-judge.pt is missing or corrupt"
    metrics = registry.manifest()["scene-judge"]["metrics"]
    assert len(metrics) == sum(len(s.shown) for s in SLOTS.values()) and min(metrics.values()) >= 0.98
    judge, data = registry.load("scene-judge"), load_scenes("test", 60, cache=False)
    right = total = 0
    for slot in SLOT_NAMES:
        crops, labels = data.crops(slot)
        pred = judge.predict(normalize(crops))
        for j, a in enumerate(ATTRIBUTE_NAMES):
            if a in SLOTS[slot].shown:  # about 15 table scenes and 45 of each mannequin slot among the 60
                hits = int((pred[:, j] == labels[:, j]).sum())
                assert hits >= 0.9 * len(labels), (slot, a, hits, len(labels))
                right, total = right + hits, total + len(labels)
    assert right >= 0.98 * total, (right, total)

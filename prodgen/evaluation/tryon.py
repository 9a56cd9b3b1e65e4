"""Measuring a try-on model the way the field measures it, with rendered truth (lesson 15, issue 26 §3).

:func:`tryon_pairs` draws held-back try-ons: test-split scenes (``prodgen.catalog.scenes.scene_at``), a slot of
each, and a test-split catalog photo (64 px) of a product that fits the slot; the truth is the scene rendered
wearing that product (``swap``). :func:`measure_tryon` scores any set of outputs for those pairs:

- **paired** (the output against the truth): SSIM over the whole 64 px image (the field's protocol, where the
  untouched background counts) and over the slot's 32 x 32 window (``slot_crops`` without grey fill), and the
  judge-feature distance in LPIPS's role (``prodgen.evaluation.similarity.judge_distance``, the scene judge on
  the slot's 32 px crop with the other slots greyed, as it was trained);
- **unpaired**: FID and KID in the scene judge's 256-d features of slot crops, against real scenes' crops of the
  same slots (training scenes, in the pairs' slot mix); the **real floor** is the truth's FID against the same
  reference, so a perfect model scores the floor, not 0 (:func:`real_vs_real`: two disjoint real sets, FID's
  spread at this size);
- **worn product**: the scene judge's accuracy on each attribute the slot shows (colour, pattern, brand, and
  category and size where the slot shows them), overall and per slot;
- **outside the mask**: PSNR of the pixels outside the slot's mask against the input scene (``None`` in JSON =
  identical) and the share of outputs that kept every one of them.

:func:`evaluate_tryon` runs a model (the protocol's ``try_on``) on the pairs, times it (try-ons per second on
one thread) and measures it. Used by ``benchmarks/tryon.py`` and lesson 15.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TryOnPairs", "tryon_pairs", "reference_crops", "real_vs_real", "measure_tryon", "evaluate_tryon"]


@dataclass
class TryOnPairs:
    """Held-back try-ons: ``scenes`` (``Scene`` list), ``slots``, catalog ``photos`` (N x 3 x 64 x 64 uint8) with
    their ``products`` (attribute dicts), the rendered ``truths`` (N x 3 x 64 x 64 uint8) and how many pairs
    ``repeat`` a product already used."""

    scenes: list
    slots: list
    photos: torch.Tensor
    products: list
    truths: torch.Tensor
    repeats: int = 0

    def __len__(self) -> int:
        return len(self.scenes)

    @property
    def inputs(self) -> torch.Tensor:
        return torch.stack([torch.from_numpy(sc.image) for sc in self.scenes])

    @property
    def masks(self) -> torch.Tensor:
        return torch.stack([torch.from_numpy(sc.masks[s]) for sc, s in zip(self.scenes, self.slots)])


def _catalog_products(catalog) -> list[dict]:
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES, values_of

    keys = [values_of(a) for a in ATTRIBUTE_NAMES]
    return [{a: keys[j][int(row[j])] for j, a in enumerate(ATTRIBUTE_NAMES)} for row in catalog.labels.tolist()]


def tryon_pairs(n: int, seed: int = 0, split: str = "test", products: int | None = None) -> TryOnPairs:
    """``n`` try-ons on scenes ``0..n-1`` of ``split`` (a random slot each) with ``split`` catalog photos (64 px;
    the first ``products`` of the split, all by default) of products that fit, each slot's products dealt from a
    shuffled deck, so none repeats until the slot has used them all (repeats shrink the truth's variety and
    inflate its FID: the deck, not draws with replacement); deterministic in ``(n, seed, split, products)``."""
    from prodgen.catalog.dataset import load_catalog
    from prodgen.catalog.scenes import KINDS, SLOTS, scene_at, swap
    from prodgen.numbers import whole

    n = whole(n, "n", 1)
    catalog = load_catalog(split, products, size=64, progress=False)
    attrs = _catalog_products(catalog)
    fits = {s: [i for i, p in enumerate(attrs) if p["category"] in SLOTS[s].categories] for s in SLOTS}
    missing = [s for s, found in fits.items() if not found]
    if missing:
        raise ValueError(f"the first {len(attrs)} {split} products hold none for slot(s) {', '.join(missing)}; "
                         "take more products")
    rng = np.random.default_rng([seed, 26])
    decks: dict = {s: [] for s in SLOTS}
    scenes, slots, chosen, truths = [], [], [], []
    for i in range(n):
        sc = scene_at(split, 0, i)
        slot = KINDS[sc.params["kind"]][rng.integers(len(KINDS[sc.params["kind"]]))]
        if not decks[slot]:
            decks[slot] = [fits[slot][j] for j in rng.permutation(len(fits[slot]))]
        p = decks[slot].pop()
        scenes.append(sc)
        slots.append(slot)
        chosen.append(p)
        truths.append(torch.from_numpy(swap(sc, slot, attrs[p]).image))
    return TryOnPairs(scenes, slots, catalog.images[chosen].clone(), [attrs[p] for p in chosen],
                      torch.stack(truths), len(chosen) - len(set(chosen)))


def reference_crops(slots: list, seed: int = 0, scenes: tuple[int, int] = (0, 8000)) -> torch.Tensor:
    """Real scenes' slot crops (training scenes ``scenes[0]..scenes[1]-1``, grey outside the mask) in the slot mix
    of ``slots``; two disjoint ranges give two real sets (how far apart real sets lie at this size)."""
    from prodgen.catalog.scenes import Scenes, load_scenes

    start, stop = scenes
    every = load_scenes("train", stop)
    part = Scenes(*(t[start:stop] for t in (every.images, every.kinds, every.masks, every.labels)), "train", 0)
    rng = np.random.default_rng([seed, 15, start])
    out = []
    for slot in dict.fromkeys(slots):
        crops, _ = part.crops(slot)
        need = sum(s == slot for s in slots)
        if need > len(crops):
            raise ValueError(f"the reference has {len(crops)} {slot!r} crops, fewer than the {need} asked for")
        out.append(crops[torch.from_numpy(rng.choice(len(crops), need, replace=False))])
    return torch.cat(out)


def _crops(images: torch.Tensor, masks: torch.Tensor, fill=128) -> torch.Tensor:
    from prodgen.catalog.scenes import slot_crops

    return slot_crops(images, masks, 32, fill)


def _accuracy(judge, crops: torch.Tensor, pairs: TryOnPairs) -> dict:
    """The scene judge's hits on the worn product's shown attributes: {attribute: acc}, {slot: {attribute: acc}}."""
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES, values_of
    from prodgen.catalog.dataset import normalize
    from prodgen.catalog.scenes import SLOTS

    pred = judge.predict(normalize(crops))
    hits: dict = {}
    for i, (slot, product) in enumerate(zip(pairs.slots, pairs.products)):
        for j, a in enumerate(ATTRIBUTE_NAMES):
            if a in SLOTS[slot].shown:
                hits.setdefault((slot, a), []).append(int(pred[i, j]) == values_of(a).index(product[a]))
    overall = {a: round(float(np.mean(sum((v for (s, b), v in hits.items() if b == a), []))), 4)
               for a in ATTRIBUTE_NAMES if any(b == a for _, b in hits)}
    per_slot: dict = {}
    for (slot, a), v in hits.items():
        per_slot.setdefault(slot, {"n": len(v)})[a] = round(float(np.mean(v)), 4)
    return {"worn_accuracy": overall, "worn_accuracy_per_slot": per_slot}


def real_vs_real(judge, reference: torch.Tensor, other: torch.Tensor, kid_subset: int = 500) -> dict:
    """FID and KID between two real sets of slot crops (:func:`reference_crops` of disjoint scene ranges)."""
    from prodgen.metrics import fid, judge_features, kid

    a, b = judge_features(judge, reference), judge_features(judge, other)
    subset = min(kid_subset, len(a), len(b))
    return {"fid": round(fid(a, b), 3), "kid": round(kid(a, b, subset_size=subset)[0], 5), "n": len(b)}


def measure_tryon(outputs: torch.Tensor, pairs: TryOnPairs, judge, reference: torch.Tensor,
                  kid_subset: int = 500) -> dict:
    """Every measure of ``outputs`` (uint8 N x 3 x 64 x 64, one per pair) against the pairs' truth, the input
    scenes and the ``reference`` crops (:func:`reference_crops`); ``judge``: the scene judge."""
    from prodgen.evaluation.similarity import judge_distance, psnr, ssim
    from prodgen.metrics import fid, judge_features, kid

    if outputs.dtype != torch.uint8 or outputs.shape != pairs.truths.shape:
        raise ValueError(f"outputs must be uint8 {tuple(pairs.truths.shape)}, one per pair; got {outputs.dtype} "
                         f"{tuple(outputs.shape)}")
    masks, inputs = pairs.masks, pairs.inputs
    crops, truth_crops = _crops(outputs, masks), _crops(pairs.truths, masks)
    feats, real = judge_features(judge, crops), judge_features(judge, reference)
    truth_feats = judge_features(judge, truth_crops)
    subset = min(kid_subset, len(crops), len(reference))
    outside = psnr(outputs, inputs, ~masks)
    kept = ((outputs != inputs).any(1) & ~masks).flatten(1).any(1).logical_not().float().mean()
    return {
        "n": len(pairs),
        "ssim": round(float(ssim(outputs, pairs.truths).mean()), 4),
        "ssim_slot": round(float(ssim(_crops(outputs, masks, None), _crops(pairs.truths, masks, None)).mean()), 4),
        "judge_distance": round(float(judge_distance(judge, crops, truth_crops).mean()), 4),
        "fid": round(fid(real, feats), 3),
        "fid_real_floor": round(fid(real, truth_feats), 3),
        "kid": round(kid(real, feats, subset_size=subset)[0], 5),
        "kid_real_floor": round(kid(real, truth_feats, subset_size=subset)[0], 5),
        **_accuracy(judge, crops, pairs),
        "psnr_outside_db": None if math.isinf(outside) else round(outside, 2),
        "outside_kept": round(float(kept), 4),
    }


def evaluate_tryon(model, pairs: TryOnPairs, judge, reference: torch.Tensor, **knobs) -> dict:
    """``model.try_on`` on every pair (timed on one thread), then :func:`measure_tryon`; with the outputs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        outputs = model.try_on(pairs.scenes, pairs.slots, pairs.photos, **knobs)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    result = measure_tryon(outputs, pairs, judge, reference)
    result["tryons_per_second"] = round(len(pairs) / seconds, 1)
    return {"model": model.name, "knobs": model.check_knobs(knobs), **result, "outputs": outputs}

"""Benchmark: virtual try-on measured the way the field measures it, with rendered truth (issue 26 §3).

Held-back try-ons (``prodgen.evaluation.tryon.tryon_pairs``: test scenes 0..n-1, a random slot each, a random
test-split 64 px catalog photo that fits, the truth rendered by ``swap``) are given to every try-on model of the
registry: the cut-and-paste baseline (``prodgen.models.tryon.CutPaste``, registered weightless as ``cut-paste``:
both ``clear`` settings) and every shipped one (``tryon-64`` once it is shipped). Two reference rows frame the
numbers: ``scene unchanged`` (the input scene returned as is: what doing nothing scores) and ``truth`` (the
rendered truth itself: the best possible, and the real floor of FID/KID). Measures (``measure_tryon``): paired
SSIM (whole image and slot window), the scene judge's feature distance in LPIPS's role, FID/KID in the scene
judge's 256-d features of slot crops against training scenes' crops of the same slots, the scene judge's accuracy
on the worn product's shown attributes, PSNR outside the mask, try-ons per second on one thread. Writes
``data/results/tryon.json`` atomically. Run from the repository root (about 4 minutes at n = 1100 on a busy shared
core):

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/tryon.py [--n 1100] [--out data/results/tryon.json]
    python benchmarks/tryon.py --short --out /tmp/tryon.json   # 40 pairs, small reference (tests)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHORT = {"n": 40, "products": 200, "reference_scenes": 400}
TRAIN_SCENES = 8000  # the reference: training scenes 0..3999; a second real set: 4000..7999


def tryon_models() -> list:
    """``(label, model, knobs)`` for every try-on model the registry can give now (``registry.tryon_models(
    shipped=True)``: the weightless baseline, and ``tryon-64`` once shipped), once per choice of each knob that has
    choices (the baseline's ``clear``: ``cut-paste (clear=fill)``, ``cut-paste (clear=keep)``), else once."""
    from prodgen.models import registry

    rows = []
    for name in registry.tryon_models(shipped=True):
        model = registry.load_tryon(name)
        choices = [(k, c) for k, knob in model.knobs.items() for c in knob.choices]
        rows += [(f"{name} ({k}={c})", model, {k: c}) for k, c in choices] or [(name, model, {})]
    return rows


def measure(n: int, seed: int, products, reference_scenes: int, log=print) -> dict:
    """Every row's measures on ``n`` pairs (the outputs left out)."""
    import torch

    from prodgen.evaluation.tryon import evaluate_tryon, measure_tryon, real_vs_real, reference_crops, tryon_pairs
    from prodgen.models import registry

    torch.set_num_threads(1)
    start = time.perf_counter()
    pairs = tryon_pairs(n, seed, products=products)
    half = reference_scenes // 2
    reference = reference_crops(pairs.slots, seed, (0, half))
    other = reference_crops(pairs.slots, seed, (half, reference_scenes))
    judge = registry.load("scene-judge")
    log(f"{n} pairs and {len(reference)} reference crops in {time.perf_counter() - start:.0f} s")
    rows = {}
    for label, model, knobs in tryon_models():
        result = evaluate_tryon(model, pairs, judge, reference, **knobs)
        result.pop("outputs")
        rows[label] = result
        log(f"{label}: SSIM {result['ssim']}, judge distance {result['judge_distance']}, FID {result['fid']} "
            f"(floor {result['fid_real_floor']}), {result['tryons_per_second']} try-ons/s")
    rows["scene unchanged"] = measure_tryon(pairs.inputs, pairs, judge, reference)
    rows["truth"] = measure_tryon(pairs.truths, pairs, judge, reference)
    slots = {s: pairs.slots.count(s) for s in dict.fromkeys(sorted(pairs.slots))}
    return {"n": n, "slots": slots, "repeated_products": pairs.repeats, "rows": rows,
            "real_vs_real": real_vs_real(judge, reference, other),
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1100,
                        help="try-on pairs (test scenes 0..n-1; default 1100: no catalog test product repeats)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--short", action="store_true", help="40 pairs, 200 products, 400 training scenes (tests)")
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "tryon.json"))
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"--n must be at least 2 (FID needs two samples), got {args.n}")
    n, products, reference_scenes = (SHORT["n"], SHORT["products"], SHORT["reference_scenes"]) if args.short else (
        args.n, None, TRAIN_SCENES)

    import torch

    from prodgen.paths import atomic_file

    result = {
        "what": "virtual try-on on held-back 64 px scenes with rendered truth (issue 26 §3)",
        "protocol": {
            "pairs": "test scenes 0..n-1, one random slot each, a test-split 64 px catalog photo that fits (dealt "
                     "from a shuffled deck per slot: repeated_products counts repeats); truth = the scene rendered "
                     "wearing it (prodgen.catalog.scenes.swap)",
            "ssim": "11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, valid positions; ssim: whole 64 px "
                    "image; ssim_slot: the slot's 32x32 window",
            "judge_distance": "LPIPS's role: scene-judge blocks' unit-normalised features, squared difference, "
                              "mean over positions and blocks, on 32 px slot crops (grey outside the mask)",
            "fid_kid": "scene-judge 256-d features of 32 px slot crops vs training scenes 0-3999's crops of the same "
                       "slots (same slot mix, same n); real floor = the truth vs that reference; real_vs_real = "
                       "training scenes 4000-7999's crops vs it (FID's spread between real sets at this n); KID: "
                       "raw MMD^2 in the judge's feature units, subsets of <= 500",
            "worn_accuracy": "scene judge on the output's slot crop vs the product's attributes the slot shows",
            "psnr_outside_db": "pixels outside the slot mask vs the input scene; null = identical",
            "tryons_per_second": "model.try_on on all n pairs at once, one torch thread, this machine (shared)",
        },
        **measure(n, args.seed, products, reference_scenes),
        "short": args.short, "seed": args.seed,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch_threads": 1,
                    "torch": torch.__version__, "note": "2 cores shared with other jobs: speeds are lower bounds"},
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["OMP_NUM_THREADS=1 python benchmarks/tryon.py"] + list(
            sys.argv[1:] if argv is None else argv)),
    }
    with atomic_file(args.out) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the 64 px autoencoder's recipe by what it reaches per CPU-minute (issue 25, lesson 14).

Short runs of ``prodgen.models.autoencoder.train_autoencoder`` (the loop ``prodgen train ae-64`` uses) on the 64 px
training split, ONE torch thread each, the same budget of CPU time (the process's own, ``time.process_time``, so a
busy shared machine does not shorten a run), seed 0, comparing one choice at a time against a baseline (the
recipe's ``CHECKPOINT_CONFIG``: width 32, group norm, KL weight 1e-6, perceptual weight 1 on ``judge-64``'s
features, Adam lr 1e-3, batch 32). Along the way, every CPU-minute, the PSNR of 256 test reconstructions (its CPU
time is not charged to the run). At the end each run gets its latent scale (2,000 training photos, as the recipe)
and is measured by ``autoencoder.evaluate`` on ``n`` test photos: PSNR, ``judge-64``'s accuracy on the
reconstructions, FID of the reconstructions against ``n`` training photos with the real floor.

Results go to ``data/results/ae64-recipe.json`` (atomically, one row per run; a run already there with the same
settings is kept, so an interrupted benchmark continues where it stopped); each run's weights to
``$PRODGEN_CACHE/ae64-recipe/NAME.pt``. Run from the repository root (about 6-7 minutes a run at the defaults):

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/ae64_recipe.py --minutes 5 --n 2000
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
RESULTS = ROOT / "data" / "results" / "ae64-recipe.json"
RUNS = {"base": {}, "no-perceptual": {"perceptual_weight": 0.0}, "no-norm": {"norm": "none"}}
CURVE_PHOTOS = 256


def _settings(name: str) -> dict:
    from prodgen.models.autoencoder import CHECKPOINT_CONFIG

    keys = ("width", "channels", "norm", "kl_weight", "perceptual_weight", "lr", "batch_size", "seed")
    return {**{k: CHECKPOINT_CONFIG[k] for k in keys}, **RUNS[name]}


def _budget(minutes: float, model, test):
    """A callback that stops the run after ``minutes`` of this process's CPU time spent training, and records the
    PSNR of ``test``'s reconstructions after every CPU-minute (that measuring is not charged to the budget)."""
    from prodgen.catalog import denormalize
    from prodgen.engine.callbacks import Callback
    from prodgen.models.autoencoder import psnr

    class CPUBudget(Callback):
        def begin(self, loop) -> None:
            self.start, self.measuring, self.next, self.curve = time.process_time(), 0.0, 1, []

        def used(self) -> float:
            return time.process_time() - self.start - self.measuring

        def time_up(self, loop) -> bool:
            used = self.used()
            if used >= 60.0 * self.next or used >= 60.0 * minutes:
                t0 = time.process_time()
                value = float(psnr(denormalize(model.reconstruct(test)), test).mean())
                self.curve.append({"cpu_minutes": round(used / 60, 2), "images": loop.history.images_seen,
                                   "psnr": round(value, 3)})
                print(f"  {used / 60:.1f} CPU-min, {loop.history.images_seen:,} images: PSNR {value:.2f} dB",
                      flush=True)
                self.measuring += time.process_time() - t0
                self.next += 1
            return used >= 60.0 * minutes

    return CPUBudget()


def train_one(name: str, minutes: float, n: int) -> dict:
    """Train run ``name`` for ``minutes`` CPU-minutes on one thread, save it, measure it; returns the row."""
    import torch

    from prodgen.catalog import load_catalog
    from prodgen.models import autoencoder, registry

    torch.set_num_threads(1)
    cfg = _settings(name)
    train = load_catalog("train", size=64, progress=False)
    test = load_catalog("test", size=64, progress=False).images[:CURVE_PHOTOS]
    torch.manual_seed(cfg["seed"])
    model = autoencoder.AutoEncoder(cfg["width"], cfg["channels"], cfg["norm"])
    judge = registry.load("judge-64") if cfg["perceptual_weight"] else None
    budget = _budget(minutes, model, test)
    wall, cpu = time.perf_counter(), time.process_time()
    history = autoencoder.train_autoencoder(
        model, train, kl_weight=cfg["kl_weight"], perceptual_weight=cfg["perceptual_weight"], judge=judge,
        lr=cfg["lr"], epochs=100, batch_size=cfg["batch_size"], seed=cfg["seed"], device="cpu",
        progress=False, callbacks=[budget])
    train_cpu = budget.used()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model = model.cpu().eval()
    model.scale.fill_(autoencoder.latent_scale(model, train.images[:2000], seed=cfg["seed"]))
    start = time.process_time()
    metrics = autoencoder.evaluate(model, n=n)
    out = Path(os.environ.get("PRODGEN_CACHE", ROOT / "data" / "cache")) / "ae64-recipe" / f"{name}.pt"
    registry.save("ae-64", model, {"width": cfg["width"], "channels": cfg["channels"], "norm": cfg["norm"]},
                  metrics=metrics, training={**cfg, "cpu_minutes": round(train_cpu / 60, 2)}, out=out)
    last = {k: round(v[-1], 5) for k, v in history.epochs.items()}
    return {"run": name, "settings": cfg, "cpu_minutes": round(train_cpu / 60, 2), "wall_minutes": round(wall / 60, 2),
            "images_seen": history.images_seen, "images_per_cpu_s": round(history.images_seen / train_cpu, 2),
            "last_epoch_losses": last, "latent_scale": round(float(model.scale), 5), "curve": budget.curve,
            "measure_cpu_s": round(time.process_time() - start, 1), **metrics, "weights": str(out)}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _save(result: dict, path: Path) -> None:
    from prodgen import paths

    with paths.atomic_file(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated runs (default: {','.join(RUNS)})")
    parser.add_argument("--minutes", type=float, default=5.0, help="CPU-minutes of training per run (default 5)")
    parser.add_argument("--n", type=int, default=2000, help="test photos measured at the end (default 2000)")
    parser.add_argument("--again", action="store_true", help="train runs already in the results file again")
    parser.add_argument("--out", default=str(RESULTS), help="results file (default data/results/ae64-recipe.json)")
    args = parser.parse_args(argv)
    names = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in names if r not in RUNS]
    if unknown:
        print(f"unknown run {unknown[0]!r}; runs: {', '.join(RUNS)}", file=sys.stderr)
        return 2
    result = _load(Path(args.out))
    result.setdefault("rows", {})
    for name in names:
        done = result["rows"].get(name)
        if done and not args.again and done["settings"] == _settings(name) and done["budget_cpu_minutes"] == \
                args.minutes and done["n"] == args.n:
            print(f"{name}: already measured (--again to train it again)")
            continue
        print(f"{name}: training {args.minutes} CPU-minutes, settings {_settings(name)}", flush=True)
        row = train_one(name, args.minutes, args.n)
        row["budget_cpu_minutes"] = args.minutes
        print(f"{name}: PSNR {row['psnr']} dB, judge {row['judge']['mean']} (weakest {row['judge_min']}), "
              f"FID {row['fid']} (floor {row['fid_floor']}), {row['images_per_cpu_s']} images/CPU-s", flush=True)
        result["rows"][name] = row
        result["meta"] = {"command": "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/ae64_recipe.py "
                                     f"--minutes {args.minutes} --n {args.n}",
                          "date": datetime.date.today().isoformat(), "threads": 1,
                          "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
                          "python": platform.python_version()}
        _save(result, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

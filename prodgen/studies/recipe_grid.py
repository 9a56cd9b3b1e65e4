"""Lesson 10's experiment grid: every stabilising recipe x 3 seeds, trained under one budget, measured alike.

``prodgen stability-grid`` trains each recipe of ``prodgen.models.cgan_stable.RECIPES`` with each seed for the
same number of steps on the same photos (``GRID``), and measures every run with the leaderboard's protocol
(``leaderboard.measure``: FID, KID, precision/recall, control, held-out pairs, within-request diversity...)
twice: the generator as training left it (``live``) and its weight average (``ema``). It also records
the discriminator's diagnostics: its gradient norm, and how often it calls training photos and photos it
never saw "real" (a D that has memorised its photos tells them apart: lesson 10's overfitting test).

Each run is cached as soon as it is measured (``data/cache/stability``, keyed by the recipe's settings and
the budget), so an interrupted grid continues where it stopped; the summary (mean and standard deviation
over seeds for each recipe) and every run are written atomically to one JSON file, which lesson 10 reads:
``data/results/stability-grid.json``. Runs go to ``jobs`` worker processes with one thread each.
Used by lesson 10 and ``prodgen stability-grid``.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

from prodgen import paths
from prodgen.numbers import whole

__all__ = ["RESULTS", "run_one", "run_grid", "summarise", "load_results", "format_markdown", "METRICS"]

RESULTS = "results/stability-grid.json"
"""Where the grid's results live, relative to the data folder."""

METRICS = ("fid", "kid", "precision", "recall", "control_mean", "control_min", "control_heldout", "diversity")
"""The leaderboard columns the summary averages over seeds."""


def results_path() -> Path:
    return paths.data_dir() / RESULTS


def _key(recipe: str, seed: int, budget: dict) -> str:
    from prodgen.models.cgan_stable import recipe as settings_of

    blob = json.dumps([recipe, settings_of(recipe), seed, budget], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cache_file(recipe: str, seed: int, budget: dict) -> Path:
    return paths.cache_dir() / "stability" / f"{recipe}-s{seed}-{_key(recipe, seed, budget)}.json"


def run_one(recipe: str, seed: int, budget: dict) -> dict:
    """Train and measure one (recipe, seed) run in this process; returns its row (not cached here)."""
    import torch

    from prodgen.catalog import load_catalog
    from prodgen.evaluation import leaderboard
    from prodgen.models import registry
    from prodgen.models.cgan import CGANImageModel
    from prodgen.models.cgan_stable import calls_real, train_recipe
    from prodgen.models.cgan_stable import recipe as settings_of

    settings = settings_of(recipe)
    train = load_catalog("train", progress=False)
    start = time.perf_counter()
    g, g_ema, d, history = train_recipe(settings, train, steps=budget["steps"], batch_size=budget["batch_size"],
                                     width=budget["width"], z_dim=budget["z_dim"], seed=seed,
                                     ema_decay=budget["ema_decay"], hide_p=budget["hide_p"], device="cpu",
                                     progress=False, n_samples=16)
    seconds = time.perf_counter() - start
    judge = registry.load("judge")
    ref = leaderboard.Reference(judge)
    row = {"recipe": recipe, "seed": seed, "budget": budget, "train_seconds": round(seconds, 1),
           "threads": torch.get_num_threads(), "images_seen": history.images_seen}
    for which, net in (("live", g), ("ema", g_ema)):
        measured = leaderboard.measure(CGANImageModel(net, f"{recipe}-s{seed}-{which}"), n=budget["n"], seed=0,
                                       judge=judge, speed_seconds=0.2, _ref=ref)
        row[which] = {k: v for k, v in measured.items() if k in METRICS or k == "control_min_attribute"}
    # the discriminator's view: training photos it learned from vs validation photos it never saw
    photos = settings["photos"] or len(train)
    seen = train.subset(range(min(photos, len(train))))
    unseen = load_catalog("val", progress=False)
    row["d_calls_real_train"] = round(calls_real(d, seen), 4)
    row["d_calls_real_heldout"] = round(calls_real(d, unseen), 4)
    every = max(1, len(history.steps["loss_d"]) // 80)
    row["curves"] = {k: [round(sum(v[i:i + every]) / len(v[i:i + every]), 4) for i in range(0, len(v), every)]
                     for k, v in history.steps.items()}
    row["curves_every"] = every
    row["samples"] = history.samples[-1][1][:16].tolist() if history.samples else []
    return row


def _worker(args) -> dict:
    """Train, measure and cache one run with one thread (in a worker process, or in this one for ``jobs=1``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    recipe, seed, budget = args
    try:
        row = run_one(recipe, seed, budget)
    finally:
        torch.set_num_threads(threads)
    with paths.atomic_file(_cache_file(recipe, seed, budget)) as tmp:
        tmp.write_text(json.dumps(row), encoding="utf-8")
    return row


def run_grid(recipes=None, seeds=None, steps: int | None = None, jobs: int = 2, out=None, log=print) -> dict:
    """Train and measure every (recipe, seed) not cached yet, then write the summary and all runs to ``out``
    (default :func:`results_path`); returns what was written."""
    from prodgen.models.cgan_stable import GRID, RECIPES

    recipes = list(RECIPES) if recipes is None else list(recipes)
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise ValueError(f"unknown recipe(s) {', '.join(unknown)}; valid recipes: {', '.join(RECIPES)}")
    seeds = list(GRID["seeds"]) if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("give at least one seed")
    whole(jobs, "jobs", 1)
    budget = {k: v for k, v in GRID.items() if k != "seeds"}
    if steps is not None:
        whole(steps, "steps", 1)
        budget["steps"] = steps
    todo, rows = [], {}
    for seed in seeds:  # seed-major: a partial grid already covers every recipe once
        for recipe in recipes:
            cached = _read(_cache_file(recipe, seed, budget))
            if cached is not None:
                rows[(recipe, seed)] = cached
            else:
                todo.append((recipe, seed, budget))
    log(f"stability grid: {len(rows)} run(s) cached, {len(todo)} to train ({budget['steps']} steps each, "
        f"{jobs} process(es) x 1 thread)")
    start = time.perf_counter()
    if todo:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(jobs, maxtasksperchild=1) if jobs > 1 else None
        try:
            for row in (pool.imap_unordered(_worker, todo) if pool else map(_worker, todo)):
                rows[(row["recipe"], row["seed"])] = row
                e = row["ema"]
                log(f"  {row['recipe']:<14} seed {row['seed']}: FID {e['fid']:.1f}, control {e['control_mean']:.3f} "
                    f"(EMA), {row['train_seconds']:.0f} s training; {len(rows)}/{len(recipes) * len(seeds)} done")
        finally:
            if pool is not None:
                pool.terminate()
    ordered = [_pack_samples(rows[(r, s)]) for r in recipes for s in seeds]
    result = {
        "budget": budget, "recipes": recipes, "seeds": seeds, "summary": summarise(ordered),
        "runs": ordered,
        "provenance": {"command": "prodgen stability-grid" + ("" if jobs == 2 else f" --jobs {jobs}"),
                       "machine": platform.processor() or platform.machine(),
                       "python": platform.python_version(), "jobs": jobs,
                       "wall_seconds_this_call": round(time.perf_counter() - start, 1),
                       "train_seconds_total": round(sum(r["train_seconds"] for r in ordered), 1),
                       "date": time.strftime("%Y-%m-%d")},
    }
    out = Path(out) if out is not None else results_path()
    if not todo and _same_runs(_read(out), ordered):  # nothing new: keep the file (and its provenance) as it is
        return result
    with paths.atomic_file(out) as tmp:
        tmp.write_text(json.dumps(result, separators=(",", ":")) + "\n", encoding="utf-8")
    log(f"wrote {out}")
    return result


SHIPPED_SAMPLES = 8
"""Final sample images kept per run in the results file (as one PNG strip: the file stays small)."""


def _pack_samples(row: dict) -> dict:
    """The row with its sample images (uint8 lists, as cached) replaced by a base64 PNG strip of the first few."""
    if "samples" not in row:
        return row
    import base64
    import io

    import numpy as np
    from PIL import Image

    images = np.asarray(row["samples"][:SHIPPED_SAMPLES], dtype=np.uint8)  # N x 3 x 32 x 32
    row = {k: v for k, v in row.items() if k != "samples"}
    if len(images):
        strip = images.transpose(2, 0, 3, 1).reshape(images.shape[2], -1, 3)  # 32 x (N*32) x 3
        buffer = io.BytesIO()
        Image.fromarray(strip).save(buffer, format="PNG", optimize=True)
        row["samples_png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    return row


def _unpack_samples(row: dict) -> dict:
    """Inverse of :func:`_pack_samples`: ``row["samples"]`` as uint8 lists N x 3 x 32 x 32 again."""
    if "samples_png" not in row:
        return row
    import base64
    import io

    import numpy as np
    from PIL import Image

    strip = np.asarray(Image.open(io.BytesIO(base64.b64decode(row["samples_png"]))).convert("RGB"))  # 32 x N*32 x 3
    h = strip.shape[0]
    images = strip.reshape(h, -1, h, 3).transpose(1, 3, 0, 2)  # N x 3 x 32 x 32
    return {**row, "samples": images.tolist()}


def _same_runs(saved: dict | None, runs: list[dict]) -> bool:
    """Whether a results file holds exactly these runs (same recipes, seeds, budgets and measurements)."""
    if not saved or len(saved.get("runs", [])) != len(runs):
        return False
    fields = ("recipe", "seed", "budget", "ema", "live")
    return all({k: a.get(k) for k in fields} == {k: b.get(k) for k in fields} for a, b in zip(saved["runs"], runs))


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def summarise(runs: list[dict]) -> dict:
    """``{recipe: {"live"|"ema": {metric: [mean, std over seeds]}, "train_seconds": mean, ...}}``."""
    import statistics

    out: dict = {}
    for recipe in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == recipe]
        entry: dict = {"seeds": len(mine),
                       "train_seconds": round(statistics.fmean(r["train_seconds"] for r in mine), 1)}
        for which in ("live", "ema"):
            entry[which] = {}
            for m in METRICS:
                values = [r[which][m] for r in mine if r[which].get(m) is not None]
                if values:
                    std = statistics.stdev(values) if len(values) > 1 else 0.0
                    entry[which][m] = [round(statistics.fmean(values), 4), round(std, 4)]
        for key in ("d_calls_real_train", "d_calls_real_heldout"):
            values = [r[key] for r in mine if key in r]
            if values:
                entry[key] = round(statistics.fmean(values), 4)
        out[recipe] = entry
    return out


def load_results(path=None) -> dict:
    """The shipped grid results (lesson 10), each run's final samples (``SHIPPED_SAMPLES`` images) as uint8 lists
    N x 3 x 32 x 32 under ``"samples"``; a missing file -> ``FileNotFoundError`` saying how to make it."""
    path = Path(path) if path is not None else results_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `prodgen stability-grid` to train and measure the grid")
    result = json.loads(path.read_text(encoding="utf-8"))
    result["runs"] = [_unpack_samples(r) for r in result["runs"]]  # the sample images as uint8 lists
    return result


def format_markdown(result: dict) -> str:
    """The grid's summary as a Markdown table (the README's): mean ± std over seeds, EMA and live generator."""
    def cell(entry, metric, digits):
        if metric not in entry:
            return "–"
        mean, std = entry[metric]
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    lines = ["| recipe | FID (EMA) | FID (live) | control (EMA) | control (live) | weakest (EMA) | held-out (EMA) "
             "| diversity (EMA) | D calls real: train / held-out | s per run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for recipe, entry in result["summary"].items():
        ema, live = entry["ema"], entry["live"]
        gap = (f"{entry['d_calls_real_train']:.2f} / {entry['d_calls_real_heldout']:.2f}"
               if "d_calls_real_train" in entry else "–")
        lines.append(f"| `{recipe}` | {cell(ema, 'fid', 0)} | {cell(live, 'fid', 0)} "
                     f"| {cell(ema, 'control_mean', 3)} | {cell(live, 'control_mean', 3)} "
                     f"| {cell(ema, 'control_min', 3)} | {cell(ema, 'control_heldout', 3)} "
                     f"| {cell(ema, 'diversity', 2)} | {gap} | {entry['train_seconds']:.0f} |")
    return "\n".join(lines)

"""Benchmark: prodgen on a catalog it did not make (issue 13, lesson 12's target), at full size.

Draws 6,000 32x32 products with plain Pillow (``tests/drawn_catalog.py``: shape x colour, 5 values each, with
rotation, size, position and shade jitter), then runs exactly what the README tells a student to run:

    prodgen train judge --data DIR
    prodgen train cgan-projection --data DIR --minutes 10
    prodgen evaluate DIR/models/cgan-projection.pt --data DIR --json

and writes what it measured (control per attribute, FID with its floor, times, the machine) to
``data/results/own-catalog.json`` (atomically). Target: control >= 90 % on every attribute with 2 CPU cores.
About 15 minutes. Run from the repository root:

    python benchmarks/own_catalog.py [--folder DIR] [--minutes 10] [--n 6000] [--out data/results/own-catalog.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.90


def run(cmd: list[str], log) -> tuple[float, str]:
    """Run a prodgen command, echo its output, return (seconds, stdout)."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
    print(done.stdout[-2000:] + done.stderr[-2000:], flush=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[1:3]} failed with exit code {done.returncode}")
    return seconds, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", help="where to draw the catalog (new or empty; default: a temporary folder)")
    parser.add_argument("--n", type=int, default=6000, help="products to draw (default 6000)")
    parser.add_argument("--minutes", type=float, default=10, help="the generator's training budget (default 10)")
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "own-catalog.json"))
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    from drawn_catalog import draw_catalog  # plain Pillow, no prodgen

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="own-catalog-"))
    prodgen = [sys.executable, "-m", "prodgen"]
    with open(folder.parent / f"{folder.name}-benchmark.log", "w", encoding="utf-8") as log:
        start = time.perf_counter()
        draw_catalog(folder, n=args.n, seed=0)
        drawn = time.perf_counter() - start
        judge_s, _ = run([*prodgen, "train", "judge", "--data", str(folder)], log)
        gan_s, _ = run([*prodgen, "train", "cgan-projection", "--data", str(folder), "--minutes", str(args.minutes)],
                       log)
        checkpoint = folder / "models" / "cgan-projection.pt"
        eval_s, out = run([*prodgen, "evaluate", str(checkpoint), "--data", str(folder), "--json"], log)
    measured = json.loads(out)
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    training = ckpt.get("training", {})
    control = {k: v for k, v in measured["control"].items() if k != "mean"}
    result = {
        "what": "prodgen on a catalog drawn outside prodgen (tests/drawn_catalog.py): train judge, train "
                f"cgan-projection --minutes {args.minutes:g}, evaluate --data",
        "catalog": {"products": args.n, "attributes": {"shape": 5, "colour": 5}, "size": 32, "seed": 0},
        "control": control,
        "control_mean": measured["control"]["mean"],
        "target_every_attribute": TARGET,
        "met": all(v >= TARGET for v in control.values()),
        "fid": measured.get("fid"), "fid_floor": measured.get("fid_floor"),
        "control_partial_requests": measured.get("control_partial_requests"),
        "precision": measured.get("precision"), "recall": measured.get("recall"),
        "diversity": measured.get("diversity"), "memorisation": measured.get("memorisation"),
        "n": measured.get("test_photos"),  # requests generated = the test photos compared with
        "seconds": {"draw": round(drawn, 1), "train_judge": round(judge_s, 1), "train_cgan": round(gan_s, 1),
                    "evaluate": round(eval_s, 1)},
        "training": {k: v for k, v in training.items() if k != "data"},  # the checkpoint's record (no tmp path)
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "processor": platform.machine()},
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_path)
    print(json.dumps(result, indent=2))
    if not args.folder:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

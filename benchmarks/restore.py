"""Benchmark: restoring damaged product photos, classic methods against the flow as a prior (issue 27 §1, lesson 16).

For each task of ``prodgen.apps.degrade`` at its default strength (and ``upscale`` at factors 2 and 4), on held-back
test photos (indices from :data:`FIRST` on: the bilateral filter's settings were chosen on the first 64), three
answers are scored against the clean photo:

- ``damaged``: the observation itself (low resolution enlarged by repeating pixels),
- ``classic``: ``prodgen.apps.restore.classic`` (bilateral, Wiener, harmonic filling, POCS, bicubic),
- ``supervised``: ``prodgen.apps.restore.train_restorer``, a small CNN trained for this case alone on fresh damage of
  training photos for ``--supervised-minutes`` CPU-minutes (default 2),
- ``flow``: ``prodgen.apps.restore.restore`` with the shipped ``flow`` (unconditional, its restore knobs, seed 0).

Scores: PSNR and SSIM (``prodgen.evaluation.similarity``, on 8-bit images), the judge's agreement with what it reads
on the clean photo (per attribute and mean), FID of the answers against the clean photos in the judge's features
with the real floor at the same n (test photos against training photos), and seconds per image on this machine
(one thread). Writes ``data/results/restore.json`` atomically; ``--short`` (8 photos, 2 tasks) is CI's check of
its structure. Run from the repository root: ``python benchmarks/restore.py [--n 300]``.
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
FIRST = 64
CASES = [("denoise", {}), ("deblur", {}), ("inpaint", {}), ("deblock", {}), ("upscale", {"factor": 2}),
         ("upscale", {"factor": 4})]


def _scores(judge, clean, answer, reads_clean) -> dict:
    import torch

    from prodgen.evaluation.similarity import psnr, ssim
    from prodgen.metrics import fid

    as8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
    a, c = as8(answer), as8(clean)
    reads = judge.predict(answer.clamp(-1, 1))
    agree = {name: round(float((reads[:, j] == reads_clean[:, j]).float().mean()), 4)
             for j, name in enumerate(judge.schema.names)}
    return {"psnr": round(psnr(a, c), 2), "ssim": round(float(ssim(a, c).mean()), 4),
            "agreement": {**agree, "mean": round(sum(agree.values()) / len(agree), 4)},
            "fid": round(fid(judge.embed(clean), judge.embed(answer.clamp(-1, 1))), 2)}


METHODS = ("damaged", "classic", "supervised", "flow")


def _answer(method: str, op, y, flow, supervised):
    import torch

    from prodgen.apps import restore

    if method == "damaged":
        return op.enlarge(y) if op.task == "upscale" else y
    if method == "supervised":
        with torch.no_grad():
            return supervised(op, y).clamp(-1, 1)
    return restore.classic(op, y) if method == "classic" else restore.restore(flow, op, y, seed=0)


def run(n: int, cases, supervised_minutes: float = 2.0) -> dict:

    from prodgen.apps import degrade, restore
    from prodgen.catalog import load_catalog, normalize
    from prodgen.metrics import fid
    from prodgen.models import registry

    judge, flow = registry.load("judge"), registry.load_generator("flow")
    test = load_catalog("test", progress=False)
    if FIRST + n > len(test):
        raise SystemExit(f"--n {n} is more than the {len(test) - FIRST} held-back test photos")
    clean = normalize(test.images[FIRST:FIRST + n])
    train = normalize(load_catalog("train", n=n, progress=False).images)
    reads_clean = judge.predict(clean)
    rows = []
    for task, strength in cases:
        y, op = degrade.degrade(task, clean, seed=0, **strength)
        row = {"task": task, **strength, "n": n}
        net = restore.train_restorer(task, minutes=supervised_minutes, **strength)
        for method in METHODS:
            start = time.process_time()
            answer = _answer(method, op, y, flow, net)
            seconds = (time.process_time() - start) / n
            row[method] = _scores(judge, clean, answer, reads_clean) | {"cpu_s_per_image": round(seconds, 4)}
        row |= {"classic_name": restore.CLASSIC_NAMES[task], "supervised_steps": net.steps}
        rows.append(row)
        print(f"{task} {strength or ''}: " + "; ".join(
            f"{m} PSNR {row[m]['psnr']} SSIM {row[m]['ssim']} agree {row[m]['agreement']['mean']} FID {row[m]['fid']}"
            for m in METHODS), flush=True)
    floor = round(fid(judge.embed(clean), judge.embed(train)), 2)
    return {"rows": rows, "fid_floor": floor, "first_photo": FIRST, "flow_knobs": _knobs(),
            "supervised_minutes": supervised_minutes}


def _knobs() -> dict:
    from prodgen.models.flow import RESTORE_KNOBS

    return dict(RESTORE_KNOBS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="held-back test photos (default 300)")
    parser.add_argument("--supervised-minutes", type=float, default=2.0,
                        help="CPU-minutes of training for each case's supervised network (default 2)")
    parser.add_argument("--short", action="store_true", help="CI's check: 8 photos, denoise and 2x upscale, "
                                                             "1.2 CPU-s of supervised training")
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "restore.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from prodgen.paths import atomic_file

    torch.set_num_threads(1)
    n, cases, minutes = (8, [CASES[0], CASES[4]], 0.02) if args.short else (args.n, CASES, args.supervised_minutes)
    start = time.perf_counter()
    result = run(n, cases, minutes)
    result |= {"seconds": round(time.perf_counter() - start, 1),
               "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "threads": 1, "torch": torch.__version__},
               "date": datetime.date.today().isoformat(),
               "command": " ".join(["python benchmarks/restore.py"] + (argv if argv is not None else sys.argv[1:]))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

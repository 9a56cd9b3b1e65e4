"""Benchmark: torch CPU threads for the lessons' live training (issue 23), on the machine as it is now.

Times lesson-sized training steps with ``torch.set_num_threads(1)`` and with ``torch.set_num_threads(N)``
(N = the cores, at most 4), interleaved in blocks so both see the same background load:

- ``cgan``: lesson 05's live demo (projection cGAN of width 32, hinge loss, EMA, batch 32);
- ``unet``: lesson 11's live run (the diffusion U-Net of width 32, batch 64).

The steps are run by the course's own engine (``train_gan`` / ``train_diffusion``: bf16 where the CPU has it,
channels_last), so a step here is a step of the lessons. The load average before and after each block is
recorded, since the point is how the thread counts behave when other programs also run. Writes
``data/results/threads.json`` (atomically) and prints a table. Run from the repository root:

    python benchmarks/threads.py [--steps 40] [--blocks 3] [--models cgan,unet] [--out data/results/threads.json]

``prodgen.engine.runtime.setup`` uses the decision this measures (see its docstring).
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


def _cgan_run(train, steps: int, seed: int):
    """A function running ``steps`` steps of lesson 05's demo; returns the seconds they took."""
    import copy

    from prodgen.engine.train import GANSettings, Progress, SampleGrid, train_gan
    from prodgen.models import cgan
    from prodgen.models.condition import hide_attributes

    batch = 32
    data = train.subset(range(steps * batch))
    g, d = cgan.build_pair("projection", width=32, seed=seed)
    settings = GANSettings(loss="hinge", lr=1e-3, betas=(0.0, 0.9), ema_decay=0.99)
    start = time.perf_counter()
    train_gan(g, d, data, epochs=1, batch_size=batch, settings=settings, condition=lambda y: hide_attributes(y, 0.1),
              ema=copy.deepcopy(g), seed=seed, device="cpu", callbacks=[Progress(False), SampleGrid(0)])
    return time.perf_counter() - start


def _unet_run(train, steps: int, seed: int):
    """``steps`` steps of lesson 11's live run; returns the seconds they took."""
    import torch

    from prodgen.engine.train import train_diffusion
    from prodgen.models import diffusion

    batch = 64
    torch.manual_seed(seed)
    model = diffusion.UNet(32)
    start = time.perf_counter()
    train_diffusion(model, train.subset(range(steps * batch)), epochs=1, batch_size=batch, lr=2e-3, seed=seed,
                    device="cpu", n_samples=0, progress=False)
    return time.perf_counter() - start


MODELS = {"cgan": (_cgan_run, "lesson 05 cGAN (projection, width 32), batch 32"),
          "unet": (_unet_run, "lesson 11 U-Net (width 32), batch 64")}


def measure(models, steps: int, blocks: int, many: int, log=print) -> list[dict]:
    """Blocks of ``steps`` steps, alternating 1 and ``many`` threads (order swapped every block); one row each."""
    import torch

    from prodgen.catalog import load_catalog

    train = load_catalog("train", n=max(steps, 5) * 64, seed=0, progress=False)
    rows = []
    for name in models:
        run = MODELS[name][0]
        torch.set_num_threads(1)
        run(train, 5, 0)  # warm-up: first-call costs (oneDNN kernels, allocations)
        for block in range(blocks):
            for threads in ((1, many) if block % 2 == 0 else (many, 1)):
                torch.set_num_threads(threads)
                load_before = os.getloadavg()[0]
                seconds = run(train, steps, block)
                row = {"model": name, "threads": threads, "block": block, "steps": steps,
                       "ms_per_step": round(1000 * seconds / steps, 1), "load_before": round(load_before, 2),
                       "load_after": round(os.getloadavg()[0], 2)}
                rows.append(row)
                log(f"{name:5s} {threads} thread(s), block {block}: {row['ms_per_step']:7.1f} ms/step "
                    f"(load {row['load_before']:.1f} -> {row['load_after']:.1f})")
    return rows


def summarise(rows: list[dict]) -> dict:
    """Per model and thread count: the median and the range of ms/step over the blocks, and the load seen."""
    out = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        per = {}
        for threads in sorted({r["threads"] for r in rows if r["model"] == name}):
            ms = sorted(r["ms_per_step"] for r in rows if r["model"] == name and r["threads"] == threads)
            loads = [r["load_before"] for r in rows if r["model"] == name and r["threads"] == threads]
            per[str(threads)] = {"median_ms": ms[len(ms) // 2], "min_ms": ms[0], "max_ms": ms[-1],
                                 "mean_load": round(sum(loads) / len(loads), 2)}
        out[name] = per
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per block (default 40)")
    parser.add_argument("--blocks", type=int, default=3, help="blocks per thread count and model (default 3)")
    parser.add_argument("--models", default="cgan,unet", help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "threads.json"))
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models or args.steps < 1 or args.blocks < 1:
        print(f"error: models must be among {', '.join(MODELS)}; steps and blocks >= 1", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    import torch

    from prodgen.engine.train import resolve_precision
    from prodgen.paths import atomic_file

    cores = os.cpu_count() or 1
    many = min(max(cores, 2), 4)
    print(f"{cores} cores, load average {os.getloadavg()[0]:.2f}; 1 vs {many} threads, {args.blocks} blocks of "
          f"{args.steps} steps per model", flush=True)
    rows = measure(models, args.steps, args.blocks, many, log=lambda s: print(s, flush=True))
    result = {"what": "ms per training step of the lessons' live models with 1 and N torch threads, on the machine "
                      "as it was (load average = other programs running)",
              "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cores": cores, "platform": platform.platform(terse=True), "torch": torch.__version__,
                          "precision": resolve_precision("auto", "cpu")},
              "models": {m: MODELS[m][1] for m in models}, "summary": summarise(rows), "blocks": rows}
    with atomic_file(Path(args.out)) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1) + "\n")
    for name, per in result["summary"].items():
        cells = "; ".join(f"{t} thread(s) {v['median_ms']:.0f} ms ({v['min_ms']:.0f}-{v['max_ms']:.0f}), "
                          f"load {v['mean_load']:.1f}" for t, v in per.items())
        print(f"{name}: {cells}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

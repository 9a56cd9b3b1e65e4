"""Benchmark: the flow-matching recipe by what it reaches per CPU-minute (issue 24, lesson 13).

Part ``train``: short runs of ``prodgen.engine.train.train_flow`` on the course catalog, ONE torch thread each,
the same budget of CPU time (the process's own, so a busy shared machine does not shorten a run), seed 0, EMA
0.999 (warmed up), comparing one choice at a time against a baseline (width 32, Adam lr 1e-3, batch 64,
logit-normal times): uniform times, width 48, lr 2e-3, batch 128. Each run's EMA weights are measured on the
leaderboard protocol (``prodgen.evaluation.leaderboard.measure``: the judge's control on ``n`` balanced requests,
held-out pairs, FID against ``n`` training photos with its real-vs-real floor) with the model's default knobs
of the day (each row records them). ``--jobs`` runs train at once (separate processes, one thread each).

Part ``sampling``: one trained run (``--model``, default the baseline) sampled with each solver at several step
counts (control and FID on ``n`` requests, images per CPU-second with guidance), and the fast CPU path: fp32
NCHW vs channels-last vs channels-last + bf16 autocast (network passes per CPU-second at batch 64, and whether
bf16 changes control or FID). Speeds are per CPU-second of one thread (``time.process_time``), so a busy
shared machine does not distort them.

Results go to ``data/results/flow-recipe.json`` (atomically; a part re-run replaces its own section).
Run from the repository root (about 20 + 8 minutes on 2 cores with the defaults):

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/flow_recipe.py --part train --minutes 4 --n 300 --jobs 2
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/flow_recipe.py --part sampling --n 300
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = {"width": 32, "lr": 1e-3, "batch_size": 64, "time_sampling": "logit-normal"}
RUNS = {"baseline": {}, "uniform-t": {"time_sampling": "uniform"}, "width-48": {"width": 48},
        "lr-2e-3": {"lr": 2e-3}, "batch-128": {"batch_size": 128}}
SAMPLING_GRID = [("euler", 4), ("euler", 8), ("euler", 16), ("heun", 2), ("heun", 4), ("heun", 8),
                 ("ab2", 4), ("ab2", 8), ("ab2", 16)]


def _runs_dir() -> Path:
    from prodgen import paths

    return paths.cache_dir() / "flow-recipe"


def _cpu_budget(minutes: float):
    """A training callback that stops the run after ``minutes`` of this process's CPU time (not wall-clock time:
    the 2 cores are shared, and a busy neighbour would otherwise cut a run short; this process only trains)."""
    from prodgen.engine.callbacks import Callback

    class CPUBudget(Callback):
        def begin(self, loop) -> None:
            self.start = time.process_time()

        def time_up(self, loop) -> bool:
            return time.process_time() - self.start >= 60.0 * minutes

    return CPUBudget()


def train_one(name: str, minutes: float, n: int) -> dict:
    """Train run ``name`` for ``minutes`` on one thread, save its EMA weights, measure them; returns the row."""
    import copy

    import torch

    from prodgen.catalog import load_catalog
    from prodgen.engine.train import train_flow
    from prodgen.evaluation import leaderboard
    from prodgen.models.flow import FlowImageModel, FlowUNet

    torch.set_num_threads(1)
    cfg = {**BASE, **RUNS[name]}
    train = load_catalog("train", progress=False)
    torch.manual_seed(0)
    model = FlowUNet(cfg["width"])
    ema = copy.deepcopy(model)
    cpu, wall = time.process_time(), time.perf_counter()
    history = train_flow(model, train, epochs=1000, batch_size=cfg["batch_size"], lr=cfg["lr"], seed=0, device="cpu",
                         progress=False, ema=ema, ema_decay=0.999, n_samples=0, time_sampling=cfg["time_sampling"],
                         callbacks=[_cpu_budget(minutes)])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    ema = ema.cpu().eval()
    folder = _runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg, "state_dict": ema.state_dict()}, folder / f"{name}.pt")
    row = leaderboard.measure(FlowImageModel(ema, f"flow-{name}"), n=n, seed=0)
    losses = history.steps["loss"]
    return {"run": name, **cfg, "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
            "steps": len(losses), "images_seen": history.images_seen,
            "images_per_cpu_s": round(history.images_seen / cpu, 1),
            "final_loss_mean_last_50": round(sum(losses[-50:]) / len(losses[-50:]), 4),
            "knobs": FlowImageModel(ema).check_knobs({}),
            **{k: row[k] for k in ("control_mean", "control_min", "control_min_attribute", "control_heldout", "fid",
                                   "fid_floor", "precision", "recall", "diversity")},
            "measure_s": row["seconds"]}


def part_train(args) -> dict:
    """Every run in its own process (one thread each), ``args.jobs`` at once."""
    names = list(RUNS) if args.runs is None else args.runs.split(",")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    pending, running, rows = list(names), [], {}
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            cmd = [sys.executable, __file__, "--one", name, "--minutes", str(args.minutes), "--n", str(args.n)]
            print(f"start {name}", flush=True)
            running.append((name, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)))
        time.sleep(2)
        for name, proc in list(running):
            if proc.poll() is not None:
                out = proc.stdout.read()
                running.remove((name, proc))
                if proc.returncode != 0:
                    raise SystemExit(f"run {name} failed with exit code {proc.returncode}")
                rows[name] = json.loads(out.strip().splitlines()[-1])
                print(json.dumps(rows[name]), flush=True)
    return {"minutes_per_run": args.minutes, "n": args.n, "jobs": args.jobs, "rows": [rows[k] for k in names]}


def _measure_images(model, n: int, knobs: dict, judge, ref) -> dict:
    """Control and FID of ``n`` balanced requests' images (seed 0), and images/s at batch 64."""
    from prodgen import metrics
    from prodgen.models.condition import balanced_requests

    requests = balanced_requests(n, 0)
    start = time.process_time()  # CPU time of this one-thread process: a busy neighbour does not count
    images = model.generate(requests, seed=0, **knobs)
    per_s = n / (time.process_time() - start)
    control = metrics.control_accuracy(judge, images, requests)
    fake = metrics.judge_features(judge, images)
    return {"control_mean": round(control["mean"], 4), "control_min": round(min(v for k, v in control.items()
                                                                                 if k != "mean"), 4),
            "fid": round(metrics.fid(ref.train["features"][:n], fake), 3), "images_per_cpu_s": round(per_s, 1)}


def part_sampling(args) -> dict:
    import torch

    from prodgen.engine.train import cpu_has_native_bf16
    from prodgen.evaluation import leaderboard
    from prodgen.models import flow, registry

    torch.set_num_threads(args.threads)
    saved = torch.load(_runs_dir() / f"{args.model}.pt", weights_only=True)
    net = flow.FlowUNet(saved["config"]["width"])
    net.load_state_dict(saved["state_dict"])
    model = flow.FlowImageModel(net.eval(), f"flow-{args.model}")
    judge = registry.load("judge")
    ref = leaderboard.Reference(judge)
    rows = []
    for sampler, steps in SAMPLING_GRID:
        row = {"sampler": sampler, "steps": steps, "evaluations": flow.evaluations(sampler, steps),
               **_measure_images(model, args.n, {"sampler": sampler, "steps": steps}, judge, ref)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"model": args.model, "n": args.n, "threads": args.threads, "guidance": 2.0,
            "fid_floor": round(ref.floor(args.n), 3), "rows": rows, "fast_path": _fast_path(net, args),
            "native_bf16": cpu_has_native_bf16()}


def _fast_path(net, args) -> list:
    """Network passes per CPU-second (batch 64, Euler 4 steps with guidance) for each layout / precision, and
    whether bf16 changes the images' control or FID (Heun 8, ``n`` requests)."""
    import torch

    from prodgen.evaluation import leaderboard
    from prodgen.models import flow, registry
    from prodgen.models.condition import balanced_requests

    labels = balanced_requests(64, 0)
    out = []
    for layout, precision in (("nchw", "fp32"), ("channels_last", "fp32"), ("channels_last", "bf16")):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = net.to(memory_format=fmt)
        x_1 = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        if layout == "nchw":  # sample() feeds channels_last on the CPU: call the network directly instead
            best = _passes_nchw(net, labels, x_1)
        else:
            flow.sample(net, labels, steps=1, sampler="euler", x_1=x_1, precision=precision)  # warm-up
            times = []
            for _ in range(3):
                start = time.process_time()
                flow.sample(net, labels, steps=4, sampler="euler", x_1=x_1, precision=precision)
                times.append(time.process_time() - start)
            best = 64 * 4 * 2 / min(times)
        out.append({"layout": layout, "precision": precision, "passes_per_cpu_s": round(best, 1)})
        print(json.dumps(out[-1]), flush=True)
    judge = registry.load("judge")
    ref = leaderboard.Reference(judge)
    for precision in ("fp32", "bf16"):
        model = _PrecisionModel(net.to(memory_format=torch.channels_last), precision)
        out.append({"precision": precision, "sampler": "heun", "steps": 8,
                    **_measure_images(model, args.n, {}, judge, ref)})
        print(json.dumps(out[-1]), flush=True)
    return out


def _passes_nchw(net, labels, x_1) -> float:
    import torch

    from prodgen.models.diffusion import _unconditional_like

    uncond = _unconditional_like(labels)
    times = []
    with torch.no_grad():
        for rep in range(4):
            start = time.process_time()
            for i in range(4):  # 4 guided steps: conditional and unconditional rows in one batch
                net(torch.cat([x_1, x_1]), torch.full((128,), 1 - i / 4), torch.cat([labels, uncond]))
            if rep:
                times.append(time.process_time() - start)
    return 64 * 4 * 2 / min(times)


class _PrecisionModel:
    """A FlowImageModel-like ``generate`` with the network's precision forced (fp32 or bf16)."""

    def __init__(self, net, precision):
        from prodgen.models.flow import FlowImageModel

        self.model, self.precision = FlowImageModel(net, "flow"), precision

    def generate(self, requests, seed=0, **knobs):
        import torch

        from prodgen.catalog import denormalize
        from prodgen.models import flow

        labels = self.model.prepare(requests)
        gen = torch.Generator().manual_seed(seed)
        x_1 = torch.randn(len(labels), 3, 32, 32, generator=gen)
        labels = self.model._condition(labels, gen, "random")
        return denormalize(flow.sample(self.model.network, labels, steps=8, sampler="heun", generator=gen, x_1=x_1,
                                       precision=self.precision))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("train", "sampling"), help="which measurement to run")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per run (default 4)")
    parser.add_argument("--n", type=int, default=300, help="requests per measurement (default 300)")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each (default 2)")
    parser.add_argument("--runs", help=f"comma-separated subset of {', '.join(RUNS)}")
    parser.add_argument("--model", default="baseline", help="the trained run the sampling part measures")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the sampling part (default 1)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: train and measure one run, print its row
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "flow-recipe.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(train_one(args.one, args.minutes, args.n)))
        return 0
    if args.part is None:
        parser.error("--part train or --part sampling")
    sys.path.insert(0, str(ROOT))
    from prodgen.paths import atomic_file

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    result = part_train(args) if args.part == "train" else part_sampling(args)
    import torch

    results[args.part] = {**result, "machine": {"cpu": platform.processor() or platform.machine(),
                                                "cores": os.cpu_count(), "torch": torch.__version__},
                          "date": datetime.date.today().isoformat(),
                          "command": " ".join(["python benchmarks/flow_recipe.py"] + sys.argv[1:])}
    with atomic_file(out) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

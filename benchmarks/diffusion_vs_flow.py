"""Benchmark: five ways to train lesson 11's U-Net at the same CPU budget, then their samplers (issue 24 §2, lesson 13).

Part ``train``: the same network (``prodgen.models.diffusion.UNet``, same width), data (the course catalog's
training split) and budget of **process CPU time** on one thread (a callback, as ``benchmarks/flow_recipe.py``:
a busy shared machine does not shorten a run), Adam lr 1e-3, batch 64, EMA 0.999 warmed up, condition dropout
0.1 / 0.1 (``prodgen.engine.train.train_field``), two seeds each, for

- ``v-cosine``: lesson 11's v-prediction on the cosine schedule (``losses.diffusion_loss``, the shipped recipe);
- ``eps``: noise prediction on the same schedule (``losses.eps_loss``);
- ``eps-min-snr``: the same, min-SNR-5 weighted (``losses.eps_loss(min_snr_gamma=5)``);
- ``edm``: EDM's preconditioning and log-normal noise levels (``losses.edm_loss``); the network's time input is
  ``ln sigma`` mapped linearly onto the step numbers its embedding was made for (:class:`EDMNet`);
- ``flow``: rectified flow with logit-normal times (``losses.flow_loss``, ``prodgen.models.flow``).

At every quarter of the budget the EMA weights are kept and measured afterwards (measuring is not counted):
control (the shipped judge, ``n`` balanced requests, guidance 2) and FID against ``n`` training photos
(``prodgen.evaluation.leaderboard.Reference``, its real-vs-real floor recorded), at 16 network evaluations
(DDIM 16 steps; EDM's Euler = DDIM on its sigma grid; flow AB2 16 steps).

Part ``sampling``: each variant's seed-0 run at the full budget, at 1, 2, 4, 8, 16, 32 network evaluations per
image (each with guidance's two rows in one batch): DDIM for the diffusion variants, Euler on the Karras sigma
grid for EDM, Euler / Heun / AB2 for flow, and the distilled ``flow-fast`` at 1, 2, 4 when it is shipped:
control, FID, images per CPU-second (one thread).

Results: ``data/results/diffusion-vs-flow.json`` and two plots next to it (``-train.png``, ``-sampling.png``).
The long form (about 150 CPU-minutes of training, two runs at a time, then ~40 CPU-minutes of measuring):

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/diffusion_vs_flow.py --minutes 15 --n 300 --jobs 2

Every finished run leaves its weights and its row in the runs folder: started again with the same settings, the
benchmark skips the runs already done (the long form can span two sittings).

``--short``: width 8, 512 products, 1.8 CPU-seconds per run, one seed, n 32, evaluations 1-4, in one process (CI's
check of the JSON's structure, ``tests/test_benchmarks_flow.py``).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VARIANTS = ("v-cosine", "eps", "eps-min-snr", "edm", "flow")
SEEDS = (0, 1)
EVALUATIONS = (1, 2, 4, 8, 16, 32)
CURVE_EVALUATIONS = 16
GUIDANCE = 2.0
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0  # EDM's noise range and its sampler's step spacing


def _edm_net_class():
    from prodgen.models.diffusion import UNet

    class EDMNet(UNet):
        """``F(c_in x, c_noise, labels)``: lesson 11's U-Net with the time input ``1000 (ln sigma - ln sigma_min) /
        (ln sigma_max - ln sigma_min)`` (``c_noise = ln(sigma) / 4``, ``losses.edm_precondition``)."""

        def forward(self, x, c_noise, labels):
            span = math.log(SIGMA_MAX) - math.log(SIGMA_MIN)
            return super().forward(x, 1000 * (4 * c_noise.float() - math.log(SIGMA_MIN)) / span, labels)

    return EDMNet


def build(variant: str, width: int):
    """The network of ``variant``: the same U-Net (``width``) for all five."""
    from prodgen.models.diffusion import UNet
    from prodgen.models.flow import FlowUNet

    if variant == "flow":
        return FlowUNet(width)
    return _edm_net_class()(width) if variant == "edm" else UNet(width)


def loss_of(variant: str):
    from prodgen.engine import losses

    return {"v-cosine": losses.diffusion_loss, "eps": losses.eps_loss,
            "eps-min-snr": functools.partial(losses.eps_loss, min_snr_gamma=5.0), "edm": losses.edm_loss,
            "flow": functools.partial(losses.flow_loss, sampling="logit-normal")}[variant]


# ----------------------------------------------------------------------------- samplers
def _guided(net, x, t, labels, w):
    """One network evaluation of a batch with guidance: conditional and unconditional rows together."""
    import torch

    from prodgen.models.diffusion import _unconditional_like, guided

    x = x.contiguous(memory_format=torch.channels_last)  # the CPU's fast layout, as the package's samplers
    both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, _unconditional_like(labels)])).float()
    return guided(*both.chunk(2), w)


def _ddim_eps(net, labels, x, steps: int, w: float):
    """DDIM (eta 0) for a noise-predicting network on its cosine schedule, ``steps`` evaluations."""
    import torch

    from prodgen.models.diffusion import ddim_step, sample_timesteps

    abar = net.abar.double()
    ts = sample_timesteps(steps, len(abar)).tolist()
    for i, t in enumerate(ts):
        a_t = float(abar[t])
        a_s = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        eps = _guided(net, x, torch.full((len(x),), t), labels, w)
        x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
        x = ddim_step(x0, (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t), a_s)
    return x


def karras_sigmas(steps: int) -> list[float]:
    """``steps`` noise levels from SIGMA_MAX down to SIGMA_MIN, spaced as EDM's sampler spaces them, then 0."""
    if steps == 1:
        return [SIGMA_MAX, 0.0]
    hi, lo = SIGMA_MAX ** (1 / RHO), SIGMA_MIN ** (1 / RHO)
    return [(hi + i / (steps - 1) * (lo - hi)) ** RHO for i in range(steps)] + [0.0]


def _edm_euler(net, labels, x, steps: int, w: float):
    """Euler on dx/dsigma = (x - D(x)) / sigma (deterministic DDIM in EDM's variance-exploding form)."""
    import torch

    from prodgen.engine.losses import edm_denoise

    sigmas = karras_sigmas(steps)
    x = x * sigmas[0]
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        sig = torch.full((len(x),), s)
        denoised = _guided(lambda xx, ss, ll: edm_denoise(net, xx, ss, ll), x, sig, labels, w)
        x = x + (s_next - s) * (x - denoised) / s
    return x


def generate(variant: str, net, labels, noise, evaluations: int, sampler: str = "ddim", w: float = GUIDANCE):
    """Images in [-1, 1] for ``labels`` from start noise ``noise`` with ``evaluations`` network evaluations."""
    import torch

    from prodgen.models import diffusion, flow

    with torch.no_grad():
        if variant == "flow":
            steps = evaluations // 2 if sampler == "heun" else evaluations
            return flow.sample(net, labels, steps=steps, guidance=w, sampler=sampler, x_1=noise, precision="fp32")
        if variant == "flow-fast":
            return flow.sample(net, labels, steps=evaluations, guidance=1.0, sampler=sampler, x_1=noise,
                               precision="fp32")
        if variant == "v-cosine":
            return diffusion.sample(net, labels, steps=evaluations, guidance=w, x_T=noise)
        out = _edm_euler(net, labels, noise, evaluations, w) if variant == "edm" else \
            _ddim_eps(net, labels, noise, evaluations, w)
        return out.clamp(-1, 1)


def measure(variant, net, n: int, evaluations: int, sampler: str, judge, ref) -> dict:
    """Control, FID (``n`` balanced requests, seed 0) and images per CPU-second."""
    import torch

    from prodgen import metrics
    from prodgen.catalog import denormalize
    from prodgen.models.condition import balanced_requests

    labels = balanced_requests(n, 0)
    noise = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    net = net.eval().to(memory_format=torch.channels_last)
    start = time.process_time()
    images = denormalize(generate(variant, net, labels, noise, evaluations, sampler))
    per_s = n / max(time.process_time() - start, 1e-9)
    control = metrics.control_accuracy(judge, images, labels)
    fake = metrics.judge_features(judge, images)
    return {"control_mean": round(control["mean"], 4), "fid": round(metrics.fid(ref.train["features"][:n], fake), 3),
            "images_per_cpu_s": round(per_s, 1)}


# ----------------------------------------------------------------------------- training
def _snapshots(minutes: float, keep: int = 4):
    """A callback that stops after ``minutes`` of this process's CPU time and keeps the EMA's weights (and the
    images seen) at every ``1/keep`` of it."""
    import copy

    from prodgen.engine.callbacks import Callback

    class Snapshots(Callback):
        def begin(self, loop) -> None:
            self.start, self.kept = time.process_time(), []

        def time_up(self, loop) -> bool:
            used = time.process_time() - self.start
            while len(self.kept) < keep and used >= 60.0 * minutes * (len(self.kept) + 1) / keep:
                ema = loop.modules["model_ema"]
                self.kept.append((round(used / 60, 3), loop.history.images_seen, copy.deepcopy(ema.state_dict())))
            return len(self.kept) >= keep

    return Snapshots()


def train_one(variant: str, seed: int, args) -> dict:
    """Train ``variant`` with ``seed`` for ``args.minutes`` CPU-minutes on one thread; measure its snapshots; save
    the last EMA weights under ``args.runs_dir``; returns the row."""
    import copy

    import torch

    from prodgen.catalog import load_catalog
    from prodgen.engine.train import train_field
    from prodgen.evaluation import leaderboard
    from prodgen.models import registry

    torch.set_num_threads(1)
    train = load_catalog("train", n=args.products, progress=False)
    torch.manual_seed(seed)
    net = build(variant, args.width)
    ema = copy.deepcopy(net)
    snaps = _snapshots(args.minutes)
    history = train_field(net, train, loss_of(variant), kind=f"compare-{variant}", epochs=100_000, batch_size=64,
                          lr=1e-3, seed=seed, device="cpu", progress=False, ema=ema, ema_decay=0.999, drop_p=0.1,
                          hide_p=0.1, callbacks=[snaps])
    judge = registry.load("judge")
    ref = leaderboard.Reference(judge)
    sampler = {"flow": "ab2", "edm": "edm-euler"}.get(variant, "ddim")
    points = []
    for minutes, seen, state in snaps.kept:
        ema.load_state_dict(state)
        points.append({"cpu_minutes": minutes, "images_seen": seen,
                       **measure(variant, ema, args.n, args.curve_evaluations, sampler, judge, ref)})
    from prodgen.paths import atomic_file

    Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
    with atomic_file(Path(args.runs_dir) / f"{variant}-s{seed}.pt") as tmp:
        torch.save({"variant": variant, "width": args.width, "state_dict": ema.state_dict()}, tmp)
    losses = history.steps["loss"]
    row = {"variant": variant, "seed": seed, "steps": len(losses), "images_seen": history.images_seen,
           "final_loss_mean_last_50": round(sum(losses[-50:]) / max(len(losses[-50:]), 1), 4),
           "sampler": sampler, "evaluations": args.curve_evaluations, "checkpoints": points}
    with atomic_file(_row_file(variant, seed, args)) as tmp:  # written last: its presence means the run is done
        Path(tmp).write_text(json.dumps({"settings": _common_args(args), "row": row}) + "\n")
    return row


def _row_file(variant: str, seed: int, args) -> Path:
    return Path(args.runs_dir) / f"{variant}-s{seed}.json"


def _finished(variant: str, seed: int, args) -> dict | None:
    """The row of a run already finished with these settings (a long form can be stopped and started again). The
    sampling part needs the seed-0 runs' weights too; a seed-1 run needs only its row."""
    path = _row_file(variant, seed, args)
    try:
        saved = json.loads(path.read_text())
        if _without_runs_dir(saved["settings"]) == _without_runs_dir(_common_args(args)) and (
                seed != 0 or path.with_suffix(".pt").is_file()):
            return saved["row"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _without_runs_dir(settings: list[str]) -> list[str]:
    """A run's settings without where it was kept (a runs folder may be moved, e.g. into the repository)."""
    i = settings.index("--runs-dir") if "--runs-dir" in settings else len(settings)
    return settings[:i] + settings[i + 2:]


def part_train(args) -> dict:
    """Every (variant, seed) run: in this process (``--jobs 0``) or in ``args.jobs`` one-thread processes."""
    runs = [(v, s) for v in args.variants for s in args.seeds]
    rows = {} if args.short else {(v, s): row for v, s in runs if (row := _finished(v, s, args)) is not None}
    if rows:
        print(f"{len(rows)} of {len(runs)} runs already finished with these settings in {args.runs_dir}", flush=True)
    if args.jobs == 0:
        for v, s in [k for k in runs if k not in rows]:
            rows[(v, s)] = train_one(v, s, args)
            print(json.dumps(rows[(v, s)]), flush=True)
    else:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        pending, running = [k for k in runs if k not in rows], []
        while pending or running:
            while pending and len(running) < args.jobs:
                v, s = pending.pop(0)
                cmd = [sys.executable, __file__, "--one", f"{v}:{s}", *_common_args(args)]
                running.append(((v, s), subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)))
            time.sleep(2)
            for key, proc in list(running):
                if proc.poll() is not None:
                    running.remove((key, proc))
                    if proc.returncode != 0:
                        raise SystemExit(f"run {key} failed with exit code {proc.returncode}")
                    rows[key] = json.loads(proc.stdout.read().strip().splitlines()[-1])
                    print(json.dumps(rows[key]), flush=True)
    return {"minutes_per_run": args.minutes, "n": args.n, "width": args.width, "products": args.products,
            "seeds": list(args.seeds), "rows": [rows[k] for k in runs]}


def _common_args(args) -> list[str]:
    return ["--minutes", str(args.minutes), "--n", str(args.n), "--width", str(args.width), "--runs-dir",
            str(args.runs_dir)] + (["--products", str(args.products)] if args.products else [])


# ----------------------------------------------------------------------------- sampling
def part_sampling(args) -> dict:
    import torch

    from prodgen.evaluation import leaderboard
    from prodgen.models import registry

    torch.set_num_threads(1)
    judge = registry.load("judge")
    ref = leaderboard.Reference(judge)
    rows = []
    for variant in args.variants:
        saved = torch.load(Path(args.runs_dir) / f"{variant}-s0.pt", weights_only=True)
        net = build(variant, saved["width"])
        net.load_state_dict(saved["state_dict"])
        for sampler in {"flow": ("euler", "heun", "ab2"), "edm": ("edm-euler",)}.get(variant, ("ddim",)):
            for e in args.evaluations:
                if sampler == "heun" and e % 2:
                    continue
                rows.append({"variant": variant, "sampler": sampler, "evaluations": e,
                             **measure(variant, net.eval(), args.n, e, sampler, judge, ref)})
                print(json.dumps(rows[-1]), flush=True)
    if "flow-fast" in registry.manifest():
        net = registry.load("flow-fast")
        for e in (1, 2, 4):
            rows.append({"variant": "flow-fast", "sampler": "euler", "evaluations": e,
                         **measure("flow-fast", net, args.n, e, "euler", judge, ref)})
    return {"n": args.n, "guidance": GUIDANCE, "fid_floor": round(ref.floor(args.n), 3), "rows": rows,
            "flow_fast_shipped": "flow-fast" in registry.manifest()}


# ----------------------------------------------------------------------------- plots and the command
def plot(results: dict, out: Path) -> list[Path]:
    """Two PNGs next to ``out``: control and FID against CPU-minutes (mean of the seeds), and against evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prodgen.paths import atomic_file

    written = []
    for part, x_key in (("train", "cpu_minutes"), ("sampling", "evaluations")):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for (label, xs, ys) in _series(results[part], x_key):
            for ax, key in zip(axes, ("control_mean", "fid")):
                ax.plot(xs, [y[key] for y in ys], marker="o", label=label)
        for ax, key in zip(axes, ("control (judge)", "FID (judge features)")):
            ax.set_xlabel("CPU-minutes of training" if part == "train" else "network evaluations per image")
            ax.set_ylabel(key)
            if part == "sampling":
                ax.set_xscale("log", base=2)
        axes[1].set_yscale("log")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        path = out.with_name(f"{out.stem}-{part}.png")
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _series(part: dict, x_key: str):
    """``(label, x values, points)`` per line of a plot: a variant's seeds averaged, or a variant's sampler."""
    if x_key == "cpu_minutes":
        for v in dict.fromkeys(r["variant"] for r in part["rows"]):
            runs = [r["checkpoints"] for r in part["rows"] if r["variant"] == v]
            k = min(len(c) for c in runs)
            mean = [{key: sum(c[i][key] for c in runs) / len(runs) for key in ("cpu_minutes", "control_mean", "fid")}
                    for i in range(k)]
            yield v, [m["cpu_minutes"] for m in mean], mean
        return
    for key in dict.fromkeys((r["variant"], r["sampler"]) for r in part["rows"]):
        rows = [r for r in part["rows"] if (r["variant"], r["sampler"]) == key]
        yield f"{key[0]} {key[1]}", [r["evaluations"] for r in rows], rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("train", "sampling", "both"), default="both")
    parser.add_argument("--minutes", type=float, default=15.0, help="CPU-minutes of training per run (default 15)")
    parser.add_argument("--n", type=int, default=300, help="requests per measurement (default 300)")
    parser.add_argument("--width", type=int, default=32, help="the U-Net's width (default 32, the shipped one)")
    parser.add_argument("--products", type=int, default=None, help="train on the first N products (default all)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each; 0 = in this process")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    parser.add_argument("--short", action="store_true",
                        help="tiny budget for CI: width 8, 1.8 CPU-s, one seed, n 32, in-process")
    parser.add_argument("--runs-dir", default=None, help="where the runs go (default <cache>/diffusion-vs-flow)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: VARIANT:SEED, train and print its row
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "diffusion-vs-flow.json"))
    args = parser.parse_args(argv)
    args.variants = args.variants.split(",")
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad:
        parser.error(f"unknown variant {bad[0]}; valid: {', '.join(VARIANTS)}")
    args.evaluations, args.curve_evaluations, args.seeds = EVALUATIONS, CURVE_EVALUATIONS, SEEDS
    if args.short:
        args.width, args.minutes, args.n, args.products, args.jobs, args.seeds = 8, 0.03, 32, 512, 0, (0,)
        args.evaluations, args.curve_evaluations = (1, 2, 4), 4
    out = Path(args.out)
    if args.runs_dir is None:
        from prodgen import paths

        args.runs_dir = out.with_name(f"{out.stem}-runs") if args.short else paths.cache_dir() / "diffusion-vs-flow"
    if args.one:
        variant, seed = args.one.split(":")
        print(json.dumps(train_one(variant, int(seed), args)))
        return 0
    return _run(args, out)


def _run(args, out: Path) -> int:
    import torch

    from prodgen.paths import atomic_file

    results = json.loads(out.read_text()) if out.is_file() else {}
    for part, fn in (("train", part_train), ("sampling", part_sampling)):
        if args.part in (part, "both"):
            results[part] = {**fn(args), "short": args.short, "date": datetime.date.today().isoformat(),
                             "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                         "torch": torch.__version__},
                             "command": " ".join(["python benchmarks/diffusion_vs_flow.py"] + sys.argv[1:])}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1) + "\n")
    written = plot(results, out) if {"train", "sampling"} <= set(results) else []
    print(f"wrote {out}" + "".join(f", {p}" for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

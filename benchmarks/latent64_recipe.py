"""Benchmark: where a 64 px latent flow model's time goes (issue 25 §3, lesson 14), and a short training run.

Everything on ONE torch thread, timed in this process's CPU time (``time.process_time``: a busy shared machine does
not make a part look slower), bf16 autocast + channels-last where the CPU computes bf16 natively, as the samplers do:

1. **forward passes**, batch 64, no gradients: the 32 px pixel flow U-Net (3 x 32 x 32; width 32 as the shipped
   ``flow``, and 48) against the same class on the autoencoder's 4 x 16 x 16 latents (width 32 and 48);
2. **the autoencoder**: decoder (and encoder) images per CPU-second at batch 64, with weights from the partial
   ``ae-64`` training state (read-only; its latent scale computed on 2,000 training photos as the recipe does);
3. **a short training run** of the latent flow (``CHECKPOINT_CONFIG``'s recipe, ``train_flow`` on the latents of the
   64 px training split, cached as ``prodgen train latent-64`` caches them) for ``--minutes`` CPU-minutes, with
   the training images/s of the pixel flow at 32 px for comparison (a few steps);
4. **end to end at 64 px**: ``LatentFlowModel.generate`` of 64 requests with 4 and 8 steps, guided (two network
   rows per image) and unguided (one: what a distilled few-step model costs), split into network, decoder and the
   rest; and ``judge-64``'s control on 256 balanced requests of the briefly trained model (a sanity check, not
   a quality claim).

Results go to ``data/results/latent64-recipe.json`` (atomically) with the machine, the date and the command. Nothing
is shipped. Run from the repository root (about 10 minutes at the defaults):

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/latent64_recipe.py --minutes 3
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
RESULTS = ROOT / "data" / "results" / "latent64-recipe.json"


def _cpu_rate(fn, images_per_call: int, repeats: int = 5) -> float:
    """Images per CPU-second of ``fn()`` (one warm-up call, then the median of ``repeats`` calls)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    times.sort()
    return round(images_per_call / times[len(times) // 2], 1)


def forward_rates(batch: int = 64) -> dict:
    """Forward images per CPU-second of pixel and latent flow U-Nets (no gradients, bf16/channels-last as sampled)."""
    import torch

    from prodgen.engine.train import autocast_for, resolve_precision
    from prodgen.models.flow import FlowUNet

    precision = resolve_precision("auto", torch.device("cpu"))
    out = {"precision": precision, "batch": batch}
    for name, kw in (("pixel-32px-w32", {"width": 32}), ("pixel-32px-w48", {"width": 48}),
                     ("latent-16x16x4-w32", {"width": 32, "channels": 4, "size": 16}),
                     ("latent-16x16x4-w48", {"width": 48, "channels": 4, "size": 16})):
        torch.manual_seed(0)
        net = FlowUNet(**kw).eval().to(memory_format=torch.channels_last)
        x = torch.randn(batch, *net.shape).contiguous(memory_format=torch.channels_last)
        t, y = torch.rand(batch), torch.full((batch, 5), -1)

        def run(net=net, x=x, t=t, y=y):
            with torch.no_grad(), autocast_for(torch.device("cpu"), precision):
                net(x, t, y)

        out[name] = {"images_per_cpu_s": _cpu_rate(run, batch),
                     "parameters": sum(p.numel() for p in net.parameters())}
        print(f"forward {name}: {out[name]['images_per_cpu_s']} images/CPU-s", flush=True)
    return out


def load_partial_autoencoder(state: Path, photos):
    """The autoencoder in the training state file ``state`` (read-only: ``state["state"]["model"]``), with its latent
    scale computed on ``photos`` (uint8, the first 2,000 training photos) as ``prodgen train ae-64`` does."""
    import torch

    from prodgen.models.autoencoder import CHECKPOINT_CONFIG, AutoEncoder, latent_scale

    payload = torch.load(state, map_location="cpu", weights_only=True)
    ae = AutoEncoder(CHECKPOINT_CONFIG["width"], CHECKPOINT_CONFIG["channels"], CHECKPOINT_CONFIG["norm"])
    ae.load_state_dict(payload["state"]["model"])
    ae.scale.fill_(latent_scale(ae, photos, seed=0))
    return ae.eval(), {"epoch": payload.get("epoch"), "images_seen": payload["history"].get("images_seen"),
                       "latent_scale": round(float(ae.scale), 5)}


def autoencoder_rates(ae, photos, batch: int = 64) -> dict:
    z = ae.encode(photos[:batch])
    return {"decoder_images_per_cpu_s": _cpu_rate(lambda: ae.decode(z, batch_size=batch), batch),
            "encoder_images_per_cpu_s": _cpu_rate(lambda: ae.encode(photos[:batch], batch_size=batch), batch)}


def train_briefly(ae, sha: str, minutes: float, width: int) -> tuple[object, dict]:
    """The latent flow trained for ``minutes`` CPU-minutes on the cached latents of the 64 px training split."""
    import copy

    import torch

    from prodgen.catalog import load_catalog
    from prodgen.engine.callbacks import Callback
    from prodgen.engine.train import train_flow
    from prodgen.models import latent as lm

    train = load_catalog("train", size=64, progress=False)
    t0 = time.process_time()
    data = lm.Latents(lm.cached_latents(ae, train.images, sha, log=print), train.labels)
    encode_s = time.process_time() - t0

    class CPUBudget(Callback):
        def begin(self, loop) -> None:
            self.start = time.process_time()

        def time_up(self, loop) -> bool:
            return time.process_time() - self.start >= 60.0 * minutes

    cfg = lm.CHECKPOINT_CONFIG
    torch.manual_seed(cfg["seed"])
    net = lm.latent_network(ae, width)
    ema = copy.deepcopy(net)
    budget = CPUBudget()
    history = train_flow(net, data, epochs=100, batch_size=cfg["batch_size"], lr=cfg["lr"], ema=ema,
                         ema_decay=cfg["ema_decay"], drop_p=cfg["drop_p"], hide_p=cfg["hide_p"],
                         time_sampling=cfg["time_sampling"], n_samples=0, progress=False, callbacks=[budget])
    cpu = time.process_time() - budget.start
    losses = history.steps["loss"]
    tail = losses[-50:]
    return ema.eval(), {"width": width, "cpu_minutes": round(cpu / 60, 2), "images_seen": history.images_seen,
                        "train_images_per_cpu_s": round(history.images_seen / cpu, 1),
                        "loss_first_50": round(sum(losses[:50]) / len(losses[:50]), 4),
                        "loss_last_50": round(sum(tail) / len(tail), 4),
                        "encode_split_cpu_s_or_cache": round(encode_s, 1), "latents": len(data)}


def pixel_train_rate(steps: int = 20) -> float:
    """Training images per CPU-second of the 32 px pixel flow (width 32, batch 64) on the 32 px split."""
    import copy

    from prodgen.catalog import load_catalog
    from prodgen.engine.train import train_flow
    from prodgen.models.flow import FlowUNet

    cat = load_catalog("train", n=64 * (steps + 5), progress=False)
    net = FlowUNet(32)
    train_flow(net, cat, epochs=1, steps=5, batch_size=64, n_samples=0, progress=False, ema=copy.deepcopy(net))
    t0 = time.process_time()
    history = train_flow(net, cat, epochs=1, steps=steps, batch_size=64, n_samples=0, progress=False,
                         ema=copy.deepcopy(net))
    return round(history.images_seen / (time.process_time() - t0), 1)


def sampling_costs(net, ae, n: int = 64) -> dict:
    """CPU seconds of ``generate`` for ``n`` requests at 64 px, and its parts: the flow's ODE (network) and the
    decoder; guided (w = 2: two rows a pass) and unguided (w = 1: one row, as a distilled model)."""
    import torch

    from prodgen.catalog import denormalize
    from prodgen.models import flow
    from prodgen.models.condition import balanced_requests
    from prodgen.models.latent import LatentFlowModel

    model = LatentFlowModel(net, "latent-64", {}, autoencoder=ae)
    requests = balanced_requests(n, 0)
    out = {}
    for steps, guidance in ((8, 2.0), (4, 2.0), (4, 1.0), (8, 1.0)):
        knobs = {"steps": steps, "guidance": guidance, "sampler": "euler" if guidance == 1.0 else "ab2"}
        model.generate(requests, seed=0, **knobs)  # warm-up
        t0 = time.process_time()
        model.generate(requests, seed=0, **knobs)
        total = time.process_time() - t0
        draws = model._latents(model.prepare(requests), torch.Generator().manual_seed(0), **knobs)
        t0 = time.process_time()
        z = flow.sample(net, draws["condition"], steps=steps, guidance=guidance, sampler=knobs["sampler"],
                        x_1=draws["x_1"], clip=False)
        ode = time.process_time() - t0
        t0 = time.process_time()
        denormalize(ae.decode(z))
        decode = time.process_time() - t0
        key = f"{steps}-steps-w{guidance:g}"
        out[key] = {**knobs, "network_rows_per_image": steps * (1 if guidance == 1.0 else 2),
                    "images_per_cpu_s": round(n / total, 1), "cpu_s": round(total, 3),
                    "share_network": round(ode / total, 3), "share_decoder": round(decode / total, 3),
                    "share_rest": round(max(0.0, 1 - (ode + decode) / total), 3)}
        print(f"generate {key}: {out[key]['images_per_cpu_s']} images/CPU-s (network {out[key]['share_network']:.0%}, "
              f"decoder {out[key]['share_decoder']:.0%})", flush=True)
    return out


def control(net, ae, n: int = 256) -> dict:
    from prodgen.metrics import control_accuracy
    from prodgen.models import registry
    from prodgen.models.condition import balanced_requests
    from prodgen.models.latent import LatentFlowModel

    model = LatentFlowModel(net, "latent-64", {}, autoencoder=ae)
    requests = balanced_requests(n, 0)
    acc = control_accuracy(registry.load("judge-64"), model.generate(requests, seed=0), requests)
    return {"n": n, "knobs": model.check_knobs({}), **{k: round(v, 4) for k, v in acc.items()}}


def machine() -> dict:
    import torch

    from prodgen.engine.train import cpu_has_native_bf16

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "native_bf16": cpu_has_native_bf16()}


def partial_state(given) -> Path | None:
    """The ae-64 training state these recipe benchmarks read its weights from (``--state``, default the cache's), or
    ``None`` after saying on stderr what to run first."""
    from prodgen import paths

    state = Path(given) if given else paths.cache_dir() / "train-state" / "ae-64.pt"
    if not state.is_file():
        print(f"error: no autoencoder training state at {state} (run prodgen train ae-64 first)", file=sys.stderr)
        return None
    return state


def header(script: str, argv, timing: str) -> dict:
    """The machine, date, command and timing note every result file of these benchmarks starts with."""
    return {"machine": machine(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": f"OMP_NUM_THREADS=1 python benchmarks/{script} " + " ".join(argv or sys.argv[1:]),
            "timing": timing}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="CPU-minutes of latent flow training")
    parser.add_argument("--width", type=int, default=None, help="latent network width (default: the recipe's)")
    parser.add_argument("--state", default=None, help="ae-64 training state (default <cache>/train-state/ae-64.pt)")
    args = parser.parse_args(argv)
    import torch

    from prodgen import checkpoints, paths
    from prodgen.catalog import load_catalog
    from prodgen.models import latent as lm

    torch.set_num_threads(1)
    state = partial_state(args.state)
    if state is None:
        return 2
    width = args.width or lm.CHECKPOINT_CONFIG["width"]
    result = header("latent64_recipe.py", argv, "images per CPU-second of this process, one torch thread")
    result["forward"] = forward_rates()
    photos = load_catalog("train", size=64, progress=False).images[:2000]
    sha = checkpoints.sha256(state)  # the partial state's bytes key its latents in the cache
    ae, result["autoencoder"] = load_partial_autoencoder(state, photos)
    result["autoencoder"] |= {"state_sha256": sha, **autoencoder_rates(ae, photos)}
    print(f"autoencoder: {result['autoencoder']}", flush=True)
    result["pixel_flow_train_images_per_cpu_s"] = pixel_train_rate()
    net, result["training"] = train_briefly(ae, sha, args.minutes, width)
    print(f"training: {result['training']}", flush=True)
    result["sampling_64px"] = sampling_costs(net, ae)
    result["control_after_training"] = control(net, ae)
    print(f"control: {result['control_after_training']}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with paths.atomic_file(RESULTS) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

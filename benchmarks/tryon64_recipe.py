"""Benchmark: does ``tryon-64`` learn on a short CPU budget, how fast does it try on, where does the time go (issue 26).

Everything on ONE torch thread, timed in this process's CPU time (``time.process_time``: a busy shared machine does
not make a part look slower), bf16 autocast + channels-last where the CPU computes bf16 natively, as the sampler does.
The autoencoder is the partial ``ae-64`` training state (read-only; its latent scale computed on 2,000 training
photos as ``prodgen train ae-64`` does, ``benchmarks/latent64_recipe.py``'s loader): ``tryon-64`` is not shipped and
cannot be until ``ae-64`` is.

1. **data**: ``--pairs`` rendered training pairs (training scenes, a random slot, a random 64 px training photo that
   fits, the truth by ``swap``; ``prodgen.models.tryon_latent.load_pairs``, cached), encoded once through lesson
   14's latent cache (keyed by the state file's sha256);
2. **a short training run** of ``CHECKPOINT_CONFIG``'s recipe (``train_field`` with ``tryon_loss``) for ``--minutes``
   CPU-minutes: the loss at the start and the end, training pairs per CPU-second;
3. **measured like every try-on model** (``prodgen.evaluation.tryon``, the scene judge) on ``--n`` held-back pairs
   (test scenes, test products), against the cut-and-paste baseline on the same pairs: the briefly trained model
   at its defaults (8 AB2 steps, guidance 2), with 4 steps, and with guidance 0 (the product ignored: what the
   scene alone lets it paint, so the gap is what it took from the photo);
4. **speed**: try-ons per CPU-second at the defaults and split into encoding the three inputs, the ODE (network) and
   decoding + compositing.

Results go to ``data/results/tryon64-recipe.json`` (atomically) with the machine, the date and the command. Nothing is
shipped. Run from the repository root (about 8 minutes of CPU at the defaults):

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/tryon64_recipe.py --minutes 4
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/tryon64_recipe.py --minutes 4 --layout side \
        --out data/results/tryon64-recipe-side.json   # CatVTON's side-by-side conditioning, same budget
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "data" / "results" / "tryon64-recipe.json"


def train_briefly(data, minutes: float, width: int, layout: str = "channels"):
    """The try-on network trained for ``minutes`` CPU-minutes on the encoded pairs; ``(ema, record)``."""
    import copy
    import functools

    import torch

    from prodgen.engine.callbacks import Callback
    from prodgen.engine.train import train_field
    from prodgen.models import tryon_latent as tl

    class CPUBudget(Callback):
        def begin(self, loop) -> None:
            self.start = time.process_time()

        def time_up(self, loop) -> bool:
            return time.process_time() - self.start >= 60.0 * minutes

    cfg = tl.CHECKPOINT_CONFIG
    torch.manual_seed(cfg["seed"])
    net = tl.tryon_network(width, layout=layout)
    ema = copy.deepcopy(net)
    budget = CPUBudget()
    loss = functools.partial(tl.tryon_loss, drop_p=cfg["drop_p"], outside=cfg["outside"],
                             sampling=cfg["time_sampling"])
    history = train_field(net, data, loss, kind="tryon", epochs=1000, batch_size=cfg["batch_size"], lr=cfg["lr"],
                          ema=ema, ema_decay=cfg["ema_decay"], progress=False, callbacks=[budget])
    cpu = time.process_time() - budget.start
    losses = history.steps["loss"]
    head, tail = losses[:50], losses[-50:]
    return ema.eval(), {"width": width, "layout": layout, "cpu_minutes": round(cpu / 60, 2), "steps": len(losses),
                        "pairs_seen": history.images_seen, "epochs": round(history.images_seen / len(data), 1),
                        "train_pairs_per_cpu_s": round(history.images_seen / cpu, 1),
                        "loss_first_50": round(sum(head) / len(head), 4),
                        "loss_last_50": round(sum(tail) / len(tail), 4)}


def time_parts(model, pairs) -> dict:
    """CPU seconds of one ``try_on`` of every pair at the defaults, and its parts."""
    import torch

    from prodgen.catalog import denormalize
    from prodgen.models.flow import integrate
    from prodgen.models.protocol import TryOnInputs

    model.try_on(pairs.scenes[:8], pairs.slots[:8], pairs.photos[:8])  # warm-up
    t0 = time.process_time()
    model.try_on(pairs.scenes, pairs.slots, pairs.photos)
    total = time.process_time() - t0
    t0 = time.process_time()
    inputs = TryOnInputs.check(pairs.scenes, pairs.slots, pairs.photos, 64)
    checked = time.process_time() - t0
    t0 = time.process_time()
    cond, scene, mask = model.condition(inputs)
    encode = time.process_time() - t0
    x_1 = torch.randn(scene.shape, generator=torch.Generator().manual_seed(0))
    t0 = time.process_time()
    z = integrate(model._field(cond, 2.0), x_1.clone(), 8, "ab2",
                  lambda x, t: mask * x + (1 - mask) * ((1 - t) * scene + t * x_1))
    ode = time.process_time() - t0
    t0 = time.process_time()
    torch.where(inputs.masks[:, None], denormalize(model.autoencoder.decode(z)), inputs.scenes)
    decode = time.process_time() - t0
    n = len(pairs)
    return {"n": n, "tryons_per_cpu_s": round(n / total, 1), "cpu_s": round(total, 3),
            "share_checks_and_anchors": round(checked / total, 3), "share_encode_3_inputs": round(encode / total, 3),
            "share_network_ode": round(ode / total, 3), "share_decode_composite": round(decode / total, 3)}


def measure(model, baseline, n: int) -> dict:
    from prodgen.evaluation.tryon import evaluate_tryon, reference_crops, tryon_pairs
    from prodgen.models import registry

    pairs = tryon_pairs(n, 0)
    reference = reference_crops(pairs.slots, 0, (0, 4000))
    judge = registry.load("scene-judge")
    rows = {}
    for label, m, knobs in (("cut-paste (clear=fill)", baseline, {"clear": "fill"}),
                            ("tryon-64 (8 steps, guidance 2)", model, {}),
                            ("tryon-64 (4 steps, guidance 2)", model, {"steps": 4}),
                            ("tryon-64 (8 steps, guidance 1)", model, {"guidance": 1.0}),
                            ("tryon-64 (8 steps, guidance 0: product ignored)", model, {"guidance": 0.0})):
        row = evaluate_tryon(m, pairs, judge, reference, **knobs)
        row.pop("outputs")
        rows[label] = row
        print(f"{label}: SSIM {row['ssim']} (slot {row['ssim_slot']}), judge distance {row['judge_distance']}, "
              f"worn {row['worn_accuracy']}, FID {row['fid']} (floor {row['fid_real_floor']}), outside "
              f"{row['psnr_outside_db']}, {row['tryons_per_second']}/s", flush=True)
    return {"n": n, "slots": {s: pairs.slots.count(s) for s in sorted(set(pairs.slots))}, "rows": rows,
            "parts": time_parts(model, pairs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="CPU-minutes of training")
    parser.add_argument("--pairs", type=int, default=4000, help="rendered training pairs")
    parser.add_argument("--n", type=int, default=100, help="held-back pairs measured")
    parser.add_argument("--width", type=int, default=None, help="network width (default: the recipe's)")
    parser.add_argument("--layout", default="channels", choices=("channels", "side"),
                        help="how the product reaches the network (prodgen.models.tryon_latent.LAYOUTS)")
    parser.add_argument("--out", default=str(RESULTS), help="the JSON to write")
    parser.add_argument("--state", default=None, help="ae-64 training state (default <cache>/train-state/ae-64.pt)")
    args = parser.parse_args(argv)
    import torch

    from benchmarks.latent64_recipe import header, load_partial_autoencoder, partial_state
    from prodgen import checkpoints, paths
    from prodgen.catalog import load_catalog
    from prodgen.models import tryon_latent as tl
    from prodgen.models.tryon import CutPaste

    torch.set_num_threads(1)
    state = partial_state(args.state)
    if state is None:
        return 2
    width = args.width or tl.CHECKPOINT_CONFIG["width"]
    result = header("tryon64_recipe.py", argv, "CPU-seconds of this process, one torch thread")
    catalog = load_catalog("train", size=64, progress=False)
    sha = checkpoints.sha256(state)  # the partial state's bytes key its latents in the cache
    ae, result["autoencoder"] = load_partial_autoencoder(state, catalog.images[:2000])
    result["autoencoder"]["state_sha256"] = sha
    t0 = time.process_time()
    pairs = tl.load_pairs(args.pairs, catalog, tl.CHECKPOINT_CONFIG["seed"], log=print)
    rendered = time.process_time() - t0
    t0 = time.process_time()
    data = tl.encode_pairs(ae, pairs, sha, log=print)
    result["data"] = {"pairs": len(pairs), "render_or_cache_cpu_s": round(rendered, 1),
                      "encode_or_cache_cpu_s": round(time.process_time() - t0, 1),
                      "slots": {s: pairs.slots.count(s) for s in sorted(set(pairs.slots))}}
    print(f"data: {result['data']}", flush=True)
    net, result["training"] = train_briefly(data, args.minutes, width, args.layout)
    print(f"training: {result['training']}", flush=True)
    model = tl.LatentTryOn(net, "tryon-64", {}, autoencoder=ae)
    result["measured"] = measure(model, CutPaste(), args.n)
    print(f"parts: {result['measured']['parts']}", flush=True)
    with paths.atomic_file(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

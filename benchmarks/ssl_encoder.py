"""Benchmark: the label-free encoder behind the leaderboard's second FID space (issue 24 §2, lessons 08 and 13).

Part ``recipes``: short runs of ``prodgen.models.ssl_encoder.fit_encoder`` on the course catalog's training photos,
ONE torch thread, the same budget of CPU time each (the step count comes from timing 3 steps of the run in this
process's CPU time, so a busy shared machine does not shorten a run), seed 0, comparing one choice at a time (width 16
vs 32, temperature 0.1 / 0.2 / 0.5, batch 256 vs 512), plus the untrained network as a baseline. Each run is measured
the way the shipped one is: a linear probe of its frozen features on the five attributes (fitted on 5,000 training
photos, scored on the 2,000 test photos), the real-vs-real FID floor at n = 1,000, and the FID of the same test photos
with a little Gaussian noise (sigma 0.05) and a 3 x 3 box blur, as multiples of that floor (how sensitive the space is
to the smallest damage).

Part ``usefulness``: the shipped ``ssl-encoder`` beside the judge at n = 2,000: the floor, FID against growing
noise (sigma 0.05 .. 0.6) and blur (3 .. 7 pixels) of real test photos in both spaces, and the linear probe of
the encoder, of the same network untrained, and of the judge (which was trained on the labels).

Part ``models``: ``fid`` and ``fid_ssl`` of shipped generators (``--models``, default cgan-projection, diffusion,
flow-fast) on ``--n`` balanced requests (the leaderboard's requests and seed; images generated once, measured in
both spaces; each against the first n training photos, with each space's floor).

Results go to ``data/results/ssl-encoder.json`` (atomically; a part re-run replaces its own section). Run from the
repository root:

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/ssl_encoder.py --part recipes --minutes 2.5
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/ssl_encoder.py --part usefulness
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/ssl_encoder.py --part models --n 500
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
RUNS = {"width-16": {"width": 16}, "width-16-tau-0.5": {"width": 16, "temperature": 0.5},
        "width-32": {"width": 32}, "width-16-tau-0.1": {"width": 16, "temperature": 0.1},
        "width-16-tau-0.1-batch-512": {"width": 16, "temperature": 0.1, "batch_size": 512}}
NOISE = (0.05, 0.15, 0.3, 0.6)
BLUR = (3, 5, 7)


def blur(x, k: int):
    """A k x k box blur of images in [-1, 1] (edges repeated), as tests/test_metrics.py blurs them."""
    import torch

    kernel = torch.ones(3, 1, k, k) / (k * k)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, [k // 2] * 4, mode="replicate"), kernel, groups=3)


def noisy(x, sigma: float, seed: int = 0):
    import torch

    return (x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(-1, 1)


def damage_fids(features, train, test, n: int, noise=NOISE, blurs=BLUR) -> dict:
    """The floor (n test vs n training photos) and the FID of the damaged test photos, in one feature space
    (``features``: uint8 images or floats in [-1, 1] -> N x D)."""
    from prodgen import metrics
    from prodgen.catalog.dataset import normalize

    ref = features(train.images[:n])
    x = normalize(test.images[:n])
    out = {"floor": _sig(metrics.fid(ref, features(x)))}
    out["noise"] = {str(s): _sig(metrics.fid(ref, features(noisy(x, s)))) for s in noise}
    out["blur"] = {str(k): _sig(metrics.fid(ref, features(blur(x, k)))) for k in blurs}
    out["noise_over_floor"] = {k: round(v / out["floor"], 2) for k, v in out["noise"].items()}
    out["blur_over_floor"] = {k: round(v / out["floor"], 2) for k, v in out["blur"].items()}
    return out


def _sig(v: float) -> float:
    """``v`` to 5 significant digits (an untrained network's FIDs are tiny: its features are small)."""
    return float(f"{v:.5g}")


def _catalogs():
    from prodgen.catalog import load_catalog

    return load_catalog("train", progress=False), load_catalog("test", progress=False)


def _round(d: dict) -> dict:
    return {k: round(v, 4) for k, v in d.items()}


def _calibrated_steps(settings: dict, images, minutes: float) -> int:
    """How many steps of ``settings`` fit in ``minutes`` of this process's CPU time (3 timed steps after one)."""
    from prodgen.models.ssl_encoder import fit_encoder

    start = None
    for steps in (1, 4):
        if steps == 4:
            start = time.process_time()
        fit_encoder(images, epochs=1, max_steps=steps, **settings)
    per_step = (time.process_time() - start) / 4  # 4 steps and the set-up, a slight over-estimate
    return max(1, int(60 * minutes / per_step))


def part_recipes(args) -> dict:
    import torch

    from prodgen.models.ssl_encoder import CHECKPOINT_CONFIG, SSLEncoder, fit_encoder, probe

    train, test = _catalogs()
    base = {k: CHECKPOINT_CONFIG[k] for k in ("batch_size", "lr", "temperature", "shift", "dim", "proj_dim", "seed")}
    rows = []
    for name in args.runs:
        settings = {**base, "width": 16, **RUNS.get(name, {})}
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        if name == "untrained":
            torch.manual_seed(0)
            model, losses, steps = SSLEncoder(16, base["dim"], base["proj_dim"]).eval(), [], 0
        else:
            steps = _calibrated_steps(settings, train.images, args.minutes)
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            model, losses = fit_encoder(train.images, epochs=1000, max_steps=steps, **settings)
        row = {"run": name, **settings, "steps": steps, "images_seen": steps * settings["batch_size"],
               "train_cpu_s": round(time.process_time() - start_cpu, 1),
               "train_wall_s": round(time.perf_counter() - start_wall, 1),
               "final_loss_mean_last_20": round(sum(losses[-20:]) / max(len(losses[-20:]), 1), 4) if losses else None}
        row["probe"] = _round(probe(model, train, test))
        fids = damage_fids(model.features, train, test, 1000, noise=(0.05,), blurs=(3,))
        row |= {"fid_floor_n1000": fids["floor"], "noise_0.05_over_floor": fids["noise_over_floor"]["0.05"],
                "blur_3_over_floor": fids["blur_over_floor"]["3"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    earlier = {r["run"]: r for r in args.earlier.get("recipes", {}).get("rows", [])
               if args.earlier.get("recipes", {}).get("minutes_per_run") == args.minutes}
    kept = [earlier[name] for name in ["untrained", *RUNS] if name in earlier and name not in args.runs]
    order = {name: i for i, name in enumerate(["untrained", *RUNS])}
    rows = sorted(kept + rows, key=lambda r: order[r["run"]])  # runs measured earlier with the same budget stay
    return {"minutes_per_run": args.minutes, "threads": 1, "rows": rows}


def part_usefulness(args) -> dict:
    import torch

    from prodgen import metrics
    from prodgen.models import registry
    from prodgen.models.ssl_encoder import SSLEncoder, probe

    train, test = _catalogs()
    encoder, judge = registry.load("ssl-encoder"), registry.load("judge")
    config = registry.manifest()["ssl-encoder"]["config"]
    torch.manual_seed(0)
    untrained = SSLEncoder(config["width"], config["dim"], config["proj_dim"]).eval()
    probe_train = train.subset(range(5000))
    judge_probe = metrics.linear_probe(metrics.judge_features(judge, probe_train.images), probe_train.labels,
                                       metrics.judge_features(judge, test.images), test.labels,
                                       train.schema.num_classes)
    return {"n": args.n, "ssl_encoder_sha256": registry.manifest()["ssl-encoder"]["sha256"],
            "ssl": damage_fids(encoder.features, train, test, args.n),
            "judge": damage_fids(lambda x: metrics.judge_features(judge, x), train, test, args.n),
            "ssl_as_in_recipes": damage_fids(encoder.features, train, test, 1000, noise=(0.05,), blurs=(3,)),
            "probe": {"ssl-encoder": _round(probe(encoder, train, test)),
                      "untrained (same network, seed 0)": _round(probe(untrained, train, test)),
                      "judge (trained on the labels)": _round(judge_probe)}}


def part_models(args) -> dict:
    from prodgen import metrics
    from prodgen.evaluation import leaderboard
    from prodgen.models import registry
    from prodgen.models.condition import balanced_requests

    judge = registry.load("judge")
    ref = leaderboard.Reference(judge)
    rows = []
    for name in args.models.split(","):
        model = registry.load_generator(name)
        start = time.perf_counter()
        images = (model.generate(args.n, seed=0) if not model.conditional else
                  leaderboard._ask(model, balanced_requests(args.n, 0, schema=model.schema), 0))
        seconds = time.perf_counter() - start
        row = {"model": name, "n": args.n, "generate_s": round(seconds, 1),
               "fid": round(metrics.fid(ref.train["features"][:args.n], metrics.judge_features(judge, images)), 3),
               "fid_floor": round(ref.floor(args.n), 3),
               "fid_ssl": round(metrics.fid(ref.train["ssl_features"][:args.n], ref.encoder.features(images)), 3),
               "fid_ssl_floor": round(ref.floor(args.n, "ssl"), 3)}
        row["fid_over_floor"] = round(row["fid"] / row["fid_floor"], 2)
        row["fid_ssl_over_floor"] = round(row["fid_ssl"] / row["fid_ssl_floor"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    for key in ("fid", "fid_ssl"):
        order = sorted(rows, key=lambda r: r[key])
        for rank, r in enumerate(order, 1):
            r[f"rank_{key}"] = rank
    return {"rows": rows}


PARTS = {"recipes": part_recipes, "usefulness": part_usefulness, "models": part_models}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=tuple(PARTS), required=True, help="which measurement to run")
    parser.add_argument("--minutes", type=float, default=2.5, help="CPU minutes per recipe run (default 2.5)")
    parser.add_argument("--n", type=int, default=None, help="photos / requests per set (usefulness: default 2000; "
                        "models: default 500)")
    parser.add_argument("--runs", default=",".join(["untrained", *RUNS]),
                        help="the recipes part's runs (default all; rows of other runs measured earlier with the "
                             "same --minutes are kept)")
    parser.add_argument("--models", default="cgan-projection,diffusion,flow-fast", help="the models part's models")
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "ssl-encoder.json"))
    args = parser.parse_args(argv)
    args.n = args.n or (2000 if args.part == "usefulness" else 500)
    sys.path.insert(0, str(ROOT))
    import torch

    from prodgen.paths import atomic_file

    torch.set_num_threads(1)
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in args.runs if r not in ("untrained", *RUNS)]
    if unknown:
        parser.error(f"unknown run {unknown[0]}; runs: untrained, {', '.join(RUNS)}")
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    args.earlier = results
    start = time.perf_counter()
    result = PARTS[args.part](args)
    results[args.part] = {**result, "seconds": round(time.perf_counter() - start, 1),
                          "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                      "torch": torch.__version__},
                          "date": datetime.date.today().isoformat(),
                          "command": " ".join(["python benchmarks/ssl_encoder.py"] + (argv or sys.argv[1:]))}
    with atomic_file(out) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

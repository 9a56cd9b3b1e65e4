"""Benchmark: Gatys-style restyling of held-back test photos into each other look, over a sweep of strengths.

Issue 27 §2 (lesson 16). ``prodgen.apps.restyle.restyle`` turns the first ``--n`` test products' studio photos
(32 px, never seen by ``judge-looks`` nor drawn as style exemplars, which come from the training split) into the
sketch, poster and watercolour looks at each style weight of ``--strengths``, and measures each result:

- ``look``: the fraction the shipped ``look-judge`` reads as the target look. It reads 64 px pictures, so a 32 px
  result is enlarged by repeating each pixel: on 300 test renders per look at 32 px, enlarged so, it reads the
  look at 100 % on every look (``look_judge_control``; bicubic enlargement fools it on sketches: 10 %).
- ``agreement``: ``judge-looks``'s reading of the result against the source product's catalog attributes, over
  the attributes both the photo and the target look show (``LOOK_SHOWN``: a sketch shows no colour); per
  attribute too. The same network gives the restyling its features, so ``agreement_independent`` repeats it with a
  second all-looks judge (width 16, seed 1, 8 epochs, trained here, not shipped; its own test accuracy in
  ``independent_judge``) that the optimisation never saw.
- ``psnr`` / ``ssim`` against the rendered truth, the same product rendered by the catalog in the target look (and
  ``psnr_source`` against the photo it started from). PSNR is pooled over the images (MSE of all their pixels);
  SSIM comes from ``prodgen.evaluation.similarity`` when that module is present, else it is ``null``.

Three choices of style exemplars, each over the whole sweep: ``sweep`` the default, ``"matched"`` (training
products in the target look with the category, colour and pattern judge-looks reads on the source),
``sweep_catalog`` random training products of the look, and ``sweep_paired`` each source's own rendering in the
target look (the ground truth as the style: an oracle no user has, the best these exemplars could be).

Also measured: which block of the judge holds the content (``content_block``, on ``--probe-n`` products at one
strength), and how the result and the time change with the number of Adam steps (``steps``). ``truth`` holds the
same measures on the rendered truth (the best a restyling can do), the strength-0 row those of the photo itself.
One thread; seconds are wall-clock on a shared machine (``time.perf_counter``). Writes
``data/results/restyle-gatys.json`` and the plot ``data/results/restyle-gatys.png`` (look accuracy against content
agreement, one curve per target look), both atomically. Run from the repository root:

    OMP_NUM_THREADS=1 python benchmarks/restyle_gatys.py
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGETS = ("sketch", "poster", "watercolour")


def psnr(a, b) -> float:
    """PSNR in dB of uint8 batches, pooled: ``10 log10(255^2 / MSE over every pixel of every image)``."""
    mse = float((a.double() - b.double()).pow(2).mean())
    return round(10 * math.log10(255 ** 2 / mse), 2) if mse > 0 else float("inf")


def ssim(a, b):
    """Mean SSIM (``prodgen.evaluation.similarity``) or ``None`` when that module is not on this branch."""
    try:
        from prodgen.evaluation.similarity import ssim as ssim_of
    except ImportError:
        return None
    return round(float(ssim_of(a, b).mean()), 4)


class Readers:
    """What the benchmark reads results with: the look judge, judge-looks and the independent all-looks judge."""

    def __init__(self, independent):
        from prodgen.models import registry

        self.look_judge = registry.load("look-judge")
        self.judge = registry.load("judge-looks")
        self.independent = independent

    def look(self, images, look: str) -> float:
        """Fraction of uint8 32 px ``images`` the look judge reads as ``look`` (enlarged 2x by repeating pixels)."""
        from prodgen.catalog.dataset import normalize
        from prodgen.catalog.looks import LOOKS

        big = normalize(images).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        return round(float((self.look_judge.predict(big)[:, 0] == LOOKS.index(look)).float().mean()), 4)

    @staticmethod
    def agreement(judge, images, labels, look: str) -> dict:
        """{attribute: fraction read as ``labels``} over the attributes ``look`` shows, and their ``mean``."""
        from prodgen.catalog.dataset import normalize
        from prodgen.catalog.looks import LOOK_SHOWN

        pred = judge.predict(normalize(images))
        names = list(judge.heads)
        out = {a: round(float((pred[:, names.index(a)] == labels[:, names.index(a)]).float().mean()), 4)
               for a in LOOK_SHOWN[look]}
        return out | {"mean": round(sum(out.values()) / len(out), 4)}

    def measure(self, images, look: str, labels, truth, source) -> dict:
        row = {"look": self.look(images, look), "agreement": self.agreement(self.judge, images, labels, look)}
        if self.independent is not None:
            row["agreement_independent"] = self.agreement(self.independent, images, labels, look)
        return row | {"psnr": psnr(images, truth), "ssim": ssim(images, truth), "psnr_source": psnr(images, source)}


def independent_judge(n: int, epochs: int, n_test: int = 500):
    """A second all-looks attribute judge (width 16, seed 1) the restyling never optimises against, and its
    accuracy per look and attribute on the first ``n_test`` test products."""
    import judge_looks

    from prodgen.models.judge import fit_judge

    model = fit_judge(judge_looks.all_looks_training(n), epochs=epochs, width=16, seed=1,
                      log=lambda m: print("independent judge:", m, flush=True))
    return model, {"train_products_per_look": n, "epochs": epochs, "width": 16, "seed": 1,
                   "test": judge_looks.per_look(model, n_test)}


def sweep(readers, photos, labels, truths, strengths, seed, steps, style) -> dict:
    """{look: [{strength, measures, seconds_per_image}, ...]} for every target look and strength; ``style``:
    restyle's exemplars, or ``"paired"``: each photo's own rendering in the target look (the ground truth: an
    oracle, the best these exemplars can be)."""
    from prodgen.apps.restyle import restyle

    out = {}
    for look in TARGETS:
        rows = []
        kw = {"exemplars": list(truths[look].split(1))} if style == "paired" else {"style": style}
        for w in strengths:
            t0 = time.perf_counter()
            result = restyle(photos, look, strength=w, seed=seed, steps=steps, **kw)
            sec = (time.perf_counter() - t0) / len(photos)
            rows.append({"strength": w, **readers.measure(result, look, labels, truths[look], photos),
                         "seconds_per_image": round(sec, 3)})
            print(style, look, json.dumps(rows[-1]), flush=True)
        out[look] = rows
    return out


def probe_content_block(readers, photos, labels, truths, strength, seed, steps) -> dict:
    """For each block as the content: the measures on every target look at one strength."""
    from prodgen.apps.restyle import BLOCKS, restyle

    out = {}
    for block in range(len(BLOCKS)):
        out[f"block{block}"] = {look: readers.measure(restyle(photos, look, strength, seed, steps,
                                                              content_block=block),
                                                      look, labels, truths[look], photos) for look in TARGETS}
        print("content block", block, json.dumps(out[f"block{block}"]), flush=True)
    return out


def probe_steps(readers, photos, labels, truths, strength, seed, counts) -> list:
    """The measures and seconds per image for each number of Adam steps, at one strength, on every look."""
    from prodgen.apps.restyle import restyle

    rows = []
    for steps in counts:
        row = {"steps": steps}
        for look in TARGETS:
            t0 = time.perf_counter()
            result = restyle(photos, look, strength, seed, steps)
            row[look] = readers.measure(result, look, labels, truths[look], photos) | {
                "seconds_per_image": round((time.perf_counter() - t0) / len(photos), 3)}
        rows.append(row)
        print("steps", json.dumps(row), flush=True)
    return rows


def plot(result: dict, path: Path) -> None:
    """Look accuracy against content agreement, one curve per target look, points labelled by strength."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prodgen import paths

    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for i, (look, rows) in enumerate(result["sweep"].items()):
        xs, ys = [r["agreement"]["mean"] for r in rows], [r["look"] for r in rows]
        ax.plot(xs, ys, "o-", color=f"C{i}", label=f"{look} (matched exemplars)")
        for r, x, y in zip(rows, xs, ys):
            ax.annotate(f"{r['strength']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        other = result.get("sweep_catalog", {}).get(look)
        if other:
            ax.plot([r["agreement"]["mean"] for r in other], [r["look"] for r in other], "x--", color=f"C{i}",
                    alpha=0.5, label=f"{look} (random exemplars)")
    ax.set_xlabel("content kept: judge-looks agrees with the source's attributes")
    ax.set_ylabel("look-judge reads the target look")
    ax.set_title(f"Gatys restyling of {result['n']} test photos (labels: strength)", fontsize=10)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with paths.atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=32, help="test products restyled into each look")
    parser.add_argument("--strengths", default="0,1,3,10,30,100")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (default: restyle.STEPS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-n", type=int, default=8, help="products for the content-block and steps probes")
    parser.add_argument("--probe-strength", type=float, default=10.0)
    parser.add_argument("--probe-steps", default="50,100,200,400")
    parser.add_argument("--independent", type=int, default=2000,
                        help="training products per look of the independent judge (0: skip it)")
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "restyle-gatys.json"))
    args = parser.parse_args()
    return run(args)


def run(args) -> int:
    import torch

    from prodgen import paths
    from prodgen.apps import restyle as rs
    from prodgen.catalog.dataset import load_catalog

    torch.set_num_threads(1)
    steps = args.steps or rs.STEPS
    strengths = [float(s) for s in args.strengths.split(",")]
    independent, independent_info = independent_judge(args.independent, 8) if args.independent else (None, None)
    readers = Readers(independent)
    test = load_catalog("test", args.n, 32, progress=False)
    photos, labels = test.images, test.labels
    truths = {look: load_catalog("test", args.n, 32, look=look, progress=False).images for look in TARGETS}
    control = {look: readers.look(load_catalog("test", 300, 32, look=look, progress=False).images, look)
               for look in ("photo", *TARGETS)}
    truth = {look: readers.measure(truths[look], look, labels, truths[look], photos) for look in TARGETS}
    k = args.probe_n
    small = (photos[:k], labels[:k], {look: t[:k] for look, t in truths.items()})
    result = {
        "what": "Gatys-style restyling (prodgen.apps.restyle) of held-back test photos into each look; look: "
                "look-judge reads the target look; agreement: judge-looks reads the source's attributes (those "
                "the target look shows); psnr/ssim against the product rendered in the target look",
        "n": args.n, "seed": args.seed, "steps": steps, "lr": rs.LR, "exemplars": rs.EXEMPLARS,
        "content_block_used": rs.CONTENT_BLOCK, "look_judge_control": control, "truth": truth,
        "independent_judge": independent_info,
        "ssim_available": ssim(photos[:1], photos[:1]) is not None,
        "sweep": sweep(readers, photos, labels, truths, strengths, args.seed, steps, "matched"),
        "sweep_catalog": sweep(readers, photos, labels, truths, strengths, args.seed, steps, "catalog"),
        "sweep_paired": sweep(readers, photos, labels, truths, strengths, args.seed, steps, "paired"),
        "content_block": {"strength": args.probe_strength, "n": k,
                          **probe_content_block(readers, *small, args.probe_strength, args.seed, steps)},
        "steps_probe": {"strength": args.probe_strength, "n": k,
                        "rows": probe_steps(readers, *small, args.probe_strength, args.seed,
                                            [int(s) for s in args.probe_steps.split(",")])},
        "threads": 1, "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "command": f"OMP_NUM_THREADS=1 python benchmarks/restyle_gatys.py --n {args.n} --strengths {args.strengths} "
                   f"--steps {steps} --seed {args.seed} --probe-n {k} --probe-strength {args.probe_strength} "
                   f"--probe-steps {args.probe_steps} --independent {args.independent}",
    }
    with paths.atomic_file(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, Path(args.out).with_suffix(".png"))
    print(f"wrote {args.out} and its plot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: can a judge read the look, and do the attribute judges still read the attributes in each look?

Issue 27 §2 (lesson 16, restyling). The look judge is the catalog's judge family (``prodgen.models.judge.Judge``
and its ``fit_judge`` loop) with one head, ``look`` (photo, sketch, poster, watercolour; ``prodgen.catalog.looks``),
at width 16 so that its checkpoint stays small. It trains on the first ``--n-train`` products of the training
split drawn in every look (each product in all four looks, so only the look tells them apart) and is measured on
the test split in every look: products it never saw. Target: >= 98 % on every look. Then the shipped attribute
judges (``judge`` at 32 px, ``judge-64`` at 64 px), trained on photos only, read the test split in each look: the
accuracy per attribute per look, with the attributes each look shows (``LOOK_SHOWN``); a sketch has no colour,
so its colour accuracy is reported but not expected. Last, whether each look shows its attributes at all: the
judge family trained on all four looks at 32 px, measured per look and attribute (``all_looks_judge``). One
thread; the training's CPU time is measured with ``time.process_time``. Writes ``data/results/looks-judge.json``
(atomically); with ``--ship`` the registry's ``look-judge`` checkpoint, only if the target is met. About 1
CPU-minute for the look judge and a few for the all-looks judge, plus rendering the looks on first use. Run from
the repository root:

    OMP_NUM_THREADS=1 python benchmarks/looks_judge.py [--size 64] [--epochs 3] [--ship]
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = 0.98
ATTRIBUTE_JUDGES = {32: "judge", 64: "judge-64"}


def looks_catalog(split: str, n: int, size: int, name: str):
    """The first ``n`` products of ``split`` in every look, labelled by look (one attribute, ``look``)."""
    import torch

    from prodgen.catalog.dataset import Catalog, load_catalog
    from prodgen.catalog.looks import LOOKS

    images = [load_catalog(split, n, size, look=look, progress=False).images for look in LOOKS]
    labels = torch.cat([torch.full((n, 1), i, dtype=torch.long) for i in range(len(LOOKS))])
    total = n * len(LOOKS)
    return Catalog(torch.cat(images), labels, [""] * total, [""] * total, values={"look": list(LOOKS)}, name=name)


def per_look_accuracy(model, catalog) -> dict:
    """{look: fraction read correctly} and the confusions: {true look: {read as: count}} where it erred."""
    from prodgen.catalog.dataset import normalize
    from prodgen.catalog.looks import LOOKS

    pred = model.predict(normalize(catalog.images))[:, 0]
    truth = catalog.labels[:, 0]
    accuracy, confusions = {}, {}
    for i, look in enumerate(LOOKS):
        rows = truth == i
        accuracy[look] = round(float((pred[rows] == i).float().mean()), 4)
        wrong = {LOOKS[j]: int(((pred == j) & rows).sum()) for j in range(len(LOOKS)) if j != i}
        confusions[look] = {k: v for k, v in wrong.items() if v}
    return {"accuracy": accuracy, "confusions": confusions}


def attribute_judge_per_look(size: int, n: int) -> dict:
    """The shipped attribute judge of ``size`` px reading the test split in each look: {look: {attribute: acc}}."""
    from prodgen.catalog.dataset import load_catalog
    from prodgen.catalog.looks import LOOK_SHOWN, LOOKS
    from prodgen.models import registry
    from prodgen.models.judge import judge_accuracy

    name = ATTRIBUTE_JUDGES[size]
    judge = registry.load(name)
    out = {"judge": name, "n": n}
    for look in LOOKS:
        acc = judge_accuracy(judge, load_catalog("test", n, size, look=look, progress=False))
        out[look] = {a: round(v, 4) for a, v in acc.items()}
        out[look]["shown"] = list(LOOK_SHOWN[look])
    return out


def all_looks_judge(size: int, n_train: int, n_test: int, epochs: int, log=print) -> dict:
    """Are the attributes visible in each look? The judge family (width 32) trained on the training split in all
    four looks at once, measured per look and attribute on the test split (the catalog's identifiability check,
    DESIGN.md §2, for every look); not shipped (3 MB)."""
    import torch

    from prodgen.catalog.dataset import Catalog, load_catalog
    from prodgen.catalog.looks import LOOK_SHOWN, LOOKS
    from prodgen.models.judge import fit_judge, judge_accuracy

    parts = [load_catalog("train", n_train, size, look=look, progress=False) for look in LOOKS]
    total = n_train * len(LOOKS)
    train = Catalog(torch.cat([c.images for c in parts]), torch.cat([c.labels for c in parts]), [""] * total,
                    [""] * total, name="all-looks-train")
    cpu0 = time.process_time()
    model = fit_judge(train, epochs=epochs, log=log)
    out = {"size": size, "train_products_per_look": n_train, "test_products": n_test, "epochs": epochs,
           "train_cpu_minutes": round((time.process_time() - cpu0) / 60, 2)}
    for look in LOOKS:
        acc = judge_accuracy(model, load_catalog("test", n_test, size, look=look, progress=False))
        out[look] = {a: round(v, 4) for a, v in acc.items()} | {"shown": list(LOOK_SHOWN[look])}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64, choices=(32, 64), help="image size (lesson 16: 64)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=2000, help="training products (each in all four looks)")
    parser.add_argument("--n-test", type=int, default=2000, help="test products (each in all four looks)")
    parser.add_argument("--all-looks-products", type=int, default=4000,
                        help="training products per look of the all-looks attribute judge (32 px); 0: skip it")
    parser.add_argument("--all-looks-epochs", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "looks-judge.json"))
    parser.add_argument("--ship", action="store_true",
                        help="if every look meets the target, save it as the shipped checkpoint 'look-judge'")
    args = parser.parse_args()

    import torch

    from prodgen import paths
    from prodgen.models.judge import fit_judge

    torch.set_num_threads(1)
    start = time.perf_counter()
    train = looks_catalog("train", args.n_train, args.size, "looks-train")
    test = looks_catalog("test", args.n_test, args.size, "looks-test")
    print(f"looks: train {len(train)}, test {len(test)} images ({time.perf_counter() - start:.0f} s)", flush=True)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    model = fit_judge(train, epochs=args.epochs, width=16, log=lambda m: print(m, flush=True))
    cpu_min, wall_min = (time.process_time() - cpu0) / 60, (time.perf_counter() - wall0) / 60
    looks = per_look_accuracy(model, test)
    misses = [k for k, v in looks["accuracy"].items() if v < TARGET]
    result = {
        "what": "look judge (judge family, width 16, one head 'look') on held-out test products in each look; the "
                "shipped attribute judges (trained on photos) reading each look",
        "target": TARGET, "met": not misses, "misses": misses, "size": args.size,
        "look_judge": {"test": looks, "train_products": args.n_train, "test_products": args.n_test,
                       "epochs": args.epochs, "width": 16, "parameters": sum(p.numel() for p in model.parameters()),
                       "train_cpu_minutes": round(cpu_min, 2), "train_wall_minutes": round(wall_min, 2)},
        "attribute_judge": {f"{s}px": attribute_judge_per_look(s, args.n_test) for s in (32, 64)},
        "all_looks_judge": all_looks_judge(32, args.all_looks_products, args.n_test, args.all_looks_epochs,
                                           log=lambda m: print("all looks:", m, flush=True))
        if args.all_looks_products else None,
        "threads": 1, "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "command": f"OMP_NUM_THREADS=1 python benchmarks/looks_judge.py --size {args.size} --epochs {args.epochs} "
                   f"--n-train {args.n_train} --n-test {args.n_test} --all-looks-products {args.all_looks_products} "
                   f"--all-looks-epochs {args.all_looks_epochs}" + (" --ship" if args.ship else ""),
    }
    with paths.atomic_file(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.ship:
        if misses:
            print(f"not shipped: below {TARGET:.0%} on {', '.join(misses)}")
            return 1
        ship(model, result)
    return 0


def ship(model, result: dict) -> None:
    """Save the judge as the registry's ``look-judge`` (checkpoint + manifest entry, sha256)."""
    from prodgen.models import registry

    lj = result["look_judge"]
    metrics = {f"test_{look}": v for look, v in lj["test"]["accuracy"].items()}
    training = {k: lj[k] for k in ("train_products", "epochs", "width", "train_cpu_minutes")} | {"threads": 1}
    training["how"] = result["command"] + " (fit_judge: seed 0, batch 128, one-cycle Adam lr 3e-3)"
    config = {"num_classes": model.num_classes, "width": 16, "schema": model.schema.to_config(),
              "resolution": model.resolution}
    path = registry.save("look-judge", model, config, metrics, training)
    print(f"shipped {path}")


if __name__ == "__main__":
    raise SystemExit(main())

"""Write the README's figures from what they measure, never from memory.

Each figure sits between markers in README.md (and CONTRIBUTING.md / INSTRUCTORS.md where they repeat it):
``<!-- figures:NAME -->`` ... ``<!-- /figures:NAME -->``. This script computes the figures and rewrites what lies
between the markers; everything else in the files is left as it is.

Cheap and deterministic (always rewritten; ``tests/test_readme_figures.py`` checks the files agree):

- ``lessons-words``: how many lessons ``solutions/`` holds, in words;
- ``generators``: how many image generators ship (``registry.generators(shipped=True)``);
- ``checkpoints``: the shipped checkpoints, in the manifest's order;
- ``quick-tests``: how many tests the quick loop runs (``pytest --collect-only -q -m "not slow"``, ~20 s).

Measured, rewritten only when asked:

- ``--leaderboard``: ``leaderboard`` (the Markdown table) from the cached rows (n = 2,000, seed 0; run
  ``prodgen leaderboard`` first: the script measures nothing and refuses while a row is missing);
- ``--spread``: ``text-spread``, how far apart the README's text example's 8 images are (mean absolute difference
  in grey levels 0-255 over the 28 pairs) for ``text2img`` and ``diffusion-text``, and real photos of the
  same attributes for scale (about 10 s of generation).

Timings measured by ``prodgen course run`` and by CI are quoted in the files with their date and command; the
script does not re-measure them.

    python tools/readme_figures.py                  # rewrite the cheap figures
    python tools/readme_figures.py --check          # exit 1 naming the figures that are out of date
    python tools/readme_figures.py --leaderboard --spread
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("README.md", "CONTRIBUTING.md", "INSTRUCTORS.md")
WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen twenty").split()
TEXT_EXAMPLE = "大号红色条纹T恤，Acme品牌"  # the README's `prodgen generate --model text2img --text ...` example
_REGION = re.compile(r"<!-- figures:(?P<name>[a-z0-9-]+) -->(?P<body>.*?)<!-- /figures:(?P=name) -->", re.S)


def regions(text: str) -> dict[str, list[str]]:
    """``{name: [body, ...]}`` of every marked region in ``text`` (a name may appear several times)."""
    found: dict[str, list[str]] = {}
    for m in _REGION.finditer(text):
        found.setdefault(m["name"], []).append(m["body"])
    return found


def rewrite(text: str, figures: dict[str, str]) -> str:
    """``text`` with the body of every region named in ``figures`` replaced; other regions are left alone."""
    return _REGION.sub(lambda m: (f"<!-- figures:{m['name']} -->{figures[m['name']]}<!-- /figures:{m['name']} -->"
                                  if m["name"] in figures else m[0]), text)


def in_words(k: int) -> str:
    return WORDS[k] if 0 <= k < len(WORDS) else f"{k:,}"


def cheap_figures(tests: bool = True) -> dict[str, str]:
    """The deterministic figures; ``tests=False`` leaves out the test count (the one that takes ~20 s)."""
    sys.path.insert(0, str(ROOT))
    from prodgen.models import registry

    lessons = len(sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")))
    figures = {"lessons-words": in_words(lessons),
               "generators": str(len(registry.generators(shipped=True))),
               "checkpoints": ", ".join(f"`{name}`" for name in registry.manifest())}
    figures |= comparison_tables() | restore_table()
    if tests:
        figures["quick-tests"] = f"{quick_test_count():,}"
    return figures


VARIANT_NAMES = {"v-cosine": "v-cosine (lesson 11)"}
SAMPLER_NAMES = {"ddim": "DDIM", "edm-euler": "Euler (Karras σ)", "euler": "Euler", "heun": "Heun", "ab2": "AB2"}


def restore_table() -> dict[str, str]:
    """Lesson 16's restoration benchmark (``data/results/restore.json``, ``benchmarks/restore.py``) as a table."""
    import json

    path = ROOT / "data" / "results" / "restore.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = ["", "", "| damage | method | PSNR (dB) | SSIM | judge agrees | FID | CPU ms / image |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in data["rows"]:
        case = row["task"] + (f" {row['factor']}x" if "factor" in row else "")
        for method in ("damaged", "classic", "supervised", "flow"):
            m = row[method]
            supervised = f"supervised CNN ({data['supervised_minutes']:g} CPU-min)"
            name = {"classic": row["classic_name"], "flow": "flow (generative prior)",
                    "supervised": supervised}.get(method, "the damaged photo")
            lines.append(f"| {case} | {name} | {m['psnr']:.1f} | {m['ssim']:.3f} | {m['agreement']['mean']:.1%} | "
                         f"{m['fid']:.1f} | {m['cpu_s_per_image'] * 1000:.1f} |")
    budget = (f"`{data['command']}` ({data['date']}, one thread; n = {data['rows'][0]['n']} held-back test photos; "
              f"FID floor {data['fid_floor']:.1f} at that n)")
    return {"restore-table": "\n".join(lines) + "\n\n", "restore-budget": budget}


def comparison_tables() -> dict[str, str]:
    """The equal-budget comparison's two tables and its budget line, from the committed
    ``data/results/diffusion-vs-flow.json`` (``benchmarks/diffusion_vs_flow.py``)."""
    import json

    data = json.loads((ROOT / "data" / "results" / "diffusion-vs-flow.json").read_text(encoding="utf-8"))
    train, sampling = data["train"], data["sampling"]
    seeds = train["seeds"]
    named = ", ".join(map(str, seeds))
    lines = ["", "", f"| variant | control (seeds {named}) | FID (seeds {named}) |", "|---|---:|---:|"]
    for variant in dict.fromkeys(r["variant"] for r in train["rows"]):
        runs = sorted((r for r in train["rows"] if r["variant"] == variant), key=lambda r: r["seed"])
        ends = [r["checkpoints"][-1] for r in runs]
        control = ", ".join(f"{e['control_mean']:.3f}" for e in ends)
        fid = ", ".join(f"{e['fid']:.1f}" for e in ends)
        lines.append(f"| {VARIANT_NAMES.get(variant, variant)} | {control} | {fid} |")
    evaluations = sorted({r["evaluations"] for r in sampling["rows"]})
    table = ["", "", "| variant | sampler | " + " | ".join(map(str, evaluations)) + " |",
             "|---|---|" + "---:|" * len(evaluations)]
    for variant, sampler in dict.fromkeys((r["variant"], r["sampler"]) for r in sampling["rows"]):
        at = {r["evaluations"]: r for r in sampling["rows"] if (r["variant"], r["sampler"]) == (variant, sampler)}
        cells = [f"{at[e]['fid']:.1f} / {at[e]['control_mean']:.2f}" if e in at else "–" for e in evaluations]
        sampler = "edm-euler" if variant == "edm" else sampler  # runs before 2026-12-08 labelled it "ddim"
        table.append(f"| {variant} | {SAMPLER_NAMES.get(sampler, sampler)} | " + " | ".join(cells) + " |")
    budget = (f"`{train['command']}` ({train['date']}: {train['minutes_per_run']:g} CPU-minutes of training per run, "
              f"width {train['width']}, control and FID on n = {train['n']} requests at "
              f"{train['rows'][0]['evaluations']} network evaluations; sampling FID floor {sampling['fid_floor']:.1f} "
              f"at n = {sampling['n']})")
    return {"comparison-budget": budget, "comparison-train": "\n".join(lines) + "\n\n",
            "comparison-sampling": "\n".join(table) + "\n\n"}


def quick_test_count() -> int:
    """The tests ``pytest -m "not slow"`` runs, as pytest collects them (in one process)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow", "-n", "0",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True)
    m = re.search(r"^(\d+)(?:/\d+)? tests? collected", done.stdout, re.M)
    if m is None:
        raise RuntimeError(f"pytest --collect-only gave no count (exit {done.returncode}):\n{done.stdout[-2000:]}")
    return int(m[1])


def leaderboard_table(n: int = 2000, seed: int = 0) -> str:
    """The cached leaderboard rows as the README's Markdown table (``leaderboard.format_markdown``)."""
    sys.path.insert(0, str(ROOT))
    from prodgen.evaluation import leaderboard
    from prodgen.models import registry

    rows, missing = [], []
    for name in registry.generators(shipped=True):
        row = leaderboard._read_cached(leaderboard.cache_file(name, n, seed))
        (rows.append(row) if row is not None else missing.append(name))
    if missing:
        raise ValueError(f"no cached row (n = {n}, seed {seed}) of {', '.join(missing)}: run prodgen leaderboard "
                         f"--models {','.join(missing)} first")
    return "\n\n" + leaderboard.format_markdown(rows) + "\n\n"


def spread(images) -> tuple[float, float, float]:
    """(min, mean, max) over all pairs of the mean absolute difference in grey levels (0-255) of uint8 images."""
    import itertools

    diffs = [float((a.float() - b.float()).abs().mean()) for a, b in itertools.combinations(images, 2)]
    return min(diffs), sum(diffs) / len(diffs), max(diffs)


def text_spread(n: int = 8, seed: int = 0) -> str:
    """How varied the text example's images are, by model, and real photos of the requested attributes."""
    sys.path.insert(0, str(ROOT))
    import torch

    from prodgen.catalog import load_catalog
    from prodgen.models import registry
    from prodgen.models.condition import parse_request

    parts = []
    for name in ("text2img", "diffusion-text"):
        low, mean, high = spread(registry.load_generator(name).generate([TEXT_EXAMPLE] * n, seed=seed))
        parts.append(f"`{name}` {low:.1f}–{high:.1f} (mean {mean:.1f})")
    wanted = parse_request({"category": "t-shirt", "color": "red", "size": "large", "brand": "acme",
                            "pattern": "striped"})[0]
    for split in ("train", "unseen"):  # a held-out (category, colour) pair is only in `unseen`
        cat = load_catalog(split, progress=False)
        same = torch.nonzero((cat.labels == wanted).all(dim=1)).flatten()[:n]
        if len(same) >= 2:
            low, mean, high = spread(cat.images[same])
            held_out = " (red t-shirts are a held-out pair: no model was trained on one)" if split == "unseen" else ""
            parts.append(f"{len(same)} real `{split}` photos of a large red striped Acme t-shirt{held_out} "
                         f"{low:.1f}–{high:.1f} (mean {mean:.1f})")
            break
    return "; ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming out-of-date figures")
    parser.add_argument("--leaderboard", action="store_true", help="also the leaderboard table (cached rows)")
    parser.add_argument("--spread", action="store_true", help="also the text example's spread (generates images)")
    args = parser.parse_args(argv)
    figures = cheap_figures()
    if args.leaderboard:
        figures["leaderboard"] = leaderboard_table()
    if args.spread:
        figures["text-spread"] = text_spread()
    stale = []
    for name in FILES:
        path = ROOT / name
        old = path.read_text(encoding="utf-8")
        new = rewrite(old, figures)
        if new != old:
            stale.append(name)
            if not args.check:
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(path)  # atomic: never a half-written README
    unused = set(figures) - {k for name in FILES for k in regions((ROOT / name).read_text(encoding="utf-8"))}
    if unused:
        print(f"figures with no region in {', '.join(FILES)}: {', '.join(sorted(unused))}", file=sys.stderr)
    print(("out of date: " if args.check else "rewrote: ") + (", ".join(stale) or "nothing"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

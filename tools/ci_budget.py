"""Where CI's time goes: seconds per part from the JUnit XML that `bash .ci/run` writes (build/ci-junit.xml).

    python tools/ci_budget.py build/ci-junit.xml [--wall SECONDS] [--timeline build/timeline]

Parts: each lesson (nbval re-execution of solutions/NN_*.ipynb in quick mode + its student run), grading (the
sandboxed and hostile submissions), the browser, the other slow tests (training, identifiability, studies) and the
quick loop. The test runner spreads work over two workers, so the parts' seconds add up to about twice the wall
time; `--wall` (the run's wall time) turns them into each part's share of it. CONTRIBUTING.md's CI budget table is
this script's output. `--timeline` (the per-worker lines conftest.py writes under .ci/run) adds each worker's busy
time, its idle end (when it ran out of work before the last worker finished) and the last tests to finish. Used by
contributors adding a lesson: the budget left per new lesson follows from it.
"""
from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def part_of(classname: str, name: str) -> str:
    """The CI part a test belongs to, from its JUnit classname and name."""
    lesson = re.search(r"solutions[./](\d\d)_", classname) or re.search(r"\[?(\d\d)_[a-z0-9_]+", name)
    if classname.startswith("solutions") and lesson:
        return f"lesson {lesson.group(1)}"
    if "test_lessons" in classname and "student" in name and lesson:
        return f"lesson {lesson.group(1)}"
    if "test_grade" in classname:
        return "grading (sandboxed, hostile submissions)"
    if "test_browser" in classname:
        return "browser (JupyterLab, Voila)"
    return "other tests"


def parts(path: Path) -> dict[str, float]:
    """Seconds per part (summed over workers)."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(path).getroot().iter("testcase"):
        seconds[part_of(case.get("classname", ""), case.get("name", ""))] += float(case.get("time") or 0)
    return dict(sorted(seconds.items()))


def timeline(folder: Path) -> list[str]:
    """Per worker: tests run, busy seconds, and the seconds it sat idle at the end; then the last five tests."""
    rows = [line.split("\t") for f in sorted(folder.glob("timeline-*.tsv"))
            for line in f.read_text(encoding="utf-8").splitlines() if line.count("\t") == 3]
    if not rows:
        return [f"no timeline lines in {folder}"]
    spans = [(w, float(a), float(b), test) for w, a, b, test in rows]
    if any(s[0] != "main" for s in spans):  # under pytest-xdist the controller logs every test too: not a worker
        spans = [s for s in spans if s[0] != "main"]
    begin, end = min(s[1] for s in spans), max(s[2] for s in spans)
    out = [f"\n{end - begin:.0f} s from the first test's start to the last test's end", "",
           "| worker | tests | busy s | idle at the end s |", "|---|---|---|---|"]
    for worker in sorted({s[0] for s in spans}):
        mine = [s for s in spans if s[0] == worker]
        busy = sum(b - a for _, a, b, _ in mine)
        out.append(f"| {worker} | {len(mine)} | {busy:.0f} | {end - max(b for _, _, b, _ in mine):.0f} |")
    out.append("\nthe last to finish: " + "; ".join(f"{t} ({w}, {b - a:.0f} s, ended {b - begin:.0f} s in)"
                                                   for w, a, b, t in sorted(spans, key=lambda s: s[2])[-5:]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", type=Path)
    parser.add_argument("--wall", type=float, help="the run's wall-clock seconds (pytest's 'in N s')")
    parser.add_argument("--timeline", type=Path, help="the folder of per-worker timelines (.ci/run: build/timeline)")
    args = parser.parse_args(argv)
    if not args.junit.is_file():
        print(f"ci_budget: no JUnit file at {args.junit}; run `bash .ci/run` first", file=sys.stderr)
        return 2
    found = parts(args.junit)
    total = sum(found.values())
    lessons = {k: v for k, v in found.items() if k.startswith("lesson")}
    print("| part | test seconds (both workers) |" + (" share of the wall time |" if args.wall else ""))
    print("|---|---|" + ("---|" if args.wall else ""))
    for name, value in found.items():
        share = f" {value / total * args.wall:.0f} s |" if args.wall else ""
        print(f"| {name} | {value:.0f} |{share}")
    print(f"| **all** | {total:.0f} |" + (f" {args.wall:.0f} s |" if args.wall else ""))
    if lessons:
        mean = sum(lessons.values()) / len(lessons)
        wall = f", {mean / total * args.wall:.0f} s of wall time" if args.wall else ""
        print(f"\n{len(lessons)} lessons, {mean:.0f} test seconds each on average{wall}")
    if args.timeline:
        print("\n".join(timeline(args.timeline)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

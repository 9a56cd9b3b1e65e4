"""pytest set-up for the whole repository: nbval's quick mode for the solution lessons.

`pytest` re-executes every committed solution notebook with nbval (`--nbval-lax`: only cells marked
`# NBVAL_CHECK_OUTPUT` are compared). Running each lesson with its default parameters would take
minutes per lesson, so by default the lessons run in *quick mode*:

- right after the cell tagged `parameters`, one cell is added to the run (not to the notebook):
  `FAST = True`, exactly what papermill injects for `prodgen course run --fast`; marked cells must
  print the same in both modes (a test in tests/test_lessons.py checks they exist, nbval compares);
- after the last cell, one more test item, `lesson assertions`, reads what the lesson published
  with `prodgen.course.record(...)` during that same run and checks it with the lesson's entry in
  `LESSON_ASSERTIONS` (tests/test_lessons.py). One execution thus serves both the output
  comparison and the assertions.

`PRODGEN_NBVAL_MODE=default pytest solutions/` runs the lessons as committed (default parameters,
slow: what `prodgen course run` times). The notebooks on disk are never changed.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
QUICK_CELL = "FAST = True  # nbval quick mode: added by conftest.py to this run, not to the notebook"


def quick_mode() -> bool:
    mode = os.environ.get("PRODGEN_NBVAL_MODE", "quick")
    if mode not in ("quick", "default"):
        raise pytest.UsageError(f"PRODGEN_NBVAL_MODE={mode!r}: use 'quick' (FAST=True, the default) or 'default'")
    return mode == "quick"


def _lesson_assertions() -> dict:
    """LESSON_ASSERTIONS from tests/test_lessons.py (the module pytest imported, or loaded here)."""
    path = ROOT / "tests" / "test_lessons.py"
    module = sys.modules.get("test_lessons")
    if module is None or Path(getattr(module, "__file__", "")).resolve() != path:
        spec = importlib.util.spec_from_file_location("prodgen_lesson_assertions", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.LESSON_ASSERTIONS


class LessonAssertions(pytest.Item):
    """Checks what a solution lesson computed during nbval's quick-mode run of it."""

    def __init__(self, *, cells, number, **kwargs):
        super().__init__(**kwargs)
        self.cells, self.number = cells, number

    def runtest(self):
        if self.parent.timed_out:
            pytest.fail("a cell timed out, so the lesson did not finish")
        unrun = [cell.name for cell in self.cells if cell.test_outputs is None and not cell.options["skip"]]
        if unrun:
            pytest.fail(f"{len(unrun)} cells did not run (first: {unrun[0]}): see their failures above")
        assertion = _lesson_assertions().get(self.number)
        if assertion is None:
            pytest.fail(
                f"lesson {self.number} has no entry in LESSON_ASSERTIONS (tests/test_lessons.py): "
                f"add an assert_{self.number}(results) that checks what the lesson computed"
            )
        from prodgen.course import results_in

        results = results_in([output for cell in self.cells for output in cell.test_outputs or []])
        if not results.get("fast"):
            pytest.fail("the lesson recorded no `fast=True`: did the quick-mode FAST cell run after `parameters`?")
        assertion(results)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::lesson assertions"


def _quick_notebook_class():
    from nbformat.v4 import new_code_cell
    from nbval.plugin import IPyNbCell, IPyNbFile

    from prodgen.course import LESSON_RE

    class QuickNotebook(IPyNbFile):
        """nbval's notebook collector with the quick-mode FAST cell and the lesson assertions."""

        def collect(self):
            cells, injected = [], False
            for item in super().collect():
                cells.append(item)
                yield item
                if not injected and "parameters" in item.cell.metadata.get("tags", []):
                    injected = True
                    yield IPyNbCell.from_parent(
                        self, name=f"{item.name} + FAST = True", cell_num=item.cell_num,
                        cell=new_code_cell(QUICK_CELL), options=defaultdict(bool, check=False),
                    )
            if not injected:
                raise pytest.UsageError(f"{self.path.name} has no cell tagged `parameters`: quick mode needs one")
            match = LESSON_RE.match(self.path.name)
            if match:
                yield LessonAssertions.from_parent(self, name="lesson assertions", cells=cells, number=match["num"])

    return QuickNotebook


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path, parent):
    outcome = yield
    if file_path.suffix != ".ipynb" or file_path.parent != ROOT / "solutions" or not quick_mode():
        return
    from nbval.plugin import IPyNbFile

    collectors = outcome.get_result()
    if any(isinstance(c, IPyNbFile) for c in collectors):
        quick = _quick_notebook_class()
        outcome.force_result(
            [quick.from_parent(parent, path=file_path) if isinstance(c, IPyNbFile) else c for c in collectors]
        )


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # a pytest-xdist hook: what `-n auto` (pyproject.toml) means
def pytest_xdist_auto_num_workers(config):
    """One test worker more than the CPU cores (at most 4 with pyproject's --maxprocesses): much of a worker's time
    is waiting (lesson kernels and grading sandboxes starting, endless loops on their clocks, the browser), so with
    one worker per core a third of the 2 cores sat idle in CI (15 CPU-minutes in 11.8 min of wall time); with
    three the same run took 9.7 min (CONTRIBUTING's CI budget). PYTEST_XDIST_AUTO_NUM_WORKERS still wins."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    return (os.cpu_count() or 1) + 1


def pytest_configure(config):
    """Under pytest-xdist (`-n 2`) each worker and every kernel it starts computes on one thread:
    two processes with two threads each on two cores would make their threads wait on each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the lesson kernels this worker starts
        import torch

        torch.set_num_threads(1)


# ------------------------------------------------------------------ pytest-xdist: which worker runs what, when
# pytest-xdist hands out *work units* to the workers: a unit runs on one worker, in order. Here a unit is a
# notebook (its cells share one kernel) or a test module (its module-scoped fixtures, e.g. test_distributed's
# two-process run, are built once), except the tests in SPREAD: each of their items is a unit of its own, so
# the student-lesson runs (minutes together) are shared by both workers. (`--dist loadgroup` cannot say this:
# pytest-xdist 3.8 renames items for it in a way pytest 9 ignores, so its groups are silently not formed.)
SPREAD = {"test_student_lesson", "test_trainer_runs_and_registers_the_model"}
SLOW_SECONDS, FAST_SECONDS, NOTEBOOK_SECONDS = 15.0, 0.3, 25.0  # rough guesses, only used to order the units


def _unit(nodeid: str) -> str:
    path, _, name = nodeid.partition("::")
    return nodeid if not path.endswith(".ipynb") and name.split("[")[0] in SPREAD else path


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, in the controller
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope` (pyproject.toml) with the units above, handed out in collection order (see
    pytest_collection_modifyitems; pyproject.toml turns pytest-xdist's own reordering off)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return UnitScheduling(config, log)


def _guess_seconds(item) -> float:
    """`@pytest.mark.slow(seconds=80)` where a test is much longer than a typical slow test."""
    if item.path.suffix == ".ipynb":
        return 0.0  # counted once per notebook
    mark = item.get_closest_marker("slow")
    return FAST_SECONDS if mark is None else float(mark.kwargs.get("seconds", SLOW_SECONDS))


def _longest_units_first(items) -> list:
    """The items regrouped by unit, the units ordered by their guessed duration, longest first (stable): a
    worker that finishes early takes the next unit, so only short units are left for the end and both
    workers finish at about the same time."""
    units: dict[str, list] = {}
    for item in items:
        units.setdefault(_unit(item.nodeid), []).append(item)

    def seconds(unit):
        return sum(map(_guess_seconds, unit)) + (NOTEBOOK_SECONDS if unit[0].path.suffix == ".ipynb" else 0.0)

    return [item for unit in sorted(units.values(), key=lambda u: -seconds(u)) for item in unit]


def pytest_collection_modifyitems(config, items):
    """Every notebook item is slow: the quick loop (`pytest -m "not slow"`) skips lesson execution.
    In a pytest-xdist worker: the longest units first (the controller hands them out in this order)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
    if hasattr(config, "workerinput"):
        items[:] = _longest_units_first(items)


# ------------------------------------------------------------------ where each worker's time went
_started: dict[str, float] = {}


def pytest_runtest_logstart(nodeid, location):
    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid, location):
    """With PRODGEN_TIMELINE=DIR (set by .ci/run), each worker appends `worker, start, end, test` lines to
    DIR/timeline-WORKER.tsv: `python tools/ci_budget.py --timeline DIR` shows when each worker ran out of work."""
    folder = os.environ.get("PRODGEN_TIMELINE")
    if not folder or nodeid not in _started:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(Path(folder) / f"timeline-{worker}.tsv", "a", encoding="utf-8") as out:
        out.write(f"{worker}\t{_started.pop(nodeid):.2f}\t{time.time():.2f}\t{nodeid}\n")


# ------------------------------------------------------------------ the catalogs, rendered once per run
SHARED_CATALOGS = ("train", "test", "unseen")  # 32 px, seed 0, standard sizes: what the slow tests and lessons load


def pytest_collection_finish(session):
    """Render the standard catalogs before the first test when the cache lacks them (a fresh clone), once:
    otherwise whichever test or lesson kernel first needs the 20k training catalog renders it (25 s of two
    cores) inside its own timing, and one on the other worker may render it at the same time. A file lock
    makes the other worker wait and then find the cache filled. Only when slow tests run: the quick loop
    renders what it needs itself."""
    if not any(item.get_closest_marker("slow") for item in session.items):
        return
    from prodgen import paths
    from prodgen.catalog import DEFAULT_N, load_catalog
    from prodgen.catalog.dataset import cache_path

    missing = lambda: [s for s in SHARED_CATALOGS if not cache_path(s, DEFAULT_N[s], 32, 0).is_file()]  # noqa: E731
    if not missing():
        return
    folder = paths.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, at worst both workers render
        fcntl = None
    with open(folder / ".render.lock", "w") as lock:
        if fcntl:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        for split in missing():  # after the wait: what the other worker has not rendered yet
            load_catalog(split, progress=False)

"""`prodgen course grade` against hostile submissions (prodgen/course/grade.py, grade_sandbox.py, grade_verify.py).

Every submission is lesson 00's student notebook (one exercise, the cheapest FAST run) with an attack added,
graded for real next to an honest solved copy: forged passes (print patched, the checks patched, sys.modules
tampered with: one submission does all three; "[PASS]" written into the outputs of a rewritten check cell;
patches at the top of the exercise cell). Each is graded failed with a reason and the honest student still
passes. Code in the exercise function that patches the checks, walks the frames or writes verdict lines itself is
tests/test_grade_verifier.py; the escapes (endless loops, bombs, the network, files outside) are
tests/test_grade_escapes.py.
"""
from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import nbformat
import pytest

from prodgen import course
from prodgen.course import grade, grade_sandbox

ROOT = course.find_root()
EXERCISE, CHECK, SETUP = 13, 14, 3  # lesson 00: the exercise cell, its check cell, the imports cell
WRONG = "def to_channels_first(image):\n    return image\n"
needs_bwrap = pytest.mark.skipif(bool(grade_sandbox.unavailable()), reason="no bubblewrap sandbox here")


def _solved():
    student = nbformat.read(str(ROOT / "notebooks" / "00_welcome.ipynb"), as_version=4)
    solution = nbformat.read(str(ROOT / "solutions" / "00_welcome.ipynb"), as_version=4)
    assert "exercise" in student.cells[EXERCISE].metadata.get("tags", [])
    assert "checks.check_channels_first" in student.cells[CHECK].source
    nb = copy.deepcopy(student)
    nb.cells[EXERCISE].source = solution.cells[EXERCISE].source
    return nb


def _with(cell: str | None = None, exercise: str | None = None, check: str | None = None, outputs=None):
    """Lesson 00 solved, then: a cell added after the imports, the exercise cell replaced, the check replaced."""
    nb = _solved()
    if exercise is not None:
        nb.cells[EXERCISE].source = textwrap.dedent(exercise)
    if check is not None:
        nb.cells[CHECK].source = check
    if outputs is not None:
        nb.cells[CHECK].outputs = outputs
    if cell is not None:
        nb.cells.insert(SETUP + 1, nbformat.v4.new_code_cell(textwrap.dedent(cell)))
    return nb


def _grade(folder: Path, notebooks: dict, **kw) -> dict:
    for name, nb in notebooks.items():
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, str(folder / name / "00_welcome.ipynb"))
    rows = grade.grade([folder], log=lambda s: None, **kw)
    assert len(rows) == len(notebooks)
    assert all(r.protection.startswith("bubblewrap sandbox") for r in rows)
    return {r.student: r for r in rows}


FORGED = {
    # notebook-level attacks: cells that patch what a verdict is read from. None of them runs in the verifier, so
    # each submission holds several (any one that worked would turn the wrong answer into a pass). The attacks
    # inside the exercise's own code, which do run in the verifier, are tests/test_grade_verifier.py
    "patches": _with(exercise=WRONG, cell="""\
        import builtins, sys, types, prodgen
        _real = builtins.print
        builtins.print = lambda *a, **k: _real(*(str(x).replace("[FAIL]", "[PASS]") for x in a), **k)
        from prodgen import checks
        checks.check_channels_first = lambda f: print("[PASS] channels first") or True
        import prodgen.checks._core as core
        core._expect = lambda condition, message: None
        fake = types.ModuleType("prodgen.checks")
        fake.check_channels_first = lambda f: print("[PASS] channels first") or True
        sys.modules["prodgen.checks"] = fake
        prodgen.checks = fake
        checks = fake
        """),
    "check_rewritten": _with(exercise=WRONG, check='ok = True\nprint("[PASS] channels first")',
                             outputs=[nbformat.v4.new_output("stream", text="[PASS] channels first\n")]),
    "exercise_toplevel": _with(exercise=WRONG + "import builtins\nbuiltins.print = lambda *a, **k: None\n"
                                        "checks.check_channels_first = lambda f: True\n"),
}


@needs_bwrap
@pytest.mark.slow(seconds=60)
def test_forged_verdicts_are_graded_failed_and_the_honest_student_passes(tmp_path):
    rows = _grade(tmp_path / "in", {"alice": _solved(), **FORGED}, timeout=120, check_timeout=120, jobs=2)
    assert rows["alice"].status == "passed", rows["alice"].detail
    for name in FORGED:
        row = rows[name]  # the attack never runs in the verifier: the wrong answer is graded as wrong
        assert row.status == "failed", (name, row.status, row.detail)
        assert row.detail.startswith("[FAIL] channels first:"), (name, row.detail)
    assert "check cell had been edited" in rows["check_rewritten"].detail


def test_no_sandbox_means_no_grading_unless_the_instructor_says_so(tmp_path, monkeypatch, capsys):
    from cli_helpers import in_this_process

    nb = tmp_path / "alice.ipynb"
    nbformat.write(_solved(), str(nb))
    monkeypatch.setattr(grade_sandbox, "_probe", {"why": "bubblewrap (bwrap) is not installed"})
    cli = in_this_process(monkeypatch, capsys)
    code, _, stderr = cli(["course", "grade", nb, "--out", tmp_path / "r.csv"])
    assert code == 2 and "refusing to grade: bubblewrap (bwrap) is not installed" in stderr
    assert "--no-sandbox" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.slow(seconds=60)
def test_no_sandbox_grades_and_says_so(tmp_path, monkeypatch, capsys):
    nb = tmp_path / "alice.ipynb"
    nbformat.write(_solved(), str(nb))
    monkeypatch.setattr(grade_sandbox, "_probe", {"why": "bubblewrap (bwrap) is not installed"})
    [row] = grade.grade([nb], sandbox=False, out=tmp_path / "r.csv", log=lambda s: None)
    assert row.status == "passed", row.detail
    assert row.protection.startswith("NO SANDBOX")
    assert "NO SANDBOX" in (tmp_path / "r.csv").read_text()
    assert "protection: NO SANDBOX" in grade.format_summary([row])

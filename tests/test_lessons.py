"""Integration tests for the real lessons (tooling: `prodgen course check`, `prodgen course run`).

Every solution lesson runs with FAST=True and must pass its entry in LESSON_ASSERTIONS, which
checks what the lesson computed (values it published with `prodgen.course.record`). Every
student notebook runs too, where only the unsolved exercises may raise NotImplementedError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prodgen import course

ROOT = Path(__file__).resolve().parent.parent


def _lessons(which: str) -> list[Path]:
    try:
        return course.list_lessons(ROOT, which)
    except FileNotFoundError:
        return []


def _params(paths: list[Path], which: str) -> list:
    """One pytest param per lesson, or a single skipped one when there are none yet."""
    if not paths:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no lessons in {which}/ yet"))]
    return [pytest.param(path, id=path.stem) for path in paths]


SOLUTIONS = _lessons("solutions")
STUDENTS = _lessons("notebooks")


# --------------------------------------------------------------------------- per-lesson results


def assert_00(results: dict) -> None:
    assert results, "lesson 00 recorded no results: call prodgen.course.record(...) in it"


def assert_01(results: dict) -> None:
    assert results, "lesson 01 recorded no results: call prodgen.course.record(...) in it"


LESSON_ASSERTIONS = {
    "00": assert_00,
    "01": assert_01,
}


# --------------------------------------------------------------------------- tests


def test_student_notebooks_in_sync():
    if not SOLUTIONS:
        pytest.skip("no lessons in solutions/ yet")
    assert course.check(ROOT) == []


@pytest.mark.parametrize("path", _params(SOLUTIONS, "solutions"))
def test_solution_lesson(path: Path, tmp_path: Path):
    number = course.LESSON_RE.match(path.name)["num"]
    assertion = LESSON_ASSERTIONS.get(number)
    if assertion is None:
        pytest.fail(
            f"lesson {path.stem} has no entry in LESSON_ASSERTIONS (tests/test_lessons.py): "
            f"add an assert_{number}(results) that checks what the lesson computed"
        )
    [run] = course.run([path.stem], fast=True, root=ROOT, out_dir=tmp_path, log=lambda line: None)
    assert run.ok, f"{path.stem}: {run.message} (executed copy: {run.output_path})"
    assertion(course.read_results(run.output_path))


@pytest.mark.parametrize("path", _params(STUDENTS, "notebooks"))
def test_student_lesson(path: Path, tmp_path: Path):
    [run] = course.run(
        [path.stem], student=True, fast=True, root=ROOT, out_dir=tmp_path, log=lambda line: None
    )
    assert run.ok, f"{path.stem}: {run.message} (executed copy: {run.output_path})"

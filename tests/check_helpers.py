"""Helpers shared by the exercise-check tests (tests/test_checks_*.py): an unfinished answer, and running a
check to get its verdict and its single printed line."""
from __future__ import annotations


def not_done(*args, **kwargs):
    """What a student's unfinished exercise does."""
    raise NotImplementedError("Exercise not done yet.")


def run_check(check, answer, capsys):
    """``(ok, printed)``: a check prints exactly one line ([PASS] or [FAIL] with a hint) and never raises."""
    ok = check(answer)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "a check prints exactly one line"
    return ok, out

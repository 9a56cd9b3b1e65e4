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


def verdict_tests(cases: dict):
    """The three tests every exercise check gets, for ``cases = {name: (check, right_answers, wrong_answers)}``
    (``right_answers``: a list, or one answer; ``wrong_answers``: ``[(label, answer)]``): each right answer
    passes, each wrong one fails with a hint, an unfinished answer says so. Assign them in a test module:
    ``(test_right_answers_pass, test_wrong_answers_fail_with_a_hint, test_unfinished_answer_says_not_done)
    = verdict_tests(CASES)``."""
    import pytest

    cases = {name: (check, rights if isinstance(rights, list) else [rights], wrongs)
             for name, (check, rights, wrongs) in cases.items()}

    @pytest.mark.parametrize("name, which", [(n, i) for n, (_, rights, _) in cases.items() for i in range(len(rights))])
    def test_right_answers_pass(name, which, capsys):
        check, rights, _ = cases[name]
        ok, out = run_check(check, rights[which], capsys)
        assert ok is True and out.startswith("[PASS]"), out

    @pytest.mark.parametrize("name, label", [(n, label) for n, (_, _, wrongs) in cases.items() for label, _ in wrongs])
    def test_wrong_answers_fail_with_a_hint(name, label, capsys):
        check, _, wrongs = cases[name]
        ok, out = run_check(check, dict(wrongs)[label], capsys)
        assert ok is False and out.startswith("[FAIL]") and "Hint:" in out, out

    @pytest.mark.parametrize("name", list(cases))
    def test_unfinished_answer_says_not_done(name, capsys):
        ok, out = run_check(cases[name][0], not_done, capsys)
        assert ok is False and "not done yet" in out

    return test_right_answers_pass, test_wrong_answers_fail_with_a_hint, test_unfinished_answer_says_not_done

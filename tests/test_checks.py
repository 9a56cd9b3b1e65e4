"""Every exercise check, on a right answer, a wrong answer and an unfinished one."""
from __future__ import annotations

import pytest
import torch

from prodgen import checks
from prodgen.catalog import denormalize, normalize


def _not_done(*args):
    raise NotImplementedError("Exercise not done yet.")


def _run(check, *answer, capsys):
    ok = check(*answer)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "a check prints exactly one line"
    return ok, out


CASES = {
    "channels_first": (
        checks.check_channels_first,
        (lambda im: im.permute(2, 0, 1),),
        [(lambda im: im.reshape(im.shape[2], im.shape[0], im.shape[1]),), (lambda im: im,)],
    ),
    "template": (
        checks.check_template,
        ("a [{size} ][{color} ][{pattern} ]{category}[ by {brand}]",),
        [("a {size} {color} {pattern} {category} by {brand}",), ("a [{color} ][{category}]",), (42,)],
    ),
    "normalization": (
        checks.check_normalization,
        (normalize, denormalize),
        [(lambda x: x.float() / 255, denormalize), (normalize, lambda x: ((x + 1) * 127.5).to(torch.uint8)),
         (normalize, lambda x: ((x + 1) * 127.5).round().to(torch.uint8))],
    ),
    "balanced_weights": (
        checks.check_balanced_weights,
        (lambda y: 1.0 / torch.bincount(y)[y].float(),),
        [(lambda y: torch.ones(len(y)),), (lambda y: torch.bincount(y).float(),), (lambda y: [1.0] * len(y),)],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_check_passes_a_right_answer(name, capsys):
    check, right, _ = CASES[name]
    ok, out = _run(check, *right, capsys=capsys)
    assert ok and out.startswith("[PASS]"), out


@pytest.mark.parametrize("name", CASES)
def test_check_fails_wrong_answers_with_a_hint(name, capsys):
    check, _, wrongs = CASES[name]
    for wrong in wrongs:
        ok, out = _run(check, *wrong, capsys=capsys)
        assert not ok and out.startswith("[FAIL]") and "Hint:" in out, out


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if callable(case[1][0])])
def test_check_reports_an_unfinished_exercise(name, capsys):
    check, right, _ = CASES[name]
    ok, out = _run(check, *([_not_done] * len(right)), capsys=capsys)
    assert not ok and "not done yet" in out


def test_a_crashing_answer_is_reported_not_raised(capsys):
    ok, out = _run(checks.check_channels_first, lambda im: 1 / 0, capsys=capsys)
    assert not ok and "ZeroDivisionError" in out

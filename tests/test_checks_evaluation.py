"""Lesson 08's exercise checks on right, wrong and unfinished answers: one line, never an exception."""
from __future__ import annotations

import pytest
import torch

from prodgen import checks, metrics

from check_helpers import run_check as _run
from check_helpers import verdict_tests


# ------------------------------------------------------------------ KID answers
def _kernel(a, b, power=3, divide=True):
    return (a @ b.T / (a.shape[1] if divide else 1) + 1) ** power


def _kid(x, y, power=3, divide=True, diagonal=False, same_norm=False):
    m, n = len(x), len(y)
    kxx, kyy, kxy = _kernel(x, x, power, divide), _kernel(y, y, power, divide), _kernel(x, y, power, divide)
    if diagonal:
        return float(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / ((m * (m - 1)) if same_norm else (n * (n - 1)))
    return float(xx + yy - 2 * kxy.mean())


def _kid_right(x, y):
    return _kid(x, y)


def _kid_via_metrics(x, y):  # the reference implementation is a right answer too
    return metrics.kid(x, y, subset_size=max(len(x), len(y)))[0]


# ------------------------------------------------------------------ coverage answers
def _coverage(real, fake, k, own_real=True, plus_one=True):
    balls, others = (real, fake) if own_real else (fake, real)
    radii = torch.cdist(balls, balls).kthvalue(k + 1 if plus_one else k, dim=1).values
    return float((torch.cdist(balls, others).min(dim=1).values < radii).double().mean())


def _density(real, fake, k):
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    return float((torch.cdist(real, fake) < radii[:, None]).double().sum() / (k * len(fake)))


# ------------------------------------------------------------------ diversity answers
def _spread(f, g, diagonal=False, squared=False, pooled=False):
    per, total, pairs = [], 0.0, 0
    for v in torch.unique(g):
        x = f[g == v]
        d = torch.cdist(x, x) ** (2 if squared else 1)
        count = len(x) ** 2 if diagonal else len(x) * (len(x) - 1)
        per.append(float(d.sum()) / count)
        total, pairs = total + float(d.sum()), pairs + count
    return total / pairs if pooled else sum(per) / len(per)


def _ratio(**wrong):
    return lambda f, fg, r, rg: _spread(f, fg, **wrong) / _spread(r, rg, **wrong)


CASES = {
    "kid": (
        checks.check_kid,
        [_kid_right, _kid_via_metrics],
        [
            ("biased", lambda x, y: _kid(x, y, diagonal=True)),
            ("no /d", lambda x, y: _kid(x, y, divide=False)),
            ("quadratic", lambda x, y: _kid(x, y, power=2)),
            ("linear", lambda x, y: _kid(x, y, power=1)),
            ("m for both", lambda x, y: _kid(x, y, same_norm=True)),
            ("tensor of many", lambda x, y: _kernel(x, y)),
            ("returns a string", lambda x, y: "0.1"),
        ],
    ),
    "coverage": (
        checks.check_coverage,
        [lambda r, f, k: _coverage(r, f, k), lambda r, f, k: metrics.density_coverage(r, f, k)[1]],
        [
            ("fake balls", lambda r, f, k: _coverage(r, f, k, own_real=False)),
            ("self as neighbour", lambda r, f, k: _coverage(r, f, k, plus_one=False)),
            ("density", _density),
            ("precision", lambda r, f, k: metrics.precision_recall(r, f, k)[0]),
            ("crashes", lambda r, f, k: r @ f),
        ],
    ),
    "diversity_ratio": (
        checks.check_diversity_ratio,
        [_ratio(), lambda f, fg, r, rg: metrics.diversity_ratio(f, fg, r, rg)],
        [
            ("diagonal", _ratio(diagonal=True)),
            ("squared", _ratio(squared=True)),
            ("pooled", _ratio(pooled=True)),
            ("upside down", lambda f, fg, r, rg: _spread(r, rg) / _spread(f, fg)),
            ("all pairs, no groups", lambda f, fg, r, rg: float(torch.pdist(f).mean() / torch.pdist(r).mean())),
        ],
    ),
}


test_right_answers_pass, test_wrong_answers_fail_with_a_hint, test_unfinished_answer_says_not_done = \
    verdict_tests(CASES)  # tests/check_helpers.py


@pytest.mark.parametrize("name, label, words", [
    ("kid", "biased", "biased estimate"),
    ("kid", "no /d", "feature dimension d"),
    ("kid", "quadratic", "not ** 2"),
    ("kid", "m for both", "n (n - 1)"),
    ("kid", "returns a string", "got str"),
    ("coverage", "fake balls", "REAL samples"),
    ("coverage", "self as neighbour", "kthvalue(k + 1)"),
    ("diversity_ratio", "diagonal", "zero distances"),
    ("diversity_ratio", "squared", "not squared"),
    ("diversity_ratio", "pooled", "big groups dominate"),
    ("diversity_ratio", "upside down", "generated over real"),
])
def test_the_messages_name_the_mistake(name, label, words, capsys):
    check, _, wrongs = CASES[name]
    _, out = _run(check, dict(wrongs)[label], capsys)
    assert words in out, out

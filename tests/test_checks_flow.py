"""Lesson 13's exercise checks on right, wrong and unfinished answers: one line, never an exception, and the
message names the mistake."""
from __future__ import annotations

import pytest
import torch

from prodgen import checks
from prodgen.engine import losses

from check_helpers import run_check as _run
from check_helpers import verdict_tests


# ------------------------------------------------------------------ straight path answers
def _per_row(t, like):
    return t.reshape(len(t), *[1] * (like.dim() - 1))


def _path(x0, eps, t, *, form="right"):
    t = _per_row(t, x0)
    x_t, v = (1 - t) * x0 + t * eps, eps - x0
    if form == "backwards":
        x_t = t * x0 + (1 - t) * eps
    elif form == "square roots":
        x_t = (1 - t).sqrt() * x0 + t.sqrt() * eps
    elif form == "no noise":
        x_t = (1 - t) * x0
    elif form == "v sign":
        v = x0 - eps
    elif form == "v is eps":
        v = eps
    elif form == "v times t":
        v = t * (eps - x0)
    elif form == "v is x_t":
        v = x_t
    return x_t, v


def _path_package(x0, eps, t):
    return losses.flow_interpolate(x0, eps, t), losses.flow_velocity(x0, eps)


def _path_one_time(x0, eps, t):
    t0 = t[0]
    return (1 - t0) * x0 + t0 * eps, eps - x0


def _path_images_only(x0, eps, t):
    t = t.view(-1, 1, 1, 1)  # fits N x C x H x W only: broadcasts N x 2 points into N x 1 x N x 2
    return (1 - t) * x0 + t * eps, eps - x0


def _path_images_only_crash(x0, eps, t):
    t = t[:, None, None, None].expand(x0.shape[0], *x0.shape[1:])  # raises for N x 2 points
    return (1 - t) * x0 + t * eps, eps - x0


def _path_in_place(x0, eps, t):
    t = _per_row(t, x0)
    v = eps - x0
    return x0.mul_(1 - t).add_(t * eps), v


# ------------------------------------------------------------------ time sampler answers
def _times(n, generator, *, form="right"):
    if form == "uniform":
        return torch.rand(n, generator=generator)
    if form == "sigmoid of uniform":
        return torch.sigmoid(torch.rand(n, generator=generator))
    if form == "no sigmoid":
        return torch.randn(n, generator=generator)
    if form == "global generator":
        return torch.sigmoid(torch.randn(n))
    if form == "wide":
        return torch.sigmoid(3 * torch.randn(n, generator=generator))
    if form == "shifted":
        return torch.sigmoid(torch.randn(n, generator=generator) + 1)
    if form == "few":
        return torch.sigmoid(torch.randn(n // 2, generator=generator))
    return torch.sigmoid(torch.randn(n, generator=generator))


# ------------------------------------------------------------------ solver step answers
def _euler(field, x, t, h, *, form="right"):
    if form == "minus":
        return x - h * field(x, t)
    if form == "end time":
        return x + h * field(x, t + h)
    if form == "velocity":
        return field(x, t)
    if form == "no h":
        return x + field(x, t)
    if form == "twice":
        field(x, t)
        return x + h * field(x, t)
    return x + h * field(x, t)


def _heun(field, x, t, h, *, form="right"):
    v1 = field(x, t)
    guess = x + h * v1
    if form == "euler":
        return guess
    if form == "second at t":
        return x + h / 2 * (v1 + field(guess, t))
    if form == "second at x":
        return x + h / 2 * (v1 + field(x, t + h))
    if form == "no half":
        return x + h * (v1 + field(guess, t + h))
    if form == "midpoint":
        return x + h * field(x + h / 2 * v1, t + h / 2)
    if form == "only second":
        return x + h * field(guess, t + h)
    if form == "three calls":
        field(x, t)
    return x + h / 2 * (v1 + field(guess, t + h))


def _heun_minus(field, x, t, h):
    v1 = field(x, t)
    return x - h / 2 * (v1 + field(x - h * v1, t + h))


def _heun_via_package(field, x, t, h):
    """Heun as the package's solver does it: integrate over [t, t + h] in one step, via a shifted field."""
    from prodgen.models import flow

    return flow.integrate(lambda y, s: -h * field(y, t + (1 - s) * h), x, 1, "heun")


CASES = {
    "straight_path": (checks.check_straight_path, [_path, _path_package],
                      [(form, lambda *a, form=form: _path(*a, form=form))
                       for form in ("backwards", "square roots", "no noise", "v sign", "v is eps", "v times t",
                                    "v is x_t")]
                      + [("one time", _path_one_time), ("images only", _path_images_only),
                         ("images only, crashing", _path_images_only_crash), ("in place", _path_in_place),
                         ("one tensor", lambda *a: _path(*a)[0]), ("nan", lambda *a: (_path(*a)[0] * float("nan"),
                                                                                     _path(*a)[1]))]),
    "sample_times": (checks.check_sample_times,
                     [_times, lambda n, generator: losses.flow_time(n, "logit-normal", generator)],
                     [(form, lambda *a, form=form: _times(*a, form=form))
                      for form in ("uniform", "sigmoid of uniform", "no sigmoid", "global generator", "wide", "shifted",
                                   "few")]
                     + [("a list", lambda *a: _times(*a).tolist())]),
    "euler_step": (checks.check_euler_step, [_euler],
                   [(form, lambda *a, form=form: _euler(*a, form=form))
                    for form in ("minus", "end time", "velocity", "no h", "twice")]),
    "heun_step": (checks.check_heun_step, [_heun, _heun_via_package],
                  [(form, lambda *a, form=form: _heun(*a, form=form))
                   for form in ("euler", "second at t", "second at x", "no half", "midpoint", "only second",
                                "three calls")]
                  + [("minus", _heun_minus), ("euler for heun", _euler)]),
}

(test_right_answers_pass, test_wrong_answers_fail_with_a_hint,
 test_unfinished_answer_says_not_done) = verdict_tests(CASES)


# ------------------------------------------------------------------ the hints name the mistake
@pytest.mark.parametrize("check, answer, words", [
    (checks.check_straight_path, lambda *a: _path(*a, form="backwards"), "ran it backwards"),
    (checks.check_straight_path, lambda *a: _path(*a, form="square roots"), "lesson 11's curved path"),
    (checks.check_straight_path, lambda *a: _path(*a, form="v sign"), "not x0 - eps"),
    (checks.check_straight_path, lambda *a: _path(*a, form="v is eps"), "not the noise eps itself"),
    (checks.check_straight_path, lambda *a: _path(*a, form="v times t"), "without a factor t"),
    (checks.check_straight_path, _path_one_time, "its own time"),
    (checks.check_straight_path, _path_images_only, "not for 2-D points"),
    (checks.check_straight_path, _path_images_only_crash, "not for 2-D points"),
    (checks.check_straight_path, _path_in_place, "in place"),
    (checks.check_sample_times, lambda *a: _times(*a, form="uniform"), "uniform on (0, 1)"),
    (checks.check_sample_times, lambda *a: _times(*a, form="sigmoid of uniform"), "squashed a uniform draw"),
    (checks.check_sample_times, lambda *a: _times(*a, form="no sigmoid"), "returned z itself"),
    (checks.check_sample_times, lambda *a: _times(*a, form="global generator"), "draw from the generator"),
    (checks.check_sample_times, lambda *a: _times(*a, form="wide"), "quantiles"),
    (checks.check_euler_step, lambda *a: _euler(*a, form="minus"), "do not subtract"),
    (checks.check_euler_step, lambda *a: _euler(*a, form="end time"), "where the step starts"),
    (checks.check_euler_step, lambda *a: _euler(*a, form="velocity"), "you returned the velocity"),
    (checks.check_euler_step, lambda *a: _euler(*a, form="twice"), "called it 2 times"),
    (checks.check_heun_step, lambda *a: _heun(*a, form="euler"), "you returned Euler's guess"),
    (checks.check_heun_step, lambda *a: _heun(*a, form="second at t"), "at the END of the step"),
    (checks.check_heun_step, lambda *a: _heun(*a, form="second at x"), "at Euler's guess"),
    (checks.check_heun_step, lambda *a: _heun(*a, form="no half"), "average the two slopes"),
    (checks.check_heun_step, lambda *a: _heun(*a, form="midpoint"), "midpoint method"),
    (checks.check_heun_step, lambda *a: _heun(*a, form="three calls"), "called it 3 times"),
])
def test_hint_names_the_mistake(check, answer, words, capsys):
    ok, out = _run(check, answer, capsys)
    assert ok is False and words in out, out


def test_checks_leave_the_global_generator_alone(capsys):
    state = torch.random.get_rng_state()
    assert checks.check_straight_path(_path) and checks.check_sample_times(_times)
    assert checks.check_euler_step(_euler) and checks.check_heun_step(_heun)
    assert torch.equal(torch.random.get_rng_state(), state)
    capsys.readouterr()

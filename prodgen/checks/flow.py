"""Checks for lesson 13 (flow matching): the straight path and its velocity target, the logit-normal time
sampler, and one Euler and one Heun step of the ODE solver.

Each check compares the answer with the formula on small random tensors and, when they differ, tries the usual
mistakes (the path run backwards, lesson 11's square roots, the velocity's sign, a uniform instead of a
logit-normal draw, Heun's second slope taken at the wrong place...) to say which one was made. The checks use
their own random generators and leave torch's global one as they found it.
"""
from __future__ import annotations

import math

from prodgen.checks._core import _check, _expect, _first_match, _near, _tensor_like, _torch

__all__ = ["check_straight_path", "check_sample_times", "check_euler_step", "check_heun_step"]


# ------------------------------------------------------------------ the straight path
def _path_cases():
    """(x0, eps, t) for a batch of images (N x 3 x 4 x 4) and for a batch of 2-D points (N x 2)."""
    torch = _torch()
    gen = torch.Generator().manual_seed(130)
    images = (torch.rand(5, 3, 4, 4, generator=gen) * 2 - 1, torch.randn(5, 3, 4, 4, generator=gen),
              torch.tensor([0.3, 0.0, 0.1, 0.8, 1.0]))
    points = (torch.randn(6, 2, generator=gen) * 0.3 + 2, torch.randn(6, 2, generator=gen),
              torch.tensor([0.35, 0.05, 0.5, 0.6, 0.9, 0.99]))
    return {"images (N x 3 x 4 x 4)": images, "2-D points (N x 2)": points}


def _path_mistakes(x, e, t) -> dict:
    """Known wrong x_t, each with the message that names the mistake."""
    one = t.flatten()[0]
    return {
        "the path starts at the photo: x_t = (1 - t) x0 + t eps (t = 0 is the photo, t = 1 pure noise); you ran it "
        "backwards": t * x + (1 - t) * e,
        "a straight line weighs the ends by (1 - t) and t; the square roots belong to lesson 11's curved path":
            (1 - t).sqrt() * x + t.sqrt() * e,
        "every row has its own time: reshape t to one value per row, not one time for the whole batch":
            (1 - one) * x + one * e,
        "you left out the noise: x_t = (1 - t) x0 + t eps": (1 - t) * x,
    }


def _velocity_mistakes(x, e, t) -> dict:
    return {
        "the velocity points from the photo (t = 0) to the noise (t = 1): v = eps - x0, not x0 - eps": x - e,
        "the velocity is d x_t / dt = eps - x0, not the noise eps itself (that is what lesson 11's "
        "epsilon-prediction learns)": e,
        "on a straight line the velocity is the same at every t: v = eps - x0, without a factor t": t * (e - x),
        "the velocity is eps - x0 (the derivative of x_t by t), not x_t": (1 - t) * x + t * e,
    }


NOT_2D = ("it works for images but not for 2-D points (N x 2): reshape t with "
          "t.reshape(len(t), *[1] * (x0.dim() - 1)) so it fits any number of dimensions")


def _path_output(straight_path, x0, eps, t, what: str):
    """The answer's ``(x_t, v)`` for one case, in float64; an answer that only fits images fails with a hint."""
    torch = _torch()
    copies = (x0.clone(), eps.clone(), t.clone())
    points = what.startswith("2-D")
    with torch.random.fork_rng(devices=[]):
        try:
            out = straight_path(x0, eps, t)
        except (RuntimeError, IndexError, ValueError):
            if points:
                _expect(False, NOT_2D)
            raise
    _expect(all(torch.equal(a, b) for a, b in zip((x0, eps, t), copies)),
            "your function changed its inputs in place; compute new tensors instead")
    _expect(isinstance(out, (tuple, list)) and len(out) == 2,
            f"straight_path should return two tensors (x_t, v), got {type(out).__name__}")
    if points and isinstance(out[0], torch.Tensor) and tuple(out[0].shape) != tuple(x0.shape):
        _expect(False, NOT_2D)
    return _tensor_like(out[0], x0, f"x_t for {what}"), _tensor_like(out[1], x0, f"v for {what}")


@_check("straight path", "t = t.reshape(len(t), *[1] * (x0.dim() - 1))  (one time per row); "
        "x_t = (1 - t) * x0 + t * eps; v = eps - x0; return x_t, v")
def check_straight_path(straight_path) -> None:
    """Lesson 13: ``straight_path(x0, eps, t) -> (x_t, v)`` with ``x_t = (1 - t) x0 + t eps`` and ``v = eps - x0``,
    one time per row, for images and for 2-D points alike."""
    for what, (x0, eps, t) in _path_cases().items():
        x_t, v = _path_output(straight_path, x0, eps, t, what)
        tt = t.double().reshape((len(t),) + (1,) * (x0.dim() - 1))
        x, e = x0.double(), eps.double()
        want_x, want_v = (1 - tt) * x + tt * e, e - x
        if not _near(x_t, want_x):
            _first_match(x_t, _path_mistakes(x, e, tt))
            worst = float((x_t - want_x).abs().max())
            _expect(False, f"for {what}, x_t differs from (1 - t) x0 + t eps by up to {worst:.4f}")
        if not _near(v, want_v):
            _first_match(v, _velocity_mistakes(x, e, tt))
            worst = float((v - want_v).abs().max())
            _expect(False, f"for {what}, v differs from eps - x0 by up to {worst:.4f}")


# ------------------------------------------------------------------ logit-normal times
def _normal_quantile(q: float) -> float:
    """The standard normal's quantile (inverse CDF) at ``q``."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@_check("logit-normal times", "z = torch.randn(n, generator=generator); return torch.sigmoid(z)  "
        "(a normal draw squashed into (0, 1))")
def check_sample_times(sample_times) -> None:
    """Lesson 13: ``sample_times(n, generator) -> n`` times ``sigmoid(z)``, ``z ~ N(0, 1)`` drawn from
    ``generator``: strictly inside (0, 1), crowded around 0.5, the same for the same seed."""
    torch = _torch()
    n = 20_000

    def draw(seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1000 + seed)  # a different global state each call: the generator must decide
            return sample_times(n, torch.Generator().manual_seed(131))

    out = draw(0)
    _expect(isinstance(out, torch.Tensor), f"sample_times should return a tensor, got {type(out).__name__}")
    _expect(tuple(out.shape) == (n,), f"sample_times({n}, generator) should return {n} times, shape ({n},), "
            f"got {tuple(out.shape)}")
    _expect(out.is_floating_point() and bool(torch.isfinite(out).all()),
            "the times should be finite floating-point numbers")
    times = out.detach().double()
    z = torch.randn(n, generator=torch.Generator().manual_seed(131)).double()
    if not bool(((times > 0) & (times < 1)).all()):
        _first_match(times, {"you returned z itself: squash it into (0, 1) with torch.sigmoid(z)": z})
        _expect(False, f"every time should lie strictly between 0 and 1; yours range from {float(times.min()):.3f} "
                f"to {float(times.max()):.3f}")
    _expect(torch.equal(out, draw(1)), "two calls with generators of the same seed gave different times: draw "
            "from the generator you are given (torch.randn(n, generator=generator))")
    got = torch.quantile(times, torch.tensor(QUANTILES, dtype=torch.float64))
    want = torch.tensor([1 / (1 + math.exp(-_normal_quantile(q))) for q in QUANTILES], dtype=torch.float64)
    if float((got - want).abs().max()) < 0.015:
        return
    uniform_like = float((got - torch.tensor(QUANTILES, dtype=torch.float64)).abs().max()) < 0.015
    _expect(not uniform_like, "your times are uniform on (0, 1); logit-normal times are sigmoid(z) with z drawn "
            "from a standard NORMAL (torch.randn), so most of them fall near 0.5")
    sig_uniform = torch.tensor([1 / (1 + math.exp(-q)) for q in QUANTILES], dtype=torch.float64)
    _expect(float((got - sig_uniform).abs().max()) > 0.015, "you squashed a uniform draw (torch.rand): draw z "
            "from the standard normal, torch.randn(n, generator=generator), then torch.sigmoid(z)")
    shown = ", ".join(f"{q:.0%}: {g:.3f} (want {w:.3f})" for q, g, w in zip(QUANTILES, got.tolist(), want.tolist()))
    _expect(False, f"the spread of your times is not that of sigmoid(N(0, 1)); quantiles {shown}")


# ------------------------------------------------------------------ one solver step
def _field(calls: list):
    """A velocity field ``field(x, t: float)`` that depends on x (non-linearly) and on t, counting its calls."""
    torch = _torch()

    def field(x, t):
        calls.append(float(t))
        return torch.sin(x) * (1.0 + float(t)) - 0.5 * x + float(t) ** 2

    return field


def _solver_case():
    torch = _torch()
    gen = torch.Generator().manual_seed(132)
    return torch.randn(4, 3, 2, 2, generator=gen), 0.75, -0.25  # x at t = 0.75, a step of h = -0.25 to t = 0.5


def _call_step(step, x, t, h):
    torch = _torch()
    calls, copy = [], x.clone()
    with torch.random.fork_rng(devices=[]):
        out = step(_field(calls), x, t, h)
    _expect(torch.equal(x, copy), "your step changed x in place; compute a new tensor instead")
    return out, calls


def _f(x, t):
    torch = _torch()
    return torch.sin(x) * (1.0 + t) - 0.5 * x + t ** 2


@_check("Euler step", "one evaluation of the field: return x + h * field(x, t)  (h < 0: time runs from 1 to 0)")
def check_euler_step(euler_step) -> None:
    """Lesson 13: ``euler_step(field, x, t, h) -> x + h * field(x, t)``, one evaluation of ``field(x, t)``."""
    x, t, h = _solver_case()
    out, calls = _call_step(euler_step, x, t, h)
    got = _tensor_like(out, x, "the Euler step")
    xd = x.double()
    want = xd + h * _f(xd, t)
    if not _near(got, want):
        _first_match(got, {
            "move WITH the field: x + h * field(x, t); h is already negative (time runs from 1 to 0), so do not "
            "subtract": xd - h * _f(xd, t),
            "Euler takes the slope where the step starts, field(x, t), not at the end time t + h":
                xd + h * _f(xd, t + h),
            "you returned the velocity; the step returns the new state x + h * v": _f(xd, t),
            "the step is h times the velocity: x + h * field(x, t)": xd + _f(xd, t),
        })
        worst = float((got - want).abs().max())
        _expect(False, f"from t = {t} with h = {h} your step differs from x + h * field(x, t) by up to {worst:.4f}")
    _expect(len(calls) == 1, f"Euler evaluates the field once per step; yours called it {len(calls)} times")


@_check("Heun step", "v1 = field(x, t); guess = x + h * v1; v2 = field(guess, t + h); return x + h / 2 * (v1 + v2)")
def check_heun_step(heun_step) -> None:
    """Lesson 13: ``heun_step(field, x, t, h)``: Euler's step as a guess, then the average of the slopes at both
    ends, ``x + h/2 (field(x, t) + field(x + h field(x, t), t + h))``; two evaluations."""
    x, t, h = _solver_case()
    out, calls = _call_step(heun_step, x, t, h)
    got = _tensor_like(out, x, "the Heun step")
    xd = x.double()
    v1 = _f(xd, t)
    guess = xd + h * v1
    want = xd + h / 2 * (v1 + _f(guess, t + h))
    if not _near(got, want):
        _first_match(got, {
            "you returned Euler's guess; Heun then averages the slope at the start with the slope at the guess":
                guess,
            "take the second slope at the END of the step: field(guess, t + h), not field(guess, t)":
                xd + h / 2 * (v1 + _f(guess, t)),
            "take the second slope at Euler's guess x + h * v1, not at x": xd + h / 2 * (v1 + _f(xd, t + h)),
            "average the two slopes: x + h / 2 * (v1 + v2), not x + h * (v1 + v2)": xd + h * (v1 + _f(guess, t + h)),
            "that is the midpoint method (one slope at half the step); Heun averages the slopes at both ends":
                xd + h * _f(xd + h / 2 * v1, t + h / 2),
            "move WITH the field: h is already negative, so x + h / 2 * (v1 + v2), not minus":
                xd - h / 2 * (_f(xd, t) + _f(xd - h * v1, t + h)),
            "average the two slopes with equal weights (1/2 each), and take the second one at the guess":
                xd + h * _f(guess, t + h),
        })
        worst = float((got - want).abs().max())
        _expect(False, f"from t = {t} with h = {h} your step differs from Heun's by up to {worst:.4f}")
    _expect(len(calls) == 2, f"Heun evaluates the field twice per step; yours called it {len(calls)} times")
    _expect(abs(calls[0] - t) < 1e-9 and abs(calls[1] - (t + h)) < 1e-9,
            f"the two slopes are taken at t and at t + h; yours at {', '.join(f'{c:g}' for c in calls)}")

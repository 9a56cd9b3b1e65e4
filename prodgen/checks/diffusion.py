"""Checks for lesson 11 (diffusion): the forward process in closed form (``q_sample``), one deterministic DDIM step
from a predicted ``v``, and the classifier-free guided estimate.

Each check compares the answer with the formula on small random tensors and, when they differ, tries the usual
mistakes (variances instead of standard deviations, swapped noise levels, ``v`` read as the noise, the papers'
``(1 + w)`` convention...) to say which one was made. The checks use their own random generator and leave torch's
global one as they found it.
"""
from __future__ import annotations

import math

from prodgen.checks._core import _check, _expect, _first_match, _near, _tensor_like, _torch

__all__ = ["check_q_sample", "check_ddim_step", "check_guided"]


# ------------------------------------------------------------------ q_sample
@_check("q_sample", "a = abar[t].view(-1, 1, 1, 1)  (one noise level per image); "
        "return a.sqrt() * x0 + (1 - a).sqrt() * noise")
def check_q_sample(q_sample) -> None:
    """Lesson 11: ``q_sample(x0, t, noise, abar) -> x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``, one step
    ``t`` per image."""
    torch = _torch()
    from prodgen.models.diffusion import cosine_schedule

    gen = torch.Generator().manual_seed(110)
    x0 = torch.rand(6, 3, 4, 4, generator=gen) * 2 - 1
    noise = torch.randn(6, 3, 4, 4, generator=gen)
    t = torch.tensor([0, 7, 150, 480, 870, 999])
    abar = cosine_schedule().float()
    copies = (x0.clone(), noise.clone(), t.clone(), abar.clone())
    with torch.random.fork_rng(devices=[]):
        out = q_sample(x0, t, noise, abar)
    _expect(all(torch.equal(a, b) for a, b in zip((x0, noise, t, abar), copies)),
            "your function changed its inputs in place; compute a new tensor instead")
    got = _tensor_like(out, x0, "q_sample's answer")
    a = abar[t].double().view(-1, 1, 1, 1)
    x, e = x0.double(), noise.double()
    want = a.sqrt() * x + (1 - a).sqrt() * e
    if _near(got, want):
        return
    shifted = {k: abar[(t + k).clamp(0, len(abar) - 1)].double().view(-1, 1, 1, 1) for k in (-1, 1)}
    _first_match(got, {
        "use the square roots: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (abar_t and 1 - abar_t are the "
        "variances of the two parts, the image is scaled by their square roots)": a * x + (1 - a) * e,
        "the photo gets sqrt(abar_t) and the noise sqrt(1 - abar_t), not the other way round (abar_t is near 1 at "
        "the start: almost all photo)": (1 - a).sqrt() * x + a.sqrt() * e,
        "you left out the noise: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) * noise": a.sqrt() * x,
        "the noise is scaled by sqrt(1 - abar_t): with a plain + noise the total variance grows instead of staying "
        "near 1": a.sqrt() * x + e,
        "index the schedule with t itself, abar[t] (abar[0] is the first noisy step), not t - 1":
            shifted[-1].sqrt() * x + (1 - shifted[-1]).sqrt() * e,
        "index the schedule with t itself, abar[t], not t + 1": shifted[1].sqrt() * x + (1 - shifted[1]).sqrt() * e,
        "every image has its own step: use abar[t] (a vector), reshaped to N x 1 x 1 x 1, not one number for the "
        "whole batch": abar[t[0]].double().sqrt() * x + (1 - abar[t[0]].double()).sqrt() * e,
    })
    worst = float((got - want).abs().max())
    _expect(False, f"x_t differs from sqrt(abar_t) x0 + sqrt(1 - abar_t) noise by up to {worst:.4f}")


# ------------------------------------------------------------------ one DDIM step
@_check("DDIM step", "x0 = sqrt(a_t) * x_t - sqrt(1 - a_t) * v_hat; eps = sqrt(1 - a_t) * x_t + sqrt(a_t) * v_hat; "
        "return sqrt(a_s) * x0 + sqrt(1 - a_s) * eps  (math.sqrt: abar_t, abar_s are numbers)")
def check_ddim_step(ddim_step) -> None:
    """Lesson 11: ``ddim_step(x_t, v_hat, abar_t, abar_s) -> x_s``: split ``v_hat`` into the predicted photo and
    noise at level ``abar_t``, then put them together again at the lower noise level ``abar_s`` (no new noise)."""
    torch = _torch()
    gen = torch.Generator().manual_seed(111)
    x0 = torch.rand(4, 3, 4, 4, generator=gen) * 2 - 1
    eps = torch.randn(4, 3, 4, 4, generator=gen)
    a_t, a_s = 0.3, 0.75
    x_t = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * eps
    v_true = math.sqrt(a_t) * eps - math.sqrt(1 - a_t) * x0
    v_hat = v_true + 0.3 * torch.randn(v_true.shape, generator=gen)  # an imperfect prediction
    copies = (x_t.clone(), v_hat.clone())

    def call(v, at, as_):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(112)
            return ddim_step(x_t, v, at, as_)

    got = _tensor_like(call(v_hat, a_t, a_s), x_t, "ddim_step's answer")
    _expect(torch.equal(x_t, copies[0]) and torch.equal(v_hat, copies[1]),
            "your function changed x_t or v_hat in place; compute new tensors instead")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(113)
        again = ddim_step(x_t, v_hat, a_t, a_s)
    _expect(isinstance(again, torch.Tensor) and _near(got, again.detach().double(), 1e-6),
            "two calls with the same inputs gave different results: a DDIM step (eta = 0) adds no new noise")

    def step(v, at, as_, x=x_t):
        x, v = x.double(), v.double()
        x0_hat = math.sqrt(at) * x - math.sqrt(1 - at) * v
        eps_hat = math.sqrt(1 - at) * x + math.sqrt(at) * v
        return math.sqrt(as_) * x0_hat + math.sqrt(1 - as_) * eps_hat

    want = step(v_hat, a_t, a_s)
    if not _near(got, want):
        x, v = x_t.double(), v_hat.double()
        x0_hat = math.sqrt(a_t) * x - math.sqrt(1 - a_t) * v
        eps_hat = math.sqrt(1 - a_t) * x + math.sqrt(a_t) * v
        x0_eps = (x - math.sqrt(1 - a_t) * v) / math.sqrt(a_t)  # v read as the noise
        _first_match(got, {
            "the network predicts v, not the noise: x0_hat = sqrt(a_t) x_t - sqrt(1 - a_t) v_hat and eps_hat = "
            "sqrt(1 - a_t) x_t + sqrt(a_t) v_hat (v = sqrt(a) eps - sqrt(1 - a) x0)":
                math.sqrt(a_s) * x0_eps + math.sqrt(1 - a_s) * v,
            "you returned the predicted photo x0_hat; the step goes to the noise level abar_s: "
            "sqrt(a_s) x0_hat + sqrt(1 - a_s) eps_hat": x0_hat,
            "the step goes DOWN to abar_s: split v at the current level abar_t, rebuild at abar_s (you swapped them)":
                step(v_hat, a_s, a_t),
            "check the signs: x0_hat = sqrt(a_t) x_t - sqrt(1 - a_t) v_hat, eps_hat = sqrt(1 - a_t) x_t + sqrt(a_t) "
            "v_hat": math.sqrt(a_s) * (math.sqrt(a_t) * x + math.sqrt(1 - a_t) * v)
            + math.sqrt(1 - a_s) * (math.sqrt(1 - a_t) * x - math.sqrt(a_t) * v),
            "use square roots when rebuilding: sqrt(a_s) x0_hat + sqrt(1 - a_s) eps_hat":
                a_s * x0_hat + (1 - a_s) * eps_hat,
            "rebuild with the predicted noise eps_hat = sqrt(1 - a_t) x_t + sqrt(a_t) v_hat, not with v_hat itself":
                math.sqrt(a_s) * x0_hat + math.sqrt(1 - a_s) * v,
        })
        worst = float((got - want).abs().max())
        _expect(False, f"from abar_t = {a_t} to abar_s = {a_s} x_s differs from the DDIM step by up to {worst:.4f}")
    exact = _tensor_like(call(v_true, a_t, a_s), x_t, "ddim_step's answer")
    _expect(_near(exact, math.sqrt(a_s) * x0.double() + math.sqrt(1 - a_s) * eps.double()),
            "with the exact v the step should land on sqrt(abar_s) x0 + sqrt(1 - abar_s) eps, the same photo and "
            "noise at the lower level")
    last = _tensor_like(call(v_hat, a_t, 1.0), x_t, "ddim_step's answer")
    _expect(_near(last, step(v_hat, a_t, 1.0)), "the last step (abar_s = 1) should return the predicted photo "
            "x0_hat itself")


# ------------------------------------------------------------------ guidance
@_check("guided estimate", "return pred_u + w * (pred_c - pred_u)  (w = 0: unconditional, w = 1: conditional)")
def check_guided(guided) -> None:
    """Lesson 11: ``guided(pred_c, pred_u, w) -> pred_u + w (pred_c - pred_u)``, the course's convention."""
    torch = _torch()
    gen = torch.Generator().manual_seed(114)
    c = torch.randn(3, 3, 4, 4, generator=gen)
    u = torch.randn(3, 3, 4, 4, generator=gen)
    copies = (c.clone(), u.clone())
    for w in (2.5, 7.0, 0.0, 1.0):
        got = _tensor_like(guided(c, u, w), c, "guided's answer")
        _expect(torch.equal(c, copies[0]) and torch.equal(u, copies[1]),
                "your function changed pred_c or pred_u in place; compute a new tensor instead")
        cd, ud = c.double(), u.double()
        want = ud + w * (cd - ud)
        if _near(got, want):
            continue
        _first_match(got, {
            f"at w = {w:g} you computed (1 + w) pred_c - w pred_u, the papers' convention; in this course w = 1 is "
            "the plain conditional model, so the estimate is pred_u + w (pred_c - pred_u)": (1 + w) * cd - w * ud,
            f"at w = {w:g}: start from the unconditional prediction and move TOWARDS the conditional one: "
            "pred_u + w (pred_c - pred_u), not pred_u + w (pred_u - pred_c)": ud + w * (ud - cd),
            f"at w = {w:g}: the guided estimate is pred_u + w (pred_c - pred_u); you left out pred_u": w * (cd - ud),
            f"at w = {w:g} you returned pred_c unchanged: guidance moves from pred_u along (pred_c - pred_u), "
            "w times as far": cd,
            f"at w = {w:g} you returned pred_u unchanged: guidance moves from pred_u along (pred_c - pred_u), "
            "w times as far": ud,
            f"at w = {w:g}: pred_u + w (pred_c - pred_u), not w pred_c + pred_u": w * cd + ud,
        })
        worst = float((got - want).abs().max())
        which = {0.0: " (w = 0 must give pred_u exactly)", 1.0: " (w = 1 must give pred_c exactly)"}.get(w, "")
        _expect(False, f"at w = {w:g} your estimate differs from pred_u + w (pred_c - pred_u) "
                f"by up to {worst:.4f}{which}")

"""Checks for lesson 09 (control in latent space): slerp, truncated noise, an attribute direction."""
from __future__ import annotations

import math

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_slerp", "check_truncated_noise", "check_attribute_direction"]


def _tensor(value, what: str, shape):
    torch = _torch()
    _expect(isinstance(value, torch.Tensor), f"{what} should return a tensor, got {type(value).__name__}")
    _expect(tuple(value.shape) == tuple(shape), f"{what} should return shape {tuple(shape)}, got {tuple(value.shape)}")
    _expect(bool(torch.isfinite(value).all()), f"{what} returned NaN or infinite values")
    return value.float()


@_check("slerp", "omega = arccos(<z0, z1> / (|z0| |z1|)); "
        "return (sin((1 - t) omega) z0 + sin(t omega) z1) / sin(omega), "
        "with t as a column (N x 1) so each row gets its own weight")
def check_slerp(slerp) -> None:
    """Lesson 09: ``slerp(z0, z1, t)`` for vectors ``z0, z1`` (D) and weights ``t`` (N) -> N x D."""
    torch = _torch()
    gen = torch.Generator().manual_seed(9)
    z0, z1 = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    t = torch.linspace(0, 1, 7)
    out = _tensor(slerp(z0, z1, t), "slerp(z0, z1, t)", (7, 64))
    _expect(torch.allclose(out[0], z0, atol=1e-4) and torch.allclose(out[-1], z1, atol=1e-4),
            "t = 0 should give z0 and t = 1 should give z1")
    lerp = (1 - t)[:, None] * z0 + t[:, None] * z1
    _expect(not torch.allclose(out, lerp, atol=1e-3), "that is the straight line (lerp); slerp follows the arc")
    omega = torch.arccos((z0 @ z1) / (z0.norm() * z1.norm()))
    want = (torch.sin((1 - t) * omega)[:, None] * z0 + torch.sin(t * omega)[:, None] * z1) / torch.sin(omega)
    _expect(torch.allclose(out, want, atol=1e-4),
            f"the midpoint should be {want[3, :3].tolist()} ... (first 3 entries), "
            f"got {out[3, :3].tolist()}")
    # on an arc between two vectors of equal norm the norm stays constant
    a, b = z0 / z0.norm() * 10, z1 / z1.norm() * 10
    norms = _tensor(slerp(a, b, t), "slerp(a, b, t)", (7, 64)).norm(dim=1)
    _expect(torch.allclose(norms, torch.full_like(norms, 10.0), atol=1e-3),
            "between two vectors of norm 10 every point should have norm 10, "
            f"got {[round(v, 2) for v in norms.tolist()]}")


@_check("truncated noise", "draw torch.randn(n, dim, generator=generator); while any |z| > t, re-draw exactly those "
        "entries (z[outside] = torch.randn(int(outside.sum()), generator=generator)); do not clamp")
def check_truncated_noise(truncated_noise) -> None:
    """Lesson 09: ``truncated_noise(n, dim, t, generator)``: N(0, 1) entries re-drawn until all |z| <= t."""
    torch = _torch()
    a = 1.5
    z = _tensor(truncated_noise(4000, 50, a, torch.Generator().manual_seed(0)), f"truncated_noise(4000, 50, {a}, g)",
                (4000, 50))
    _expect(float(z.abs().max()) <= a + 1e-6,
            f"every entry should satisfy |z| <= {a}, the largest is {z.abs().max():.3f}")
    at_edge = float((z.abs() > a - 1e-6).float().mean())
    _expect(at_edge < 0.001, f"{at_edge:.0%} of the entries sit exactly at +-{a}: clamping piles mass on the edge; "
            "re-draw the entries that fall outside instead")
    # a standard normal truncated to [-a, a] has variance 1 - 2 a phi(a) / (2 Phi(a) - 1)
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(a / math.sqrt(2)))
    want = 1 - 2 * a * phi / (2 * big_phi - 1)
    got = float(z.var())
    _expect(abs(got - want) < 0.01, f"the entries should be N(0, 1) cut to [-{a}, {a}], variance {want:.3f}; "
            f"got {got:.3f}" + (f" (uniform noise has {a * a / 3:.3f})" if abs(got - a * a / 3) < 0.01 else ""))
    _expect(abs(float(z.mean())) < 0.01, f"the entries should have mean 0, got {float(z.mean()):.4f}")
    same = truncated_noise(100, 8, 1.0, torch.Generator().manual_seed(3))
    again = truncated_noise(100, 8, 1.0, torch.Generator().manual_seed(3))
    _expect(torch.equal(same, again), "draw from the generator you are given, so the same seed gives the same noise")


@_check("attribute direction", "fit a logistic regression p(has | z) = sigmoid(<w, z> + b) by gradient descent "
        "(F.binary_cross_entropy_with_logits), then return w / w.norm()")
def check_attribute_direction(attribute_direction) -> None:
    """Lesson 09: ``attribute_direction(z, has)`` -> the unit normal of a linear boundary separating ``has``."""
    torch = _torch()
    gen = torch.Generator().manual_seed(4)
    dim = 20
    true = torch.randn(dim, generator=gen)
    true = true / true.norm()
    z = torch.randn(600, dim, generator=gen)
    has = (z @ true + 0.3 * torch.randn(600, generator=gen)) > 1.0  # a rare attribute, about 17 %
    from prodgen.apps.latent import one_thread

    with one_thread():  # a small fit: one thread is much faster on a busy machine
        w = _tensor(attribute_direction(z, has), "attribute_direction(z, has)", (dim,))
    _expect(abs(float(w.norm()) - 1) < 1e-3, f"return a unit vector (norm 1), got norm {float(w.norm()):.3f}")
    cos = float(w @ true)
    _expect(cos > -0.5, f"the direction points away from the attribute (cosine {cos:.2f} with the true normal): "
            "moving along it should make the attribute *more* likely")
    mean_diff = z[has].mean(0) - z[~has].mean(0)
    _expect(cos > 0.9, f"cosine with the true normal is only {cos:.2f} (the difference of class means gets "
            f"{float(mean_diff @ true / mean_diff.norm()):.2f})")

"""Control in a generator's latent space (lesson 09): paths between codes, and attribute directions.

- :func:`slerp`: spherical interpolation between two noise vectors. A Gaussian ``z`` in ``d`` dimensions has
  norm close to ``sqrt(d)``; the straight line between two of them passes through codes of norm about
  ``sqrt(d / 2)``, which the generator never saw while training. The arc keeps the norm.
- :func:`attribute_direction`: the unit normal of a logistic-regression boundary between codes whose images
  show an attribute and codes whose images do not (labels from the judge); moving ``z`` along it is
  "control" for an unconditional generator (InterFaceGAN, Shen et al., 2020).
- :func:`edit_along`: the success / what-else-changed measurement of such a move.

- :func:`interpolate`: the path between two images' latents (``ImageModel.latents``): the studio's blend.

Truncated noise is ``prodgen.models.protocol.noise``. Used by lesson 09 and the studio.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.nn import functional as F

__all__ = ["lerp", "slerp", "interpolate", "attribute_direction", "edit_along", "one_thread"]


@contextmanager
def one_thread():
    """Torch on one thread inside the block: a small fit is 10-100x faster so on a busy machine, where extra
    threads spin while they wait for a core (the same reason as ``metrics``' FID)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight line: ``(1 - t) z0 + t z1`` for each weight in ``t`` (N) -> N x D."""
    t = torch.as_tensor(t, dtype=z0.dtype)[:, None]
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The arc: ``(sin((1 - t) w) z0 + sin(t w) z1) / sin(w)``, ``w`` the angle between ``z0`` and ``z1``;
    N x D for weights ``t`` (N). Falls back to :func:`lerp` for (nearly) parallel vectors."""
    t = torch.as_tensor(t, dtype=z0.dtype)[:, None]
    cos = torch.clamp((z0 @ z1) / (z0.norm() * z1.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if float(torch.sin(omega)) < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def interpolate(a: dict, b: dict, steps: int = 8) -> dict:
    """``steps`` latents from ``a`` to ``b``, two one-row dicts from an ``ImageModel``'s ``latents``: the noise
    ``"z"`` along the arc (:func:`slerp`: a Gaussian code's norm), every other input (a condition: a soft
    request or a sentence vector) along the straight line. The first and last rows are ``a`` and ``b``
    exactly, and an input the two share stays exactly the same, so its images keep what the two agree on."""
    if set(a) != set(b):
        raise ValueError(f"cannot blend latents with different inputs: {sorted(a)} vs {sorted(b)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be a whole number >= 2 (the two ends included), got {steps!r}")
    t = torch.linspace(0, 1, steps)
    out = {}
    for key in a:
        x, y = torch.as_tensor(a[key]).reshape(-1).float(), torch.as_tensor(b[key]).reshape(-1).float()
        if x.shape != y.shape:
            raise ValueError(f"cannot blend {key!r} of sizes {x.numel()} and {y.numel()}")
        path = (slerp if key == "z" else lerp)(x, y, t)
        path = torch.where(x == y, x, path)  # what both share stays exact
        path[0], path[-1] = x, y  # the ends are the two images, not a rounding of them
        out[key] = path
    return out


def attribute_direction(z: torch.Tensor, has: torch.Tensor, steps: int = 300, lr: float = 0.05) -> torch.Tensor:
    """Unit normal (D) of a logistic-regression boundary ``sigmoid(<w, z> + b)`` fitted to ``has`` (N bools)
    on codes ``z`` (N x D), by Adam on the logistic loss; points towards the attribute."""
    z = z.detach().float()
    target = torch.as_tensor(has).float()
    if target.min() == target.max():
        raise ValueError("attribute_direction needs codes with and without the attribute")
    w = torch.zeros(z.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    with torch.enable_grad(), one_thread():
        for _ in range(steps):
            loss = F.binary_cross_entropy_with_logits(z @ w + b, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    w = w.detach()
    return w / w.norm()


@torch.no_grad()
def edit_along(decode, judge, z: torch.Tensor, direction: torch.Tensor, attribute: int, value: int,
               steps=(0, 1, 2, 3, 4, 6)) -> list[dict]:
    """For each step size ``a``: images ``decode(z + a * direction)`` judged; ``success`` = share showing
    ``value`` for attribute column ``attribute``, ``kept`` = share of the other attributes the judge still
    reads as at ``a = 0``."""
    base = judge.predict(decode(z))
    others = [j for j in range(base.shape[1]) if j != attribute]
    rows = []
    for a in steps:
        seen = judge.predict(decode(z + a * direction))
        rows.append({"step": float(a), "success": float((seen[:, attribute] == value).float().mean()),
                     "kept": float((seen[:, others] == base[:, others]).float().mean())})
    return rows

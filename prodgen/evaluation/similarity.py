"""Paired image similarity: SSIM, PSNR (optionally inside a region), and a judge's features in LPIPS's role.

- :func:`ssim` (Wang et al., 2004): per channel, an 11 x 11 Gaussian window (sigma 1.5), ``K1 = 0.01``,
  ``K2 = 0.03``, weighted (population) statistics, the map over every position where the window fits inside
  the image ("valid", as the reference MATLAB code), averaged over positions and channels. 1 for identical
  images; symmetric.
- :func:`psnr`: ``10 log10(255^2 / MSE)`` over the pixels a mask selects (all by default), pooled over the
  batch; ``inf`` when they are identical.
- :func:`judge_distance`: LPIPS's idea (Zhang et al., 2018) with a course judge as the network and no learned
  weights: each block's feature map normalised to unit length per position across channels, the squared
  difference summed over channels and averaged over positions, then averaged over the blocks. 0 for identical
  images.

Used by lesson 15 (virtual try-on: ``prodgen.evaluation.tryon``).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["gaussian_window", "ssim_map", "ssim", "psnr", "judge_distance"]

WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The 1-d Gaussian weights (float64, summing to 1) whose outer product is SSIM's window."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _as_batch(a, b, name: str = "images") -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape or a.ndim not in (3, 4):
        raise ValueError(f"{name} must be two tensors of one shape, C x H x W or N x C x H x W; got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a, b = (a[None], b[None]) if a.ndim == 3 else (a, b)
    return a.double(), b.double()


def ssim_map(a, b, data_range: float = 255.0, size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The SSIM map, N x C x (H - size + 1) x (W - size + 1) (float64), of two image batches."""
    x, y = _as_batch(a, b)
    if min(x.shape[-2:]) < size:
        raise ValueError(f"SSIM's {size} x {size} window needs images at least that large, got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    g = gaussian_window(size, sigma)
    rows, cols = g.view(1, 1, size, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, size).repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, rows, groups=c), cols, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(a, b, data_range: float = 255.0) -> torch.Tensor:
    """Mean SSIM of each pair, a tensor of N values (images uint8 or floats on a ``data_range`` scale)."""
    return ssim_map(a, b, data_range).mean(dim=(1, 2, 3))


def psnr(a, b, mask=None, data_range: float = 255.0) -> float:
    """PSNR in dB over the pixels ``mask`` (N x H x W bool, or H x W) selects, pooled over the batch; ``inf`` if
    they are identical, ``nan`` if the mask selects nothing."""
    x, y = _as_batch(a, b)
    err = ((x - y) ** 2).mean(1)  # N x H x W: per pixel, over channels
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape not in (err.shape, err.shape[1:]):
            raise ValueError(f"the mask must be H x W or N x H x W like the images ({tuple(err.shape)}), got "
                             f"{tuple(mask.shape)}")
        err = err[mask.expand(err.shape)]
    if err.numel() == 0:
        return float("nan")
    mse = float(err.mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def _blocks(judge) -> list[nn.Module]:
    """The judge's convolution blocks (the trunk's ``Sequential`` children), where LPIPS taps its layers."""
    found = [m for m in judge.trunk if isinstance(m, nn.Sequential)]
    if not found:
        raise ValueError("judge_distance needs a judge whose trunk has convolution blocks (prodgen.models.judge)")
    return found


@torch.no_grad()
def judge_distance(judge, a: torch.Tensor, b: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The judge-feature distance of each pair (N values, >= 0), images uint8 or in [-1, 1] at the judge's size."""
    from prodgen.catalog.dataset import normalize

    if a.shape != b.shape:
        raise ValueError(f"judge_distance compares pairs of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    x = normalize(a) if a.dtype == torch.uint8 else a.float()
    y = normalize(b) if b.dtype == torch.uint8 else b.float()
    judge.check_size(x)
    was_training, taps = judge.training, set(map(id, _blocks(judge)))
    judge.eval()
    out = []
    for s in range(0, len(x), batch_size):
        h, total, count = torch.cat([x[s:s + batch_size], y[s:s + batch_size]]), 0.0, 0
        for module in judge.trunk:
            h = module(h)
            if id(module) in taps:
                f = h / (h.norm(dim=1, keepdim=True) + 1e-10)
                fa, fb = f.chunk(2)
                total = total + ((fa - fb) ** 2).sum(1).mean(dim=(1, 2))
                count += 1
        out.append(total / count)
    judge.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)

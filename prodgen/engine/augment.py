"""Differentiable augmentation for GAN training (DiffAugment, Zhao et al., 2020): lesson 10.

A discriminator trained on a few thousand photos memorises them: its score on held-out real photos
falls while its score on the training photos stays high, and the generator learns from a judge that
has stopped generalising. DiffAugment shows D only *augmented* images, real and generated alike, with
transformations that are **differentiable**, so the generator's gradient flows back through them.

Why both: augmenting only the real photos would teach G to draw augmented photos (shifted, with
holes). Augmenting both with the same random distribution makes D compare ``T(x)`` with ``T(G(z))``;
for these transformations ``T(p_g) = T(p_data)`` only when ``p_g = p_data``, so nothing "leaks"
into the generated images.

Only geometric transformations here: a colour shift would blur the very attribute (colour) the
conditional models are asked to control. ``translate`` moves each image by up to 1/8 of its size (zero
padding), ``cutout`` zeroes one random square of 1/4 of the side. Randomness comes from ``torch``'s
global generator (seeded by the training loop).

Used by lesson 10 and the ``cgan-stable`` recipe (``prodgen.models.cgan_stable``).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["translate", "cutout", "diff_augment", "POLICIES"]


def translate(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image of ``x`` (N x C x H x W) by a random whole number of pixels in
    ``[-ratio * size, ratio * size]`` along each axis; uncovered pixels become 0. Differentiable in ``x``."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy + sh  # N x H x 1: source row in the padded image
    cols = torch.arange(w, device=x.device)[None, None, :] + dx + sw  # N x 1 x W
    padded = F.pad(x, (sw, sw, sh, sh))  # N x C x (H + 2sh) x (W + 2sw), zeros around
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # gather -> N x C x H x W


def cutout(x: torch.Tensor, ratio: float = 0.25) -> torch.Tensor:
    """Zero one square of side ``ratio * size`` at a random place in each image (it may stick out of the
    border). Differentiable in ``x`` (a multiplication by a 0/1 mask)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (n, 1, 1), device=x.device) - sh // 2  # the square's centre is in the image
    left = torch.randint(0, w, (n, 1, 1), device=x.device) - sw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]  # 1 x H x 1
    xs = torch.arange(w, device=x.device)[None, None, :]  # 1 x 1 x W
    inside = (ys >= top) & (ys < top + sh) & (xs >= left) & (xs < left + sw)  # N x H x W
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"translation": (translate,), "cutout": (cutout,), "translation,cutout": (translate, cutout)}
"""name -> the transformations :func:`diff_augment` applies in turn."""


def diff_augment(x: torch.Tensor, policy: str = "translation,cutout") -> torch.Tensor:
    """Apply the policy's transformations (``POLICIES``) to a batch of images in [-1, 1]; each image gets
    its own random shift and hole. Pass this as ``GANSettings(augment=...)`` (``train_gan``): the loop applies it
    to every image the discriminator sees, real and generated."""
    if policy not in POLICIES:
        raise ValueError(f"unknown augmentation policy {policy!r}; valid: {', '.join(POLICIES)}")
    for transform in POLICIES[policy]:
        x = transform(x)
    return x

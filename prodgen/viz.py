"""Pictures: image grids, attribute histograms, loss curves.

Matplotlib is imported inside the functions, so ``import prodgen`` stays light.
Used by every lesson.
"""
from __future__ import annotations

import numpy as np

__all__ = ["image_grid", "show_images", "plot_counts", "plot_curves"]


def _to_uint8_hwc(images) -> np.ndarray:
    """Accept N x 3 x H x W (uint8, or float in [-1, 1]) or N x H x W x 3 arrays/tensors."""
    try:
        import torch

        if isinstance(images, torch.Tensor):
            images = images.detach().cpu()
            if images.is_floating_point():
                images = images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
            images = images.numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images N x 3 x H x W or N x H x W x 3, got shape {images.shape}")
    if images.shape[1] == 3 and images.shape[-1] != 3:
        images = images.transpose(0, 2, 3, 1)
    if images.dtype != np.uint8:
        images = np.clip((images + 1) * 127.5 if images.min() < 0 else images, 0, 255).round().astype(np.uint8)
    return images


def image_grid(images, nrow: int = 8, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile a batch of images into one ``H x W x 3`` uint8 array, ``nrow`` images per row."""
    imgs = _to_uint8_hwc(images)
    n, h, w, _ = imgs.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    grid = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, 3), pad_value, np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return grid


def show_images(images, nrow: int = 8, titles=None, title: str | None = None, scale: float = 1.0, ax=None):
    """Show a batch of images as a grid (with one small title per image if ``titles`` is given)."""
    import matplotlib.pyplot as plt

    imgs = _to_uint8_hwc(images)
    if titles is None:
        grid = image_grid(imgs, nrow)
        if ax is None:
            _, ax = plt.subplots(figsize=(scale * grid.shape[1] / 40, scale * grid.shape[0] / 40))
        ax.imshow(grid, interpolation="nearest")
        ax.axis("off")
        if title:
            ax.set_title(title)
        return ax
    ncol = min(nrow, len(imgs))
    rows = -(-len(imgs) // ncol)
    fig, axes = plt.subplots(rows, ncol, figsize=(scale * 1.6 * ncol, scale * 1.9 * rows), squeeze=False)
    for a, i in zip(axes.flat, range(rows * ncol)):
        a.axis("off")
        if i < len(imgs):
            a.imshow(imgs[i], interpolation="nearest")
            a.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return axes


def plot_counts(counts: dict[str, dict[str, int]], title: str | None = None, compare: dict | None = None,
                labels: tuple[str, str] = ("real", "generated")):
    """One bar chart per attribute: ``{attribute: {value: count}}``; ``compare`` draws a second set beside it."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(counts), figsize=(3.2 * len(counts), 2.8), squeeze=False)
    for ax, (attr, c) in zip(axes[0], counts.items()):
        x = np.arange(len(c))
        width = 0.4 if compare else 0.8
        ax.bar(x - (width / 2 if compare else 0), list(c.values()), width, label=labels[0] if compare else None)
        if compare:
            ax.bar(x + width / 2, [compare[attr].get(k, 0) for k in c], width, label=labels[1])
        ax.set_xticks(x, list(c), rotation=60, ha="right", fontsize=8)
        ax.set_title(attr)
    if compare:
        axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return axes


def plot_curves(curves: dict[str, list[float]], xlabel: str = "step", title: str | None = None, ax=None):
    """Line plot of named curves (losses, accuracies) against their index."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    for name, ys in curves.items():
        ax.plot(ys, label=name)
    ax.set_xlabel(xlabel)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax

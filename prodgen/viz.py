"""Pictures: image grids, attribute histograms, loss curves, and Chinese in every figure.

Importing this module registers the course's CJK font (a subset of Noto Sans CJK SC shipped in
``prodgen/fonts``) with matplotlib as a fallback after the default font, so Chinese titles and
labels render on any machine, offline, with no system font (:func:`setup_fonts`). Matplotlib is
imported here, never by ``import prodgen``. Image-grid titles are wrapped or shortened at word
boundaries (:func:`fit_text`). Used by every lesson.
"""
from __future__ import annotations

import os
import re

import numpy as np

from prodgen.fonts import FAMILY, FONT_FILE

__all__ = ["setup_fonts", "fit_text", "text_width", "break_units", "image_grid", "show_images", "plot_counts",
           "plot_curves"]

# CJK fonts a machine may have, tried after the shipped subset for characters it lacks (a
# catalog of your own with words the course never uses); only those installed are listed.
SYSTEM_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC",
                       "Hiragino Sans GB", "WenQuanYi Micro Hei", "SimHei", "Arial Unicode MS")


def setup_fonts() -> list[str]:
    """Register the shipped CJK font and append it to ``rcParams["font.family"]``; returns that list.

    Matplotlib (>= 3.6) draws each character with the first family in the list that has it, so
    Latin text keeps the default font and Chinese falls back to ours. Idempotent and cheap: the
    viz functions call it again in case a style sheet or ``rcdefaults()`` reset the families.
    """
    import matplotlib
    from matplotlib import font_manager

    manager = font_manager.fontManager
    if not any(entry.fname == str(FONT_FILE) for entry in manager.ttflist):
        manager.addfont(str(FONT_FILE))
    families = list(matplotlib.rcParams["font.family"])
    if FAMILY not in families:
        installed = {entry.name for entry in manager.ttflist if os.path.isfile(entry.fname)}
        extra = [name for name in SYSTEM_CJK_FAMILIES if name in installed and name not in families]
        families = families + [FAMILY] + extra
        matplotlib.rcParams["font.family"] = families
    return families


setup_fonts()  # importing prodgen.viz (every lesson's setup cell does) is enough for Chinese to render

# ----------------------------------------------------------------------------- titles that fit
# East Asian wide characters take about two Latin character widths (1 em against DejaVu Sans'
# 0.55 em average); a line break may fall between any two of them, but not before closing
# punctuation nor after opening punctuation.
_WIDE = "\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
_OPEN = "（《【「“‘(["
_CLOSE = "，。、：；！？）》】」”’…,.;:!?)]"
# A unit: spaces; or one wide character, with opening punctuation before it, closing punctuation
# after it and a one- or two-letter Latin prefix ("T恤", "U盘": one word); or a Latin word.
_UNIT = re.compile(rf"\s+|[{re.escape(_OPEN)}]*(?:(?<![^\s{_WIDE}])[^\s{_WIDE}]{{1,2}}(?=[{_WIDE}])[{_WIDE}]|[{_WIDE}]|"
                   rf"[^\s{_WIDE}]+)[{re.escape(_CLOSE)}]*|\S")
_WIDE_CHAR = re.compile(rf"[{_WIDE}]")
ELLIPSIS = "…"
LATIN_EM = 0.58  # DejaVu Sans: mean advance 0.546 em over catalog descriptions, 95th percentile 0.578


def text_width(text: str) -> int:
    """Width of ``text`` in columns: 2 for each East Asian wide character, 1 for any other."""
    return len(text) + len(_WIDE_CHAR.findall(text))


def _units(paragraph: str) -> list[tuple[bool, str]]:
    """(preceded by a space, unit) for each unbreakable piece: a word, or one CJK character."""
    units, space = [], False
    for piece in _UNIT.findall(paragraph):
        if piece.isspace():
            space = True
        else:
            units.append((space, piece))
            space = False
    return units


def break_units(paragraph: str) -> list[tuple[bool, str]]:
    """The pieces a line may break between, ``(preceded by a space, piece)``: a Latin word, or one Chinese
    character with the punctuation that must stay beside it. :func:`fit_text` wraps titles in columns with them;
    ``prodgen.apps.ad_layout`` wraps banner headlines in pixels (lesson 16)."""
    return _units(paragraph)


def _join(units: list[tuple[bool, str]]) -> str:
    return "".join((" " if space and i else "") + piece for i, (space, piece) in enumerate(units))


def _shorten(units: list[tuple[bool, str]], width: int) -> str:
    """The longest run of whole units from the start that fits in ``width`` with "…" after it."""
    units = list(units)
    while len(units) > 1 and text_width(_join(units) + ELLIPSIS) > width:
        units.pop()
    text = _join(units).rstrip(",;:，、：；-— ")
    if text_width(text + ELLIPSIS) > width:  # one word wider than a whole line: the only cut inside a word
        while text and text_width(text + ELLIPSIS) > width:
            text = text[:-1]
    return text + ELLIPSIS


def _wrap_paragraph(paragraph: str, width: int, max_lines: int) -> list[str]:
    lines: list[list[tuple[bool, str]]] = [[]]
    for space, piece in _units(paragraph):
        if lines[-1] and text_width(_join(lines[-1] + [(space, piece)])) > width:
            lines.append([])
        lines[-1].append((space, piece))
    out = []
    for i, line in enumerate(lines):
        if not line:
            continue
        if len(out) == max_lines - 1 and i < len(lines) - 1 or text_width(_join(line)) > width:
            # the last line allowed, with more to come, or one unit wider than a line: cut here
            return out + [_shorten([unit for rest in lines[i:] for unit in rest], width)]
        out.append(_join(line))
    return out


def fit_text(text: str, width: int, max_lines: int = 2) -> str:
    """Wrap ``text`` into lines of at most ``width`` columns (:func:`text_width`), breaking only
    between words (English) or between characters (Chinese, which has no spaces); each paragraph
    (``"\\n"``-separated) keeps at most ``max_lines`` lines and ends with "…" when cut short.

    >>> fit_text("a stripy baseball cap in checked print", 26)
    'a stripy baseball cap in\\nchecked print'
    >>> fit_text("a stripy baseball cap in checked print", 26, max_lines=1)
    'a stripy baseball cap in…'
    """
    if width < 2 or max_lines < 1:
        raise ValueError(f"fit_text needs width >= 2 and max_lines >= 1, got width={width}, max_lines={max_lines}")
    return "\n".join(line for paragraph in str(text).split("\n")
                     for line in _wrap_paragraph(paragraph, width, max_lines))


def _columns(width_inches: float, fontsize: float) -> int:
    """How many columns of ``fontsize``-point text fit in ``width_inches``."""
    return max(4, int(width_inches * 72 / (LATIN_EM * fontsize)))


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


TITLE_FONTSIZE = 7  # points, the small titles over each image of a grid


def _points(setting: str) -> float:
    """A font-size rcParam ("large", 12, ...) in points."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=rcParams[setting]).get_size_in_points()


def _fit_title(ax, title: str, max_lines: int = 3) -> str:
    """``title`` wrapped to the width ``ax`` takes in its figure, at the axes-title font size."""
    width = ax.figure.get_figwidth() * ax.get_position().width
    return fit_text(title, _columns(width, _points("axes.titlesize")), max_lines)


def show_images(images, nrow: int = 8, titles=None, title: str | None = None, scale: float = 1.0, ax=None,
                title_lines: int = 2):
    """Show a batch of images as a grid.

    ``titles`` puts one small title over each image (``"\\n"`` starts a new paragraph, e.g. the
    English and the Chinese description), wrapped at word boundaries to the image's width: at most
    ``title_lines`` lines per paragraph, then "…" (:func:`fit_text`). ``title`` goes over the grid.
    """
    import matplotlib.pyplot as plt

    setup_fonts()
    imgs = _to_uint8_hwc(images)
    if titles is None:
        grid = image_grid(imgs, nrow)
        if ax is None:
            _, ax = plt.subplots(figsize=(scale * grid.shape[1] / 40, scale * grid.shape[0] / 40))
        ax.imshow(grid, interpolation="nearest")
        ax.axis("off")
        if title:
            ax.set_title(_fit_title(ax, title))
        return ax
    titles = [str(t) for t in titles]
    if len(titles) != len(imgs):
        raise ValueError(f"got {len(titles)} titles for {len(imgs)} images; give one title per image")
    ncol = min(nrow, len(imgs))
    rows = -(-len(imgs) // ncol)
    panel = scale * 1.6  # inches per image
    columns = _columns(0.92 * panel, TITLE_FONTSIZE)  # tight_layout leaves about 92 % of a panel
    titles = [fit_text(t, columns, title_lines) for t in titles]
    lines = max(t.count("\n") + 1 for t in titles)
    row_height = panel + lines * 1.25 * TITLE_FONTSIZE / 72 + 0.1
    fig, axes = plt.subplots(rows, ncol, figsize=(panel * ncol, row_height * rows), squeeze=False)
    for a, i in zip(axes.flat, range(rows * ncol)):
        a.axis("off")
        if i < len(imgs):
            a.imshow(imgs[i], interpolation="nearest")
            a.set_title(titles[i], fontsize=TITLE_FONTSIZE)
    if title:
        fig.suptitle(fit_text(title, _columns(0.95 * panel * ncol, _points("figure.titlesize")), 3))
    fig.tight_layout()
    return axes


def plot_counts(counts: dict[str, dict[str, int]], title: str | None = None, compare: dict | None = None,
                labels: tuple[str, str] = ("real", "generated")):
    """One bar chart per attribute: ``{attribute: {value: count}}``; ``compare`` draws a second set beside it."""
    import matplotlib.pyplot as plt

    setup_fonts()
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

    setup_fonts()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    for name, ys in curves.items():
        ax.plot(ys, label=name)
    ax.set_xlabel(xlabel)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax

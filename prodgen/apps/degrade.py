"""Damage done to a product photo, each with its known operator (lesson 16, ``prodgen restore``).

A restoration method is only as good as what it knows about the damage. Each degradation here is an operator
``A`` that maps a clean photo ``x`` to what we observe, ``y = A(x)``, and says which clean photos are
*consistent* with an observation:

=============  =========================================================  ==========================================
task           forward ``y = A(x)``                                       consistent photos (``project``)
=============  =========================================================  ==========================================
``denoise``    ``x + sigma * n``, ``n ~ N(0, I)``                         none exactly: the noise is random
``deblur``     circular convolution with a Gaussian (``sigma`` px)        the same blurred photo, in every frequency
                                                                          the blur keeps above :data:`TRUSTED_GAIN`
``inpaint``    the pixels of a mask lost (scratches, missing blocks)      the same known pixels
``deblock``    JPEG-like: 8 x 8 DCT coefficients rounded to a step per    coefficients inside the same rounding
               frequency (the JPEG table at a ``quality``)                boxes
``upscale``    the mean of each ``factor x factor`` block                 the same block means
=============  =========================================================  ==========================================

Every ``project(x, y)`` is the Euclidean projection onto that set (the closest consistent photo): the known
pixels put back; the block means' residual spread over each block; the DCT coefficients clamped into their
boxes (the 8 x 8 DCT is orthonormal, so clamping there is the closest photo); the blurred photo's residual
divided by the blur's gain where that gain is large enough to trust. A generator restores by drawing photos
that satisfy the projection along its whole path (``prodgen.apps.restore``); the classic baselines there use
the same operators.

Images are floats in [-1, 1], N x 3 x H x W (``prodgen.catalog.normalize``); H and W are multiples of 8 for
``deblock`` and of ``factor`` for ``upscale``. ``degrade(task, x, seed=...)`` builds the operator at its default
strength (:data:`DEFAULTS`, the lesson's) and returns ``(y, op)``; the same seed gives the same damage.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TASKS = ("denoise", "deblur", "inpaint", "deblock", "upscale")
DEFAULTS = {"denoise": {"sigma": 0.2}, "deblur": {"sigma": 1.0}, "inpaint": {"scratches": 3, "blocks": 1},
            "deblock": {"quality": 15}, "upscale": {"factor": 2}}
"""The lesson's default strengths (32 px photos): noise of std 0.2 in [-1, 1] units (25 grey levels of 255),
a blur of 1 px std, three scratches and one missing 8 x 8 block, JPEG quality 15, half the resolution."""

TRUSTED_GAIN = 0.1
"""``deblur`` trusts the observation only at frequencies the blur keeps at >= 10 % of their amplitude: dividing
by a smaller gain would mostly amplify rounding noise (an 8-bit photo carries about 0.004 of it)."""

JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)
"""The JPEG standard's example luminance quantisation table (ITU-T T.81, Annex K), in grey levels of 255."""


def _check_images(x: torch.Tensor, multiple: int = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected float photos in [-1, 1] of shape N x 3 x H x W, got {got}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(f"this degradation needs H and W to be multiples of {multiple}, got {tuple(x.shape[2:])}")
    return x


def _number(value, name: str, low: float, high: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low} to {high}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- the operators
class Noise:
    """``y = x + sigma n``. No hard constraint: a generator starts its reverse path at the time whose noise
    level matches (``prodgen.apps.restore``)."""

    task = "denoise"

    def __init__(self, sigma: float = 0.2):
        self.sigma = float(_number(sigma, "sigma", 0.0, 2.0))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _check_images(x)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        return x + self.sigma * torch.randn(x.shape, generator=gen)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x  # every photo is consistent with a noisy observation


class Blur:
    """Circular convolution with a normalised Gaussian of std ``sigma`` px, computed in the Fourier domain:
    ``Y = G X`` per frequency, with ``G`` the kernel's transfer function (real: the kernel is symmetric)."""

    task = "deblur"

    def __init__(self, sigma: float = 1.0):
        self.sigma = float(_number(sigma, "sigma", 0.1, 8.0))

    def gain(self, h: int, w: int) -> torch.Tensor:
        """The transfer function ``G`` on the H x W frequency grid: ``exp(-2 pi^2 sigma^2 f^2)`` per axis (a
        Gaussian's Fourier transform, sampled; f in cycles per pixel)."""
        fy, fx = torch.fft.fftfreq(h), torch.fft.fftfreq(w)
        return torch.exp(-2 * math.pi ** 2 * self.sigma ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))  # H x W

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _check_images(x)
        return torch.fft.ifft2(torch.fft.fft2(x) * self.gain(*x.shape[2:])).real

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = self.gain(*x.shape[2:])
        trusted = g >= TRUSTED_GAIN
        residual = (torch.fft.fft2(y) - g * torch.fft.fft2(x)) / torch.where(trusted, g, torch.ones_like(g))
        return x + torch.fft.ifft2(residual * trusted).real


class Mask:
    """Lost pixels: ``y = (1 - m) x`` (and the lost ones shown white), ``m``: N x 1 x H x W, 1 = lost."""

    task = "inpaint"

    def __init__(self, mask: torch.Tensor):
        if not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[1] != 1:
            raise ValueError("the mask must be a tensor N x 1 x H x W (1 = a lost pixel)")
        self.mask = (mask > 0.5).float()

    def _fits(self, x):
        if self.mask.shape[0] not in (1, x.shape[0]) or self.mask.shape[2:] != x.shape[2:]:
            raise ValueError(f"the mask is {tuple(self.mask.shape)}; the photos are {tuple(x.shape)}")
        return self.mask

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        m = self._fits(_check_images(x))
        return x * (1 - m) + m  # lost pixels shown white

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = self._fits(x)
        return m * x + (1 - m) * y


def _dct_matrix(n: int = 8) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ D.T = I``): row ``k`` is the ``k``-th cosine."""
    k, i = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


class Blocking:
    """JPEG-like: each 8 x 8 block of each channel goes to the DCT (orthonormal), each coefficient is rounded to
    a multiple of its step (the JPEG table scaled for ``quality`` 1-100 as the IJG encoder scales it), then
    back. No colour conversion or chroma subsampling: the blocking and ringing are JPEG's, the colours kept."""

    task = "deblock"

    def __init__(self, quality: int = 15):
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be a whole number from 1 to 100, got {quality!r}")
        self.quality = quality
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        self.step = torch.clamp(torch.floor((JPEG_LUMA * scale + 50) / 100), min=1) / 127.5  # in [-1, 1] units
        self.dct = _dct_matrix(8)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H/8 x W/8 x 8 x 8: each block's DCT."""
        n, c, h, w = x.shape
        blocks = x.reshape(n, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)
        return self.dct @ blocks @ self.dct.T

    def photo(self, coef: torch.Tensor) -> torch.Tensor:
        n, c, bh, bw = coef.shape[:4]
        blocks = self.dct.T @ coef @ self.dct
        return blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, c, bh * 8, bw * 8)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _check_images(x, 8)
        return self.photo(torch.round(self.coefficients(x) / self.step) * self.step)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        centre = torch.round(self.coefficients(y) / self.step) * self.step  # the observed, rounded values
        half = self.step * 0.499  # a hair inside the box: a value on its edge could round either way
        low, high = centre - half, centre + half
        return self.photo(torch.minimum(torch.maximum(self.coefficients(x), low), high))


class Downsample:
    """``y``: the mean of each ``factor x factor`` block (H/f x W/f); shown enlarged by repeating its pixels."""

    task = "upscale"

    def __init__(self, factor: int = 2):
        if isinstance(factor, bool) or factor not in (2, 4, 8):
            raise ValueError(f"factor must be 2, 4 or 8, got {factor!r}")
        self.factor = factor

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.avg_pool2d(_check_images(x, self.factor), self.factor)

    def enlarge(self, y: torch.Tensor) -> torch.Tensor:
        """The small photo at full size, each pixel repeated (the pseudo-inverse of the block mean)."""
        return F.interpolate(y, scale_factor=self.factor, mode="nearest")

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + self.enlarge(y - F.avg_pool2d(x, self.factor))


# ----------------------------------------------------------------------------- masks and the entry point
def damage_mask(n: int, size: int, scratches: int = 3, blocks: int = 1, seed: int = 0) -> torch.Tensor:
    """N x 1 x size x size lost-pixel masks: ``scratches`` thin random lines (1-2 px) and ``blocks`` missing
    squares of a quarter of the side, placed over the middle of the photo where the product is."""
    import numpy as np
    from PIL import Image, ImageDraw

    gen = torch.Generator().manual_seed(int(seed))
    rand = lambda *shape: torch.rand(shape, generator=gen)  # noqa: E731
    out = torch.zeros(n, 1, size, size)
    side = size // 4
    for i in range(n):
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        for _ in range(scratches):
            a, b = (rand(2) * 0.8 + 0.1) * size, (rand(2) * 0.8 + 0.1) * size
            draw.line([tuple(a.tolist()), tuple(b.tolist())], fill=255, width=1 + int(rand(1) * 2))
        for _ in range(blocks):
            x0, y0 = (side // 2 + rand(2) * (size - 2 * side)).long().tolist()
            draw.rectangle([x0, y0, x0 + side - 1, y0 + side - 1], fill=255)
        out[i, 0] = torch.from_numpy(np.array(canvas)).float() / 255
    return (out > 0.5).float()


def operator(task: str, n: int = 1, size: int = 32, seed: int = 0, **strength):
    """The operator of ``task`` (:data:`TASKS`) at ``strength`` (default :data:`DEFAULTS`); ``inpaint`` draws
    ``n`` masks of ``size`` px from ``seed``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    unknown = sorted(set(strength) - set(DEFAULTS[task]))
    if unknown:
        raise ValueError(f"{task} has no setting {unknown[0]!r}; valid: {', '.join(DEFAULTS[task])}")
    cfg = DEFAULTS[task] | strength
    if task == "inpaint":
        return Mask(damage_mask(n, size, seed=seed, **cfg))
    return {"denoise": Noise, "deblur": Blur, "deblock": Blocking, "upscale": Downsample}[task](**cfg)


def degrade(task: str, x: torch.Tensor, seed: int = 0, **strength):
    """``(y, op)``: photos ``x`` damaged as ``task`` says (its operator ``op``; the same seed, the same damage)."""
    x = _check_images(x)
    op = operator(task, n=len(x), size=x.shape[-1], seed=seed, **strength)
    return op.forward(x, torch.Generator().manual_seed(int(seed) + 1)), op

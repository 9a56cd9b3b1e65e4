"""Diffusion with classifier-free guidance (lesson 11): a small U-Net that learns to undo noise.

**Forward process.** A photo ``x0`` is blurred into noise in ``T = 1000`` steps; thanks to Gaussian algebra any
step has a closed form (Ho et al., 2020): ``x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps`` with
``eps ~ N(0, I)`` (:func:`prodgen.engine.losses.q_sample`). ``abar_t`` falls from 1 to 0 along the **cosine
schedule** of Nichol & Dhariwal (2021), ``abar(t) = cos^2(pi/2 * (t/T + s) / (1 + s))`` (:func:`cosine_schedule`):
the linear schedule of the first DDPM destroys a 32 x 32 image long before ``t = T`` (the last few hundred
steps are almost pure noise and teach nothing), the cosine one spends the steps evenly.

**What the network predicts.** ``v = sqrt(abar_t) * eps - sqrt(1 - abar_t) * x0`` (*v-prediction*, Salimans &
Ho, 2022) rather than the noise ``eps`` itself. Both carry the same information (from ``x_t`` and either one
you get ``x0`` and ``eps``, :func:`split_v`), and the loss ``|v - v_hat|^2`` is the ELBO's "predict the noise"
loss ``|eps - eps_hat|^2`` re-weighted by ``1 + 1/SNR_t`` (``SNR_t = abar_t / (1 - abar_t)``): more weight on the
noisy steps, where predicting the noise is easy and predicting the photo is what matters. Why v: at high noise ``x0 =
(x_t - sqrt(1-abar) eps) / sqrt(abar)``
divides by almost zero, so a small error in a predicted ``eps`` becomes a huge error in ``x0``; a predicted
``v`` has no such division. That matters here because the course samples in **few steps** (20 by default), where
every step leans on ``x0``.

**The network** (:class:`UNet`): 32 x 32 -> 16 x 16 -> 8 x 8 and back, residual blocks with group norm,
self-attention at 8 x 8 (64 positions: cheap, and it lets the two halves of a product agree, e.g. both
sides of a checked pattern), skip connections across. The time ``t`` enters as a sinusoidal embedding;
the **condition** is lesson 05's attribute embedding (one learned vector per value and an "unspecified"
vector per attribute), summed and *added to the time embedding*, which sets a scale and shift in every block.

**Classifier-free guidance** (Ho & Salimans, 2021). While training, the whole request is hidden (all five
attributes "unspecified") for 10 % of the photos and single attributes for another 10 %, so one network
predicts both ``v_c`` (with the request) and ``v_u`` (without). Sampling mixes them:
``v = v_u + w * (v_c - v_u)``: ``w = 0`` is the unconditional model, ``w = 1`` the plain conditional one,
``w > 1`` pushes further along "what the request adds". (Papers also write ``(1 + w') v_c - w' v_u``: the same
thing with ``w' = w - 1``.) Both passes run as one batch.

**Samplers** (:func:`sample`): DDIM (Song et al., 2021; ``eta = 0``, deterministic given the starting noise)
or ancestral DDPM (``eta = 1``, fresh noise at every step), on any number of evenly spaced steps.

**Editing** (:func:`inpaint`): regenerate only a masked region of a real photo, RePaint-style (Lugmayr et al.,
2022): at every step the region outside the mask is replaced by the photo noised to that step, and the
final image keeps the photo's own pixels outside the mask.

Used by lesson 11, ``prodgen generate --model diffusion``, ``prodgen edit`` and the shipped ``diffusion``
checkpoint.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from prodgen.catalog.schema import BUILTIN, Schema, schema_of
from prodgen.models.condition import AttributeEmbedding, check_labels, fill_unspecified
from prodgen.models.protocol import UNSPECIFIED, ImageModel, Knob, Noise, fill_open
from prodgen.models.recipe import Trained, with_text_reader
from prodgen.models.registry import ModelSpec

__all__ = ["T", "cosine_schedule", "linear_schedule", "timestep_embedding", "ResBlock", "SelfAttention", "UNet",
           "split_v", "guided", "sample_shape",
           "sample_timesteps", "ddim_step", "sample", "inpaint", "product_mask", "EDIT_KNOBS",
           "EDIT_GROW", "edit_request", "edit", "edit_table", "DiffusionTextModel", "GUIDANCE",
           "STEPS", "ETA", "DiffusionImageModel", "build", "CHECKPOINT_CONFIG", "train_checkpoint", "evaluate"]

T = 1000
"""Number of noise levels of the forward process; samplers use an evenly spaced subset of them."""


# ----------------------------------------------------------------------------- noise schedules
def cosine_schedule(steps: int = T, s: float = 0.008) -> torch.Tensor:
    """``abar_t`` for t = 0..steps-1 (float64): ``f(t) / f(0)`` with ``f(t) = cos^2(pi/2 * (t/steps + s) / (1 + s))``,
    clipped so that no step destroys more than 99.9 % of the signal (``beta_t <= 0.999``, as Nichol & Dhariwal).
    ``abar_t`` is the share of the photo's variance left at step t (index 0 is the first noisy step)."""
    t = torch.arange(steps + 1, dtype=torch.float64)
    f = torch.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)  # steps values, from ~1 down to ~0


def linear_schedule(steps: int = T, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """The first DDPM's schedule (Ho et al., 2020), for comparison in lesson 11: ``beta_t`` linear, ``abar_t``
    their running product of ``1 - beta``."""
    return torch.cumprod(1 - torch.linspace(beta_1, beta_T, steps, dtype=torch.float64), dim=0)


# ----------------------------------------------------------------------------- the network
def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of step numbers ``t`` (N,) -> N x dim: sines and cosines at ``dim/2`` frequencies
    from 1 to 1/10000 (the Transformer's position code), so nearby steps get nearby vectors."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]  # N x half
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # N x dim


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv, then a scale and shift from the embedding, GroupNorm -> SiLU -> 3x3 conv,
    plus the input (through a 1x1 conv when the channel count changes). N x c_in x H x W -> N x c_out x H x W."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)  # the time + condition vector -> (scale, shift) per channel
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: a deep net trains from step one
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # N x c_out x H x W
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # N x c_out x 1 x 1 each
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class SelfAttention(nn.Module):
    """Single-head self-attention over the H x W positions, with a residual: every position can look at every
    other (at 8 x 8: 64 positions). N x c x H x W -> N x c x H x W."""

    def __init__(self, channels: int, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(-1, -2).unbind(1)  # N x HW x c each
        a = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c)) v: N x HW x c
        return x + self.out(a.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """``model(x_t, t, labels) -> v_hat``: noisy images N x 3 x 32 x 32, steps N (0..T-1), requests N x 5
    (-1 = unspecified; or soft requests N x 34, lesson 07's reader) -> the predicted ``v``, N x 3 x 32 x 32.

    ``width`` channels at full size, ``2 * width`` at half and quarter size. The noise schedule ``abar`` is a
    buffer, so the training loss (``prodgen.engine.losses.diffusion_loss``) and the samplers read it from the model.
    ``channels`` x ``size`` x ``size`` (default 3 x 32 x 32, photos) is what the network reads and writes: lesson
    14's latent model is the same network on 4 x 16 x 16 latent maps (:attr:`shape`; the samplers read it). The
    weights' names and shapes do not depend on ``size``, only the first and last convolutions on ``channels``.
    ``in_channels`` (default ``channels``): what the first convolution reads when the network is given more than
    the state it writes, e.g. lesson 15's try-on model reads its noisy latent with the scene, the mask and the
    product stacked as channels (``prodgen.models.tryon_latent``); only ``stem.weight``'s shape depends on it.
    """

    def __init__(self, width: int = 32, schedule: str = "cosine", schema: Schema = BUILTIN, channels: int = 3,
                 size: int = 32, in_channels: int | None = None):
        super().__init__()
        if schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule must be 'cosine' or 'linear', got {schedule!r}")
        in_channels = channels if in_channels is None else in_channels
        for name, value, low in (("channels", channels, 1), ("size", size, 4), ("in_channels", in_channels, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (name == "size" and value % 4):
                raise ValueError(f"{name} must be a whole number >= {low}{' divisible by 4' if name == 'size' else ''}"
                                 f", got {value!r}")
        self.width, self.schedule, self.schema = width, schedule, schema
        self.channels, self.size, self.in_channels = channels, size, in_channels
        w, e = width, 4 * width
        self.register_buffer("abar", (cosine_schedule() if schedule == "cosine" else linear_schedule()).float())
        self.time = nn.Sequential(nn.Linear(w, e), nn.SiLU(), nn.Linear(e, e))  # sinusoid -> time vector
        self.condition = AttributeEmbedding(e, schema=schema)  # a learned e-vector per value, and per "unspecified"
        self.stem = nn.Conv2d(in_channels, w, 3, padding=1)           # 3 x 32 x 32 -> w x 32 x 32
        self.down1 = ResBlock(w, w, e)                                 # w x 32 x 32
        self.pool1 = nn.Conv2d(w, w, 3, stride=2, padding=1)           # -> w x 16 x 16
        self.down2 = ResBlock(w, 2 * w, e)                             # 2w x 16 x 16
        self.pool2 = nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)   # -> 2w x 8 x 8
        self.down3 = ResBlock(2 * w, 2 * w, e)                         # 2w x 8 x 8
        self.mid1, self.attn, self.mid2 = ResBlock(2 * w, 2 * w, e), SelfAttention(2 * w), ResBlock(2 * w, 2 * w, e)
        self.up3 = ResBlock(4 * w, 2 * w, e)                           # [mid, down3] 4w x 8 x 8 -> 2w x 8 x 8
        self.up2 = ResBlock(4 * w, w, e)                               # [up3 x2, down2] 4w x 16 x 16 -> w x 16 x 16
        self.up1 = ResBlock(2 * w, w, e)                               # [up2 x2, down1] 2w x 32 x 32 -> w x 32 x 32
        self.head = nn.Sequential(nn.GroupNorm(8, w), nn.SiLU(),
                                  nn.Conv2d(w, channels, 3, padding=1))  # -> 3 x 32 x 32
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    @property
    def shape(self) -> tuple[int, int, int]:
        """One sample's shape, ``(channels, size, size)``: (3, 32, 32) for photos, (4, 16, 16) for lesson 14's
        latents. The samplers draw their start noise in it."""
        return (self.channels, self.size, self.size)

    def embed(self, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The vector every block is told: time embedding + the sum of the attribute vectors, N x 4w."""
        return self.time(timestep_embedding(t, self.width)) + self.condition(labels).sum(dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        e = self.embed(t, labels)                            # N x 4w
        h1 = self.down1(self.stem(x), e)                     # N x w x 32 x 32
        h2 = self.down2(self.pool1(h1), e)                   # N x 2w x 16 x 16
        h3 = self.down3(self.pool2(h2), e)                   # N x 2w x 8 x 8
        h = self.mid2(self.attn(self.mid1(h3, e)), e)        # N x 2w x 8 x 8
        h = self.up3(torch.cat([h, h3], dim=1), e)           # N x 2w x 8 x 8
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up2(torch.cat([h, h2], dim=1), e)           # N x w x 16 x 16
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up1(torch.cat([h, h1], dim=1), e)           # N x w x 32 x 32
        return self.head(h)                                  # N x 3 x 32 x 32

    def sample_grid(self, labels: torch.Tensor, steps: int = 20, guidance: float = 2.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Images for the training loop's sample grid (``prodgen.engine.train.train_diffusion``): :func:`sample`."""
        return sample(self, labels, steps=steps, guidance=guidance, generator=generator)


# ----------------------------------------------------------------------------- sampling
def split_v(x_t: torch.Tensor, v: torch.Tensor, abar_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0_hat, eps_hat)`` from a noisy image and a predicted ``v`` at a noise level ``abar_t`` (a number or
    N x 1 x 1 x 1): ``x0 = sqrt(abar) x_t - sqrt(1 - abar) v`` and ``eps = sqrt(1 - abar) x_t + sqrt(abar) v``."""
    a = torch.as_tensor(abar_t, dtype=x_t.dtype, device=x_t.device)
    return a.sqrt() * x_t - (1 - a).sqrt() * v, (1 - a).sqrt() * x_t + a.sqrt() * v


def guided(pred_c: torch.Tensor, pred_u: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: ``pred_u + w * (pred_c - pred_u)``. ``w = 0``: the unconditional prediction,
    ``w = 1``: the conditional one, ``w > 1``: further along what the request changes. Works on ``eps`` or
    ``v`` alike (both are linear in each other for a given ``x_t``)."""
    return pred_u + w * (pred_c - pred_u)


def sample_timesteps(steps: int, total: int = T) -> torch.Tensor:
    """``steps`` step numbers evenly spaced from ``total - 1`` down to 0 (the subset a sampler visits)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= total:
        raise ValueError(f"steps must be a whole number from 1 to {total}, got {steps!r}")
    return torch.linspace(total - 1, 0, steps, dtype=torch.float64).round().long()


def ddim_step(x0_hat: torch.Tensor, eps_hat: torch.Tensor, abar_s: float, eta: float = 0.0,
              abar_t: float | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One step of the DDIM family from noise level ``abar_t`` to the lower level ``abar_s`` (Song et al., 2021):

    ``x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma * noise`` with
    ``sigma = eta * sqrt((1 - abar_s) / (1 - abar_t)) * sqrt(1 - abar_t / abar_s)``.
    ``eta = 0``: deterministic DDIM (put the predicted photo back at the lower noise level, with the same noise
    direction); ``eta = 1``: ancestral DDPM sampling on these steps (``abar_t`` and ``noise`` needed).
    """
    sigma = 0.0
    if eta:
        if abar_t is None or noise is None:
            raise ValueError("eta > 0 needs abar_t and noise")
        sigma = eta * math.sqrt((1 - abar_s) / (1 - abar_t)) * math.sqrt(1 - abar_t / abar_s)
    x_s = math.sqrt(abar_s) * x0_hat + math.sqrt(max(1 - abar_s - sigma**2, 0.0)) * eps_hat
    return x_s + sigma * noise if sigma else x_s


def sample_shape(model) -> tuple[int, ...]:
    """The shape of one sample of ``model`` (its :attr:`UNet.shape`; (3, 32, 32) for a network that does not say):
    where every sampler of lessons 11, 13 and 14 draws its start noise."""
    return tuple(getattr(model, "shape", (3, 32, 32)))


def _unconditional_like(labels: torch.Tensor, schema: Schema = BUILTIN) -> torch.Tensor:
    """The "nothing requested" condition in the form of ``labels``: all -1 (hard requests) or the one-hot of
    every attribute's "unspecified" slot (soft requests N x 34)."""
    from prodgen.models.condition import one_hot

    empty = torch.full((len(labels), len(schema)), -1, dtype=torch.long, device=labels.device)
    return one_hot(empty, schema).to(labels.dtype) if labels.is_floating_point() else empty


def _predict_v(model, x: torch.Tensor, t: int | float, labels: torch.Tensor, uncond: torch.Tensor,
               w: float) -> torch.Tensor:
    """The guided output (``v``; the flow's velocity) for a batch at step ``t``: one network pass over conditional
    and unconditional rows together (only one of them when ``w`` is 0 or 1). ``t``: a diffusion step number (int)
    or a flow time (float, ``prodgen.models.flow``), given to every row in that type."""
    tt = torch.full((len(x),), t, dtype=torch.float32 if isinstance(t, float) else torch.long, device=x.device)
    if w == 1.0:
        return model(x, tt, labels).float()
    if w == 0.0:
        return model(x, tt, uncond).float()
    both = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, uncond])).float()
    v_c, v_u = both.chunk(2)
    return guided(v_c, v_u, w)


def _check_sampling(steps, guidance, eta):
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= 50:
        raise ValueError(f"guidance must be a number from 0 to 50, got {guidance!r}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a number from 0 (DDIM) to 1 (DDPM), got {eta!r}")
    sample_timesteps(steps)


@torch.no_grad()
def sample(model: UNet, labels: torch.Tensor, steps: int = 20, guidance: float = 2.0, eta: float = 0.0,
           generator: torch.Generator | None = None, batch_size: int = 256, x_T: torch.Tensor | None = None,
           known: torch.Tensor | None = None, mask: torch.Tensor | None = None, resample: int = 1,
           trajectory: list | None = None, draw=None) -> torch.Tensor:
    """Images in [-1, 1] (N x 3 x 32 x 32, on the CPU) for requests ``labels`` (N x 5 with -1 = unspecified,
    or soft requests N x 34): start from noise ``x_T`` (drawn from ``generator`` on the CPU when not given)
    and take ``steps`` steps of :func:`ddim_step` with guidance ``guidance`` and ``eta`` (0 = DDIM, 1 = DDPM).

    The same generator state gives the same images on the same device (all noise is drawn on the CPU).
    ``known`` / ``mask`` (inpainting, :func:`inpaint`): photos in [-1, 1] and masks N x 1 x H x W, 1 where the
    image is to be regenerated; ``resample`` r > 1 repeats every step r times, noising back in between
    (RePaint). ``trajectory``: a list that receives the predicted ``x0`` after each step (lesson 11's pictures).
    ``draw``: where the noise comes from, ``draw(shape) -> tensor`` (default ``torch.randn(shape, generator=...)``);
    the image-model protocol passes ``protocol.Noise.randn`` so that requests batched together each draw from
    their own generator (``prodgen generate --batch``, ``prodgen edit --n``).
    """
    _check_sampling(steps, guidance, eta)
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be a whole number >= 1, got {resample!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    draw = draw if draw is not None else (lambda shape: torch.randn(shape, generator=gen))
    n = len(labels)
    x = draw((n, *sample_shape(model))) if x_T is None else x_T.float().cpu().clone()
    dev = next(model.parameters()).device
    abar = model.abar.double().cpu()
    ts = sample_timesteps(steps, len(abar)).tolist()
    uncond = _unconditional_like(labels, getattr(model, "schema", BUILTIN))
    was = model.training
    model.eval()
    fmt = torch.channels_last if dev.type == "cpu" else torch.contiguous_format
    if known is not None:
        known, mask = known.float().cpu(), mask.float().cpu()
        x = mask * x + (1 - mask) * (abar[ts[0]].sqrt() * known + (1 - abar[ts[0]]).sqrt() * x).float()
    try:
        for i, t in enumerate(ts):
            a_t = float(abar[t])
            a_s = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0  # after the last step: the clean image
            for r in range(resample):
                x0_parts = []
                for s in range(0, n, batch_size):
                    xb = x[s:s + batch_size].to(dev).contiguous(memory_format=fmt)
                    v = _predict_v(model, xb, t, labels[s:s + batch_size].to(dev), uncond[s:s + batch_size].to(dev),
                                   float(guidance))
                    x0_parts.append(split_v(xb.float(), v, a_t)[0].cpu())
                x0 = torch.cat(x0_parts).clamp(-1, 1)  # the predicted photo, kept in the valid range
                eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)  # the noise that matches the clipped x0
                noise = draw(x.shape) if eta and a_s < 1.0 else None
                x_next = ddim_step(x0, eps, a_s, eta if a_s < 1.0 else 0.0, a_t, noise)
                if known is not None:  # the photo's own pixels, noised to the same level, outside the mask
                    outside = known if a_s >= 1.0 else \
                        math.sqrt(a_s) * known + math.sqrt(1 - a_s) * draw(x.shape)
                    x_next = mask * x_next + (1 - mask) * outside
                if r + 1 < resample and a_s < 1.0:  # RePaint: noise back up to level t and take the step again
                    x = math.sqrt(a_t / a_s) * x_next + math.sqrt(1 - a_t / a_s) * draw(x.shape)
                else:
                    x = x_next
            if trajectory is not None:
                trajectory.append(x0)
    finally:
        model.train(was)
    return x.clamp(-1, 1)


# ----------------------------------------------------------------------------- editing real photos
def product_mask(images: torch.Tensor, grow: int = 1, threshold: float = 0.12) -> torch.Tensor:
    """Where the product is in each photo: N x 1 x H x W floats, 1 on the product (and its shadow), 0 on the
    background. The background colour is the median of the photo's border pixels (catalog photos are shot on
    a light, plain background); a pixel belongs to the product when it differs from it by more than
    ``threshold`` (in [-1, 1] units, averaged over the channels). ``grow`` widens the mask by that many pixels
    (a max filter), so the regenerated region also covers the product's soft edge."""
    from prodgen.catalog import normalize

    x = normalize(images) if images.dtype == torch.uint8 else images.float()
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2)  # N x 3 x 4W
    background = border.median(dim=2).values[:, :, None, None]  # N x 3 x 1 x 1
    mask = ((x - background).abs().mean(dim=1, keepdim=True) > threshold).float()  # N x 1 x H x W
    if grow > 0:
        mask = F.max_pool2d(mask, 2 * grow + 1, stride=1, padding=grow)
    return mask


EDIT_KNOBS = {"steps": 10, "guidance": 3.0, "resample": 1, "eta": 1.0}
"""How edits sample by default. Measured on 100 test photos (an early checkpoint, 600 steps of training): 10 steps
were as good as 20 (mean success 0.76 vs 0.75), RePaint's resampling (r = 2) did not help (0.76 with, 0.79
without) at twice the cost, and guidance 3 beat 1 (0.79 vs 0.73): so 10 ancestral steps, no resampling, w = 3 —
a 2,000-photo edit table then takes minutes, not half an hour, on 2 CPU cores."""

EDIT_GROW = {"category": 6, "color": 1, "size": 6, "brand": 1, "pattern": 1}
"""How far the regenerated region reaches beyond the product, per attribute being changed: a new colour,
pattern or logo stays inside the product's outline (grown by 1 px for its soft edge); a new category or size
changes the outline itself, so the region is grown by 6 px (a large product is about that much wider)."""


@torch.no_grad()
def inpaint(model: UNet, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, steps: int = 10,
            guidance: float = 3.0, resample: int = 1, eta: float = 1.0, seed: int = 0, draw=None) -> torch.Tensor:
    """Regenerate the masked part of real photos for the requests ``labels`` (N x 5), keeping the rest:
    images in [-1, 1], N x 3 x 32 x 32. ``images``: uint8 or [-1, 1]; ``mask``: N x 1 x H x W, 1 = regenerate.

    RePaint (Lugmayr et al., 2022): every step combines the model's step inside the mask with the photo noised to
    the same level outside it; ``resample`` r > 1 repeats each step r times (noising back in between) so the two
    parts agree better; ancestral steps (``eta = 1``), as RePaint. Defaults: :data:`EDIT_KNOBS`. Outside the mask
    the result *is* the photo (the last step puts its pixels back unchanged). ``draw``: see :func:`sample`."""
    from prodgen.catalog import normalize

    x0 = normalize(images) if images.dtype == torch.uint8 else images.float()
    mask = mask.float()
    if mask.shape != (len(x0), 1, *x0.shape[2:]):
        raise ValueError(f"mask must be N x 1 x H x W = {(len(x0), 1, *x0.shape[2:])}, got {tuple(mask.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    return sample(model, check_labels(labels, model.schema), steps=steps, guidance=guidance, eta=eta, generator=gen,
                  known=x0, mask=mask, resample=resample, draw=draw)


def edit_request(model, images: torch.Tensor, labels: torch.Tensor, changes: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """What an attribute edit regenerates: ``(requests, mask)``: the photos' ``labels`` with ``changes`` applied
    (``{"color": "teal"}``), and the product region (:func:`product_mask`) grown as :data:`EDIT_GROW` says for the
    changed attributes. Used by :func:`edit` and the flow model's (lesson 13)."""
    from prodgen.models.condition import parse_request

    labels = check_labels(labels, model.schema)
    request = parse_request(changes, model.schema)[0]
    new = torch.where(request >= 0, request, labels)
    changed = [a for a, k in zip(model.schema.names, request) if k >= 0]
    grow = max((EDIT_GROW.get(a, 1) for a in changed), default=1)
    return new, product_mask(images, grow)


def edit(model: UNet, images: torch.Tensor, labels: torch.Tensor, changes: dict, seed: int = 0,
         **knobs) -> torch.Tensor:
    """Change some attributes of real photos (``changes={"color": "teal"}``): the photos' labels with the
    changes applied are the request, and only the product region (:func:`product_mask`, grown as
    :data:`EDIT_GROW` says for the changed attributes) is regenerated (:func:`inpaint`). Images in [-1, 1].
    ``knobs``: :func:`inpaint`'s (``steps``, ``guidance``, ``resample``, ``eta``, ``draw``). The studio's Edit tab
    and ``prodgen edit`` use it through ``DiffusionImageModel.edit``."""
    new, mask = edit_request(model, images, labels, changes)
    return inpaint(model, images, new, mask, seed=seed, **{**EDIT_KNOBS, **knobs})


# ----------------------------------------------------------------------------- the image-model protocol
GUIDANCE = Knob("guidance", 2.0, 0.0, 20.0,
                doc="classifier-free guidance w: 0 = unconditional, 1 = plain conditional, more = follow the "
                    "request more closely at some cost in variety (lesson 11's sweep)")
STEPS = Knob("steps", 20, 1, 1000, doc="sampling steps (evenly spaced over the 1000 noise levels): fewer = faster")
ETA = Knob("eta", 0.0, 0.0, 1.0, doc="0 = DDIM (deterministic given the start noise), 1 = ancestral DDPM")


class DiffusionImageModel(ImageModel):
    """The image-model protocol (``prodgen.models.protocol``) for the diffusion U-Net: attribute requests
    (unspecified ones drawn at random, or left to the model's learned "unspecified"), knobs ``guidance``,
    ``steps``, ``eta``; it edits photos (:func:`edit`, RePaint inpainting; variants differ by seed).
    Registered as ``diffusion`` (``SPECS`` below).

    A group's draws (``_latents``): the start noise ``x_T`` first, then the open attributes; the per-step noise
    of ``eta > 0`` is drawn while sampling, each group's rows from its own generator (``protocol.Noise``)."""

    accepts = "attributes"
    can_edit = True
    edit_draws = True
    edit_photos = staticmethod(edit)  # the family's editor: (network, images, labels, changes, seed, **knobs)

    def __init__(self, network, name: str = "diffusion", info: dict | None = None):
        super().__init__(network, name, info)
        if next(network.parameters()).device.type == "cpu":  # oneDNN's preferred layout (sample() feeds channels_last)
            self.network = network.to(memory_format=torch.channels_last)

    @property
    def knobs(self) -> dict:
        return {"guidance": GUIDANCE, "steps": STEPS, "eta": ETA, "unspecified": UNSPECIFIED}

    def _condition(self, prepared, gen: torch.Generator, unspecified: str) -> torch.Tensor:
        return fill_open(prepared, gen, self.schema) if unspecified == "random" else prepared

    def _latents(self, prepared, generator: torch.Generator, guidance: float = 2.0, steps: int = 20,
                 eta: float = 0.0, unspecified: str = "random") -> dict:
        x_T = torch.randn(self.count(prepared), *sample_shape(self.network), generator=generator)  # fixed per seed
        return {"x_T": x_T, "condition": self._condition(prepared, generator, unspecified)}

    def _decode(self, latents: dict, noise=None, guidance: float = 2.0, steps: int = 20, eta: float = 0.0,
                unspecified: str = "random") -> torch.Tensor:
        return sample(self.network, latents["condition"], steps=steps, guidance=guidance, eta=eta,
                      x_T=latents["x_T"], draw=None if noise is None else noise.randn)

    def _edit(self, images: torch.Tensor, labels: torch.Tensor, changes: dict, seeds: list[int],
              **knobs) -> list[torch.Tensor]:
        """:attr:`edit_photos` (here :func:`edit`, defaults :data:`EDIT_KNOBS`) for each seed; several seeds in one
        batch, each variant's noise from its own generator (the photos repeated once per seed)."""
        if len(seeds) == 1:
            return [self.edit_photos(self.network, images, labels, changes, seed=seeds[0], **knobs)]
        n = len(images)
        noise = Noise([(torch.Generator().manual_seed(s), n) for s in seeds])
        out = self.edit_photos(self.network, images.repeat(len(seeds), 1, 1, 1),
                               torch.as_tensor(labels).repeat(len(seeds), 1), changes, draw=noise.randn, **knobs)
        return list(out.split(n))

    def extra_evaluation(self, n: int, seed: int, judge) -> dict:
        from prodgen.catalog import load_catalog

        return {"edits": edit_table(self.network, load_catalog("test", progress=False), judge, n=min(n, 2000),
                                    seed=seed)}


class DiffusionTextModel(DiffusionImageModel):
    """The same network driven by descriptions (EN or ZH): lesson 07's word-vote reader turns each one into a
    soft request N x 34, which the attribute embedding mixes (``prodgen.models.condition.AttributeEmbedding``).
    Registered as ``diffusion-text``. Edits are the attribute model's (``diffusion``), so it does not edit."""

    accepts = "text"
    can_edit = False
    edit_draws = False

    def __init__(self, network, name: str = "diffusion-text", info: dict | None = None):
        from prodgen.models.text import load_encoder

        super().__init__(network, name, info)
        self.reader = load_encoder((info or {}).get("config", {}).get("reader", "text-votes"))

    def _condition(self, texts, gen: torch.Generator, unspecified: str) -> torch.Tensor:
        soft = self.reader.probabilities(texts, strict=True)  # N x 34
        return fill_unspecified(soft, gen) if unspecified == "random" else soft

    def understood(self, requests) -> list[dict]:
        return [{a: v for a, v in heard.items() if v is not None} for heard in self.reader.read(self.prepare(requests))]

    def extra_evaluation(self, n: int, seed: int, judge) -> dict:
        return {}


def build(config: dict) -> UNet:
    """Rebuild a shipped diffusion U-Net from its checkpoint config (``prodgen.models.registry``)."""
    return UNet(config.get("width", 32), config.get("schedule", "cosine"), schema=schema_of(config),
                channels=config.get("channels", 3), size=config.get("size", 32))


# ----------------------------------------------------------------------------- measuring it
@torch.no_grad()
def edit_table(model: UNet, catalog, judge, n: int = 2000, seed: int = 0, **knobs) -> dict:
    """Inpainting edits of the first ``n`` photos of ``catalog``, per attribute, measured as lesson 06 measures
    the CVAE's (``prodgen.models.cvae.edit_table``): each photo gets a different value of the attribute;
    ``success``: the judge sees the new value; ``preservation``: it still sees the other four;
    ``psnr_outside``: how unchanged the pixels outside the mask are (dB, uint8; ``inf`` = identical)."""
    from prodgen.catalog import denormalize

    num_classes = model.schema.num_classes
    images, labels = catalog.images[:n], catalog.labels[:n]
    gen = torch.Generator().manual_seed(seed)
    knobs = {**EDIT_KNOBS, **knobs}
    table, worst_mse = {}, 0.0
    for j, (a, k) in enumerate(num_classes.items()):
        new = labels.clone()
        new[:, j] = (labels[:, j] + torch.randint(1, k, (len(labels),), generator=gen)) % k  # a different value
        mask = product_mask(images, EDIT_GROW.get(a, 1))
        result = inpaint(model, images, new, mask, seed=seed + j, **knobs)  # [-1, 1]
        pred = judge.predict(result.contiguous(memory_format=torch.channels_last))
        edited = denormalize(result)  # uint8, as a saved PNG would be
        others = [i for i in range(len(num_classes)) if i != j]
        outside = (1 - mask).bool().expand_as(edited)
        diff = (edited.float() - images.float())[outside]
        worst_mse = max(worst_mse, float(diff.pow(2).mean()) if diff.numel() else 0.0)
        table[a] = {"success": round(float((pred[:, j] == new[:, j]).double().mean()), 4),
                    "preservation": round(float((pred[:, others] == labels[:, others]).double().mean()), 4),
                    "masked_share": round(float(mask.mean()), 4)}
    table["mean"] = {key: round(sum(table[a][key] for a in num_classes) / len(num_classes), 4)
                     for key in ("success", "preservation")}
    table["psnr_outside"] = float("inf") if worst_mse == 0 else round(10 * math.log10(255**2 / worst_mse), 2)
    table["knobs"] = knobs
    return table


def evaluate(model: UNet, n: int = 2000, seed: int = 0, judge=None, image_model=None, **knobs) -> dict:
    """What ``prodgen train diffusion`` records: control accuracy on ``n`` balanced requests, on the held-out
    (category, colour) pairs and on partial requests; FID (with floor), precision and recall. ``image_model``:
    the protocol object to measure instead of ``DiffusionImageModel(model)`` (``flow.evaluate`` passes its own)."""
    from prodgen.catalog import HELD_OUT_PAIRS
    from prodgen.metrics import control_accuracy, image_quality
    from prodgen.models import registry
    from prodgen.models.condition import balanced_requests, hide_attributes

    judge = judge if judge is not None else registry.load("judge")
    im = image_model if image_model is not None else DiffusionImageModel(model, "diffusion")
    requests = balanced_requests(n, seed)
    images = im.generate(requests, seed, **knobs)
    unseen = balanced_requests(max(n // 4, 8), seed + 1, only_pairs=HELD_OUT_PAIRS)
    partial = hide_attributes(balanced_requests(max(n // 4, 8), seed + 2), 0.5, torch.Generator().manual_seed(seed))
    rounded = lambda d: {k: round(v, 4) for k, v in d.items()}  # noqa: E731
    return {"n": n, "knobs": im.check_knobs(knobs),
            "control": rounded(control_accuracy(judge, images, requests)),
            "control_unseen_pairs": rounded(control_accuracy(judge, im.generate(unseen, seed + 1, **knobs), unseen)),
            "control_partial_requests": rounded(control_accuracy(judge, im.generate(partial, seed + 2, **knobs),
                                                                 partial)),
            **image_quality(judge, images, n)}


# ----------------------------------------------------------------------------- the shipped checkpoint
CHECKPOINT_CONFIG = {"width": 32, "schedule": "cosine", "epochs": 400, "minutes": None, "batch_size": 64, "lr": 1e-3,
                     "ema_decay": 0.999, "drop_p": 0.1, "hide_p": 0.1, "seed": 0, "train_split": "train",
                     "reader": "text-votes"}
"""How ``prodgen train diffusion`` trains: the whole training split, Adam, batch 64, EMA 0.999; the shipped
weights are the EMA's. ``reader``: the description reader ``diffusion-text`` puts in front of the same network."""


def train_checkpoint(name: str = "diffusion", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, data=None, **overrides) -> dict:
    """Train the shipped diffusion model (``prodgen train diffusion``), measure it (:func:`evaluate`) and save
    the EMA weights as ``diffusion`` and, with the text reader, ``diffusion-text`` (same weights). ``fast=True``:
    1,024 products, one epoch (a smoke test). ``out``, ``checkpoint``, ``resume``: see
    ``prodgen.models.registry.train``.
    ``data``: a catalog folder of your own (lesson 12; ``prodgen.evaluation.own_catalog``): only ``diffusion`` is saved.
    The shared steps: ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume, data=data)


def _fit(run) -> Trained:
    import copy

    from prodgen.engine.train import train_diffusion

    cfg = run.cfg
    torch.manual_seed(cfg["seed"])
    model = UNet(cfg["width"], cfg["schedule"], schema=run.train.schema)
    ema = copy.deepcopy(model)
    history = train_diffusion(model, run.train, lr=cfg["lr"], ema=ema, ema_decay=cfg["ema_decay"],
                              drop_p=cfg["drop_p"], hide_p=cfg["hide_p"], n_samples=0 if run.fast else 64,
                              **run.engine())
    config = {"width": cfg["width"], "schedule": cfg["schedule"]}
    if run.data is not None:
        config["schema"] = ema.schema.to_config()
    return Trained(ema, config, history, notes={"save_as": "diffusion"})


RECIPE = with_text_reader(CHECKPOINT_CONFIG, _fit, evaluate, "diffusion", "diffusion-text")
"""What ``prodgen train diffusion`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (
    ModelSpec("diffusion", "diffusion", build, train_checkpoint, DiffusionImageModel, lesson=11,
              recipe=CHECKPOINT_CONFIG, summary="DDPM/DDIM U-Net with classifier-free guidance: attribute requests"),
    ModelSpec("diffusion-text", "diffusion", build, train_checkpoint, DiffusionTextModel, lesson=11,
              recipe=CHECKPOINT_CONFIG, summary="the diffusion model behind the text reader: descriptions (EN/ZH)"),
)

"""Flow matching (lesson 13): straight paths from photos to noise, and an ODE solver to walk them back.

**The path.** Lesson 11 noised a photo ``x0`` along a curved schedule. Rectified flow (Liu et al., 2022) and
conditional flow matching (Lipman et al., 2022) use the straight line between the photo and a noise image
``eps ~ N(0, I)``: ``x_t = (1 - t) * x0 + t * eps`` for ``t`` in [0, 1] (``t = 0``: the photo, ``t = 1``: pure
noise; :func:`interpolate`). Along that line the image moves at a constant **velocity** ``v = eps - x0``
(:func:`velocity_target`), and the network learns it: ``|v - model(x_t, t, request)|^2``
(``prodgen.engine.losses.flow_loss``). A network cannot know which ``(x0, eps)`` pair a given ``x_t`` came from, so it
learns the *average* velocity through ``x_t``: a velocity field whose ODE ``dx/dt = v(x, t)``, run from noise
at ``t = 1`` down to ``t = 0``, carries the noise distribution onto the photos' distribution.

**Logit-normal times** (:func:`sample_time`, Esser et al., 2024, the recipe of current text-to-image systems).
Training times are ``t = sigmoid(z)``, ``z ~ N(0, 1)``, rather than uniform: most of them fall in the middle
and few near the ends. At the ends the best velocity is easy to guess: near ``t = 0`` the photo is almost
visible, near ``t = 1`` the noise is, and the answer is little more than "minus the photo" or "the noise minus
an average photo". In the middle the network must decide *what the photo becomes*: that is where the velocity
is hardest to predict and where the training examples help most. ``benchmarks/flow_recipe.py`` measures it
against uniform times.

**The network** is lesson 11's U-Net (``prodgen.models.diffusion.UNet``), reused as it is: the continuous time
``t`` is fed to its sinusoidal time embedding as ``1000 t`` (:data:`T_SCALE`, the range of diffusion's step
numbers its frequencies were made for). The same attribute condition, the same condition dropout (the whole
request hidden for 10 % of the photos, single attributes for another 10 %) and the same classifier-free guidance
``v = v_u + w (v_c - v_u)``, both passes in one batch; the shipped weights are the EMA's.

**Samplers** (:func:`integrate`, :func:`sample`) solve the ODE from ``t = 1`` to ``t = 0`` on ``steps`` equal time
steps of ``h = -1/steps``: **Euler** ``x <- x + h v(x, t)`` (one network evaluation a step), **Heun**
(Euler's step as a guess, then the average of the velocities at both ends: second order, two evaluations a
step) and **Adams-Bashforth 2** (``x <- x + h (3/2 v_n - 1/2 v_{n-1})``: second order from the previous step's
velocity, one evaluation a step). The start noise comes from a CPU ``torch.Generator``: the same seed gives
byte-identical images. On the CPU the network runs in the channels-last layout and, where the CPU computes
bfloat16 natively, under bf16 autocast (``prodgen.engine.train.resolve_precision``); the ODE itself is kept in fp32.

**Editing** (:func:`inpaint`): the region outside the mask is put back on its own straight path
``(1 - t) photo + t x_1`` (with the same start noise ``x_1``) after every step, so at ``t = 0`` it *is* the photo.

**The protocol** (:class:`FlowImageModel`, :class:`FlowTextModel`): a group's draws are its start noise ``x_1``,
then its open attributes; the ODE draws nothing more, so a group batched with others (``generate_groups``) gives
its own images up to the network's batch-size rounding.

Used by lesson 13, ``prodgen train flow`` and the shipped ``flow`` / ``flow-text`` models.
"""
from __future__ import annotations

import torch

from prodgen.catalog.schema import BUILTIN, Schema, schema_of
from prodgen.engine.losses import TIME_SAMPLINGS, flow_interpolate, flow_loss, flow_time, flow_velocity
from prodgen.models.condition import check_labels
from prodgen.models.diffusion import (
    GUIDANCE,
    DiffusionImageModel,
    DiffusionTextModel,
    UNet,
    _predict_v,
    _unconditional_like,
    edit_request,
    sample_shape,
)
from prodgen.models.protocol import UNSPECIFIED, Knob
from prodgen.models.recipe import Trained, with_text_reader
from prodgen.models.registry import ModelSpec

__all__ = ["T_SCALE", "interpolate", "velocity_target", "sample_time", "flow_loss", "TIME_SAMPLINGS", "FlowUNet",
           "SAMPLERS", "time_grid", "evaluations", "integrate", "guided_field", "sample", "inpaint", "edit",
           "EDIT_KNOBS", "STEPS",
           "SAMPLER", "FlowImageModel", "FlowTextModel", "build", "evaluate", "CHECKPOINT_CONFIG",
           "train_checkpoint"]

T_SCALE = 1000.0
"""Continuous times ``t`` in [0, 1] enter the U-Net's time embedding as ``T_SCALE * t``."""

interpolate = flow_interpolate  # x_t = (1 - t) x0 + t eps   (prodgen.engine.losses; the engine trains with it)
velocity_target = flow_velocity  # v = eps - x0
sample_time = flow_time  # training times: "logit-normal" (sigmoid of N(0, 1)) or "uniform"


# ----------------------------------------------------------------------------- the network
class FlowUNet(UNet):
    """``model(x_t, t, labels) -> v_hat``: images N x 3 x 32 x 32 on the path, times N (floats in [0, 1]),
    requests N x 5 (-1 = unspecified; or soft requests N x 34) -> the predicted velocity, N x 3 x 32 x 32.
    Lesson 11's U-Net (``diffusion.UNet``, ``width`` channels at 32 x 32) without its noise schedule;
    ``channels`` / ``size``: lesson 14's latent model is this network on 4 x 16 x 16 latent maps
    (``prodgen.models.latent``); ``in_channels``: lesson 15's try-on network reads more channels than it writes
    (``prodgen.models.tryon_latent``)."""

    def __init__(self, width: int = 32, schema: Schema = BUILTIN, channels: int = 3, size: int = 32,
                 in_channels: int | None = None):
        super().__init__(width, "cosine", schema=schema, channels=channels, size=size, in_channels=in_channels)
        del self.abar  # a straight path needs no noise schedule (and train_diffusion then refuses this network)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return super().forward(x, t.float() * T_SCALE, labels)  # N x 3 x 32 x 32

    def sample_grid(self, labels: torch.Tensor, steps: int = 10, guidance: float = 2.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Images for the training loop's sample grid (``prodgen.engine.train.train_flow``): :func:`sample`, Euler."""
        return sample(self, labels, steps=steps, guidance=guidance, sampler="euler", generator=generator)


# ----------------------------------------------------------------------------- solving the ODE
SAMPLERS = ("euler", "heun", "ab2")
"""The ODE solvers :func:`integrate` knows: Euler, Heun (2nd order, 2 evaluations a step), Adams-Bashforth 2."""


def time_grid(steps: int, start: float = 1.0) -> list[float]:
    """``steps + 1`` equally spaced times from ``start`` (1: pure noise) down to 0 (the photo)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise ValueError(f"steps must be a whole number from 1 to 1000, got {steps!r}")
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not 0 < start <= 1:
        raise ValueError(f"the start time must be a number in (0, 1], got {start!r}")
    return [start * (1.0 - i / steps) for i in range(steps)] + [0.0]


def evaluations(sampler: str, steps: int) -> int:
    """Velocity evaluations (network passes per image, twice that with guidance) of ``steps`` steps."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    return 2 * steps if sampler == "heun" else steps


def integrate(field, x: torch.Tensor, steps: int, sampler: str = "ab2", project=None,
              start: float = 1.0) -> torch.Tensor:
    """Solve ``dx/dt = field(x, t)`` from ``t = start`` to ``t = 0`` in ``steps`` equal steps; ``x``: the state at
    ``t = start`` (any shape), ``field(x, t: float) -> velocity`` like ``x``. ``project(x, t) -> x`` (optional) is
    applied after every step (inpainting puts the known pixels back). Returns the state at ``t = 0``."""
    evaluations(sampler, steps)  # checks the sampler
    ts = time_grid(steps, start)
    v_prev = h_prev = None
    for t, s in zip(ts[:-1], ts[1:]):
        h = s - t  # negative: time runs backwards, from noise to photo
        v = field(x, t)
        if sampler == "heun":  # Euler's guess, then the mean of the slopes at both ends
            x_next = x + h / 2 * (v + field(x + h * v, s))
        elif sampler == "ab2" and v_prev is not None:  # the slope extrapolated from this step and the last
            r = h / h_prev
            x_next = x + h * ((1 + r / 2) * v - (r / 2) * v_prev)
        else:  # Euler (and AB2's first step)
            x_next = x + h * v
        v_prev, h_prev = v, h
        x = project(x_next, s) if project is not None else x_next
    return x


def guided_field(model, labels: torch.Tensor, guidance: float = 2.0):
    """``field(x, t) -> velocity``: the guided velocity of the requests ``labels`` (N x 5) for a state ``x``
    (N x 3 x 32 x 32) at time ``t``, one fp32 pass over conditional and unconditional rows on the model's device,
    no gradients: what :func:`integrate` solves (:func:`sample` adds batching and bf16). Lesson 13 draws its
    trajectories with it."""
    uncond = _unconditional_like(labels, getattr(model, "schema", BUILTIN))
    w = float(guidance)

    @torch.no_grad()
    def field(x: torch.Tensor, t: float) -> torch.Tensor:
        return _predict_v(model, x, float(t), labels, uncond, w)

    return field


def _check_sampling(steps, guidance, sampler) -> None:
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= 50:
        raise ValueError(f"guidance must be a number from 0 to 50, got {guidance!r}")
    evaluations(sampler, 1)
    time_grid(steps)


@torch.no_grad()
def sample(model: FlowUNet, labels: torch.Tensor, steps: int = 8, guidance: float = 2.0, sampler: str = "ab2",
           generator: torch.Generator | None = None, x_1: torch.Tensor | None = None, batch_size: int = 256,
           known: torch.Tensor | None = None, mask: torch.Tensor | None = None, precision: str = "auto",
           draw=None, project=None, start: float = 1.0, clip: bool = True) -> torch.Tensor:
    """Images in [-1, 1] (N x 3 x 32 x 32, on the CPU; N x c x 16 x 16 latents for lesson 14's network, not
    clamped with ``clip=False``) for requests ``labels`` (N x 5, -1 = unspecified, or soft
    requests N x 34): start from noise ``x_1`` (drawn on the CPU from ``generator``, or by ``draw(shape)``, when
    not given) and solve the guided ODE with ``sampler`` (:data:`SAMPLERS`) in ``steps`` steps (:func:`integrate`).

    ``precision``: ``"auto"`` = bf16 autocast for the network where the CPU has native bf16, else fp32
    (``prodgen.engine.train.resolve_precision``); the state ``x`` stays fp32 on the CPU. ``known`` / ``mask``:
    inpainting (:func:`inpaint`). Same start noise, same device and precision -> the same bytes. ``draw``: as
    ``diffusion.sample``'s (``protocol.Noise.randn``: several variants batched, each from its own generator).
    ``project(x, t)`` and ``start`` (the state ``x_1`` is then the state at that time): :func:`integrate`'s, for
    restoration (:func:`restore`)."""
    from prodgen.engine.train import autocast_for, resolve_precision

    _check_sampling(steps, guidance, sampler)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    draw = draw if draw is not None else (lambda shape: torch.randn(shape, generator=gen))
    n = len(labels)
    x = draw((n, *sample_shape(model))) if x_1 is None else x_1.float().cpu().clone()  # N x 3 x 32 x 32
    dev = next(model.parameters()).device
    fmt = torch.channels_last if dev.type == "cpu" else torch.contiguous_format
    precision = resolve_precision(precision, dev)
    uncond = _unconditional_like(labels, getattr(model, "schema", BUILTIN))
    w = float(guidance)

    def field(x, t):
        parts = []
        for s in range(0, n, batch_size):
            xb = x[s:s + batch_size].to(dev).contiguous(memory_format=fmt)
            with autocast_for(dev, precision):
                v = _predict_v(model, xb, float(t), labels[s:s + batch_size].to(dev),
                               uncond[s:s + batch_size].to(dev), w)
            parts.append(v.float().cpu().contiguous())
        return torch.cat(parts)  # N x 3 x 32 x 32, fp32

    if known is not None:  # outside the mask: the photo's own straight path to the same start noise
        known, mask, x_start = known.float().cpu(), mask.float().cpu(), x.clone()
        project = lambda x, t: mask * x + (1 - mask) * ((1 - t) * known + t * x_start)  # noqa: E731
    was = model.training
    model.eval()
    try:
        x = integrate(field, x, steps, sampler, project, start)
    finally:
        model.train(was)
    return x.clamp(-1, 1) if clip else x


# ----------------------------------------------------------------------------- editing real photos
EDIT_KNOBS = {"steps": 10, "guidance": 3.0, "sampler": "euler"}
"""How edits sample by default: lesson 11's measured edit settings (10 steps, w = 3) with Euler's one pass a
step; not yet re-measured for the flow model."""


@torch.no_grad()
def inpaint(model: FlowUNet, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, steps: int = 10,
            guidance: float = 3.0, sampler: str = "euler", seed: int = 0, draw=None) -> torch.Tensor:
    """Regenerate the masked part of real photos for the requests ``labels`` (N x 5), keeping the rest:
    images in [-1, 1], N x 3 x 32 x 32. ``images``: uint8 or [-1, 1]; ``mask``: N x 1 x H x W, 1 = regenerate.
    Outside the mask the result *is* the photo (its path ends on it at ``t = 0``). ``draw``: see :func:`sample`."""
    from prodgen.catalog import normalize

    x0 = normalize(images) if images.dtype == torch.uint8 else images.float()
    mask = mask.float()
    if mask.shape != (len(x0), 1, *x0.shape[2:]):
        raise ValueError(f"mask must be N x 1 x H x W = {(len(x0), 1, *x0.shape[2:])}, got {tuple(mask.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    return sample(model, check_labels(labels, model.schema), steps=steps, guidance=guidance, sampler=sampler,
                  generator=gen, known=x0, mask=mask, draw=draw)


def edit(model: FlowUNet, images: torch.Tensor, labels: torch.Tensor, changes: dict, seed: int = 0,
         **knobs) -> torch.Tensor:
    """Change some attributes of real photos (``changes={"color": "teal"}``), regenerating only the product
    region (``diffusion.product_mask`` grown as ``diffusion.EDIT_GROW`` says): lesson 11's edit with the flow's
    :func:`inpaint`. Images in [-1, 1]; ``knobs``: :func:`inpaint`'s (``steps``, ``guidance``, ``sampler``,
    ``draw``). ``prodgen edit --model flow`` and the studio use it through ``FlowImageModel.edit``."""
    new, mask = edit_request(model, images, labels, changes)
    return inpaint(model, images, new, mask, seed=seed, **{**EDIT_KNOBS, **knobs})


# ----------------------------------------------------------------------------- restoring damaged photos
RESTORE_KNOBS = {"steps": 16, "sampler": "euler"}
"""How restoration samples by default (not yet tuned; ``benchmarks/restore.py`` measures the settings)."""


@torch.no_grad()
def restore(model: FlowUNet, observed: torch.Tensor, operator, steps: int = 16, sampler: str = "euler",
            seed: int = 0, labels: torch.Tensor | None = None, guidance: float = 1.0) -> torch.Tensor:
    """Photos damaged by ``operator`` (``prodgen.apps.degrade``), restored with the flow as the prior (lesson
    16): images in [-1, 1], N x 3 x 32 x 32. ``labels``: what is known of the products (N x 5, -1 = unknown;
    default: nothing, the unconditional model).

    - **Noise** of std ``sigma``: ``(1 - t*) y`` with ``t* = sigma / (1 + sigma)`` *is* a point of a straight path,
      ``(1 - t*) x0 + t* n``, so the ODE starts there and walks to ``t = 0`` (SDEdit's start at the exact level).
    - **Any other damage**: from noise ``eps`` at ``t = 1``; after every step to time ``s`` the state is projected
      onto the states a path through a consistent photo can have, ``(1 - s) C + s eps`` (``C``: the photos
      ``operator.project`` maps onto): ``P_s(x) = (1 - s) P_C((x - s eps) / (1 - s)) + s eps``. At ``s = 0`` the
      result is consistent with the observation; for lost pixels this is :func:`inpaint`'s rule. (DDNM's
      range/null-space split, Wang et al. 2022, on the straight path, where it is exact for noise-free
      damage.)"""
    n = len(observed)
    labels = torch.full((n, len(model.schema)), -1, dtype=torch.long) if labels is None else labels
    labels = check_labels(labels, model.schema)
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(n, *sample_shape(model), generator=gen)
    y = observed.float().cpu()
    if operator.task == "denoise":
        start = operator.sigma / (1 + operator.sigma)
        if start == 0:
            return y.clamp(-1, 1)
        return sample(model, labels, steps=steps, guidance=guidance, sampler=sampler, x_1=(1 - start) * y,
                      start=start)

    def project(x, s):
        if s >= 1:
            return x
        return (1 - s) * operator.project((x - s * eps) / (1 - s), y) + s * eps

    return sample(model, labels, steps=steps, guidance=guidance, sampler=sampler, x_1=eps, project=project)


# ----------------------------------------------------------------------------- the image-model protocol
STEPS = Knob("steps", 8, 1, 1000, doc="ODE steps from noise to photo (equal time steps): fewer = faster")
SAMPLER = Knob("sampler", "ab2", choices=SAMPLERS,
               doc="euler (1 network pass a step), heun (2nd order, 2 passes a step) or ab2 (Adams-Bashforth, "
                   "2nd order from the last step's velocity, 1 pass a step)")
"""The defaults, AB2 in 8 steps: measured by ``benchmarks/flow_recipe.py --part sampling`` (a 4-CPU-minute model,
300 requests, guidance 2): AB2 8 steps FID 442.9 / control 0.842 at 8 evaluations, against Heun 8 steps 475.4 /
0.840 at 16 and Euler 8 steps 492.0 / 0.836 at 8 (AB2 4 steps: 451.7 / 0.838; Heun 2 steps falls apart)."""


class FlowImageModel(DiffusionImageModel):
    """The image-model protocol for the flow U-Net: attribute requests, knobs ``guidance``, ``steps``,
    ``sampler``, ``unspecified``; it edits photos (:func:`edit`, variants differ by their start noise).
    Registered as ``flow`` (``SPECS`` below). Built on lesson 11's class: the same requests, the same
    channels-last network; the knobs, the draws, the sampler and the editor are the flow's.

    A group's draws (``_latents``): the start noise ``x_1`` first, then the open attributes; decoding draws
    nothing (the ODE is deterministic)."""

    edit_photos = staticmethod(edit)  # the flow's inpainting editor; batching the variants is lesson 11's _edit
    can_restore = True

    def __init__(self, network, name: str = "flow", info: dict | None = None):
        super().__init__(network, name, info)

    @property
    def knobs(self) -> dict:
        return {"guidance": GUIDANCE, "steps": STEPS, "sampler": SAMPLER, "unspecified": UNSPECIFIED}

    def _latents(self, prepared, generator: torch.Generator, guidance: float = 2.0, steps: int = 8,
                 sampler: str = "ab2", unspecified: str = "random") -> dict:
        # the start noise first: fixed per seed
        x_1 = torch.randn(self.count(prepared), *sample_shape(self.network), generator=generator)
        return {"x_1": x_1, "condition": self._condition(prepared, generator, unspecified)}

    def _decode(self, latents: dict, noise=None, guidance: float = 2.0, steps: int = 8, sampler: str = "ab2",
                unspecified: str = "random") -> torch.Tensor:
        return sample(self.network, latents["condition"], steps=steps, guidance=guidance, sampler=sampler,
                      x_1=latents["x_1"])

    def _restore(self, observed, operator, seed: int, **knobs) -> torch.Tensor:
        return restore(self.network, observed, operator, seed=seed, **{**RESTORE_KNOBS, **knobs})

    def extra_evaluation(self, n: int, seed: int, judge) -> dict:
        return {}  # the edit table (diffusion.edit_table) is not yet measured for the flow model


class FlowTextModel(DiffusionTextModel, FlowImageModel):
    """The same network driven by descriptions (EN or ZH) through lesson 07's word-vote reader (soft requests
    N x 34), as ``diffusion-text``; the flow's knobs and sampler; it does not edit. Registered as ``flow-text``."""

    def __init__(self, network, name: str = "flow-text", info: dict | None = None):
        super().__init__(network, name, info)


def build(config: dict) -> FlowUNet:
    """Rebuild a flow U-Net from its checkpoint config (``prodgen.models.registry``)."""
    return FlowUNet(config.get("width", 32), schema=schema_of(config), channels=config.get("channels", 3),
                    size=config.get("size", 32))


def evaluate(model: FlowUNet, n: int = 2000, seed: int = 0, judge=None, **knobs) -> dict:
    """What ``prodgen train flow`` records (as ``diffusion.evaluate``): control on ``n`` balanced requests,
    held-out pairs and partial requests; FID (with floor), precision and recall."""
    from prodgen.models.diffusion import evaluate as evaluate_diffusion

    return evaluate_diffusion(model, n, seed, judge, image_model=FlowImageModel(model, "flow"), **knobs)


# ----------------------------------------------------------------------------- the checkpoint
CHECKPOINT_CONFIG = {"width": 32, "epochs": 400, "minutes": None, "batch_size": 64, "lr": 1e-3, "ema_decay": 0.999,
                     "drop_p": 0.1, "hide_p": 0.1, "time_sampling": "logit-normal", "seed": 0,
                     "train_split": "train", "reader": "text-votes", "init": None}
"""How ``prodgen train flow`` trains (``benchmarks/flow_recipe.py`` compares the choices): the whole training
split, Adam, EMA (warmed up, ``prodgen.engine.train.train_flow``); the saved weights are the EMA's. ``reader``:
the description reader ``flow-text`` puts in front of the same network. ``init``: a ``--out`` checkpoint file of
``flow`` to start from (a run continued in a later sitting, with a fresh Adam; its record is kept)."""


def train_checkpoint(name: str = "flow", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, data=None, **overrides) -> dict:
    """Train the flow model (``prodgen train flow``), measure it (:func:`evaluate`) and save the EMA weights as
    ``flow`` and, with the text reader, ``flow-text`` (same weights). ``fast=True``: 1,024 products, one epoch
    (a smoke test). ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``. ``data``: a
    catalog folder of your own (lesson 12): only ``flow`` is saved. The shared steps: ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume, data=data)


def _fit(run) -> Trained:
    import copy

    from prodgen.engine.train import train_flow

    cfg = run.cfg
    torch.manual_seed(cfg["seed"])
    model = FlowUNet(cfg["width"], schema=run.train.schema)
    earlier = _start_from(model, cfg["init"]) if cfg["init"] else {}
    ema = copy.deepcopy(model)
    history = train_flow(model, run.train, lr=cfg["lr"], ema=ema, ema_decay=cfg["ema_decay"], drop_p=cfg["drop_p"],
                         hide_p=cfg["hide_p"], time_sampling=cfg["time_sampling"], n_samples=0 if run.fast else 64,
                         **run.engine())
    config = {"width": cfg["width"]}
    if run.data is not None:
        config["schema"] = ema.schema.to_config()
    return Trained(ema, config, history, training=earlier, notes={"save_as": "flow"})


def _start_from(model: FlowUNet, path) -> dict:
    """Load the weights of the ``flow`` checkpoint file ``path`` into ``model``; returns the training-record entry
    that says what the earlier run was (so the manifest records the whole budget)."""
    from pathlib import Path

    from prodgen import checkpoints
    from prodgen.models import registry

    earlier, info = registry.load_file(path)
    if info["name"] != "flow" or info["config"].get("width") != model.width:
        raise ValueError(f"{path} holds {info['name']!r} of width {info['config'].get('width')}; "
                         f"init needs a 'flow' checkpoint of width {model.width}")
    model.load_state_dict(earlier.state_dict())
    record = {k: info["training"][k] for k in ("epochs_done", "images_seen", "seconds", "threads")
              if k in info["training"]}
    return {"continued_from": {"file": Path(path).name, "sha256": checkpoints.sha256(path), **record}}


RECIPE = with_text_reader(CHECKPOINT_CONFIG, _fit, evaluate, "flow", "flow-text")
"""What ``prodgen train flow`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (
    ModelSpec("flow", "flow", build, train_checkpoint, FlowImageModel, lesson=13, recipe=CHECKPOINT_CONFIG,
              summary="rectified flow on lesson 11's U-Net, AB2 sampler, guidance: attribute requests"),
    ModelSpec("flow-text", "flow", build, train_checkpoint, FlowTextModel, lesson=13, recipe=CHECKPOINT_CONFIG,
              summary="the flow model behind the text reader: descriptions (EN/ZH)"),
)

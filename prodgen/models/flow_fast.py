"""Few-step flow (lesson 13): the guided flow model distilled into a 1-4-step generator, guidance baked in.

The shipped ``flow`` model (the **teacher**, ``prodgen.models.flow``) needs about 8 ODE steps, each with two
network passes for classifier-free guidance. ``flow-fast`` is the same U-Net (initialised from the teacher's
weights) trained so that 1 to 4 steps of **one** pass each give the guided teacher's images.

**Reflow** (Liu et al., 2022; the method shipped). The teacher's guided ODE with guidance ``w`` carries each noise
image ``eps`` to one image ``x`` (:func:`teacher_pairs`: deterministic, the same seed gives the same pairs). The
teacher's own paths curve: a network trained on random (photo, noise) pairs learns the *average* velocity through
each point, and averages of crossing lines are bent. Pairs joined by the teacher's ODE never cross, so training
the student on the straight lines between them (``prodgen.engine.losses.reflow_loss``, times uniform in [0, 1])
gives a field whose paths are nearly straight, and an Euler step as long as the whole path lands close to where
the teacher's 16 steps landed. The condition is the pair's request as it went into the teacher, so the student's
plain conditional velocity *is* the teacher's guided one: one pass a step, no guidance knob (``w`` is fixed at
training, :data:`FAST_CONFIG`). A second **round** makes new pairs with the student's own ODE (now at ``w = 1``)
and straightens again. Whatever step count is asked (1-4), the same network serves.

**Progressive distillation** (Salimans & Ho, 2022; the method compared, ``method="progressive"``). Each round a
student learns to take in one step what its teacher takes in two (:func:`progressive_loss`: the target velocity
is the one that lands a single step where two teacher half-steps land), halving the step count per round (16 ->
8 -> 4 ...). Chosen over consistency distillation as the second method because every round is a plain regression
on targets the teacher computes exactly (no EMA target network, no distance to pick, which consistency models are
sensitive to), so it is the one that works on a small CPU budget; its costs: two teacher passes (four with
guidance) per training image, a round per halving, and a model tied to one step count. Reflow pays the teacher's
ODE once per pair up front and then trains at the cost of plain flow matching, and one model serves 1-4 steps.

:class:`FlowFastImageModel` is the protocol class (knobs ``steps`` 1-4, ``sampler``, ``unspecified``), registered as
``flow-fast``; ``prodgen train flow-fast`` distils the shipped ``flow`` (train that first). Used by lesson 13,
``benchmarks/diffusion_vs_flow.py`` and the studio.
"""
from __future__ import annotations

import copy
import functools
import time

import torch

from prodgen.catalog.schema import BUILTIN
from prodgen.engine.losses import flow_interpolate, reflow_loss
from prodgen.models import flow
from prodgen.models.diffusion import _unconditional_like, guided, sample_shape
from prodgen.models.flow import SAMPLERS, FlowImageModel, FlowUNet, sample
from prodgen.models.protocol import UNSPECIFIED, Knob
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["METHODS", "pair_requests", "teacher_pairs", "Pairs", "reflow", "progressive_target", "progressive_loss",
           "progressive", "FAST_SAMPLER", "FlowFastImageModel", "FAST_CONFIG", "train_checkpoint"]

METHODS = ("reflow", "progressive")
"""How ``prodgen train flow-fast`` distils: reflow (shipped) or progressive distillation (compared)."""


# ----------------------------------------------------------------------------- reflow: the teacher's pairs
def pair_requests(labels: torch.Tensor, n: int, hide_p: float = 0.1, seed: int = 0) -> torch.Tensor:
    """``n`` requests (n x 5) drawn from a catalog's ``labels`` (a fresh permutation each time round), each
    attribute hidden (-1) with probability ``hide_p`` so the student also learns partial requests."""
    gen = torch.Generator().manual_seed(seed)
    rounds = -(-n // len(labels))
    order = torch.cat([torch.randperm(len(labels), generator=gen) for _ in range(rounds)])[:n]
    chosen = labels[order].clone()
    return chosen.masked_fill(torch.rand(chosen.shape, generator=gen) < hide_p, -1)


@torch.no_grad()
def teacher_pairs(teacher: FlowUNet, labels: torch.Tensor, guidance: float = 2.0, steps: int = 16,
                  sampler: str = "ab2", seed: int = 0, batch_size: int = 256,
                  log=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eps, x)``: noise images drawn from ``seed`` (N x 3 x 32 x 32) and where the teacher's guided ODE takes
    them (``flow.sample``, ``steps`` steps of ``sampler``; images in [-1, 1]). Same teacher and seed, same pairs.
    ``log``: told how far it got, with an estimate of the time left, about every 10 % (10,000 pairs take minutes)."""
    eps = torch.randn(len(labels), *sample_shape(teacher), generator=torch.Generator().manual_seed(seed))
    chunk = batch_size * max(1, len(labels) // (10 * batch_size))  # whole batches: the same bytes as in one call
    x, start = [], time.perf_counter()
    for i in range(0, len(labels), chunk):
        x.append(sample(teacher, labels[i:i + chunk], steps=steps, guidance=guidance, sampler=sampler,
                        x_1=eps[i:i + chunk], batch_size=batch_size))
        done = i + len(x[-1])
        if log and done < len(labels):
            left = (time.perf_counter() - start) / done * (len(labels) - done)
            log(f"teacher pairs: {done:,} of {len(labels):,} ({left / 60:.1f} min left)")
    return eps, torch.cat(x)


class Pairs:
    """A teacher's pairs as the engine's data (``prodgen.engine.train.train_field``): batches of
    ``(N x 6 x 32 x 32 = [image, noise] along the channels, requests N x 5)``, shuffled as a catalog's."""

    def __init__(self, x: torch.Tensor, eps: torch.Tensor, labels: torch.Tensor):
        if not len(x) == len(eps) == len(labels):
            raise ValueError(f"pairs need as many images, noises and requests, got {len(x)}, {len(eps)}, {len(labels)}")
        # N x 6 x 32 x 32, kept in float16 (20,000 pairs: 0.7 GB) and handed out as float32
        self.images, self.labels = torch.cat([x, eps], dim=1).half(), labels

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, shuffle: bool = True, generator=None, drop_last: bool = False, device=None):
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        stop = len(self) - len(self) % batch_size if drop_last else len(self)
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield self.images[idx].to(device).float(), self.labels[idx].to(device)


def reflow(student: FlowUNet, pairs: Pairs, ema: FlowUNet, **engine):
    """One reflow round: train ``student`` (and its EMA) on straight paths between the pairs; returns the History.
    ``engine``: ``train_field``'s options (epochs, batch_size, lr, ema_decay, max_minutes, checkpoint, ...)."""
    from prodgen.engine.train import train_field

    return train_field(student, pairs, functools.partial(reflow_loss, sampling="uniform"), kind="reflow", ema=ema,
                       **engine)


# ----------------------------------------------------------------------------- progressive distillation
@torch.no_grad()
def progressive_target(teacher, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, h: float,
                       guidance: float = 1.0) -> torch.Tensor:
    """The velocity of one student step of length ``h`` from ``x_t`` at times ``t`` (N,) that lands where two
    Euler half-steps of the (guided) teacher land: ``(x_t - x_{t-h}) / h``. N x 3 x 32 x 32."""
    uncond = _unconditional_like(labels, getattr(teacher, "schema", BUILTIN))
    x, half = x_t.float(), h / 2
    for k in range(2):
        tt = (t - k * half).float()
        if guidance == 1.0:
            v = teacher(x, tt, labels).float()
        else:
            both = teacher(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, uncond])).float()
            v = guided(*both.chunk(2), guidance)
        x = x - half * v
    return (x_t.float() - x) / h


def progressive_loss(teacher, steps: int, guidance: float = 1.0, generator=None):
    """The loss of one progressive round, ``loss(net, x0, labels)``: times on the student's grid of ``steps``
    steps (t = k / steps, k = 1..steps), photos put on their straight path there, and ``|v_target - net(x_t)|^2``
    with :func:`progressive_target` (the teacher's two half-steps)."""

    def loss(net, x0, labels):
        k = torch.randint(1, steps + 1, (len(x0),), generator=generator).to(x0.device)
        t = k.float() / steps
        eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        x_t = flow_interpolate(x0, eps, t)
        target = progressive_target(teacher, x_t, t, labels, 1.0 / steps, guidance)
        return (net(x_t, t, labels).float() - target).pow(2).mean()

    return loss


def progressive(teacher: FlowUNet, catalog, start_steps: int, final_steps: int, guidance: float, log=None,
                **engine) -> tuple[FlowUNet, list]:
    """Rounds of progressive distillation from ``start_steps`` (the guided teacher's) down to ``final_steps``
    (halving each round; the first round distils guidance in); returns the last student's EMA and the Histories.
    ``engine``: ``train_field``'s options, per round (``hide_p`` for partial requests)."""
    from prodgen.engine.train import train_field

    steps, w, histories = start_steps // 2, guidance, []
    while steps >= final_steps:
        student = copy.deepcopy(teacher).train()
        ema = copy.deepcopy(student)
        histories.append(train_field(student, catalog, progressive_loss(teacher, steps, w), kind="progressive",
                                     ema=ema, **engine))
        if log:
            log(f"progressive round to {steps} steps: loss {histories[-1].steps['loss'][-1]:.4f}")
        teacher, w, steps = ema.eval(), 1.0, steps // 2
    return teacher, histories


# ----------------------------------------------------------------------------- the image-model protocol
FAST_SAMPLER = Knob("sampler", "euler", choices=SAMPLERS,
                    doc="euler (1 network pass a step), heun (2 passes a step) or ab2 (1 pass a step, 2nd order)")


class FlowFastImageModel(FlowImageModel):
    """The distilled flow on the image-model protocol: attribute requests, knobs ``steps`` (1-4; default the
    step count it was distilled for, ``info["config"]["steps"]``), ``sampler`` and ``unspecified``. No guidance
    knob: the teacher's guidance (``info["config"]["guidance"]``) is in the weights, so each step is one network
    pass over the conditional rows alone. Edits as ``flow`` does, in its few steps. Registered as ``flow-fast``."""

    def __init__(self, network, name: str = "flow-fast", info: dict | None = None):
        super().__init__(network, name, info)
        config = (info or {}).get("config") or {}
        self.default_steps = int(config.get("steps", 4))
        self.baked_guidance = config.get("guidance")

    @property
    def knobs(self) -> dict:
        steps = Knob("steps", self.default_steps, 1, 4, doc="Euler-like steps from noise to photo, one pass each")
        return {"steps": steps, "sampler": FAST_SAMPLER, "unspecified": UNSPECIFIED}

    def _latents(self, prepared, generator: torch.Generator, steps: int = 4, sampler: str = "euler",
                 unspecified: str = "random") -> dict:
        return super()._latents(prepared, generator, unspecified=unspecified)

    def _decode(self, latents: dict, noise=None, steps: int = 4, sampler: str = "euler",
                unspecified: str = "random") -> torch.Tensor:
        return sample(self.network, latents["condition"], steps=steps, guidance=1.0, sampler=sampler,
                      x_1=latents["x_1"])  # w = 1: the conditional pass alone

    def _edit(self, images, labels, changes: dict, seeds: list[int], **knobs) -> list[torch.Tensor]:
        return super()._edit(images, labels, changes, seeds,
                             **{"steps": self.default_steps, "sampler": "euler", **knobs, "guidance": 1.0})


# ----------------------------------------------------------------------------- the checkpoint
FAST_CONFIG = {"method": "reflow", "teacher": "flow", "guidance": 2.0, "teacher_steps": 16, "teacher_sampler": "ab2",
               "pairs": 10000, "rounds": 1, "steps": 4, "epochs": 24, "minutes": None, "batch_size": 64, "lr": 2e-4,
               "ema_decay": 0.999, "hide_p": 0.1, "seed": 0, "train_split": "train"}
"""How ``prodgen train flow-fast`` distils (``epochs`` and ``minutes`` per round). ``teacher``: ``"flow"`` (the
shipped checkpoint) or a file written by ``prodgen train flow --out``. Reflow: ``pairs`` teacher images with
``guidance`` from ``teacher_steps`` steps of ``teacher_sampler``; ``rounds`` of reflow; ``steps``: the model's
default step count. Progressive: from ``teacher_steps`` down to ``steps``, halving, on the catalog's photos.
A small lr (2e-4): the student starts from the teacher's weights and should stay near them. The budget: each
pair costs 32 network passes (16 AB2 steps, guidance's two rows): 8.3 pairs/s on one thread of the 2026-12-07
machine (bf16), so 10,000 pairs take about 20 minutes and 24 epochs over them about 25 more."""


def train_checkpoint(name: str = "flow-fast", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, **overrides) -> dict:
    """Distil the shipped ``flow`` into ``flow-fast`` (``prodgen train flow-fast``; :data:`FAST_CONFIG`),
    measure it and save the student's EMA weights. ``fast=True``: 1,024 products, 256 pairs from 4 teacher
    steps, one epoch (a smoke test). ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume)


def _prepare(run) -> None:
    """Refuse a bad method or a missing teacher before any data are loaded."""
    import math
    from pathlib import Path

    from prodgen.engine import distributed
    from prodgen.models import registry

    cfg = run.cfg
    if cfg["method"] not in METHODS:
        raise ValueError(f"unknown method {cfg['method']!r}; valid: {', '.join(METHODS)}")
    ratio = cfg["teacher_steps"] / cfg["steps"] if cfg["steps"] in (1, 2, 3, 4) else 0
    if ratio == 0 or (cfg["method"] == "progressive" and (ratio < 2 or ratio != 2 ** round(math.log2(ratio)))):
        raise ValueError(f"steps must be 1-4 (progressive: teacher_steps / steps a power of 2 >= 2), got steps "
                         f"{cfg['steps']!r}, teacher_steps {cfg['teacher_steps']!r}")
    if distributed.world_size() > 1:
        raise ValueError("flow-fast trains in one process (its pairs are not sharded); run it without torchrun")
    if cfg["teacher"] == "flow" and "flow" not in registry.manifest():
        raise ValueError("flow-fast distils the shipped flow model, and none is shipped: train flow first "
                         "(prodgen train flow)")
    if cfg["teacher"] != "flow" and not Path(cfg["teacher"]).is_file():
        raise FileNotFoundError(f"teacher {cfg['teacher']}: no such file (a checkpoint from prodgen train flow --out)")


def _teacher(source: str) -> FlowUNet:
    from prodgen.models import registry

    net = registry.load("flow") if source == "flow" else registry.load_file(source)[0]
    if not isinstance(net, FlowUNet):
        raise ValueError(f"teacher {source} is not a flow model (prodgen train flow)")
    return net.eval()


def _round_state(run, r: int):
    """Round ``r``'s training-state file (for ``--resume``), next to the run's own."""
    return None if run.checkpoint is None else run.checkpoint.with_name(f"{run.checkpoint.stem}.round{r}.pt")


def _fit(run) -> Trained:
    cfg = run.cfg
    teacher = _teacher(str(cfg["teacher"]))
    torch.manual_seed(cfg["seed"])
    engine = {**run.engine(), "lr": cfg["lr"], "ema_decay": cfg["ema_decay"]}
    rounds = []
    if cfg["method"] == "progressive":
        engine["checkpoint"] = None  # one state file per round would be needed; progressive is the comparison
        student, histories = progressive(teacher, run.train, cfg["teacher_steps"], cfg["steps"], cfg["guidance"],
                                         log=run.log, hide_p=cfg["hide_p"], **engine)
        rounds = [{"final_loss": h.steps["loss"][-1]} for h in histories]
    else:
        labels = pair_requests(run.train.labels, cfg["pairs"], cfg["hide_p"], cfg["seed"])
        student, w = teacher, cfg["guidance"]
        for r in range(cfg["rounds"]):
            if run.log:
                run.log(f"reflow round {r + 1}: {len(labels):,} teacher pairs ({cfg['teacher_steps']} "
                        f"{cfg['teacher_sampler']} steps each), then {cfg['epochs']} epochs over them")
            eps, x = teacher_pairs(student, labels, w, cfg["teacher_steps"], cfg["teacher_sampler"], cfg["seed"] + r,
                                   log=run.log)
            net, ema = copy.deepcopy(student).train(), copy.deepcopy(student)
            history = reflow(net, Pairs(x, eps, labels), ema, **{**engine, "checkpoint": _round_state(run, r)})
            rounds.append({"pairs": len(labels), "final_loss": history.steps["loss"][-1]})
            if run.log:
                run.log(f"reflow round {r + 1}: loss {history.steps['loss'][-1]:.4f}")
            student, w = ema.eval(), 1.0
        histories = [history]
    config = {"width": teacher.width, "steps": cfg["steps"], "guidance": cfg["guidance"], "method": cfg["method"]}
    return Trained(student, config, histories[-1], training={"rounds": rounds})


def _measure(run, trained) -> dict:
    from prodgen.models.diffusion import evaluate

    image_model = FlowFastImageModel(trained.model, "flow-fast", {"config": trained.config})
    return evaluate(trained.model, n=200 if run.fast else 2000, image_model=image_model)


def _report(metrics: dict) -> str:
    return f"control {metrics['control']}, held-out {metrics['control_unseen_pairs']['mean']}, FID {metrics['fid']}"


RECIPE = Recipe(FAST_CONFIG, _fit, _measure, names=("flow-fast",), what="train_checkpoint trains 'flow-fast'",
                prepare=_prepare, report=_report,
                fast={"epochs": 1, "minutes": None, "pairs": 256, "teacher_steps": 4})
"""What ``prodgen train flow-fast`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (
    ModelSpec("flow-fast", "flow", flow.build, train_checkpoint, FlowFastImageModel, lesson=13, recipe=FAST_CONFIG,
              summary="the flow model distilled by reflow: 1-4 steps, one pass each, guidance baked in"),
)

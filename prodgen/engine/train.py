"""The training engine: GAN and VAE training loops that every lesson from 03 on reuses.

What a loop gives you, so that a lesson can say "train for two minutes" in one line:

- a ``tqdm.auto`` progress bar with the live losses (``callbacks=[Progress(False)]`` for tests);
- a :class:`History`: every step's losses, per-epoch means, a sample grid from fixed
  noise after each epoch (``SampleGrid``), images seen, seconds, and ``.plot()``;
- seeding (same seed, same device -> same result; on CUDA the loop asks cuDNN for deterministic
  kernels while it runs) and device auto-selection
  (``"auto"``: cuda, then mps, then cpu);
- ``Checkpoints(path)``: an atomic save (temp file + rename) at each epoch end holding the
  model(s), optimisers, history, epoch and RNG states; ``Checkpoints(path, resume=True)`` continues from it;
- ``steps`` (a ``StepBudget``): stop after so many steps, the same run on every machine (the lessons' live
  demos); ``max_minutes`` (a ``TimeBudget``): stop cleanly at a batch boundary when the time budget is spent,
  or, beside ``steps``, a safety cap that says loudly when it cut the run short;
- ``OnEpoch(fn)``: anything else after every epoch (e.g. keeping the best epoch).

These are the callbacks of ``prodgen.engine.callbacks``; the loss and optimiser settings of a GAN are one
:class:`GANSettings`.

CPU speed. Data stay in memory as uint8 tensors and are sliced a batch at a time (no per-item
Python work). ``precision="auto"`` turns on bfloat16 autocast on a CPU with native bf16
instructions (AVX512-BF16 or AMX: recent AMD EPYC/Ryzen and Intel Xeon), where oneDNN runs the
convolutions in bf16: measured 1.35-1.6x faster than fp32 for the DCGAN on a 2-core AMD EPYC. On
other CPUs bf16 is emulated and slower, so ``auto`` means fp32 there; on a GPU too (these small
models are bound by kernel launches: bf16 measured ~40 % slower on an H200). Models and batches
use the ``channels_last`` layout on the CPU (oneDNN's preferred layout: another 1.1-1.2x); on a
GPU the layout stays NCHW (channels_last measured ~12 % slower on an H200). ``"fp32"`` or
``"bf16"`` force a precision. ``prodgen bench`` measures the engine against a bare loop and
against a plain fp32 NCHW loop, and says which precision the default picked.

Several processes. Under ``torchrun`` (``torchrun --standalone --nproc_per_node=N -m prodgen train MODEL``,
or a script that joined a process group) the same loops train with DistributedDataParallel
(``prodgen.engine.distributed``: gloo on the CPU, NCCL with one GPU per process):

- data: every epoch all ranks draw the same permutation from the seeded generator and each takes its own
  slice of every global batch, so no product is seen twice in an epoch;
- ``batch_size`` is the **global** batch, split evenly across the processes (it must be a multiple of N).
  DDP averages the gradients over ranks, so a step is the same mean-over-``batch_size`` step as in one
  process and the learning rate means the same: results are comparable with one process, the number of
  steps per epoch does not change, each step costs every rank 1/N of the images;
- batch norm keeps **per-rank** statistics (no SyncBatchNorm): each rank normalises its own slice, just as
  the GAN step already normalises real and fake batches separately. SyncBatchNorm would add a collective to
  every normalisation layer in every forward (three discriminator forwards per step) for models this small,
  and PyTorch implements it for accelerators only (it refuses CPU tensors, so gloo runs could not use it). With many
  GPUs raise the global batch
  (``--batch``) so each rank keeps a few dozen images. Running statistics are copied from rank 0 before
  each sample grid and checkpoint, so every buffer, and the EMA generator, ends identical on all ranks
  (the weights are identical by construction: DDP broadcasts the initial ones and averages gradients);
- each rank draws its own noise (seeded from seed, epoch and rank, so ``resume=True`` continues exactly);
  the history's losses are means over ranks and ``images_seen`` counts the images of all ranks;
- rank 0 alone shows progress, draws the sample grid and writes the (atomic) checkpoint; the time budget
  is agreed by all ranks when losses are gathered (every step on the CPU, every 25 steps on a GPU).

Used by lessons 03 (GANs), 04 (VAEs), 05-07 (conditional models), 10 and 11 (diffusion, :func:`train_diffusion`),
13 (flow matching, :func:`train_flow`) and by ``prodgen train``.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field

import torch

from prodgen.engine import distributed, losses
from prodgen.engine.callbacks import Callback, Checkpoints, OnEpoch, Progress, SampleGrid, StepBudget, TimeBudget

__all__ = ["History", "GANSettings", "train_gan", "train_vae", "train_diffusion", "train_flow", "train_field",
           "gan_step", "vae_step",
           "training_record", "resolve_precision", "autocast_for", "cpu_has_native_bf16",
           "Callback", "Checkpoints", "OnEpoch", "Progress", "SampleGrid", "StepBudget", "TimeBudget"]


# ----------------------------------------------------------------------------- history
@dataclass
class History(Callback):
    """What happened during training; as a callback it records the run (pass one in ``callbacks`` to continue it).

    - ``steps``: ``{name: [value per step]}`` (GAN: ``loss_d``, ``loss_g``, ``d_real``, ``d_fake``;
      VAE: ``loss``, ``recon``, ``kl``)
    - ``epochs``: ``{name: [mean per epoch]}``, the same names
    - ``samples``: ``[(epoch, uint8 N x 3 x H x W)]``, images from the same fixed noise after each epoch
    - ``seconds``, ``images_seen``, ``stopped_early`` (True when ``max_minutes`` stopped the run)
    """

    order = 0  # records the epoch before the other callbacks look at it

    steps: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0
    stopped_early: bool = False

    @property
    def epochs_done(self) -> int:
        """How many epochs have been recorded (a run cut short by ``max_minutes`` counts its last one)."""
        return max((len(v) for v in self.epochs.values()), default=0)

    def __repr__(self) -> str:
        last = ", ".join(f"{k} {v[-1]:.3f}" for k, v in self.epochs.items() if v)
        early = ", stopped at the time budget" if self.stopped_early else ""
        return (f"History({self.epochs_done} epochs, {self.images_seen:,} images, {self.seconds:.0f} s{early}"
                + (f"; last epoch: {last})" if last else ")"))

    def steps_done(self, loop, rows: list) -> None:
        self._add_steps(loop.names, rows)

    def epoch_end(self, loop, epoch: int) -> None:
        self._add_epoch(loop.names, loop.epoch_rows)

    def _add_steps(self, names, rows) -> None:
        for name, column in zip(names, zip(*rows)):
            self.steps.setdefault(name, []).extend(column)

    def _add_epoch(self, names, rows) -> None:
        if not rows:
            return
        for name, column in zip(names, zip(*rows)):
            self.epochs.setdefault(name, []).append(sum(column) / len(column))

    def plot(self, keys=None, ax=None, smooth: int | None = None, title: str | None = None):
        """Plot step curves (faint) with their moving average (bold); ``keys`` picks curves."""
        import matplotlib.pyplot as plt

        keys = list(self.steps) if keys is None else [keys] if isinstance(keys, str) else list(keys)
        unknown = [k for k in keys if k not in self.steps]
        if unknown:
            raise ValueError(f"unknown curve(s) {unknown}; recorded curves: {', '.join(self.steps) or 'none'}")
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 3))
        for i, key in enumerate(keys):
            ys = torch.tensor(self.steps[key], dtype=torch.float64)
            color = f"C{i}"
            ax.plot(ys.numpy(), color=color, alpha=0.25, lw=0.8)
            k = smooth or max(1, min(50, len(ys) // 20))
            if k > 1 and len(ys) >= k:
                avg = torch.nn.functional.avg_pool1d(ys[None, None], k, 1)[0, 0]
                ax.plot(range(k - 1, len(ys)), avg.numpy(), color=color, lw=1.8, label=key)
            else:
                ax.lines[-1].set(alpha=1.0, label=key)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        if title:
            ax.set_title(title)
        return ax

    # plain data for checkpoints (loadable with torch.load(weights_only=True))
    def state_dict(self) -> dict:
        return {"steps": {k: torch.tensor(v, dtype=torch.float64) for k, v in self.steps.items()},
                "epochs": {k: torch.tensor(v, dtype=torch.float64) for k, v in self.epochs.items()},
                "samples": [[int(e), s] for e, s in self.samples], "seconds": float(self.seconds),
                "images_seen": int(self.images_seen), "stopped_early": bool(self.stopped_early)}

    def load_state_dict(self, state: dict) -> History:
        self.steps = {k: v.tolist() for k, v in state["steps"].items()}
        self.epochs = {k: v.tolist() for k, v in state["epochs"].items()}
        self.samples = [(int(e), s) for e, s in state["samples"]]
        self.seconds, self.images_seen = float(state["seconds"]), int(state["images_seen"])
        self.stopped_early = bool(state["stopped_early"])
        return self


# ----------------------------------------------------------------------------- precision
@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # macOS, Windows: no such file; assume no native bf16
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device) -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision="auto"`` means on ``device`` (see the module docstring)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"unknown precision {precision!r}; valid precisions: auto, fp32, bf16")
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast_for(device, precision: str):
    """A context manager for the forward passes: bf16 autocast, or nothing for fp32."""
    device = torch.device(device)
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- one GAN step
def gan_step(generator, discriminator, opt_g, opt_d, real, z, d_loss=None, g_loss=None, labels=None,
             autocast=contextlib.nullcontext, *, augment=None, gp_weight: float = 0.0, r1_weight: float = 0.0,
             ms_weight: float = 0.0, grad_norm: bool = False) -> dict:
    """One GAN training step: first the discriminator, then the generator.

    1. D step: ``D(real)`` and ``D(G(z).detach())`` (two calls, so batch norm sees real and fake
       batches separately), loss ``d_loss(real_logits, fake_logits)``, update D only.
    2. G step: the same fake images through the *updated* D, loss ``g_loss(fake_logits)``, update G.

    A discriminator that returns ``(logits, class_logits)`` (the AC-GAN of lesson 05) has its
    ``aux_loss(class_logits, labels)`` added to both losses: on real and fake images for D, on
    fake images for G.

    Lesson 10's cures (all off by default):

    - ``augment``: a differentiable function applied to every image D sees, real and fake, in both steps
      (DiffAugment, ``prodgen.engine.augment.diff_augment``);
    - ``gp_weight``: ``+ gp_weight * gradient_penalty`` in the D step (WGAN-GP, ``prodgen.engine.losses``);
    - ``r1_weight``: ``+ r1_weight * r1_penalty`` on the real images in the D step (R1; ``gamma / 2``);
    - ``ms_weight``: ``+ ms_weight * mode_seeking_loss`` in the G step; the second half of the batch then
      repeats the first half's requests with other noise, so each pair shares its request;
    - ``grad_norm``: also return ``d_grad``, the norm of D's parameter gradient (a diagnostic).

    Returns detached scalars ``loss_d``, ``loss_g``, ``d_real`` = mean D(x) and ``d_fake`` = mean D(G(z))
    (D as a probability, sigmoid of the logit, measured in the D step), plus ``penalty`` (the unweighted
    GP or R1 term), ``mode_seeking`` and ``d_grad`` when those are on.
    """
    if d_loss is None or g_loss is None:
        d_loss, g_loss = d_loss or losses.d_loss_bce, g_loss or losses.g_loss_non_saturating
    if ms_weight and labels is not None:  # pairs (i, i + n/2) share a request
        half = len(z) // 2
        labels = torch.cat([labels[:half], labels[:half], labels[2 * half:]])
    cond = () if labels is None else (labels,)
    seen = augment if augment is not None else (lambda x: x)
    if r1_weight:
        real = real.detach().requires_grad_(True)
    with autocast():
        fake = generator(z, *cond)
        real_logits, real_aux = _split(discriminator(seen(real), *cond))
        fake_logits, fake_aux = _split(discriminator(seen(fake.detach()), *cond))
    loss_d = d_loss(real_logits, fake_logits)
    inner = getattr(discriminator, "module", discriminator)  # under DDP the network is the wrapper's .module
    aux_loss = inner.aux_loss if real_aux is not None else None
    if real_aux is not None:  # AC-GAN: D also learns to name the attributes of real and fake images
        loss_d = loss_d + aux_loss(real_aux, labels) + aux_loss(fake_aux, labels)
    extra = {}
    if gp_weight:
        with autocast():
            extra["penalty"] = losses.gradient_penalty(lambda x, *c: discriminator(seen(x), *c), real, fake, *cond)
        loss_d = loss_d + gp_weight * extra["penalty"]
    if r1_weight:
        extra["penalty"] = losses.r1_penalty(real_logits, real)
        loss_d = loss_d + r1_weight * extra["penalty"]
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    if grad_norm:
        grads = [p.grad for p in discriminator.parameters() if p.grad is not None]
        extra["d_grad"] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    opt_d.step()

    with autocast():
        fake_logits_g, fake_aux_g = _split(discriminator(seen(fake), *cond))
    loss_g = g_loss(fake_logits_g)
    if fake_aux_g is not None:  # ... and G wants its images named as requested
        loss_g = loss_g + aux_loss(fake_aux_g, labels)
    if ms_weight:
        half = len(z) // 2
        extra["mode_seeking"] = losses.mode_seeking_loss(fake[:half], fake[half:2 * half], z[:half], z[half:2 * half])
        loss_g = loss_g + ms_weight * extra["mode_seeking"]
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    with torch.no_grad():
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean(),
                **{k: v.detach().float() for k, v in extra.items()}}


def _split(output):
    """``(logits as float32, auxiliary outputs or None)`` from a discriminator's output."""
    if isinstance(output, tuple):
        return output[0].float(), output[1]
    return output.float(), None


def vae_step(model, optimizer, x, loss_fn, beta: float = 1.0, autocast=contextlib.nullcontext, labels=None) -> dict:
    """One VAE step: ``output = model(x)`` (``model(x, labels)`` for a conditional VAE),
    ``loss_fn(x, output, beta)["loss"]`` backwards, update."""
    with autocast():
        output = model(x) if labels is None else model(x, labels)
    output = tuple(o.float() for o in output)
    terms = loss_fn(x.float(), output, beta)
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


# ----------------------------------------------------------------------------- the shared loop
def _gan_losses(loss):
    if isinstance(loss, (tuple, list)) and len(loss) == 2 and all(callable(f) for f in loss):
        return tuple(loss)
    if loss not in losses.GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}; valid losses: {', '.join(losses.GAN_LOSSES)} "
                         "(or a pair of functions (d_loss, g_loss))")
    return losses.GAN_LOSSES[loss]


def _check_common(catalog, epochs, batch_size):
    if not hasattr(catalog, "batches") or not hasattr(catalog, "images"):
        raise ValueError(f"catalog must be a prodgen.catalog.Catalog, got {type(catalog).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be a whole number >= 2, got {batch_size!r}")
    if len(catalog) < batch_size:
        raise ValueError(f"the catalog has {len(catalog)} products, fewer than one batch of {batch_size}: "
                         "use a smaller batch_size or a larger catalog")


def _check_ema(ema, model, decay, what: str) -> None:
    if ema is not None and [p.shape for p in ema.parameters()] != [p.shape for p in model.parameters()]:
        raise ValueError(f"ema must be a copy of the {what} (copy.deepcopy({what})), not another network")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {decay!r}")


def _positive(name: str, value, zero_ok: bool = False) -> None:
    low_ok = value >= 0 if zero_ok else value > 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low_ok and value < float("inf")):
        raise ValueError(f"{name} must be a number {'>= 0 (0 turns it off)' if zero_ok else '> 0'}, got {value!r}")


def _callbacks(callbacks, max_minutes=None, steps=None) -> list:
    """The run's callbacks: the defaults (a fresh History, a progress bar, a 64-image sample grid), each replaced
    by a callback of the same class in ``callbacks``, plus ``StepBudget(steps)`` and ``TimeBudget(max_minutes)``
    when given (beside a step budget the time is a cap: ``TimeBudget(max_minutes, cap=True)``)."""
    callbacks = list(callbacks or ())
    bad = [c for c in callbacks if not isinstance(c, Callback)]
    if bad:
        raise ValueError(f"callbacks must be prodgen.engine.callbacks.Callback objects, got {type(bad[0]).__name__}")
    defaults = [d for d in (History(), Progress(), SampleGrid()) if not any(type(c) is type(d) for c in callbacks)]
    budget = [StepBudget(steps)] if steps is not None else []
    budget += [TimeBudget(max_minutes, cap=steps is not None)] if max_minutes is not None else []
    return defaults + callbacks + budget


def _options(progress=True, n_samples=64, checkpoint=None, resume=False, history=None, max_minutes=None,
             on_epoch=None, requests=None, draw=None, steps=None) -> list:
    """Callbacks from the keyword options :func:`train_vae` and :func:`train_diffusion` take."""
    found = [Progress(progress), SampleGrid(n_samples, requests, draw)]
    found += [Checkpoints(checkpoint, resume)] if checkpoint is not None else []
    found += [history] if history is not None else []
    found += [OnEpoch(on_epoch)] if on_epoch is not None else []
    return _callbacks(found, max_minutes, steps)


class _Loop:
    """The machinery every loop shares: device, layout, precision, RNG, batches, and the callbacks around them."""

    def __init__(self, modules: dict, catalog, *, kind, epochs, batch_size, seed, device, names, callbacks,
                 precision="auto", channels_last=True):
        from prodgen.engine.runtime import pick_device

        _check_common(catalog, epochs, batch_size)
        self.world, self.rank, self.main = distributed.world_size(), distributed.rank(), distributed.is_main()
        if self.world > 1 and (batch_size % self.world or batch_size // self.world < 2):
            raise ValueError(f"batch_size {batch_size} is the global batch, split evenly across the {self.world} "
                             f"processes: it must be a multiple of {self.world} with at least 2 per process")
        self.device = (distributed.init(device) if self.world > 1 else None) or pick_device(device)
        self.precision = resolve_precision(precision, self.device)
        # channels_last is a CPU speed-up (oneDNN); on a GPU these small convolutions ran slower with it
        self.channels_last = bool(channels_last) and self.device.type == "cpu"
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.autocast = lambda: autocast_for(self.device, self.precision)
        self.modules = modules
        for m in modules.values():
            m.to(self.device, memory_format=self.memory_format)
        self.catalog, self.kind, self.names, self.epochs, self.batch_size = catalog, kind, names, epochs, batch_size
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        self.history = self.find(History)
        self.history.stopped_early = False
        self.grid = self.find(SampleGrid)
        self.seed, self.optimizers, self.sample = seed, {}, None
        torch.manual_seed(seed)  # the noise z (and anything else random in the models)
        self.data_gen = torch.Generator().manual_seed(seed)  # the order of the products, one permutation per epoch
        self.steps_per_epoch = len(catalog) // batch_size
        # flushing losses to Python floats syncs an accelerator (and, with several processes, all ranks):
        # every step on the CPU, every 25 steps on a GPU
        self.flush_every = 1 if self.device.type == "cpu" else 25
        self.wrappers, self.steps_run = [], 0

    def find(self, cls):
        """The run's callback of class ``cls``, or None."""
        return next((c for c in self.callbacks if isinstance(c, cls)), None)

    def wrap(self, module):
        """The module the training step should call: ``module`` itself, or its DDP wrapper under torchrun."""
        wrapped = distributed.wrap(module, self.device)
        if wrapped is not module:
            self.wrappers.append(wrapped)
        return wrapped

    def tick(self) -> None:
        """Add the time since the last tick to ``history.seconds``."""
        now = time.perf_counter()
        self.history.seconds += now - self._mark
        self._mark = now

    def _span(self) -> None:
        """``first`` (epochs already done) and ``last`` (the epoch to reach): when resuming, ``epochs`` is the
        total to reach; otherwise it is how many to run now."""
        restored = [e for e in (c.restore(self) for c in self.callbacks) if e is not None]
        resume = any(c.resume for c in self.callbacks)
        self.first = restored[0] if restored else (0 if resume else self.history.epochs_done)
        self.last = self.epochs if resume else self.first + self.epochs
        self.epoch = self.first
        budget = self.find(StepBudget)
        if budget is not None and budget.steps > (self.last - self.first) * self.steps_per_epoch:
            raise ValueError(f"steps={budget.steps} needs more than the {self.last - self.first} epoch(s) of "
                             f"{self.steps_per_epoch} steps this run has: raise epochs")

    @property
    def planned_steps(self) -> int:
        """The steps this run is to take: its step budget, else its epochs' steps."""
        budget = self.find(StepBudget)
        whole = (self.last - self.first) * self.steps_per_epoch
        return min(budget.steps, whole) if budget is not None else whole

    def finished(self) -> bool:
        """Whether a callback says the run has done all it was asked (its step budget)."""
        return any(c.finished(self) for c in self.callbacks)

    def run(self, optimizers: dict, step, sample) -> History:
        """``step(x, y) -> dict of scalar tensors``; ``sample() -> images in [-1, 1]`` for the sample grid."""
        self.optimizers, self.sample = optimizers, sample
        self._span()
        self.run_start = self._mark = time.perf_counter()
        cudnn = torch.backends.cudnn
        saved_cudnn = (cudnn.deterministic, cudnn.benchmark)
        if self.device.type == "cuda":  # same seed, same GPU -> same result (cuDNN's default kernels race)
            cudnn.deterministic, cudnn.benchmark = True, False
        self.completed = False
        try:
            for c in self.callbacks:
                c.begin(self)
            for self.epoch in range(self.first + 1, self.last + 1):  # noqa: B020 (the loop's state is the epoch)
                self._epoch(step)
                if self.history.stopped_early or self.finished():
                    break
            self.completed = True
        finally:
            cudnn.deterministic, cudnn.benchmark = saved_cudnn
            self.tick()
            for m in [*self.modules.values(), *self.wrappers]:
                m.eval()
            for c in self.callbacks:
                c.end(self)
        return self.history

    def _epoch(self, step) -> None:
        """One epoch of steps, then the callbacks' ``epoch_end`` (history, sample grid, OnEpoch, checkpoint)."""
        for c in self.callbacks:
            c.epoch_begin(self, self.epoch)
        for m in [*self.modules.values(), *self.wrappers]:
            m.train()
        if self.world > 1:  # each rank its own noise, drawn from (seed, epoch, rank): resumable exactly
            torch.manual_seed(((self.seed * 100_003 + self.epoch) * 4096 + self.rank) % 2**63)
        self.epoch_rows, pending, over = [], [], False
        for x, y in self._batches():
            x = x.contiguous(memory_format=self.memory_format)
            out = step(x, y)
            pending.append(torch.stack([out[k].float() for k in self.names]))
            self.history.images_seen += len(x) * self.world  # the global count
            self.steps_run += 1
            over, done = any(c.time_up(self) for c in self.callbacks), self.finished()  # done: same on all ranks
            if self.world > 1 and len(pending) < self.flush_every and not done:  # ranks agree when they flush
                continue
            if self.world > 1 or len(pending) >= self.flush_every or done:
                over, pending = self._flush(pending, over), []
            if over:
                self.history.stopped_early = True
                break
            if done:
                break
        if pending:  # same number of steps on every rank, so this flush is collective too
            self.history.stopped_early |= self._flush(pending, over)
        distributed.sync_buffers(self.modules.values())  # rank 0's batch-norm statistics everywhere
        for c in self.callbacks:
            c.epoch_end(self, self.epoch)
        self.tick()

    def _batches(self):
        """One epoch of ``(x, y)`` on the device; under torchrun this rank's slice of each global batch."""
        if self.world == 1:
            yield from self.catalog.batches(self.batch_size, shuffle=True, generator=self.data_gen,
                                            drop_last=True, device=self.device)
            return
        from prodgen.catalog import normalize

        order = torch.randperm(len(self.catalog), generator=self.data_gen)  # the same on every rank
        for idx in distributed.shard(order, self.batch_size):
            x, y = self.catalog.images[idx], self.catalog.labels[idx]
            x = x.to(self.device, non_blocking=True)  # uint8 photos are normalised; float data (latents) as they are
            yield normalize(x) if x.dtype == torch.uint8 else x.float(), y.to(self.device, non_blocking=True)

    def _flush(self, pending, stop: bool = False) -> bool:
        """Record the pending steps' values (averaged over ranks) and hand them to the callbacks; returns whether
        any rank asked to ``stop`` (the time budget)."""
        if not pending:
            return stop
        values = torch.stack(pending)
        if self.world > 1:
            flat = torch.cat([values.flatten(), torch.tensor([float(stop)], device=values.device)])
            flat = distributed.all_reduce_sum(flat)
            values, stop = flat[:-1].view_as(values) / self.world, bool(flat[-1] > 0)
        rows = values.cpu().tolist()
        self.epoch_rows += rows
        for c in self.callbacks:
            c.steps_done(self, rows)
        for row in rows:
            if not all(math.isfinite(v) for v in row):
                raise FloatingPointError(f"the loss became {row} (not finite) after {self.history.images_seen:,} "
                                         "images: lower the learning rate or try precision='fp32'")
        return stop


# ----------------------------------------------------------------------------- GANs
@dataclass(frozen=True)
class GANSettings:
    """How a GAN learns (:func:`train_gan`): the loss and the optimiser, lesson 10's cures, and the arithmetic.

    - ``loss``: ``"non-saturating"`` (default), ``"saturating"``, ``"hinge"``, ``"wasserstein"``
      (``prodgen.engine.losses.GAN_LOSSES``) or a pair of functions ``(d_loss(real_logits, fake_logits),
      g_loss(fake_logits))``;
    - ``lr``, ``betas``: Adam's; ``lr_d``: the discriminator's own learning rate (two time-scale update rule,
      TTUR; default ``lr``);
    - ``ema_decay``: with ``train_gan(ema=...)``, ``ema = decay * ema + (1 - decay) * G`` after every step;
    - ``augment``, ``gp_weight``, ``r1_weight``, ``ms_weight``, ``grad_norm``: lesson 10's cures and diagnostic,
      see :func:`gan_step`; their terms are recorded in the history as ``penalty``, ``mode_seeking``, ``d_grad``;
    - ``precision`` (``auto``, ``fp32``, ``bf16``) and ``channels_last``: see the module docstring.

    Bad values are refused when the settings are made. Used by lessons 05, 07, 10 and every GAN family."""

    loss: object = "non-saturating"
    lr: float = 2e-4
    lr_d: float | None = None
    betas: tuple = (0.5, 0.999)
    ema_decay: float = 0.999
    augment: object = None
    gp_weight: float = 0.0
    r1_weight: float = 0.0
    ms_weight: float = 0.0
    grad_norm: bool = False
    precision: str = "auto"
    channels_last: bool = True

    def __post_init__(self):
        _gan_losses(self.loss)
        for name in ("gp_weight", "r1_weight", "ms_weight"):
            _positive(name, getattr(self, name), zero_ok=True)
        if self.gp_weight and self.r1_weight:
            raise ValueError("choose one gradient penalty: gp_weight (WGAN-GP) or r1_weight (R1), not both")
        if self.augment is not None and not callable(self.augment):
            raise ValueError(f"augment must be a function of an image batch (prodgen.engine.augment.diff_augment), "
                             f"got {type(self.augment).__name__}")
        _positive("lr", self.lr)
        _positive("lr_d", self.lr if self.lr_d is None else self.lr_d)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        resolve_precision(self.precision, "cpu")  # refuses an unknown name

    @property
    def names(self) -> tuple:
        """The values each step records."""
        return (("loss_d", "loss_g", "d_real", "d_fake") + (("penalty",) if self.gp_weight or self.r1_weight else ())
                + (("mode_seeking",) if self.ms_weight else ()) + (("d_grad",) if self.grad_norm else ()))


def _noise_size(generator) -> int:
    try:
        return int(generator.z_dim)
    except (AttributeError, TypeError):
        raise ValueError("the generator needs a `z_dim` attribute (the size of its noise vector)") from None


def _gan_condition(condition):
    """``(conditional, transform)`` from ``train_gan``'s ``condition``: None, ``"labels"`` or a function."""
    if condition is None:
        return False, None
    if isinstance(condition, str) and condition == "labels":
        return True, None
    if not callable(condition):
        raise ValueError(f"condition must be None, 'labels' or a function of the label batch, "
                         f"got {type(condition).__name__}")
    return True, condition


def train_gan(generator, discriminator, catalog, *, epochs=5, batch_size=128, settings=None, condition=None,
              ema=None, steps=None, max_minutes=None, seed=0, device="auto", callbacks=()) -> History:
    """Train a GAN on a catalog with Adam; returns the :class:`History`. Used by lessons 03, 05, 07, 10, 12
    (``prodgen.models.cgan_stable.train_recipe``) and ``prodgen train``.

    - ``generator(z)`` maps ``N x generator.z_dim`` noise to images in [-1, 1]; ``discriminator(x)`` returns one
      logit per image.
    - ``settings``: a :class:`GANSettings` (loss, learning rates, betas, EMA decay, lesson 10's cures, precision).
    - ``condition``: ``None`` (unconditional), ``"labels"`` (G and D get the label batch, N x 5, as a second
      argument) or a function applied to each batch's labels before G and D see them, e.g.
      ``lambda y: hide_attributes(y, 0.1)`` so partial requests are learned (lesson 05), or labels -> description
      embeddings (lesson 07). The sample grid gets the plain labels (``SampleGrid(requests=...)`` to change it).
    - ``ema``: a copy of the generator (``copy.deepcopy(generator)``) that keeps the exponential moving average of
      its weights (``settings.ema_decay``), batch-norm statistics copied. The sample grid then shows the average.
    - ``epochs``: how many epochs to run now; with ``Checkpoints(path, resume=True)`` the total to reach (an
      interrupted run is finished by repeating the same call).
    - ``steps``: stop after this many steps (``epochs`` must leave room for them): the same run on every machine.
    - ``max_minutes``: stop at the first batch boundary after this many minutes (``history.stopped_early``); with
      ``steps`` a safety cap, whose stop is printed loudly (``TimeBudget(cap=True)``).
    - ``callbacks``: ``prodgen.engine.callbacks`` objects: ``Progress(False)``, ``SampleGrid(n, requests)``,
      ``Checkpoints(path, resume)``, ``OnEpoch(fn)``, a ``History`` to continue.

    The models end on the training device in eval mode.
    """
    settings = GANSettings() if settings is None else settings
    if not isinstance(settings, GANSettings):
        raise ValueError(f"settings must be a GANSettings, got {type(settings).__name__}")
    conditional, transform = _gan_condition(condition)
    if (settings.gp_weight or settings.r1_weight) and distributed.world_size() > 1:
        raise ValueError("gradient penalties (gp_weight, r1_weight) need a double backward, which this engine "
                         "does not run under torchrun/DDP; train with them in one process")
    z_dim = _noise_size(generator)
    _check_ema(ema, generator, settings.ema_decay, "generator")
    modules = {"generator": generator, "discriminator": discriminator, **({"generator_ema": ema} if ema else {})}
    loop = _Loop(modules, catalog, kind="gan", epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                 names=settings.names, callbacks=_callbacks(callbacks, max_minutes, steps),
                 precision=settings.precision, channels_last=settings.channels_last)
    dev = loop.device
    lr_d = settings.lr if settings.lr_d is None else settings.lr_d
    opt_g = torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=tuple(settings.betas))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=tuple(settings.betas))
    d_loss, g_loss = _gan_losses(settings.loss)
    net_g, net_d = loop.wrap(generator), loop.wrap(discriminator)  # DDP wrappers under torchrun

    def step(x, y):
        z = torch.randn(len(x), z_dim, device=dev)
        if transform is not None:
            y = transform(y)
        out = gan_step(net_g, net_d, opt_g, opt_d, x, z, d_loss, g_loss, labels=y if conditional else None,
                       autocast=loop.autocast, augment=settings.augment, gp_weight=settings.gp_weight,
                       r1_weight=settings.r1_weight, ms_weight=settings.ms_weight, grad_norm=settings.grad_norm)
        if ema is not None:
            _update_ema(ema, generator, settings.ema_decay)
        return out

    return loop.run({"opt_g": opt_g, "opt_d": opt_d}, step, _gan_sample(loop, ema or generator, z_dim, conditional))


def _gan_sample(loop, shown, z_dim: int, conditional: bool):
    """The GAN's sample grid: ``SampleGrid.draw`` if given, else ``shown`` on fixed noise (its own generator, so
    the same in every epoch and run) and, for a conditional GAN, the grid's requests."""
    grid = loop.grid
    n = grid.n if grid is not None else 0
    if not n:
        return None
    requests = grid.fixed_requests(loop.catalog, loop.device) if conditional else None
    if grid.draw is not None:
        wanted = n if requests is None else requests
        return lambda: grid.draw(wanted, generator=torch.Generator().manual_seed(loop.seed))
    fixed_z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(loop.seed)).to(loop.device)
    return lambda: shown(fixed_z) if requests is None else shown(fixed_z, requests)


@torch.no_grad()
def _update_ema(ema, model, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for the weights; buffers (batch-norm statistics) copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)  # one fused update
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def training_record(history: History, model, fast: bool = False) -> dict:
    """How a run went, for a checkpoint's manifest entry: epochs, images (all processes together), seconds,
    whether the time budget stopped it, the device it ran on (the GPU's name on CUDA) and the number of
    processes (``torchrun``). Used by ``prodgen.models.recipe`` for every family trained with this engine."""
    dev = next(model.parameters()).device
    return {"fast": fast, "epochs_done": history.epochs_done, "images_seen": history.images_seen,
            "stopped_early": history.stopped_early, "seconds": round(history.seconds, 1),
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
            "processes": distributed.world_size()}


# ----------------------------------------------------------------------------- VAEs
def train_vae(model, catalog, *, epochs=5, batch_size=128, lr=1e-3, beta=1.0, steps=None, max_minutes=None, seed=0,
              device="auto", precision="auto", channels_last=True, n_samples=64, checkpoint=None,
              resume=False, progress=True, loss_fn=None, conditional=False, history=None, callbacks=(),
              terms=("loss", "recon", "kl")) -> History:
    """Train a VAE on a catalog with Adam; returns the :class:`History` (``loss``, ``recon``, ``kl``).

    ``model(x) -> (x_hat, mu, logvar)``; ``loss_fn(x, output, beta) -> {"loss", "recon", "kl"}``
    (default ``prodgen.engine.losses.vae_loss``; ``terms``: the values of its dict the history records, e.g. the
    latent autoencoder's ``perceptual`` too, lesson 14); the sample grid is ``model.sample(n_samples, generator=g)``
    with a generator seeded the same way after every epoch (``n_samples=0``: none). ``epochs``, ``steps``,
    ``max_minutes``, ``checkpoint`` / ``resume`` (a :class:`~prodgen.engine.callbacks.Checkpoints`), ``progress``
    and ``history`` work as the callbacks of :func:`train_gan`; ``callbacks`` adds more (``OnEpoch``).
    ``conditional=True`` (the CVAE of lesson 06): ``model(x, labels)``, and the sample grid is
    ``model.sample(labels of the catalog's first n_samples products, generator=g)``. Used by lessons 04 and 06
    and ``prodgen train vae / cvae`` (and ``ae-64``, lesson 14).
    """
    loss_fn = losses.vae_loss if loss_fn is None else loss_fn
    found = _options(progress, n_samples, checkpoint, resume, history, max_minutes, steps=steps) + list(callbacks)
    loop = _Loop({"model": model}, catalog, kind="vae", epochs=epochs, batch_size=batch_size, seed=seed,
                 device=device, names=tuple(terms), callbacks=_callbacks(found),
                 precision=precision, channels_last=channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    net = loop.wrap(model)  # the DDP wrapper under torchrun

    def step(x, y):
        return vae_step(net, optimizer, x, loss_fn, beta, autocast=loop.autocast, labels=y if conditional else None)

    grid = loop.grid
    sample = None
    if grid is not None and grid.n:
        wanted = grid.fixed_requests(catalog, loop.device) if conditional else grid.n
        draw = grid.draw or model.sample
        sample = lambda: draw(wanted, generator=torch.Generator(device=loop.device).manual_seed(seed))  # noqa: E731
    return loop.run({"optimizer": optimizer}, step, sample)


# ----------------------------------------------------------------------------- diffusion and flow matching
def train_diffusion(model, catalog, *, epochs=5, batch_size=128, lr=1e-3, steps=None, max_minutes=None, seed=0,
                    device="auto", precision="auto", channels_last=True, n_samples=64, checkpoint=None, resume=False,
                    progress=True, ema=None, ema_decay=0.999, drop_p=0.1, hide_p=0.1, sample_steps=20, guidance=2.0,
                    history=None, callbacks=()) -> History:
    """Train a conditional diffusion model (lesson 11) on a catalog with Adam; returns the :class:`History`
    (``loss``: the v-prediction loss, ``prodgen.engine.losses.diffusion_loss``).

    ``model(x_t, t, labels) -> v_hat`` with its noise schedule in ``model.abar``. For classifier-free guidance
    each photo's request is hidden completely (all attributes "unspecified") with probability ``drop_p``, and
    single attributes with probability ``hide_p``, so the one network learns the conditional and the
    unconditional prediction (and partial requests). ``ema``: a copy of the model that keeps the exponential
    moving average of its weights (``copy.deepcopy(model)``; diffusion samples are much better from it).
    The sample grid is ``model.sample_grid(labels, steps, guidance, generator)`` of ``ema`` when given, drawn
    from the labels of the catalog's first ``n_samples`` products (``n_samples=0``: none). ``epochs``, ``steps``,
    ``max_minutes``, ``checkpoint``, ``resume``, ``progress``, ``history`` and ``callbacks`` work as in
    :func:`train_vae`. Used by lesson 11 and ``prodgen train diffusion``.
    """
    try:
        model.abar  # the noise schedule diffusion_loss reads  # noqa: B018
    except AttributeError:
        raise ValueError("the model needs its noise schedule as `model.abar` (prodgen.models.diffusion.UNet)") from None
    return _train_conditional_field(
        model, catalog, losses.diffusion_loss, kind="diffusion", ema_warmup=False, epochs=epochs,
        batch_size=batch_size, lr=lr, steps=steps, max_minutes=max_minutes, seed=seed, device=device,
        precision=precision,
        channels_last=channels_last, n_samples=n_samples, checkpoint=checkpoint, resume=resume, progress=progress,
        ema=ema, ema_decay=ema_decay, drop_p=drop_p, hide_p=hide_p, sample_steps=sample_steps, guidance=guidance,
        history=history, callbacks=callbacks)


def train_flow(model, catalog, *, epochs=5, batch_size=64, lr=1e-3, steps=None, max_minutes=None, seed=0,
               device="auto", precision="auto", channels_last=True, n_samples=64, checkpoint=None, resume=False,
               progress=True,
               ema=None, ema_decay=0.999, drop_p=0.1, hide_p=0.1, time_sampling="logit-normal", sample_steps=10,
               guidance=2.0, history=None, callbacks=()) -> History:
    """Train a conditional flow-matching model (lesson 13) on a catalog with Adam; returns the :class:`History`
    (``loss``: ``prodgen.engine.losses.flow_loss``, the velocity regression on straight paths).

    ``model(x_t, t, labels) -> v_hat`` with continuous times ``t`` in [0, 1] (``prodgen.models.flow.FlowUNet``).
    ``time_sampling``: how training times are drawn (``"logit-normal"`` or ``"uniform"``, ``losses.flow_time``).
    The EMA is warmed up: its decay after k steps is ``min(ema_decay, (1 + k) / (10 + k))``, so a run of a few
    hundred steps is not still mostly its initial weights (0.999^300 = 0.74).
    Everything else is :func:`train_diffusion`'s loop: ``drop_p`` / ``hide_p`` hide the whole request / single
    attributes (classifier-free guidance, partial requests), the sample grid is ``ema``'s (or the model's)
    ``sample_grid(labels, steps, guidance, generator)``, and ``epochs``, ``max_minutes``, ``checkpoint``,
    ``resume``, ``progress``, ``history`` and ``callbacks`` work as in :func:`train_vae`. Used by lesson 13 and
    ``prodgen train flow``.
    """
    if time_sampling not in losses.TIME_SAMPLINGS:
        raise ValueError(f"unknown time_sampling {time_sampling!r}; valid: {', '.join(losses.TIME_SAMPLINGS)}")
    return _train_conditional_field(
        model, catalog, functools.partial(losses.flow_loss, sampling=time_sampling), kind="flow", ema_warmup=True,
        epochs=epochs, batch_size=batch_size, lr=lr, steps=steps, max_minutes=max_minutes, seed=seed, device=device,
        precision=precision, channels_last=channels_last, n_samples=n_samples, checkpoint=checkpoint, resume=resume,
        progress=progress, ema=ema, ema_decay=ema_decay, drop_p=drop_p, hide_p=hide_p, sample_steps=sample_steps,
        guidance=guidance, history=history, callbacks=callbacks)


def train_field(model, data, loss, *, kind="field", epochs=5, batch_size=64, lr=1e-3, steps=None, max_minutes=None,
                seed=0, device="auto", precision="auto", channels_last=True, checkpoint=None, resume=False,
                progress=True,
                ema=None, ema_decay=0.999, drop_p=0.0, hide_p=0.0, history=None, callbacks=()) -> History:
    """Train a conditional network on any ``loss(net, x, labels) -> scalar`` (lesson 13: the equal-budget
    comparison's eps / min-SNR / EDM objectives, the few-step model's reflow and progressive distillation).

    ``data``: a ``Catalog``, or anything with its ``batches(batch_size, shuffle, generator, drop_last, device)``,
    ``images``, ``labels`` and ``len`` (``prodgen.models.flow_fast.Pairs``: a teacher's noise and images, one
    process only). Adam, the warmed-up EMA of :func:`train_flow`, ``drop_p`` / ``hide_p`` as there (default
    off), no sample grid; ``kind`` names the run in its progress bar and checkpoints (resume refuses another)."""
    return _train_conditional_field(
        model, data, loss, kind=kind, ema_warmup=True, epochs=epochs, batch_size=batch_size, lr=lr, steps=steps,
        max_minutes=max_minutes, seed=seed, device=device, precision=precision, channels_last=channels_last,
        n_samples=0, checkpoint=checkpoint, resume=resume, progress=progress, ema=ema, ema_decay=ema_decay,
        drop_p=drop_p, hide_p=hide_p, sample_steps=1, guidance=1.0, history=history, callbacks=callbacks)


def _train_conditional_field(model, catalog, loss, *, kind, ema_warmup, epochs, batch_size, lr, steps, max_minutes,
                             seed, device, precision, channels_last, n_samples, checkpoint, resume, progress, ema,
                             ema_decay, drop_p, hide_p, sample_steps, guidance, history, callbacks) -> History:
    """The loop :func:`train_diffusion` and :func:`train_flow` share: ``loss(net, x, labels)`` on the photos with
    requests hidden for classifier-free guidance, Adam, the EMA (warmed up when ``ema_warmup``), the grid."""
    for name, value in (("drop_p", drop_p), ("hide_p", hide_p)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    _positive("lr", lr)
    _check_ema(ema, model, ema_decay, "model")
    modules = {"model": model, **({"model_ema": ema} if ema is not None else {})}
    found = _options(progress, n_samples, checkpoint, resume, history, max_minutes, steps=steps) + list(callbacks)
    loop = _Loop(modules, catalog, kind=kind, epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                 names=("loss",), callbacks=_callbacks(found), precision=precision, channels_last=channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    net = loop.wrap(model)
    taken = [None]  # optimiser steps so far, read from the history at the first step (a resumed run's too)

    def step(x, y):
        drop = torch.rand(len(y), device=y.device) < drop_p  # the whole request hidden: the unconditional model
        hide = torch.rand(y.shape, device=y.device) < hide_p  # single attributes hidden: partial requests
        y = y.masked_fill(hide | drop[:, None], -1)
        with loop.autocast():
            value = loss(net, x, y)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if ema is not None:
            decay = ema_decay
            if ema_warmup:  # (1 + k) / (10 + k) until that reaches ema_decay, so short runs average too
                if taken[0] is None:
                    taken[0] = len(loop.history.steps.get("loss", ()))
                decay, taken[0] = min(ema_decay, (1 + taken[0]) / (10 + taken[0])), taken[0] + 1
            _update_ema(ema, model, decay)
        return {"loss": value.detach()}

    grid, shown = loop.grid, ema if ema is not None else model
    sample = None
    if grid is not None and grid.n:
        requests = grid.fixed_requests(catalog, loop.device)
        draw = grid.draw or functools.partial(shown.sample_grid, steps=sample_steps, guidance=guidance)
        sample = lambda: draw(requests, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    return loop.run({"optimizer": optimizer}, step, sample)

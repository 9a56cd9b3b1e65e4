"""The training engine: GAN and VAE training loops that every lesson from 03 on reuses.

What a loop gives you, so that a lesson can say "train for two minutes" in one line:

- a ``tqdm.auto`` progress bar with the live losses (``progress=False`` for tests);
- a :class:`History`: every step's losses, per-epoch means, a sample grid from fixed
  noise after each epoch, images seen, seconds, and ``.plot()``;
- seeding (same seed, same device -> same result; on CUDA the loop asks cuDNN for deterministic
  kernels while it runs) and device auto-selection
  (``"auto"``: cuda, then mps, then cpu);
- ``checkpoint=path``: an atomic save (temp file + rename) at each epoch end holding the
  model(s), optimisers, history, epoch and RNG states; ``resume=True`` continues from it;
- ``max_minutes``: stop cleanly at a batch boundary when the time budget is spent.

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
  and PyTorch implements it for accelerators only (it refuses CPU tensors, so gloo runs could not use it). With many GPUs raise the global batch
  (``--batch``) so each rank keeps a few dozen images. Running statistics are copied from rank 0 before
  each sample grid and checkpoint, so every buffer, and the EMA generator, ends identical on all ranks
  (the weights are identical by construction: DDP broadcasts the initial ones and averages gradients);
- each rank draws its own noise (seeded from seed, epoch and rank, so ``resume=True`` continues exactly);
  the history's losses are means over ranks and ``images_seen`` counts the images of all ranks;
- rank 0 alone shows progress, draws the sample grid and writes the (atomic) checkpoint; the time budget
  is agreed by all ranks when losses are gathered (every step on the CPU, every 25 steps on a GPU).

Used by lessons 03 (GANs), 04 (VAEs), 05-07 (conditional models), 10 and 11 (diffusion, :func:`train_diffusion`),
and by ``prodgen train``.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prodgen.engine import distributed, losses

__all__ = ["History", "train_gan", "train_vae", "train_diffusion", "gan_step", "vae_step", "training_record", "resolve_precision", "autocast_for",
           "cpu_has_native_bf16"]


# ----------------------------------------------------------------------------- history
@dataclass
class History:
    """What happened during training.

    - ``steps``: ``{name: [value per step]}`` (GAN: ``loss_d``, ``loss_g``, ``d_real``, ``d_fake``;
      VAE: ``loss``, ``recon``, ``kl``)
    - ``epochs``: ``{name: [mean per epoch]}``, the same names
    - ``samples``: ``[(epoch, uint8 N x 3 x H x W)]``, images from the same fixed noise after each epoch
    - ``seconds``, ``images_seen``, ``stopped_early`` (True when ``max_minutes`` stopped the run)
    """

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

    def load_state_dict(self, state: dict) -> "History":
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


def _check_common(catalog, epochs, batch_size, max_minutes, n_samples):
    if not hasattr(catalog, "batches") or not hasattr(catalog, "images"):
        raise ValueError(f"catalog must be a prodgen.catalog.Catalog, got {type(catalog).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be a whole number >= 2, got {batch_size!r}")
    if len(catalog) < batch_size:
        raise ValueError(f"the catalog has {len(catalog)} products, fewer than one batch of {batch_size}: "
                         "use a smaller batch_size or a larger catalog")
    if max_minutes is not None and not (isinstance(max_minutes, (int, float)) and max_minutes > 0):
        raise ValueError(f"max_minutes must be a positive number of minutes or None, got {max_minutes!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
        raise ValueError(f"n_samples must be a whole number >= 0, got {n_samples!r}")


def _rng_state(data_gen) -> dict:
    state = {"torch": torch.get_rng_state(), "data": data_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict, data_gen) -> None:
    torch.set_rng_state(state["torch"])
    data_gen.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def _save_atomic(payload: dict, path: Path) -> None:
    from prodgen.paths import atomic_file

    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, kind: str) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or foreign file
        raise ValueError(f"cannot resume from {path}: the file is not a readable checkpoint "
                         f"({type(e).__name__}); delete it to start afresh") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"cannot resume from {path}: it is a {found!r} checkpoint, not a {kind!r} one")
    return payload


def _load_state(module, state, what: str, path) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"cannot resume from {path}: the saved {what} does not fit this model "
                         f"({str(e).splitlines()[0][:160]})") from None


class _Loop:
    """The machinery both loops share: device, layout, precision, RNG, progress, history, checkpoints."""

    def __init__(self, modules: dict, catalog, *, kind, epochs, batch_size, max_minutes, seed, device, precision,
                 channels_last, n_samples, checkpoint, resume, progress, history, names, on_epoch=None):
        from prodgen.engine.runtime import pick_device

        _check_common(catalog, epochs, batch_size, max_minutes, n_samples)
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
        self.catalog, self.kind, self.names = catalog, kind, names
        self.epochs, self.batch_size, self.max_minutes = epochs, batch_size, max_minutes
        self.seed, self.n_samples, self.progress = seed, n_samples, progress and self.main
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.resume, self.on_epoch = resume, on_epoch
        self.history = history if history is not None else History()
        self.history.stopped_early = False
        torch.manual_seed(seed)  # the noise z (and anything else random in the models)
        self.data_gen = torch.Generator().manual_seed(seed)  # the order of the products, one permutation per epoch
        self.steps_per_epoch = len(catalog) // batch_size
        # flushing losses to Python floats syncs an accelerator (and, with several processes, all ranks):
        # every step on the CPU, every 25 steps on a GPU
        self.flush_every = 1 if self.device.type == "cpu" else 25
        self.wrappers = []

    def wrap(self, module):
        """The module the training step should call: ``module`` itself, or its DDP wrapper under torchrun."""
        wrapped = distributed.wrap(module, self.device)
        if wrapped is not module:
            self.wrappers.append(wrapped)
        return wrapped

    # -- checkpoints ------------------------------------------------------------------------
    def restore(self, optimizers: dict) -> int:
        """Load the checkpoint when resuming; returns the number of epochs already done."""
        if not (self.resume and self.checkpoint is not None and self.checkpoint.is_file()):
            return 0 if self.resume else self.history.epochs_done
        payload = _load_checkpoint(self.checkpoint, self.kind)
        for name, module in {**self.modules, **optimizers}.items():
            _load_state(module, payload["state"][name], name, self.checkpoint)
        self.history.load_state_dict(payload["history"])
        self.history.stopped_early = False
        _set_rng_state(payload["rng"], self.data_gen)
        return int(payload["epoch"])

    def save(self, optimizers: dict, epoch: int) -> None:
        if self.checkpoint is None or not self.main:  # rank 0 alone writes
            return
        state = {name: m.state_dict() for name, m in {**self.modules, **optimizers}.items()}
        _save_atomic({"kind": self.kind, "epoch": epoch, "state": state, "history": self.history.state_dict(),
                      "rng": _rng_state(self.data_gen)}, self.checkpoint)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, optimizers: dict, step, sample) -> History:
        """``step(x, y) -> dict of scalar tensors``; ``sample() -> images in [-1, 1]`` (or None)."""
        first = self.restore(optimizers)
        # when resuming, ``epochs`` is the total to reach; otherwise it is how many to run now
        last = self.epochs if self.resume else first + self.epochs
        bar = None
        if self.progress and last > first:
            from tqdm.auto import tqdm

            # with a time budget the number of steps is unknown: count them without a total
            total = None if self.max_minutes is not None else (last - first) * self.steps_per_epoch
            where = self.device.type if self.world == 1 else f"{self.world} x {self.device.type}"
            bar = tqdm(total=total, unit="step", leave=True, desc=f"{self.kind} on {where}")
        start = run_start = time.perf_counter()
        budget = None if self.max_minutes is None else 60.0 * self.max_minutes
        epoch = first
        cudnn = torch.backends.cudnn
        saved_cudnn = (cudnn.deterministic, cudnn.benchmark)
        if self.device.type == "cuda":  # same seed, same GPU -> same result (cuDNN's default kernels race)
            cudnn.deterministic, cudnn.benchmark = True, False
        try:
            for epoch in range(first + 1, last + 1):
                if bar is not None:
                    budget_note = f", {self.max_minutes:g} min budget" if self.max_minutes is not None else ""
                    bar.set_description(f"{self.kind} on {where}, epoch {epoch}/{last}{budget_note}", refresh=False)
                for m in [*self.modules.values(), *self.wrappers]:
                    m.train()
                if self.world > 1:  # each rank its own noise, drawn from (seed, epoch, rank): resumable exactly
                    torch.manual_seed(((self.seed * 100_003 + epoch) * 4096 + self.rank) % 2**63)
                rows, pending = [], []
                for x, y in self._batches():
                    x = x.contiguous(memory_format=self.memory_format)
                    out = step(x, y)
                    pending.append(torch.stack([out[k].float() for k in self.names]))
                    self.history.images_seen += len(x) * self.world  # the global count
                    over = budget is not None and time.perf_counter() - run_start >= budget
                    if self.world > 1:  # ranks must stop at the same step: they agree when they flush
                        if len(pending) < self.flush_every:
                            continue
                        new, over = self._flush(pending, bar, over)
                        rows, pending = rows + new, []
                    elif len(pending) >= self.flush_every:
                        rows, pending = rows + self._flush(pending, bar)[0], []
                    if over:
                        self.history.stopped_early = True
                        break
                if pending:  # same number of steps on every rank, so this flush is collective too
                    new, over = self._flush(pending, bar, over)
                    rows += new
                    self.history.stopped_early |= over
                self.history._add_epoch(self.names, rows)
                distributed.sync_buffers(self.modules.values())  # rank 0's batch-norm statistics everywhere
                if self.n_samples and self.main:
                    self._sample(epoch, sample)
                if self.on_epoch is not None and self.main:
                    self.on_epoch(epoch, self.history)
                self.history.seconds += time.perf_counter() - start
                start = time.perf_counter()
                self.save(optimizers, epoch)
                if self.history.stopped_early:
                    break
        finally:
            cudnn.deterministic, cudnn.benchmark = saved_cudnn
            self.history.seconds += time.perf_counter() - start
            if bar is not None:
                bar.close()
            for m in [*self.modules.values(), *self.wrappers]:
                m.eval()
        if self.progress:
            done = epoch - first if last > first else 0
            note = " (stopped at the time budget)" if self.history.stopped_early else ""
            procs = f" by {self.world} processes" if self.world > 1 else ""
            last_epoch = ", ".join(f"{k} {v[-1]:.3f}" for k, v in self.history.epochs.items() if v)
            print(f"trained {done} epoch(s) in {(time.perf_counter() - run_start) / 60:.1f} min{note}; "
                  f"{self.history.images_seen:,} images seen in all{procs}"
                  + (f"; last epoch: {last_epoch}" if last_epoch else ""))
        return self.history

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
            yield normalize(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)

    def _flush(self, pending, bar, stop: bool = False) -> tuple[list, bool]:
        """Record the pending steps' values (averaged over ranks); returns them and whether any rank
        asked to ``stop`` (the time budget)."""
        if not pending:
            return [], stop
        values = torch.stack(pending)
        if self.world > 1:
            flat = torch.cat([values.flatten(), torch.tensor([float(stop)], device=values.device)])
            flat = distributed.all_reduce_sum(flat)
            values, stop = flat[:-1].view_as(values) / self.world, bool(flat[-1] > 0)
        rows = values.cpu().tolist()
        self.history._add_steps(self.names, rows)
        if bar is not None:
            bar.update(len(rows))
            bar.set_postfix({k: f"{v:.3f}" for k, v in zip(self.names, rows[-1])}, refresh=False)
        for row in rows:
            if not all(math.isfinite(v) for v in row):
                raise FloatingPointError(f"the loss became {row} (not finite) after {self.history.images_seen:,} "
                                         "images: lower the learning rate or try precision='fp32'")
        return rows, stop

    @torch.no_grad()
    def _sample(self, epoch: int, sample) -> None:
        for m in self.modules.values():
            m.eval()
        with self.autocast():
            images = sample()
        if images is not None:
            from prodgen.catalog import denormalize

            self.history.samples.append((epoch, denormalize(images.float()).cpu().contiguous()))


# ----------------------------------------------------------------------------- GANs
def train_gan(generator, discriminator, catalog, *, epochs=5, batch_size=128, lr=2e-4, betas=(0.5, 0.999),
              loss="non-saturating", max_minutes=None, seed=0, device="auto", precision="auto",
              channels_last=True, n_samples=64, checkpoint=None, resume=False, progress=True,
              conditional=False, condition=None, sample_condition=None, ema=None, ema_decay=0.999,
              history=None, lr_d=None, augment=None, gp_weight=0.0, r1_weight=0.0, ms_weight=0.0,
              grad_norm=False, on_epoch=None) -> History:
    """Train a GAN on a catalog with Adam; returns the :class:`History`.

    - ``generator(z)`` maps ``N x generator.z_dim`` noise to images in [-1, 1]; ``discriminator(x)``
      returns one logit per image. ``conditional=True`` passes the label batch (N x 5) as a second
      argument to both, and the sample grid uses the labels of the catalog's first ``n_samples`` products.
    - ``condition``: with ``conditional=True``, a function applied to each batch's labels before G and D
      see them (the sample grid gets the plain labels): e.g. ``lambda y: hide_attributes(y, 0.1)`` so
      partial requests are learned (lesson 05), or labels -> description embeddings (lesson 07).
    - ``sample_condition``: what G gets for the sample grid (default: the labels of the catalog's
      first ``n_samples`` products), e.g. the embeddings of their descriptions.
    - ``loss``: ``"non-saturating"`` (default), ``"saturating"``, ``"hinge"`` (``prodgen.engine.losses.GAN_LOSSES``)
      or a pair of functions ``(d_loss(real_logits, fake_logits), g_loss(fake_logits))``.
    - ``epochs``: how many epochs to run now; with ``resume=True`` the total to reach (an interrupted run
      is finished by repeating the same call). Without a checkpoint file ``resume=True`` starts afresh.
    - ``max_minutes``: stop at the first batch boundary after this many minutes (``history.stopped_early``).
    - ``ema``: a copy of the generator (``copy.deepcopy(generator)``) that keeps the exponential moving
      average of its weights, ``ema = decay * ema + (1 - decay) * G`` after every step (batch-norm statistics
      copied). The average of many nearby generators is smoother than the last one (used by BigGAN and
      StyleGAN); lesson 05 ships the averaged generator. The sample grid then shows the average.
    - ``history``: a History to append to (continue training in a second call).
    - ``lr_d``: the discriminator's own learning rate (two time-scale update rule, TTUR; default ``lr``).
    - ``augment``, ``gp_weight``, ``r1_weight``, ``ms_weight``, ``grad_norm``: lesson 10's cures and
      diagnostic, see :func:`gan_step`; their terms are recorded in the history as ``penalty``,
      ``mode_seeking`` and ``d_grad``.
    - ``on_epoch(epoch, history)``: called after every epoch by the main process, before the training state
      is saved; e.g. to measure the generator and keep its best epoch (``prodgen train cgan-* --data``).

    The models end on the training device in eval mode.
    """
    d_loss, g_loss = _gan_losses(loss)
    for name, value in (("gp_weight", gp_weight), ("r1_weight", r1_weight), ("ms_weight", ms_weight)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"{name} must be a number >= 0 (0 turns it off), got {value!r}")
    if gp_weight and r1_weight:
        raise ValueError("choose one gradient penalty: gp_weight (WGAN-GP) or r1_weight (R1), not both")
    if (gp_weight or r1_weight) and distributed.world_size() > 1:
        raise ValueError("gradient penalties (gp_weight, r1_weight) need a double backward, which this engine "
                         "does not run under torchrun/DDP; train with them in one process")
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be a function of an image batch (prodgen.engine.augment.diff_augment), "
                         f"got {type(augment).__name__}")
    lr_d = lr if lr_d is None else lr_d
    for name, value in (("lr", lr), ("lr_d", lr_d)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not hasattr(generator, "z_dim"):
        raise ValueError("the generator needs a `z_dim` attribute (the size of its noise vector)")
    if ema is not None and [p.shape for p in ema.parameters()] != [p.shape for p in generator.parameters()]:
        raise ValueError("ema must be a copy of the generator (copy.deepcopy(generator)), not another network")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
    modules = {"generator": generator, "discriminator": discriminator, **({"generator_ema": ema} if ema else {})}
    loop = _Loop(modules, catalog, kind="gan", epochs=epochs,
                 batch_size=batch_size, max_minutes=max_minutes, seed=seed, device=device, precision=precision,
                 channels_last=channels_last, n_samples=n_samples, checkpoint=checkpoint, resume=resume,
                 progress=progress, history=history, on_epoch=on_epoch,
                 names=("loss_d", "loss_g", "d_real", "d_fake") + (("penalty",) if gp_weight or r1_weight else ())
                 + (("mode_seeking",) if ms_weight else ()) + (("d_grad",) if grad_norm else ()))
    dev = loop.device
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=tuple(betas))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=tuple(betas))
    # fixed noise for the sample grids: its own generator, so it is the same in every epoch and run
    fixed_z = torch.randn(n_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
    if conditional:
        fixed_y = (catalog.labels[:n_samples] if sample_condition is None else sample_condition[:n_samples]).to(dev)
    if condition is not None and not conditional:
        raise ValueError("condition= needs conditional=True (it transforms the labels G and D are given)")
    if condition is not None and not callable(condition):
        raise ValueError(f"condition must be a function of the label batch, got {type(condition).__name__}")

    net_g, net_d = loop.wrap(generator), loop.wrap(discriminator)  # DDP wrappers under torchrun

    def step(x, y):
        z = torch.randn(len(x), generator.z_dim, device=dev)
        if conditional and condition is not None:
            y = condition(y)
        out = gan_step(net_g, net_d, opt_g, opt_d, x, z, d_loss, g_loss,
                       labels=y if conditional else None, autocast=loop.autocast, augment=augment,
                       gp_weight=gp_weight, r1_weight=r1_weight, ms_weight=ms_weight, grad_norm=grad_norm)
        if ema is not None:
            _update_ema(ema, generator, ema_decay)
        return out

    shown = ema if ema is not None else generator

    def sample():
        if not conditional:
            return shown(fixed_z)
        return shown(fixed_z, fixed_y)

    return loop.run({"opt_g": opt_g, "opt_d": opt_d}, step, sample)


@torch.no_grad()
def _update_ema(ema, model, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for the weights; buffers (batch-norm statistics) copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)  # one fused update
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def training_record(history: History, model, fast: bool = False) -> dict:
    """How a run went, for a checkpoint's manifest entry: epochs, images (all processes together), seconds,
    whether the time budget stopped it, the device it ran on (the GPU's name on CUDA) and the number of
    processes (``torchrun``). Used by every ``train_checkpoint``."""
    dev = next(model.parameters()).device
    return {"fast": fast, "epochs_done": history.epochs_done, "images_seen": history.images_seen,
            "stopped_early": history.stopped_early, "seconds": round(history.seconds, 1),
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
            "processes": distributed.world_size()}


# ----------------------------------------------------------------------------- VAEs
def train_vae(model, catalog, *, epochs=5, batch_size=128, lr=1e-3, beta=1.0, max_minutes=None, seed=0,
              device="auto", precision="auto", channels_last=True, n_samples=64, checkpoint=None,
              resume=False, progress=True, loss_fn=None, conditional=False, history=None) -> History:
    """Train a VAE on a catalog with Adam; returns the :class:`History` (``loss``, ``recon``, ``kl``).

    ``model(x) -> (x_hat, mu, logvar)``; ``loss_fn(x, output, beta) -> {"loss", "recon", "kl"}``
    (default ``prodgen.engine.losses.vae_loss``); the sample grid is ``model.sample(n_samples, generator=g)``
    with a generator seeded the same way after every epoch. ``epochs``, ``resume``, ``max_minutes``,
    ``checkpoint`` and ``history`` work as in :func:`train_gan`. ``conditional=True`` (the CVAE of
    lesson 06): ``model(x, labels)``, and the sample grid is ``model.sample(labels of the catalog's
    first n_samples products, generator=g)``.
    """
    if loss_fn is None:
        loss_fn = losses.vae_loss
    loop = _Loop({"model": model}, catalog, kind="vae", epochs=epochs, batch_size=batch_size,
                 max_minutes=max_minutes, seed=seed, device=device, precision=precision, channels_last=channels_last,
                 n_samples=n_samples, checkpoint=checkpoint, resume=resume, progress=progress, history=history,
                 names=("loss", "recon", "kl"))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    fixed_y = catalog.labels[:n_samples].to(loop.device) if conditional else None
    net = loop.wrap(model)  # the DDP wrapper under torchrun

    def step(x, y):
        return vae_step(net, optimizer, x, loss_fn, beta, autocast=loop.autocast,
                        labels=y if conditional else None)

    def sample():
        if not hasattr(model, "sample"):
            return None
        gen = torch.Generator(device=loop.device).manual_seed(seed)
        return model.sample(fixed_y if conditional else n_samples, generator=gen)

    return loop.run({"optimizer": optimizer}, step, sample)


# ----------------------------------------------------------------------------- diffusion
def train_diffusion(model, catalog, *, epochs=5, batch_size=128, lr=1e-3, max_minutes=None, seed=0, device="auto",
                    precision="auto", channels_last=True, n_samples=64, checkpoint=None, resume=False, progress=True,
                    ema=None, ema_decay=0.999, drop_p=0.1, hide_p=0.1, sample_steps=20, guidance=2.0,
                    history=None) -> History:
    """Train a conditional diffusion model (lesson 11) on a catalog with Adam; returns the :class:`History`
    (``loss``: the v-prediction loss, ``prodgen.engine.losses.diffusion_loss``).

    ``model(x_t, t, labels) -> v_hat`` with its noise schedule in ``model.abar``. For classifier-free guidance
    each photo's request is hidden completely (all attributes "unspecified") with probability ``drop_p``, and
    single attributes with probability ``hide_p``, so the one network learns the conditional and the
    unconditional prediction (and partial requests). ``ema``: a copy of the model that keeps the exponential
    moving average of its weights (``copy.deepcopy(model)``; diffusion samples are much better from it);
    ``model.sample``-style grids come from ``ema`` when given: ``model.sample_grid(labels, steps, guidance,
    generator)`` if the model has it, drawn from the labels of the catalog's first ``n_samples`` products.
    ``epochs``, ``resume``, ``max_minutes``, ``checkpoint`` and ``history`` work as in :func:`train_gan`.
    """
    for name, value in (("drop_p", drop_p), ("hide_p", hide_p)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if not hasattr(model, "abar"):
        raise ValueError("the model needs its noise schedule as `model.abar` (prodgen.models.diffusion.UNet)")
    if ema is not None and [p.shape for p in ema.parameters()] != [p.shape for p in model.parameters()]:
        raise ValueError("ema must be a copy of the model (copy.deepcopy(model)), not another network")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
    modules = {"model": model, **({"model_ema": ema} if ema is not None else {})}
    loop = _Loop(modules, catalog, kind="diffusion", epochs=epochs, batch_size=batch_size, max_minutes=max_minutes,
                 seed=seed, device=device, precision=precision, channels_last=channels_last, n_samples=n_samples,
                 checkpoint=checkpoint, resume=resume, progress=progress, history=history, names=("loss",))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    net = loop.wrap(model)
    fixed_y = catalog.labels[:n_samples].to(loop.device)

    def step(x, y):
        drop = torch.rand(len(y), device=y.device) < drop_p  # the whole request hidden: the unconditional model
        hide = torch.rand(y.shape, device=y.device) < hide_p  # single attributes hidden: partial requests
        y = y.masked_fill(hide | drop[:, None], -1)
        with loop.autocast():
            loss = losses.diffusion_loss(net, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            _update_ema(ema, model, ema_decay)
        return {"loss": loss.detach()}

    shown = ema if ema is not None else model

    def sample():
        if not hasattr(shown, "sample_grid"):
            return None
        return shown.sample_grid(fixed_y, steps=sample_steps, guidance=guidance,
                                 generator=torch.Generator().manual_seed(seed))

    return loop.run({"optimizer": optimizer}, step, sample)

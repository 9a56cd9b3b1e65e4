"""Callbacks of the training loop (``prodgen.engine.train``): what happens around the steps, as small objects.

The loop itself only runs steps and epochs; everything else is a :class:`Callback` passed in ``callbacks=``:

- :class:`Progress`: the ``tqdm`` bar with the live losses and a summary line at the end (on by default;
  ``Progress(False)`` for tests and sweeps);
- :class:`SampleGrid`: images from fixed noise (and requests) after every epoch, kept in the history (64 by
  default; ``SampleGrid(0)`` for none), drawn by the engine or by a ``draw`` function the model family gives;
- :class:`StepBudget`: stop after so many steps (``steps=`` makes one): the same run on every machine, so a
  lesson's text can describe it; a ``TimeBudget`` beside it is only a safety net (``cap=True``);
- :class:`TimeBudget`: stop cleanly at a batch boundary after so many minutes (``max_minutes=`` makes one);
  as a cap (``cap=True``) it says loudly when it cut the run short;
- :class:`Checkpoints`: save the training state (models, optimisers, history, RNG) atomically after every
  epoch; ``resume=True`` continues from it;
- :class:`OnEpoch`: call a function ``fn(epoch, history)`` after every epoch, e.g. to keep the best epoch
  (``prodgen.models.cgan.best_epoch_keeper``);
- the :class:`~prodgen.engine.train.History` itself records the run: pass one to continue it.

A callback of the same class as a default (History, Progress, SampleGrid) replaces that default. Only the main
process (rank 0 under torchrun) shows progress, draws samples, calls ``OnEpoch`` and writes checkpoints. Used by
lessons 03, 05, 07 (``train_gan``), by ``prodgen.models.recipe`` (``prodgen train``) and the tests.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

__all__ = ["Callback", "Progress", "SampleGrid", "StepBudget", "TimeBudget", "Checkpoints", "OnEpoch"]


class Callback:
    """A hook into the training loop; every method does nothing unless a subclass overrides it.

    ``order`` says when ``epoch_end`` runs among the callbacks (lower first): the history records the epoch
    (0), the sample grid is drawn (10), ``OnEpoch`` functions run (50), the checkpoint is written last (90).
    ``loop`` is the running ``prodgen.engine.train._Loop`` (``history``, ``first``, ``last``, ``device``,
    ``main``, ``world``, ``modules``, ``optimizers``, ``kind``, ``names``, ``run_start``)."""

    order = 50
    resume = False

    def restore(self, loop) -> int | None:
        """The number of epochs already done, when this callback restores a saved run; else None."""
        return None

    def begin(self, loop) -> None:
        """Before the first epoch."""

    def epoch_begin(self, loop, epoch: int) -> None:
        """At the start of every epoch."""

    def steps_done(self, loop, rows: list) -> None:
        """After steps' values were gathered: ``rows`` are lists of floats in the order of ``loop.names``."""

    def time_up(self, loop) -> bool:
        """Whether to stop at this batch boundary, cutting the run short (``history.stopped_early``)."""
        return False

    def finished(self, loop) -> bool:
        """Whether the run has done all it was asked (a step budget): stop at this batch boundary, not early."""
        return False

    def epoch_end(self, loop, epoch: int) -> None:
        """After every epoch (by the main process only, except for the history)."""

    def end(self, loop) -> None:
        """When the run ends, normally or not."""


class Progress(Callback):
    """The progress bar (``tqdm.auto``) with the live losses, and one summary line at the end; ``Progress(False)``
    shows nothing."""

    def __init__(self, show: bool = True):
        self.show, self.bar = bool(show), None

    def begin(self, loop) -> None:
        self.bar = None
        if not (self.show and loop.main and loop.last > loop.first):
            return
        from tqdm.auto import tqdm

        # with a time budget (not a cap) the number of steps is unknown: count them without a total
        budget = loop.find(TimeBudget)
        total = None if budget is not None and not budget.cap else loop.planned_steps
        self.bar = tqdm(total=total, unit="step", leave=True, desc=f"{loop.kind} on {self._where(loop)}")

    @staticmethod
    def _where(loop) -> str:
        return loop.device.type if loop.world == 1 else f"{loop.world} x {loop.device.type}"

    def epoch_begin(self, loop, epoch: int) -> None:
        if self.bar is not None:
            budget = loop.find(TimeBudget)
            note = f", {budget.minutes:g} min {'cap' if budget.cap else 'budget'}" if budget else ""
            self.bar.set_description(f"{loop.kind} on {self._where(loop)}, epoch {epoch}/{loop.last}{note}",
                                     refresh=False)

    def steps_done(self, loop, rows: list) -> None:
        if self.bar is not None and rows:
            self.bar.update(len(rows))
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in zip(loop.names, rows[-1])}, refresh=False)

    def end(self, loop) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not (self.show and loop.main and loop.completed):
            return
        history = loop.history
        done = loop.epoch - loop.first if loop.last > loop.first else 0
        budget = loop.find(TimeBudget)
        kind = "cap" if budget and budget.cap else "budget"
        note = f" (stopped at the time {kind})" if history.stopped_early else ""
        steps = f"{loop.steps_run:,} steps, " if loop.find(StepBudget) else ""
        procs = f" by {loop.world} processes" if loop.world > 1 else ""
        last_epoch = ", ".join(f"{k} {v[-1]:.3f}" for k, v in history.epochs.items() if v)
        print(f"trained {steps}{done} epoch(s) in {(time.perf_counter() - loop.run_start) / 60:.1f} min{note}; "
              f"{history.images_seen:,} images seen in all{procs}"
              + (f"; last epoch: {last_epoch}" if last_epoch else ""))


class SampleGrid(Callback):
    """``n`` images after every epoch, from the same fixed noise each time, kept in ``history.samples``.

    ``requests``: what a conditional model is given for the grid (default: the labels of the catalog's first
    ``n`` products), e.g. the embeddings of their descriptions (lesson 07). ``draw``: a function ``draw(n or
    requests, generator) -> images in [-1, 1]`` that the model family supplies (e.g. diffusion's sampler with
    its steps and guidance); without it the engine draws as its loop knows how (GAN: the generator on fixed
    noise; VAE: ``model.sample``)."""

    order = 10

    def __init__(self, n: int = 64, requests=None, draw=None):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n_samples must be a whole number >= 0, got {n!r}")
        if draw is not None and not callable(draw):
            raise ValueError(f"draw must be a function (n or requests, generator) -> images, got {type(draw).__name__}")
        self.n, self.requests, self.draw = n, requests, draw

    def fixed_requests(self, catalog, device):
        """The grid's requests on ``device``: ``requests`` or the labels of the catalog's first ``n`` products."""
        return (catalog.labels[:self.n] if self.requests is None else self.requests[:self.n]).to(device)

    @torch.no_grad()
    def epoch_end(self, loop, epoch: int) -> None:
        if not (self.n and loop.main and loop.sample is not None):
            return
        from prodgen.catalog import denormalize

        for m in loop.modules.values():
            m.eval()
        with loop.autocast():
            images = loop.sample()
        loop.history.samples.append((epoch, denormalize(images.float()).cpu().contiguous()))


class StepBudget(Callback):
    """Stop after ``steps`` training steps of this run (a whole number of epochs is not needed; the last epoch is
    cut short and recorded). Not an early stop: the run did what it was asked. The run's ``epochs`` must leave
    room for the steps. Lessons 03-07 and 12 size their live demos with it, so a slow machine runs the same demo
    as the one the lesson's text describes, only longer."""

    order = 5

    def __init__(self, steps: int):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1 or None, got {steps!r}")
        self.steps = steps

    def finished(self, loop) -> bool:
        return loop.steps_run >= self.steps


class TimeBudget(Callback):
    """Stop at the first batch boundary after ``minutes`` minutes (``history.stopped_early``); under torchrun
    the ranks agree on it when they gather losses.

    ``cap=True``: the time is a safety net around a planned run (a :class:`StepBudget` or a number of epochs),
    not the budget; when it stops the run it prints, loudly, after how many of the planned steps, since what
    follows (pictures, numbers, a lesson's text) then describes a longer run than this one."""

    def __init__(self, minutes: float, cap: bool = False):
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
            raise ValueError(f"max_minutes must be a positive number of minutes or None, got {minutes!r}")
        self.minutes, self.cap = minutes, bool(cap)

    def time_up(self, loop) -> bool:
        return time.perf_counter() - loop.run_start >= 60.0 * self.minutes

    def end(self, loop) -> None:
        if self.cap and loop.main and loop.completed and loop.history.stopped_early:
            print(f"STOPPED BY THE TIME CAP ({self.minutes:g} min) after {loop.steps_run:,} of "
                  f"{loop.planned_steps:,} steps: the results below come from a shorter run than the text "
                  "describes (a slower machine; raise the cap to run the whole budget)")


class OnEpoch(Callback):
    """Call ``fn(epoch, history)`` after every epoch (main process), before the training state is saved."""

    def __init__(self, fn):
        if not callable(fn):
            raise ValueError(f"OnEpoch needs a function (epoch, history), got {type(fn).__name__}")
        self.fn = fn

    def epoch_end(self, loop, epoch: int) -> None:
        if loop.main:
            self.fn(epoch, loop.history)


class Checkpoints(Callback):
    """An atomic save (temp file + rename) of the training state at ``path`` after every epoch: the model(s),
    optimisers, history, epoch and RNG states. ``resume=True`` continues from the file when it exists (the
    run's ``epochs`` is then the total to reach); without a file it starts afresh."""

    order = 90

    def __init__(self, path, resume: bool = False):
        self.path, self.resume = Path(path), bool(resume)

    def restore(self, loop) -> int | None:
        if not (self.resume and self.path.is_file()):
            return None
        payload = _load_checkpoint(self.path, loop.kind)
        for name, module in {**loop.modules, **loop.optimizers}.items():
            _load_state(module, payload["state"][name], name, self.path)
        loop.history.load_state_dict(payload["history"])
        loop.history.stopped_early = False
        _set_rng_state(payload["rng"], loop.data_gen)
        return int(payload["epoch"])

    def epoch_end(self, loop, epoch: int) -> None:
        if not loop.main:  # rank 0 alone writes
            return
        from prodgen.paths import atomic_file

        loop.tick()
        state = {name: m.state_dict() for name, m in {**loop.modules, **loop.optimizers}.items()}
        payload = {"kind": loop.kind, "epoch": epoch, "state": state, "history": loop.history.state_dict(),
                   "rng": _rng_state(loop.data_gen)}
        with atomic_file(self.path) as tmp:
            torch.save(payload, tmp)


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

"""One training recipe for every shipped model (``prodgen train NAME``): the skeleton lives here once.

Every family's ``train_checkpoint`` does the same things in the same order:

1. settings: the family's ``CHECKPOINT_CONFIG`` with the caller's overrides (an unknown one is refused),
   the family's own adjustments (:attr:`Recipe.prepare`), and what ``fast=True`` changes (:attr:`Recipe.fast`);
2. data: the course catalog's training split, or a catalog folder of your own (``data=``, lesson 12:
   ``prodgen.catalog.own.training_data``), cut to ``fast_products`` in a smoke test;
3. build and train: the family's :attr:`Recipe.fit`, on every process under torchrun, with the engine options
   (device, time budget, checkpoints / resume, progress) that :class:`Run` hands out;
4. rank 0 alone: :attr:`Recipe.finish` (e.g. the weight average's batch-norm statistics, the kept epoch), the
   training record (``prodgen.engine.train.training_record``), the metrics (:attr:`Recipe.measure`, on the
   course catalog; a folder of your own is measured with its own judge by ``prodgen evaluate --data``) and
   ``registry.save`` (to ``out`` if given), then :attr:`Recipe.after_save`.

A family states only what differs, as a :class:`Recipe`, and its ``train_checkpoint`` keeps the signature that
``prodgen.models.registry.train`` reads (which options it takes) and calls :func:`train` with it. Used by every
trainer in ``prodgen/models`` (text readers, judge, dcgan, vae, cvae, cgan, cgan-stable, text2img, diffusion, flow,
flow-fast, the autoencoder, latent-64, tryon-64).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Recipe", "Run", "Trained", "train", "with_text_reader"]


@dataclass
class Trained:
    """What a family's :attr:`Recipe.fit` hands back.

    ``model``: the network to save; ``config``: what rebuilds it (the manifest's ``config``); ``history``: the
    engine's History (None for a family with its own loop); ``network``: the trained network whose device the
    training record names (default ``model``); ``training``: entries added to the training record; ``extra``:
    plain data stored in the checkpoint; ``notes``: anything :attr:`Recipe.measure` needs besides the model."""

    model: object
    config: dict
    history: object = None
    network: object = None
    training: dict = field(default_factory=dict)
    extra: dict | None = None
    notes: dict = field(default_factory=dict)


@dataclass
class Run:
    """One ``train_checkpoint`` call as the family's hooks see it: the name, the merged settings ``cfg``, the
    ``train`` catalog (and ``heldout``, the folder's test split with ``data=``), the caller's options, and the
    ``resolution`` of the course catalog it trains on (its spec's: 32 px, or 64 px for ``judge-64``, ``ae-64``)."""

    name: str
    cfg: dict
    overrides: dict
    fast: bool
    log: object
    device: str = "auto"
    checkpoint: object = None
    resume: bool = False
    data: object = None
    out: object = None
    train: object = None
    heldout: object = None
    resolution: int = 32

    @property
    def progress(self) -> bool:
        """Show a progress bar (the caller logs)."""
        return self.log is not None

    def callbacks(self, *more) -> list:
        """The engine callbacks every family passes: progress, checkpoints / resume, then ``more``."""
        from prodgen.engine.callbacks import Checkpoints, Progress

        found = [Progress(self.progress)]
        found += [Checkpoints(self.checkpoint, self.resume)] if self.checkpoint is not None else []
        return found + list(more)

    def engine(self) -> dict:
        """The keyword options of ``train_vae`` / ``train_diffusion`` that every family passes the same way."""
        return {"epochs": self.cfg["epochs"], "batch_size": self.cfg["batch_size"], "max_minutes": self.cfg["minutes"],
                "seed": self.cfg["seed"], "device": self.device, "progress": self.progress,
                "checkpoint": self.checkpoint, "resume": self.resume}


@dataclass(frozen=True)
class Recipe:
    """What a family's trainer says; :func:`train` does the rest.

    - ``config``: its ``CHECKPOINT_CONFIG`` (the dict itself, so a test can patch it), or a function
      ``name -> dict`` when each name has its own (the text readers);
    - ``fit(run) -> Trained``: build the networks and train them (every process under torchrun);
    - ``measure(run, trained) -> metrics``: measure the saved model on the course catalog (and log them);
    - ``names``: the names it trains, and ``what`` they are (for the refusal of another name); ``()``: any;
    - ``fast``: the settings ``fast=True`` uses unless given explicitly; ``fast_products``: how many products;
    - ``prepare(run)``: adjust ``run.cfg`` before the data are loaded (may refuse a combination);
    - ``finish(run, trained) -> Trained``: rank 0, after training, before the record (e.g. the kept epoch);
    - ``after_save(run, trained, training)``: rank 0, after the save (e.g. a second name with the same weights);
    - ``measure_own``: measure a model trained on a folder of your own too (the judge, on the folder's test split);
    - ``report(metrics) -> str``: the line logged as ``NAME: ...`` after measuring (else ``measure`` logs).
    """

    config: object
    fit: Callable
    measure: Callable
    names: tuple = ()
    what: str = "models"
    fast: dict = field(default_factory=lambda: {"epochs": 1, "minutes": None})
    fast_products: int = 1024
    prepare: Callable | None = None
    finish: Callable | None = None
    after_save: Callable | None = None
    measure_own: bool = False
    report: Callable | None = None


def _settings(recipe: Recipe, name: str, overrides: dict) -> dict:
    if recipe.names and name not in recipe.names:
        raise ValueError(f"unknown model {name!r}; {recipe.what}: {', '.join(recipe.names)}")
    config = recipe.config(name) if callable(recipe.config) else recipe.config
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown training setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(config)}")
    return {**config, **overrides}


def _resolution(name: str) -> int:
    """The image size the registered model ``name`` works at (its spec's ``resolution``; 32 if unregistered)."""
    from prodgen.models import registry

    try:
        return registry.spec(name).resolution
    except ValueError:
        return 32


def _load_data(recipe: Recipe, run: Run) -> None:
    """``run.train`` (and ``run.heldout``): the course catalog's split or the folder ``run.data``; in a smoke test
    its first ``fast_products`` products, and ``recipe.fast``'s settings unless given explicitly."""
    n = recipe.fast_products if run.fast else None
    if run.data is not None:
        from prodgen.catalog.own import training_data

        if run.resolution != 32:
            raise ValueError(f"{run.name} works on {run.resolution} px photos; a catalog folder of your own is read "
                             "at 32 px (train a 32 px model on it)")

        run.train, run.heldout, record = training_data(run.data, run.log)
        run.cfg |= {"train_split": "train", **record}
        if n is not None:
            run.train = run.train.subset(range(min(n, len(run.train))))
    else:
        from prodgen.catalog import load_catalog

        run.train = load_catalog(run.cfg["train_split"], n=n, size=run.resolution, progress=run.progress)
    if run.fast:
        run.cfg |= {k: v for k, v in recipe.fast.items() if k not in run.overrides}


def train(recipe: Recipe, name: str, *, fast: bool = False, log=print, overrides: dict | None = None,
          **options) -> dict:
    """Train checkpoint ``name`` by ``recipe`` and save it; returns its metrics (``{}`` on ranks other than 0).

    ``options``: what the family's ``train_checkpoint`` was given of ``device``, ``out``, ``checkpoint``,
    ``resume`` and ``data`` (see ``prodgen.models.registry.train``); ``overrides``: settings replacing entries of
    the recipe's config."""
    from prodgen.engine.distributed import is_main
    from prodgen.engine.train import training_record
    from prodgen.models import registry

    overrides = dict(overrides or {})
    cfg = _settings(recipe, name, overrides)
    run = Run(name, cfg, overrides, fast, log, resolution=_resolution(name), **options)
    if recipe.prepare is not None:
        recipe.prepare(run)
    _load_data(recipe, run)
    trained = recipe.fit(run)
    if not is_main():  # under torchrun rank 0 alone measures and saves
        return {}
    if recipe.finish is not None:
        trained = recipe.finish(run, trained)
    ran = {"fast": fast}
    if trained.history is not None:
        network = trained.network if trained.network is not None else trained.model
        ran = training_record(trained.history, network, fast)
    trained.model = trained.model.cpu().eval()
    if run.data is not None and not recipe.measure_own:
        metrics = {}  # measured with the catalog's own judge: prodgen evaluate PATH --data DIR (own_catalog)
    else:
        metrics = recipe.measure(run, trained)
        if run.log and recipe.report is not None:
            run.log(f"{name}: {recipe.report(metrics)}")
    training = {**run.cfg, **ran, **trained.training}
    registry.save(trained.notes.get("save_as", name), trained.model, trained.config, metrics=metrics,
                  training=training, extra=trained.extra, out=run.out)
    if recipe.after_save is not None:
        recipe.after_save(run, trained, training)
    return metrics


def with_text_reader(config: dict, fit: Callable, evaluate: Callable, image: str, text: str) -> Recipe:
    """The recipe of a model trained once and shipped twice (diffusion / diffusion-text, flow / flow-text): ``fit``
    trains ``image``; ``evaluate(model, n=...)`` measures it (200 requests in a smoke test, else 2,000); after the
    save the same weights go behind the description reader ``config["reader"]`` as ``text`` (the course's own
    checkpoints only: not with ``out`` or ``data``). A catalog folder of your own trains ``image`` alone."""

    def prepare(run: Run) -> None:
        if run.data is not None and run.name != image:
            raise ValueError(f"{text} reads the course catalog's descriptions; train `{image}` on your catalog")

    def measure(run: Run, trained: Trained) -> dict:
        return evaluate(trained.model, n=200 if run.fast else 2000)

    def save_text_model(run: Run, trained: Trained, training: dict) -> None:
        from prodgen.models import registry

        if run.out is None and run.data is None:
            registry.save(text, trained.model, {**trained.config, "reader": run.cfg["reader"]}, metrics={},
                          training={**training, "same_weights_as": image})

    def report(metrics: dict) -> str:
        return (f"control {metrics['control']}, held-out {metrics['control_unseen_pairs']['mean']}, "
                f"FID {metrics['fid']}")

    return Recipe(config, fit, measure, names=(image, text), what=f"train_checkpoint trains {image!r} (and {text!r} "
                  "with it)", prepare=prepare, after_save=save_text_model, report=report)

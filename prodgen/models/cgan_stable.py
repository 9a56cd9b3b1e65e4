"""Stabilising the conditional GAN (lesson 10): named training recipes, and the course's best GAN, ``cgan-stable``.

Every recipe trains the same pair of networks, lesson 05's conditional generator and its projection
discriminator (``prodgen.models.cgan``), on the same photos for the same number of steps; only the
training setup differs, so a difference in the measured results is the recipe's doing. One learning
rate, 1e-3 (Adam), for all but ``ttur``: at the grid's short budget 2e-4, the usual GAN rate, barely
leaves the noise (a trial of ``hinge-sn``, width 32, batch 64: mean control 0.43 at 2e-4 against 0.66
at 1e-3 after 450 steps).

==================  =====================================================================================
``dcgan``           non-saturating loss, batch norm in D, Adam (0.5, 0.999), one learning rate: lesson 03's recipe
``hinge``           the same with the hinge loss
``hinge-sn``        hinge + spectral norm in D, Adam (0, 0.9): lesson 05's ``cgan-projection`` recipe
``wgan-gp``         Wasserstein loss + gradient penalty (weight 10), no normalisation in D, Adam (0.5, 0.9)
``r1``              non-saturating loss + R1 penalty on real photos (gamma 1), no normalisation in D
``ttur``            ``hinge-sn`` with two time scales: D learns at 2e-3, G at 5e-4
``mode-seeking``    ``hinge-sn`` + the mode-seeking term (weight 1) against one look per request
``small``           ``hinge-sn`` on 2,000 photos only
``small-diffaug``   ``small`` + DiffAugment (translation, cutout) on everything D sees
``stable``          ``hinge-sn`` + DiffAugment on all 20,000 photos: what lesson 10 recommends from the grid, and
                    what ``cgan-stable`` is trained with for longer
==================  =====================================================================================

Every run also keeps an exponential moving average of G's weights (EMA), so each recipe is measured with
and without it. :func:`train_recipe` trains one run; ``prodgen.studies.recipe_grid`` runs the grid (recipes x seeds)
and measures it with the leaderboard's protocol. Used by lesson 10 and ``prodgen train cgan-stable``.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import torch

from prodgen.catalog.schema import BUILTIN, Schema
from prodgen.models import cgan
from prodgen.models.cgan import Generator, ProjectionDiscriminator, _init, random_requests, recalibrate_batch_norm
from prodgen.models.cgan import _measure as measure_cgan
from prodgen.models.cgan import _report as report_cgan
from prodgen.models.condition import hide_attributes
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["RECIPES", "GRID", "recipe", "build_networks", "RecipeRun", "train_recipe", "calls_real",
           "CHECKPOINT_CONFIG", "train_checkpoint"]

_BASE = {"norm": "spectral", "loss": "hinge", "lr": 1e-3, "lr_d": 1e-3, "betas": (0.0, 0.9), "gp_weight": 0.0,
         "r1_weight": 0.0, "ms_weight": 0.0, "augment": None, "photos": None}

RECIPES: dict[str, dict] = {
    "dcgan": {**_BASE, "norm": "batch", "loss": "non-saturating", "betas": (0.5, 0.999)},
    "hinge": {**_BASE, "norm": "batch", "betas": (0.5, 0.999)},
    "hinge-sn": dict(_BASE),
    "wgan-gp": {**_BASE, "norm": "none", "loss": "wasserstein", "gp_weight": 10.0, "betas": (0.5, 0.9)},
    "r1": {**_BASE, "norm": "none", "loss": "non-saturating", "r1_weight": 0.5},
    "ttur": {**_BASE, "lr": 5e-4, "lr_d": 2e-3},
    "mode-seeking": {**_BASE, "ms_weight": 1.0},
    "small": {**_BASE, "photos": 2000},
    "small-diffaug": {**_BASE, "photos": 2000, "augment": "translation,cutout"},
    "stable": {**_BASE, "augment": "translation,cutout"},
}
"""name -> training settings (see the module docstring). ``photos``: train on the first N photos only."""

GRID = {"steps": 600, "batch_size": 64, "width": 32, "z_dim": 64, "ema_decay": 0.99, "hide_p": 0.1,
        "seeds": (0, 1, 2), "n": 1000}
"""The grid's fixed budget: every run takes ``steps`` Adam steps of ``batch_size`` photos with networks of
``width`` channels (half the shipped width, so the 30 runs fit in about an hour of a 2-core CPU), EMA decay
``ema_decay`` (a half-life of 69 steps), and is measured on ``n`` balanced requests."""


def recipe(name: str) -> dict:
    """The settings of a named recipe (a copy); an unknown name -> ``ValueError`` listing the valid ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return dict(RECIPES[name])


def build_networks(settings: dict, width: int = 32, z_dim: int = 64, seed: int = 0, deep: bool = False,
                   schema: Schema = BUILTIN):
    """A fresh ``(generator, discriminator)`` for a recipe: lesson 05's conditional generator and the
    projection discriminator with the recipe's normalisation, seeded initial weights, for ``schema``'s
    attributes (the course catalog's by default)."""
    torch.manual_seed(seed)
    g = Generator(z_dim, width, schema=schema)
    d = ProjectionDiscriminator(width, deep=deep, norm=settings["norm"], schema=schema)
    g.apply(_init)
    d.apply(_init)
    return g, d


class RecipeRun(NamedTuple):
    """What :func:`train_recipe` returns: the generator as training left it, its weight average (EMA, batch-norm
    statistics re-estimated), the discriminator and the training :class:`~prodgen.engine.train.History`."""
    generator: torch.nn.Module
    ema: torch.nn.Module
    discriminator: torch.nn.Module
    history: object


def train_recipe(name_or_settings, catalog, *, steps: int | None = None, epochs: int | None = None,
                 batch_size: int = 64, width: int = 32, z_dim: int = 64, deep: bool = False, seed: int = 0,
                 ema_decay: float = 0.99, hide_p: float = 0.1, max_minutes=None, device="auto",
                 progress: bool = True, grad_norm: bool = True, n_samples: int = 64, checkpoint=None,
                 resume: bool = False) -> RecipeRun:
    """Train one recipe on ``catalog`` for ``steps`` steps (or ``epochs`` epochs; ``max_minutes``: a time budget,
    with ``steps`` a safety cap that says loudly when it cut the run short); returns a :class:`RecipeRun`
    ``(generator, ema, discriminator, history)``, all on the training device in eval mode. The EMA
    generator's batch-norm statistics are re-estimated (``recalibrate_batch_norm``). ``history`` has ``d_grad`` (D's
    gradient norm per step) besides the losses, and the penalty / mode-seeking terms when the recipe has them.
    """
    from prodgen.engine.augment import diff_augment
    from prodgen.engine.callbacks import Checkpoints, Progress, SampleGrid, TimeBudget
    from prodgen.engine.train import GANSettings, train_gan

    settings = recipe(name_or_settings) if isinstance(name_or_settings, str) else dict(name_or_settings)
    schema = catalog.schema  # the attributes the networks are conditioned on
    if (steps is None) == (epochs is None):
        raise ValueError("give either steps or epochs")
    if settings.get("photos"):
        catalog = catalog.subset(range(min(settings["photos"], len(catalog))))
    per_epoch = len(catalog) // batch_size
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
        if per_epoch < 1:
            raise ValueError(f"the catalog has {len(catalog)} photos, fewer than one batch of {batch_size}")
        epochs = -(-steps // per_epoch)
        if steps % per_epoch:  # cut the last epoch short: repeat whole epochs on a subset
            catalog = _Repeated(catalog, steps * batch_size)
            epochs = 1
    g, d = build_networks(settings, width, z_dim, seed, deep, schema)
    g_ema = copy.deepcopy(g)
    augment = None if settings["augment"] is None else (lambda x, p=settings["augment"]: diff_augment(x, p))
    gan = GANSettings(loss=settings["loss"], lr=settings["lr"], lr_d=settings["lr_d"], betas=tuple(settings["betas"]),
                      ema_decay=ema_decay, augment=augment, gp_weight=settings["gp_weight"],
                      r1_weight=settings["r1_weight"], ms_weight=settings["ms_weight"], grad_norm=grad_norm)
    callbacks = [Progress(progress), SampleGrid(n_samples)]
    callbacks += [Checkpoints(checkpoint, resume)] if checkpoint is not None else []
    # beside a step budget the time is a safety cap, whose stop is printed loudly (lessons 10 and 12)
    callbacks += [TimeBudget(max_minutes, cap=steps is not None)] if max_minutes is not None else []
    history = train_gan(g, d, catalog, epochs=epochs, batch_size=batch_size, settings=gan,
                        condition=lambda y: hide_attributes(y, hide_p), ema=g_ema,
                        seed=seed, device=device, callbacks=callbacks)
    g_ema = recalibrate_batch_norm(g_ema, random_requests(0.0, schema), batches=20)
    return RecipeRun(g.eval(), g_ema, d.eval(), history)


@torch.no_grad()
def calls_real(discriminator, catalog, n: int = 1000) -> float:
    """Share of the first ``n`` photos of ``catalog`` that D scores as real (logit > 0), each with its own labels:
    on photos D trained on against photos it never saw, the gap measures how much D has memorised (lesson 10)."""
    from prodgen.catalog import normalize

    discriminator.eval()
    device = next(discriminator.parameters()).device
    x, y = normalize(catalog.images[:n]).to(device), catalog.labels[:n].to(device)
    return float((discriminator(x, y) > 0).double().mean())


class _Repeated:
    """A catalog that yields ``total`` photos per epoch by cycling through a shuffled copy of ``catalog``
    (so a step budget that is not a whole number of epochs is exact)."""

    def __init__(self, catalog, total: int):
        self.base, self.total = catalog, total
        self.images, self.labels = catalog.images, catalog.labels

    def __len__(self) -> int:
        return self.total

    def batches(self, batch_size, shuffle=True, generator=None, drop_last=True, device="cpu"):
        done = 0
        while done + batch_size <= self.total:
            for x, y in self.base.batches(batch_size, shuffle=shuffle, generator=generator, drop_last=True,
                                          device=device):
                if done + batch_size > self.total:
                    return
                done += batch_size
                yield x, y

    def subset(self, indices):
        return self.base.subset(indices)


# ----------------------------------------------------------------------------- the shipped checkpoint
CHECKPOINT_CONFIG = {
    "recipe": "stable", "z_dim": 64, "width": 32, "deep": False, "epochs": 60, "minutes": None, "batch_size": 64,
    "ema_decay": 0.999, "hide_p": 0.1, "seed": 0, "train_split": "train",
}
"""How ``prodgen train cgan-stable`` trains: the ``stable`` recipe with the grid's networks (width 32, the plain
discriminator trunk) and batch, for ``epochs`` epochs of the 20,000 training photos or until ``minutes`` pass
(``--epochs`` / ``--minutes`` replace them), EMA decay 0.999. The grid's size, because it is the one the lesson
measured, and because on a 2-core CPU it takes about eight times as many steps per minute as the shipped
cGANs' width 64 with the deeper trunk (measured: 178 ms against 1,354 ms per step of 64, one thread)."""


def train_checkpoint(name: str = "cgan-stable", fast: bool = False, log=print, device: str = "auto",
                     out=None, checkpoint=None, resume: bool = False, data=None, **overrides) -> dict:
    """Train ``cgan-stable`` (``prodgen train cgan-stable``) and save its EMA generator with the metrics of
    ``cgan.evaluate``. ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``. ``data``: a
    catalog folder of your own (lesson 12; ``prodgen.evaluation.own_catalog``). The shared steps:
    ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume, data=data)


def _fit(run) -> Trained:
    from prodgen.models.dcgan import compact_history

    cfg = run.cfg
    settings = recipe(cfg["recipe"])
    _, g_ema, d, history = train_recipe(settings, run.train, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                                        width=cfg["width"], z_dim=cfg["z_dim"], deep=cfg["deep"], seed=cfg["seed"],
                                        ema_decay=cfg["ema_decay"], hide_p=cfg["hide_p"], max_minutes=cfg["minutes"],
                                        device=run.device, progress=run.progress, grad_norm=False,
                                        checkpoint=run.checkpoint, resume=run.resume)
    schema = g_ema.schema
    config = {"z_dim": g_ema.z_dim, "width": g_ema.width,
              **({"schema": schema.to_config()} if schema != BUILTIN else {})}
    training = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    return Trained(g_ema, config, history, training=training, extra=compact_history(history), notes={"d": d})


def _finish(run, trained) -> Trained:
    """Has D memorised its photos? The share it calls real: training photos against held-out ones it never saw."""
    from prodgen.catalog import load_catalog

    heldout = run.heldout if run.data is not None else load_catalog("val", progress=False)
    d = trained.notes["d"]
    trained.training |= {"d_calls_real_train": round(calls_real(d, run.train), 4),
                         "d_calls_real_heldout": round(calls_real(d, heldout), 4)}
    return trained


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, measure_cgan, names=("cgan-stable",), what="this trainer makes",
                finish=_finish, report=report_cgan)
"""What ``prodgen train cgan-stable`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (ModelSpec("cgan-stable", "cgan", cgan.build, train_checkpoint, cgan.CGANImageModel, lesson=10,
                   recipe=CHECKPOINT_CONFIG, summary="lesson 10's stabilised conditional GAN (hinge, SN, EMA, "
                                                     "DiffAugment)"),)

"""The judge: a small CNN that reads every attribute off a product photo.

One shared convolutional trunk, one linear head per attribute. It proves that the
catalog's attributes are visible at 32x32 (lesson 01, ``tests/test_identifiability``)
and later measures whether generated images show what was asked for (lessons 03+).
A judge reads the attributes of one schema (``prodgen.catalog.schema``): the course
catalog's, or those of your own catalog folder (``prodgen train judge --data DIR``, lesson 12).

A judge reads one resolution: ``judge`` the 32 px catalog, ``judge-64`` the 64 px one (lessons 14+: the same
network and recipe trained on 64 px photos, under bf16 autocast where the CPU has it). Asking a judge about
images of another size is refused (:meth:`Judge.embed`, :meth:`Judge.predict`): its features would not mean
what they mean on its own photos.
"""
from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from prodgen.catalog.schema import BUILTIN, Schema, schema_of
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["Judge", "build", "fit_judge", "judge_accuracy"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Judge(nn.Module):
    """Multi-head attribute classifier for ``N x 3 x S x S`` images in [-1, 1], ``S = resolution``."""

    def __init__(self, num_classes: dict[str, int] | None = None, width: int = 32, schema: Schema | None = None,
                 resolution: int = 32):
        super().__init__()
        if schema is not None and num_classes is not None and dict(num_classes) != schema.num_classes:
            raise ValueError(f"num_classes {num_classes} does not match the schema's {schema.num_classes}")
        self.resolution = int(resolution)  # the photos' size it was trained on (the trunk runs on any)
        self.schema = schema or BUILTIN
        self.num_classes = dict(num_classes or self.schema.num_classes)
        w = width
        self.trunk = nn.Sequential(
            _block(3, w),  # S x S: colour, logo strokes, pattern texture
            nn.MaxPool2d(2),  # S/2
            _block(w, 2 * w),
            nn.MaxPool2d(2),  # S/4
            _block(2 * w, 4 * w),
            _block(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(4),  # 4 x 4 keeps where things are (size, layout)
            nn.Flatten(),  # 4w * 16
            nn.Linear(4 * w * 16, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
        )
        self.heads = nn.ModuleDict({a: nn.Linear(256, k) for a, k in self.num_classes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)  # N x 256
        return {a: head(h) for a, head in self.heads.items()}  # attribute -> N x classes

    def check_size(self, x: torch.Tensor) -> None:
        """Refuse images that are not ``resolution`` x ``resolution`` (``ValueError`` naming both sizes)."""
        if x.ndim != 4 or tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            raise ValueError(f"this judge reads {self.resolution}x{self.resolution} images, got a batch of shape "
                             f"{tuple(x.shape)}; measure each resolution with its own judge (judge: 32 px, "
                             "judge-64: 64 px)")

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """The 256-d features before the heads, ``N x 256`` (eval mode): what FID compares."""
        self.check_size(x)
        was_training = self.training
        self.eval()
        out = torch.cat([self.trunk(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])
        self.train(was_training)
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class index per attribute, ``N x len(heads)`` (in eval mode)."""
        self.check_size(x)
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(x), batch_size):
            logits = self(x[start:start + batch_size])
            out.append(torch.stack([logits[a].argmax(1) for a in self.heads], 1))
        self.train(was_training)
        return torch.cat(out)


def build(config: dict) -> Judge:
    """Rebuild a judge from its checkpoint config (``prodgen.models.registry``)."""
    return Judge(config.get("num_classes"), config.get("width", 32), schema=schema_of(config),
                 resolution=config.get("resolution", 32))


def fit_judge(train, epochs: int = 4, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
              log=None, precision: str = "fp32", width: int = 32) -> Judge:
    """Train a judge on a :class:`~prodgen.catalog.Catalog` of any schema and image size (one-cycle Adam,
    cross-entropy per head; unknown labels, -1, are skipped). ``precision``: ``"fp32"``, or ``"auto"`` / ``"bf16"``
    for bf16 autocast on a CPU that has it (``prodgen.engine.train.resolve_precision``; 4x faster at 64 px).
    ``width``: the trunk's first channel count (32; the look judge of lesson 16 uses 16)."""
    from prodgen.engine.train import autocast_for, resolve_precision

    if len(train) < batch_size:
        raise ValueError(f"a judge needs at least one batch of {batch_size} products to train on, got {len(train)}")
    precision = resolve_precision(precision, "cpu")
    torch.manual_seed(seed)
    model = Judge(schema=train.schema, width=width, resolution=train.image_size).to(memory_format=torch.channels_last)
    steps = epochs * (len(train) // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        total = 0.0
        for x, y in train.batches(batch_size, shuffle=True, generator=gen, drop_last=True):
            with autocast_for("cpu", precision):
                logits = model(x.contiguous(memory_format=torch.channels_last))
            loss = sum(F.cross_entropy(logits[a].float(), y[:, j], ignore_index=-1) for j, a in enumerate(model.heads))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / (len(train) // batch_size):.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    return model.eval()


def judge_accuracy(model: Judge, catalog) -> dict[str, float]:
    """Fraction of products whose attribute the judge reads correctly, per attribute."""
    from prodgen.catalog.dataset import normalize

    pred = model.predict(normalize(catalog.images).contiguous(memory_format=torch.channels_last))
    acc = {}
    for j, a in enumerate(model.heads):
        known = catalog.labels[:, j] >= 0
        acc[a] = float((pred[known, j] == catalog.labels[known, j]).float().mean())
    return acc


# The shipped judge: trained on the whole training split, evaluated on test and unseen.
CHECKPOINT_CONFIG = {"width": 32, "epochs": 6, "batch_size": 128, "lr": 3e-3, "seed": 0, "train_split": "train"}
CHECKPOINT_CONFIG_64 = {**CHECKPOINT_CONFIG, "precision": "auto"}
"""``judge-64``: the same recipe on the 64 px catalog (the spec's resolution), under bf16 autocast where the CPU
computes bf16 natively (a 64 px step measured 0.8 s instead of 3.3 s in fp32, batch 128, one thread)."""


def _config(name: str) -> dict:
    return CHECKPOINT_CONFIG_64 if name == "judge-64" else CHECKPOINT_CONFIG


def train_checkpoint(name: str = "judge", fast: bool = False, log=print, out=None, data=None, **overrides) -> dict:
    """Train the shipped judge (``prodgen train judge``, or ``judge-64`` at 64 px) and save it with its test
    metrics (to ``out`` if given). ``overrides`` replace entries of :data:`CHECKPOINT_CONFIG` (``judge-64``:
    :data:`CHECKPOINT_CONFIG_64`). Its loop is :func:`fit_judge`, one process
    on the CPU: it takes no device, time budget, resume or torchrun (``prodgen.models.registry.train`` says so).
    ``data``: a catalog folder of your own (lesson 12): the judge reads its attributes, trained on its
    training split and measured on its test split (``prodgen.evaluation.own_catalog``). The shared steps:
    ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, out=out, data=data)


def _fit(run) -> Trained:
    cfg = run.cfg
    model = fit_judge(run.train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], seed=cfg["seed"],
                      log=run.log, precision=cfg.get("precision", "fp32"))
    config = {"num_classes": model.num_classes, "width": cfg["width"]}
    if model.schema != BUILTIN:
        config["schema"] = model.schema.to_config()
    at = {"resolution": model.resolution} if model.resolution != 32 else {}
    return Trained(model, config | at, training=at)


def _measure(run, trained) -> dict:
    """Accuracy per attribute on the test split (and the unseen combinations), or on a folder's held-out split;
    at the judge's resolution."""
    from prodgen.catalog import load_catalog

    size = trained.model.resolution
    splits = {"test": run.heldout} if run.data is not None else {
        "test": load_catalog("test", size=size, progress=False),
        "unseen": load_catalog("unseen", size=size, progress=False)}
    metrics = {f"{split}_{a}": round(v, 4) for split, catalog in splits.items()
               for a, v in judge_accuracy(trained.model, catalog).items()}
    if run.log:
        run.log("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics


RECIPE = Recipe(_config, _fit, _measure, fast={"epochs": 1}, fast_products=2000, measure_own=True)
"""What ``prodgen train judge`` / ``judge-64`` do beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (ModelSpec("judge", "judge", build, train_checkpoint, lesson=1, recipe=CHECKPOINT_CONFIG,
                   summary="the attribute classifier that measures control (every generator is judged by it)"),
         ModelSpec("judge-64", "judge", build, train_checkpoint, lesson=14, recipe=CHECKPOINT_CONFIG_64,
                   resolution=64, summary="the same judge trained on 64 px photos: measures 64 px models "
                                          "(lessons 14+) and the autoencoder's perceptual loss"),
         ModelSpec("scene-judge", "judge", build, None, lesson=15, resolution=64,
                   summary="reads each slot's product attributes off a 64 px scene (its 32 px slot crop, "
                           "prodgen.catalog.scenes.slot_crops); trained by benchmarks/scenes_judge.py --ship"),
         ModelSpec("look-judge", "judge", build, None, lesson=16, resolution=64,
                   summary="reads the look of a 64 px product picture (photo, sketch, poster, watercolour; "
                           "prodgen.catalog.looks); trained by benchmarks/looks_judge.py --ship"),
         ModelSpec("judge-looks", "judge", build, None, lesson=16,
                   summary="reads the attributes of a 32 px product in any look (photo, sketch, poster, "
                           "watercolour; a sketch shows no colour): measures restyling and gives "
                           "prodgen.apps.restyle its features; trained by benchmarks/judge_looks.py --ship"))

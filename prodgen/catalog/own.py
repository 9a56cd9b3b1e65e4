"""Your own catalog folder as training data (lesson 12): the split, where its models go, what they record.

The rules every trainer shares when it works on a catalog folder of your own (``prodgen train MODEL --data
DIR``), kept below the models so that any of them can use them:

- :func:`split`: a fixed, seeded split into training and test photos (:data:`TEST_SHARE` of each value
  combination's photos, at least one, go to the test split), so the judge, the generators and the evaluation
  all hold out the same photos.
- :func:`default_out`: where ``prodgen train MODEL --data DIR`` writes its checkpoint when ``--out`` is not
  given: ``DIR/models/MODEL.pt``, beside the photos it was trained on (the shipped checkpoints are never
  replaced by a model of another catalog).
- :func:`data_record`: what the checkpoint stores about the folder (path, sha256 of ``metadata.csv``, size).
- :func:`check_same_schema`: a checkpoint trained on one schema used with a catalog of another -> one clear
  error naming both.

``prodgen.evaluation.own_catalog`` builds evaluation and model cards on top. Used by the trainers, ``prodgen train
--data``, ``prodgen evaluate PATH --data`` and lesson 12.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["TEST_SHARE", "MODELS_FOLDER", "load", "split", "load_split", "default_out", "data_record",
           "check_same_schema", "training_data", "describe_schema"]

TEST_SHARE = 0.1
"""Share of the photos held out for evaluation (per combination of values, at least one photo each)."""
MODELS_FOLDER = "models"
"""Sub-folder of a catalog folder where ``prodgen train MODEL --data DIR`` writes ``MODEL.pt`` by default."""


def load(data, schema=None):
    """The catalog folder ``data`` as a :class:`~prodgen.catalog.Catalog` (``prodgen.catalog.load_folder``);
    ``schema``: the attributes it must have (a checkpoint's), else the folder's own."""
    from prodgen.catalog.folder import load_folder

    return load_folder(data, schema=schema)


def split(catalog, test_share: float = TEST_SHARE, seed: int = 0):
    """``(train, test)``: a seeded split that holds out ``test_share`` of the photos of every combination of
    values (rounded, at least one of each combination with two or more photos), so the test photos cover the
    catalog the way the training photos do. The same catalog and seed always give the same split."""
    import torch

    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share!r}")
    labels = catalog.labels
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(catalog), generator=gen)
    groups: dict[tuple, list[int]] = {}
    for i in order.tolist():
        groups.setdefault(tuple(labels[i].tolist()), []).append(i)
    test = []
    for members in groups.values():
        if len(members) >= 2:
            test += members[:max(1, round(test_share * len(members)))]
    test_set = set(test)
    train = [i for i in range(len(catalog)) if i not in test_set]
    if not test or not train:
        raise ValueError(f"{catalog.name} has {len(catalog)} products: too few to hold out test photos")
    return catalog.subset(train), catalog.subset(sorted(test))


def load_split(data, schema=None, seed: int = 0):
    """``(train, test)`` of the catalog folder ``data`` (:func:`load` then :func:`split`)."""
    return split(load(data, schema), seed=seed)


def default_out(data, name: str) -> Path:
    """``DIR/models/NAME.pt``: where a model trained on the catalog folder ``DIR`` goes without ``--out``."""
    return Path(data) / MODELS_FOLDER / f"{name}.pt"


def data_record(data, catalog) -> dict:
    """What a checkpoint records about the catalog it was trained on: the folder, the sha256 of its
    ``metadata.csv``, the number of products and the split rule (``prodgen train --data``)."""
    meta = Path(data) / "metadata.csv"
    return {"data": str(Path(data).resolve()), "metadata_sha256": hashlib.sha256(meta.read_bytes()).hexdigest(),
            "products": len(catalog), "test_share": TEST_SHARE, "split_seed": 0}


def check_same_schema(trained, found, what: str, where) -> None:
    """A ``ValueError`` naming both schemas when ``what`` (a checkpoint) was trained on ``trained`` but the
    catalog ``where`` has ``found``."""
    if trained != found:
        raise ValueError(f"{what} was trained on a catalog with {describe_schema(trained)}, "
                         f"but {where} has {describe_schema(found)}; "
                         f"use a model trained on this catalog (prodgen train MODEL --data {where})")


def describe_schema(schema) -> str:
    return "; ".join(f"{a} ({', '.join(v)})" for a, v in schema.values.items())


def training_data(data, log=None):
    """``(train, test, record)`` for ``prodgen train MODEL --data DIR``: the folder's split and
    :func:`data_record` (what the checkpoint stores about it)."""
    catalog = load(data)
    train, test = split(catalog)
    if log:
        log(f"{data}: {len(catalog)} products, {len(train)} to train on, {len(test)} held out; "
            f"attributes: {describe_schema(catalog.schema)}")
    return train, test, data_record(data, catalog)

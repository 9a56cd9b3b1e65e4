"""Bring your own catalog (lesson 12): evaluate, load and describe models trained on a folder of your own photos.

A catalog folder (PNGs plus ``metadata.csv``, ``prodgen.catalog.folder``) defines a schema: its attribute
columns and their values. ``prodgen.catalog.own`` holds the training side (the split, where models go,
what they record); this module the measuring side:

- :func:`evaluate`: lesson 08's protocol (``prodgen.evaluation.leaderboard.measure``) against the catalog's own photos,
  with a judge trained on it (``prodgen evaluate PATH --data DIR``);
- :func:`load_model` / :func:`load_judge`: checkpoint files as an image model / a judge;
- :func:`model_card`: a short Markdown model card from an evaluation.

The training-side names are re-exported here, so a lesson needs one import. Used by ``prodgen evaluate PATH
--data``, ``prodgen generate --model PATH`` and lesson 12.
"""
from __future__ import annotations

from pathlib import Path

from prodgen.catalog.own import (
    MODELS_FOLDER,
    TEST_SHARE,
    check_same_schema,
    data_record,
    default_out,
    describe_schema,
    load,
    load_split,
    split,
    training_data,
)

__all__ = ["TEST_SHARE", "MODELS_FOLDER", "load", "split", "load_split", "default_out", "data_record",
           "check_same_schema", "training_data", "load_model", "load_judge", "evaluate", "model_card"]

# what a model card says a model is not for, unless the caller says otherwise
_DEFAULT_NOT_FOR = ("passing generated images off as photos of real stock; "
                    "attributes or products the catalog does not have.")


def load_model(path, device: str = "cpu"):
    """The generator in checkpoint file ``path`` (``prodgen train MODEL --out`` / ``--data``) as an image model
    (``prodgen.models.protocol.ImageModel``): what ``prodgen generate --model PATH`` and ``evaluate`` use."""
    from prodgen.models import registry

    return registry.load_generator_file(path, device)


def load_judge(data, judge=None, device: str = "cpu"):
    """The judge for the catalog folder ``data``: the file ``judge`` if given, else ``DIR/models/judge.pt``
    (what ``prodgen train judge --data DIR`` writes); its schema must be the folder's."""
    from prodgen.models import registry

    path = Path(judge) if judge is not None else default_out(data, "judge")
    if not path.is_file():
        raise FileNotFoundError(f"no judge at {path}: train one with `prodgen train judge --data {data}` "
                                "or give --judge JUDGE.pt")
    model, info = registry.load_file(path, device)
    if info.get("name") != "judge":
        raise ValueError(f"{path} holds a {info.get('name')!r} checkpoint, not a judge")
    return model


def evaluate(model, data, judge=None, n: int | None = None, seed: int = 0) -> dict:
    """Lesson 08's measurements of ``model`` (an image model of the folder's schema) on the catalog folder ``data``:
    control per attribute on balanced requests and on partial ones, FID against the training photos with its floor (test
    photos), FID (SSL) with its floor (in the course's ``ssl-encoder`` space: it needs no labels, so it is measured on
    any photos, but it learned its features from the course catalog), FID∞, KID, precision/recall, density/coverage,
    within-request diversity, memorisation and speed (``prodgen.evaluation.leaderboard.measure``). ``judge``: a judge
    model or checkpoint path (default :func:`load_judge`'s); ``n``: samples (default: as many as the test split has
    photos, at most 2000)."""
    from prodgen.evaluation.leaderboard import MIN_N, Reference, measure

    catalog = load(data)
    check_same_schema(model.schema, catalog.schema, model.name, data)
    judge = judge if judge is not None and not isinstance(judge, (str, Path)) else load_judge(data, judge)
    check_same_schema(judge.schema, catalog.schema, "the judge", data)
    train, test = split(catalog)
    n = min(len(test), 2000) if n is None else n
    if n < MIN_N:
        raise ValueError(f"n must be at least {MIN_N}; the test split of {data} has {len(test)} photos")
    row = measure(model, n=n, seed=seed, judge=judge, _ref=Reference(judge, train, test))
    return {**row, "data": str(data), "test_photos": len(test), "train_photos": len(train)}


def model_card(row: dict, schema, training: dict | None = None, intended: str = "", not_for: str = "") -> str:
    """A short Markdown model card from an :func:`evaluate` row: what the model controls and how well, image
    quality against the real photos' floor, how it was trained, and what it is (not) for."""
    training = training or {}
    control = row["details"]["control"]
    lines = [f"# Model card: {row['model']}", "",
             f"**Controls**: {describe_schema(schema)}.", "",
             "| attribute | control (judge agrees) |", "|---|---|"]
    lines += [f"| {a} | {control[a]:.1%} |" for a in schema.names]
    partial = row["details"].get("control_partial_requests", {}).get("mean")
    lines += ["", f"Mean control {row['control_mean']:.1%} on {row['n']} balanced requests"
              + (f"; {partial:.1%} when half the attributes are left open." if partial is not None else "."),
              f"Image quality: FID {row['fid']:.1f} against the training photos "
              f"(real test photos: {row['fid_floor']:.1f}); FID (SSL) {row['fid_ssl']:.1f} (real: "
              f"{row['fid_ssl_floor']:.1f}, in the course catalog's label-free encoder space), "
              f"precision {row['precision']:.2f}, recall {row['recall']:.2f}, within-request diversity "
              f"{row['diversity']:.2f} of the real photos'.", ""]
    if training:
        said = ", ".join(f"{k} {v}" for k, v in training.items())
        lines += [f"**Training**: {said}.", ""]
    lines += [f"**Intended use**: {intended or 'drafts and mock-ups of products like the training photos.'}", "",
              f"**Not for**: {not_for or _DEFAULT_NOT_FOR}",
              "", "Measured by the judge, a classifier trained on the same catalog: it can be fooled, and it "
              "only sees the attributes above."]
    return "\n".join(lines) + "\n"

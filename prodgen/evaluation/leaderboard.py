"""One leaderboard for every image generator: the same requests, seeds, reference and metrics for all.

Every generator in the registry (``registry.generators()``) is measured through the image-model protocol
(``prodgen.models.protocol``) in exactly the same way, so a model added to the registry appears here
without any code change:

- **requests**: ``balanced_requests(n, seed)`` (every value of every attribute equally often). Attribute
  models get them as labels, text models as English descriptions naming all five attributes,
  unconditional models are asked for ``n`` images.
- **reference**: judge features of the first ``n`` training photos; the **floor** is the FID of the
  first ``n`` test photos against the same reference.
- **two feature spaces for FID**: every FID is a distance between features, so it says as much about the feature
  network as about the images. The judge's space (``fid``) was trained on the five attribute labels: it sees
  what the attributes need and little else. The second space (``fid_ssl``, "FID (SSL)") is the shipped
  ``ssl-encoder`` (``prodgen.models.ssl_encoder``): a CNN trained on the same training photos *without* labels
  (contrastive, on shifted / flipped views only, so it stays sensitive to colour, blur and noise). The same
  generated images are measured in both, each against its own real floor; when the two spaces rank models
  differently, neither number alone is "the" image quality (lessons 08 and 13).
- **columns**: FID (with floor), FID (SSL) (with its floor), FID∞, KID ± std, precision/recall (k = 3),
  density/coverage (k = 5), control (mean and weakest attribute) and control on the held-out (category, colour)
  pairs for conditional models, EN / ZH / unseen control for text models (the mentioned attributes of test and
  unseen catalog descriptions), the attribute-histogram distance for unconditional models,
  within-request diversity, the memorisation ratio, and images/s (batch 64, after a warm-up batch).

Rows are cached per checkpoint: the key is the sha256 of the model's checkpoint, of the checkpoints it
loads (e.g. a text reader), of the judge and of the SSL encoder, plus ``n``, the seed and :data:`PROTOCOL_VERSION`.
A retrained model is re-measured; a second run reads JSON files and does not import torch. The real photos'
features in both spaces are computed once and cached too. Cache: ``$PRODGEN_CACHE/leaderboard`` (default
``data/cache/leaderboard``), atomic writes.

The same protocol measures a model trained on your own catalog (lesson 12, ``prodgen evaluate PATH --data
DIR``): :func:`measure` with a :class:`Reference` built from that catalog's training and test photos and a
judge of its schema; requests, control and diversity then follow the model's schema (no held-out pairs or
text columns: those belong to the course catalog). FID (SSL) is measured there too, in the course's encoder
space (it needs no labels, so it applies to any photos, as Inception features are used on photos Inception never
saw; its floor on your own photos says how well the space separates them): a space learned on other photos.

**Resolutions** (lesson 14). A model is measured at its own resolution (its spec's, ``model.image_size``): a 64 px
model by the 64 px judge (``judge-64``, :func:`judge_name`) against 64 px real photos, so its FID and floor are
64 px figures. ``resolution=32`` (``prodgen leaderboard --resolution 32``) puts a larger model on the 32 px board:
its images are box-averaged down (2 x 2 pixels per halving, as the renderer makes a 32 px photo from its
supersampled canvas) and measured like any 32 px model. Such rows carry ``resolution`` (and
``downsampled_from``), and the table's model cell says which (``latent-64 (64 px)``, ``latent-64 (64→32 px)``);
32 px models' rows are unchanged.

Used by ``prodgen leaderboard``, ``prodgen evaluate``, lessons 08 and 12 and the README's model tables.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from prodgen import paths
from prodgen.models import registry

__all__ = ["PROTOCOL_VERSION", "MIN_N", "COLUMNS", "Reference", "cache_folder", "cache_file", "cached_row",
           "evaluate_all", "evaluate_model", "measure", "plan", "estimate", "format_table", "format_markdown",
           "format_summary", "judge_name", "downsample"]

PROTOCOL_VERSION = 2
"""Bump when anything about how rows are measured changes: every cached row is then re-measured."""
MIN_N = 16
"""Fewest samples a row can be measured with (density/coverage use k = 5 neighbours, FID∞ fits several sizes)."""
ENCODER = "ssl-encoder"
"""The registry name of the second feature space's network (``prodgen.models.ssl_encoder``)."""
SPEED_BATCH = 64
PER_REQUEST = 8  # images per request for within-request diversity

COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("fid", "FID"),
    ("fid_floor", "floor"),
    ("fid_ssl", "FID (SSL)"),
    ("fid_ssl_floor", "floor (SSL)"),
    ("fid_inf", "FID∞"),
    ("kid", "KID"),
    ("precision", "prec."),
    ("recall", "recall"),
    ("density", "density"),
    ("coverage", "cover."),
    ("control_mean", "control"),
    ("control_min", "weakest"),
    ("control_heldout", "held-out"),
    ("control_en", "EN"),
    ("control_zh", "ZH"),
    ("control_unseen", "unseen"),
    ("histogram_distance", "hist. dist."),
    ("diversity", "diversity"),
    ("memorisation", "memo."),
    ("images_per_s", "img/s"),
)
"""The table's columns: (row key, header). ``kid`` is shown as mean ± std (over subsets)."""


# ----------------------------------------------------------------------------- the cache
def cache_folder() -> Path:
    """Where rows and the real reference are cached: ``$PRODGEN_CACHE/leaderboard`` or ``data/cache/leaderboard``."""
    return paths.cache_dir() / "leaderboard"


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_N:
        raise ValueError(f"n must be a whole number of samples >= {MIN_N} (density/coverage use k = 5 neighbours "
                         f"and FID∞ fits several sample sizes), got {n!r}")
    return n


def _check_models(models) -> list[str]:
    valid = registry.generators()
    if models is None:
        return registry.generators(shipped=True)
    names = [m.strip() for m in ([models] if isinstance(models, str) else models) if m.strip()]
    if not names:
        raise ValueError(f"no model named; generators: {', '.join(valid)}")
    unknown = [m for m in names if m not in valid]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; generators: {', '.join(valid)}")
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------- resolutions
def judge_name(resolution: int = 32) -> str:
    """The registered judge that reads photos of ``resolution`` px (``judge`` at 32, ``judge-64`` at 64)."""
    found = [s.name for s in registry.specs() if s.family == "judge" and s.resolution == resolution]
    if not found:
        sizes = sorted({s.resolution for s in registry.specs() if s.family == "judge"})
        raise ValueError(f"no judge reads {resolution!r} px photos; the boards are {', '.join(map(str, sizes))} px")
    return found[0]


def _board(own: int, resolution, what: str = "the model") -> int:
    """The image size a model of ``own`` px is measured at: its own, or ``resolution`` (a smaller size that
    divides it: its images are :func:`downsample`-d; upsampling would measure nothing)."""
    if resolution is None or resolution == own:
        return own
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a whole number of pixels (32, 64), got {resolution!r}")
    judge_name(resolution)  # a board with a judge, else a clear error
    if resolution > own or own % resolution:
        raise ValueError(f"{what} makes {own} px images: measure it at {own} px or, downsampled, at a size that "
                         f"divides {own} (got {resolution} px)")
    return resolution


def _model_board(name: str, resolution=None) -> tuple[int, int]:
    """``(own resolution, board)`` of registry model ``name``."""
    own = registry.spec(name).resolution
    return own, _board(own, resolution, name)


def downsample(images, size: int):
    """uint8 photos N x 3 x S x S box-averaged to ``size`` px (``S / size`` x ``S / size`` blocks), rounded."""
    import torch

    factor = images.shape[-1] // size
    if factor == 1:
        return images
    return torch.nn.functional.avg_pool2d(images.float(), factor).round().clamp(0, 255).to(torch.uint8)


class _Downsampled:
    """A model whose images are :func:`downsample`-d to ``size`` px: what a smaller board measures of it. Every
    other question (name, requests, schema, knobs) goes to the model itself."""

    def __init__(self, model, size: int):
        self.model, self.image_size = model, size

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, requests, seed: int = 0, **knobs):
        return downsample(self.model.generate(requests, seed=seed, **knobs), self.image_size)


def _on_board(model, resolution):
    """``(the model as the board measures it, the row's entries naming the board)``: a 64 px board, or a downsampled
    row, says so (``resolution``, ``downsampled_from``); a 32 px model's row on the 32 px board is as it always was."""
    own = model.image_size
    board = _board(own, resolution, model.name)
    if board == own:
        return model, ({"resolution": board} if board != 32 else {})
    return _Downsampled(model, board), {"resolution": board, "downsampled_from": own}


def _depends_on(name: str, resolution: int | None = None) -> list[str]:
    """``name``, the judge of its board, the SSL encoder, and every registry entry the model's config names (e.g. a
    text reader)."""
    config = registry.manifest().get(name, {}).get("config", {})
    named = [v for v in config.values() if isinstance(v, str) and v in registry.manifest()]
    return list(dict.fromkeys([name, judge_name(_model_board(name, resolution)[1]), ENCODER, *named]))


def cache_file(name: str, n: int = 2000, seed: int = 0, resolution: int | None = None) -> Path:
    """The cache file of ``name``'s row: keyed by the sha256 of every checkpoint it depends on (verified on
    disk), ``n``, ``seed`` and :data:`PROTOCOL_VERSION`; a row downsampled to a smaller board (``resolution``)
    has its own file, ``NAME-atSIZEpx-...``."""
    own, board = _model_board(name, resolution)
    shas = []
    for dep in _depends_on(name, board):
        registry.verify(dep)  # the file on disk is the one the manifest names (else a clear error)
        shas.append(f"{dep}={registry.manifest()[dep]['sha256']}")
    parts = [PROTOCOL_VERSION, n, seed, shas] + ([f"downsampled to {board} px"] if board != own else [])
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]
    tag = f"-at{board}px" if board != own else ""
    return cache_folder() / f"{name}{tag}-n{n}-s{seed}-{key}.json"


def _record(path: Path) -> Path:
    """The sha256 record of cache file ``path`` (``NAME.sha256`` beside it, ``sha256sum`` format)."""
    return path.with_name(path.name + ".sha256")


def _write_cached(path: Path, write) -> None:
    """Write a cache file atomically with its sha256 record (the record first: a file is never newer than it)."""
    from prodgen.checkpoints import sha256

    with paths.atomic_file(path) as tmp:
        write(tmp)
        text = f"{sha256(tmp)}  {path.name}\n"
        with paths.atomic_file(_record(path)) as record:
            record.write_text(text, encoding="utf-8")


def _intact(path: Path) -> bool:
    """Whether cache file ``path`` exists and matches its sha256 record (no record, or a damaged file or
    record: not intact, so it is measured again)."""
    from prodgen.checkpoints import sha256

    try:
        words = _record(path).read_text(encoding="utf-8").split()
        return path.is_file() and bool(words) and sha256(path) == words[0]
    except (OSError, UnicodeDecodeError):
        return False


def _atomic_write_text(path: Path, text: str) -> None:
    _write_cached(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _read_cached(path: Path) -> dict | None:
    if not _intact(path):
        return None  # missing, damaged or without its record: measure again
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) and row.get("protocol") == PROTOCOL_VERSION else None


# ----------------------------------------------------------------------------- the real reference
class Reference:
    """The real photos every row is compared with, in both feature spaces: judge features (``features``) and
    predictions, and the SSL encoder's features (``ssl_features``), of the course catalog's training and test
    splits at the judge's resolution (cached on disk with a sha256 record: a damaged or unrecorded file is measured
    again; ``refresh=True`` always measures them again), or of the ``train`` / ``test`` catalogs given (your own
    catalog, lesson 12; computed in memory). ``encoder``: the second space's network (default the shipped
    ``ssl-encoder``; it reads 32 px photos, so larger ones are :func:`downsample`-d for it)."""

    def __init__(self, judge, train=None, test=None, refresh: bool = False, encoder=None):
        from prodgen.catalog.dataset import CACHE_VERSION

        self.judge = judge
        self.encoder = encoder if encoder is not None else registry.load(ENCODER)
        self._floors: dict[tuple[str, int], float] = {}
        if (train is None) != (test is None):
            raise ValueError("give both the training and the test catalog, or neither (the course catalog)")
        if train is not None:
            self.train, self.test = (_real_features(judge, self.encoder, cat) for cat in (train, test))
            return
        size = getattr(judge, "resolution", 32)
        shas = [registry.manifest()[name]["sha256"][:20] for name in (judge_name(size), ENCODER)]
        px = f"-{size}px" if size != 32 else ""
        name = f"reference-{shas[0]}-{shas[1]}-catalog{CACHE_VERSION}{px}-v{PROTOCOL_VERSION}.pt"
        if encoder is not None:  # not the shipped encoder: never cached under its name
            from prodgen.catalog import load_catalog

            self.train, self.test = (_real_features(judge, encoder, load_catalog(split, size=size, progress=False))
                                     for split in ("train", "test"))
            return
        path = paths.cache_dir() / "leaderboard" / name  # shared even where a test moves the rows
        data = None if refresh else _cached_reference(path)
        if data is None:
            data = _measure_reference(judge, self.encoder, path, size)
        self.train, self.test = data["train"], data["test"]

    @property
    def size(self) -> int:
        """The largest ``n`` this reference can measure with (real photos in its smaller split)."""
        return min(len(self.train["features"]), len(self.test["features"]))

    def floor(self, n: int, space: str = "judge") -> float:
        """The real-vs-real FID at ``n`` (``n`` test photos against the first ``n`` training photos) in ``space``:
        ``"judge"`` or ``"ssl"``."""
        from prodgen.metrics import fid

        if space not in SPACES:
            raise ValueError(f"unknown feature space {space!r}; spaces: {', '.join(SPACES)}")
        key = SPACES[space]
        if (space, n) not in self._floors:
            self._floors[(space, n)] = fid(self.train[key][:n], self.test[key][:n])
        return self._floors[(space, n)]


SPACES = {"judge": "features", "ssl": "ssl_features"}
"""The feature spaces of FID: name -> the key of a :class:`Reference` split holding the real photos' features."""


def _real_features(judge, encoder, catalog) -> dict:
    """One split of a reference: judge features and predictions, SSL features and the labels of ``catalog``."""
    feats, preds = _judge(judge, catalog.images)
    return {"features": feats, "ssl_features": _encode(encoder, catalog.images), "predictions": preds,
            "labels": catalog.labels.clone()}


def _cached_reference(path: Path) -> dict | None:
    """The cached reference at ``path`` if it matches its sha256 record and holds finite features of the right
    shape; else ``None`` (measure again). A flipped byte once gave a floor of 1.96e74 from a finite feature."""
    import torch

    if not _intact(path):
        return None
    try:
        data = torch.load(path, weights_only=True)
        feats = [data[s][key] for s in ("train", "test") for key in SPACES.values()]
        ok = all(isinstance(f, torch.Tensor) and f.ndim == 2 and bool(torch.isfinite(f).all()) for f in feats)
        ok = ok and all(len(data[s]["predictions"]) == len(data[s]["labels"]) == len(data[s]["features"])
                        for s in ("train", "test"))
    except Exception:  # noqa: BLE001 - any unreadable cache file is measured again
        return None
    return data if ok else None


def _measure_reference(judge, encoder, path: Path, size: int = 32) -> dict:
    """Judge and encode the course catalog's training and test photos (``size`` px) and cache the result (with its
    sha256
    record)."""
    import torch

    from prodgen.catalog import load_catalog

    data = {}
    for split in ("train", "test"):
        data[split] = _real_features(judge, encoder, load_catalog(split, size=size, progress=False))
        for key, who in (("features", "judge"), ("ssl_features", ENCODER)):
            if not torch.isfinite(data[split][key]).all():  # never cache what every later row is measured against
                raise ValueError(f"the {who}'s features of the real {split} photos hold NaN or infinite values; "
                                 f"nothing was cached (is the {who} checkpoint intact? prodgen doctor)")
    _write_cached(path, lambda tmp: torch.save(data, tmp))
    return data


def _judge(judge, images):
    """Judge features (N x 256, float32) and predicted classes (N x 5) of uint8 images, in one pass."""
    import torch

    from prodgen.metrics import judge_features

    feats = judge_features(judge, images)
    with torch.no_grad():
        preds = torch.stack([head(feats).argmax(1) for head in judge.heads.values()], 1)
    return feats.float(), preds


# ----------------------------------------------------------------------------- measuring one model
def _describe(labels, seed: int, lang: str = "en") -> list[str]:
    """Descriptions naming all five attributes of each label row (synonyms and templates seeded)."""
    import numpy as np

    from prodgen.catalog.describe import describe
    from prodgen.models.condition import request_to_dict

    rng = np.random.default_rng(seed)
    return [describe(request_to_dict(row), lang, rng=rng) for row in labels.tolist()]


def _requests(model, labels, seed: int) -> list:
    """One protocol ``Request`` per label row: its attributes, plus for a model that reads text a description
    naming all five (:func:`_describe`, seeded), which it reads instead."""
    from prodgen.models.condition import request_to_dict
    from prodgen.models.protocol import Request

    texts = _describe(labels, seed) if model.reads_text else [""] * len(labels)
    return [Request(request_to_dict(row, model.schema), text) for row, text in zip(labels.tolist(), texts)]


def _ask(model, labels, seed: int):
    """Generate one image per label row, each model reading the request in its own way (:func:`_requests`)."""
    return model.generate(_requests(model, labels, seed), seed=seed)


def _control(preds, requested, names=None) -> dict:
    """Per-attribute share of images where the judge sees the requested value (-1 = not requested), and the mean.
    ``names``: the attributes of the columns (default: the course catalog's five)."""
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES

    acc = {}
    for j, a in enumerate(names or ATTRIBUTE_NAMES):
        asked = requested[:, j] >= 0
        if bool(asked.any()):
            acc[a] = round(float((preds[asked, j] == requested[asked, j]).double().mean()), 4)
    acc["mean"] = round(sum(acc.values()) / len(acc), 4) if acc else None
    return acc


def _speed(model, requests, seconds: float) -> float:
    """Images per second for batches of ``SPEED_BATCH`` requests, after one warm-up batch."""
    model.generate(requests, seed=0)  # warm-up: first-call allocations, kernel selection
    reps, start = 0, time.perf_counter()
    while True:
        model.generate(requests, seed=reps + 1)
        reps += 1
        elapsed = time.perf_counter() - start
        if (elapsed >= seconds and reps >= 2) or reps >= 50:
            return SPEED_BATCH * reps / elapsed


def _speed_requests(model, n: int, seed: int, schema):
    """What :func:`_speed` times: ``SPEED_BATCH`` images of nothing (unconditional models), or the first
    ``SPEED_BATCH`` of the row's balanced requests in the model's own form (its condition)."""
    from prodgen.models.condition import balanced_requests

    if not model.conditional:
        return SPEED_BATCH
    requests = balanced_requests(n, seed, schema=schema)
    requests = requests[:SPEED_BATCH].repeat(-(-SPEED_BATCH // len(requests)), 1)[:SPEED_BATCH]
    return model.condition(_requests(model, requests, seed))


def _diversity(model, ref: Reference, n: int, seed: int):
    """Within-request diversity: ``PER_REQUEST`` images for each of ``n // 16`` fully specified requests that
    the training set has at least two photos of, against those photos (``metrics.diversity_ratio``)."""
    import torch

    from prodgen.metrics import diversity_ratio

    labels = ref.train["labels"]
    known = (labels >= 0).all(dim=1)  # photos with every attribute labelled (your own catalog may have gaps)
    labels = labels[known]
    radix = torch.tensor(list(model.schema.num_classes.values()))
    combo = torch.zeros(len(labels), dtype=torch.long)
    for j, k in enumerate(radix.tolist()):
        combo = combo * k + labels[:, j]
    counts = torch.bincount(combo, minlength=int(radix.prod()))
    eligible = torch.nonzero(counts >= 2).flatten()
    gen = torch.Generator().manual_seed(seed)
    chosen = eligible[torch.randperm(len(eligible), generator=gen)[:max(n // 16, 2)]].sort().values
    order = combo.argsort()
    requests = labels[order[torch.searchsorted(combo[order], chosen)]]  # one training row per chosen combination
    asked = requests.repeat_interleave(PER_REQUEST, dim=0)
    fake_feats, _ = _judge(ref.judge, _ask(model, asked, seed + 3))
    real = torch.isin(combo, chosen)
    return diversity_ratio(fake_feats, asked, ref.train["features"][known][real], labels[real])


def _text_controls(model, ref: Reference, n: int, seed: int) -> dict:
    """Control on the mentioned attributes of ``n // 4`` test and unseen catalog descriptions, EN and ZH, and on
    ``text2img.NEW_PHRASINGS``-style requests (what ``text2img.evaluate`` measured)."""
    import torch

    from prodgen.catalog import load_catalog
    from prodgen.models.condition import parse_request
    from prodgen.models.text2img import NEW_PHRASINGS

    out = {}
    m = max(n // 4, MIN_N)
    for split in ("test", "unseen"):
        cat = load_catalog(split, progress=False)
        cat = cat.subset(range(min(m, len(cat))))
        requested = cat.labels.masked_fill(~cat.mentioned, -1)
        for lang, texts in (("en", cat.descriptions_en), ("zh", cat.descriptions_zh)):
            _, preds = _judge(ref.judge, model.generate(list(texts), seed=seed))
            out[f"{split}_{lang}"] = _control(preds, requested)
    texts = [t for t, _ in NEW_PHRASINGS for _ in range(8)]
    labels = torch.cat([parse_request(a) for _, a in NEW_PHRASINGS for _ in range(8)])
    _, preds = _judge(ref.judge, model.generate(texts, seed=seed))
    out["new_phrasings"] = _control(preds, labels)
    return out


def measure(model, n: int = 2000, seed: int = 0, judge=None, speed_seconds: float = 1.0, _ref=None,
            progress=None, resolution: int | None = None) -> dict:
    """One leaderboard row for ``model`` (any protocol ``ImageModel``, e.g. one trained in a notebook),
    measured now (never cached). The row also holds ``details``: per-attribute control, partial requests,
    the text splits and the histogram distances, which ``prodgen evaluate`` prints.

    ``_ref``: the real photos to compare with (:class:`Reference`; default the course catalog's). A model of
    another schema (your own catalog) needs a ``judge`` and a reference of that schema (lesson 12).
    ``progress``: called as ``progress(stage, images)`` before each stage of :func:`plan` starts. ``resolution``:
    the board (default the model's own; a smaller one downsamples its images: module docstring)."""
    import numpy as np
    import torch

    from prodgen.catalog import HELD_OUT_PAIRS
    from prodgen.catalog.schema import BUILTIN
    from prodgen.models.condition import balanced_requests, hide_attributes

    n = _check_n(n)
    model, on_board = _on_board(model, resolution)
    start = time.perf_counter()
    stages = dict(plan(model, n))
    step = (lambda stage: progress(stage, stages[stage])) if progress else (lambda stage: None)
    schema, judge = _schema_and_judge(model, judge)
    ref = _ref if _ref is not None else Reference(judge)
    if n > ref.size:
        raise ValueError(f"n = {n} is more than the real photos to compare with ({ref.size} in the smaller split); "
                         f"use n <= {ref.size}")
    names = list(schema.names)
    real = ref.train["features"][:n]
    row = {"model": model.name, "accepts": model.accepts, "n": n, "seed": seed, "protocol": PROTOCOL_VERSION}
    row, details = row | on_board, {}  # on_board: nothing for a 32 px model on the 32 px board
    requests = balanced_requests(n, seed, schema=schema)
    if not model.conditional:
        step("unconditional images")
        images = model.generate(n, seed=seed)
        fake, preds = _judge(judge, images)
        details["histogram_distance"] = _histograms(judge, ref, preds, n)
        row["histogram_distance"] = details["histogram_distance"]["mean"]
    else:
        step("balanced requests")
        images = _ask(model, requests, seed)
        fake, preds = _judge(judge, images)
        details["control"] = _control(preds, requests, names)
        attrs = {k: v for k, v in details["control"].items() if k != "mean"}
        row["control_mean"] = details["control"]["mean"]
        row["control_min_attribute"] = min(attrs, key=attrs.get)
        row["control_min"] = attrs[row["control_min_attribute"]]
        if schema == BUILTIN:  # the held-out (category, colour) pairs of the course catalog
            step("held-out pairs")
            heldout = balanced_requests(max(n // 4, MIN_N), seed + 1, only_pairs=HELD_OUT_PAIRS)
            details["control_unseen_pairs"] = _control(_judge(judge, _ask(model, heldout, seed + 1))[1], heldout)
            row["control_heldout"] = details["control_unseen_pairs"]["mean"]
        if model.reads_attributes:
            step("partial requests")
            partial = hide_attributes(balanced_requests(max(n // 4, MIN_N), seed + 2, schema=schema), 0.5,
                                      torch.Generator().manual_seed(seed))
            details["control_partial_requests"] = _control(_judge(judge, model.generate(partial, seed=seed + 2))[1],
                                                           partial, names)
        else:
            step("descriptions")
            details |= _text_controls(model, ref, n, seed)
            row["control_en"], row["control_zh"] = details["test_en"]["mean"], details["test_zh"]["mean"]
            row["control_unseen"] = round((details["unseen_en"]["mean"] + details["unseen_zh"]["mean"]) / 2, 4)
        step("diversity")
        row["diversity"] = round(_diversity(model, ref, n, seed), 4)
    row |= _distribution_metrics(real, fake, ref, n, seed) | _ssl_fid(images, ref, n)  # the same images, 2nd space
    step("speed")
    row["images_per_s"] = round(_speed(model, _speed_requests(model, n, seed, schema), speed_seconds), 1)
    row["threads"] = torch.get_num_threads()
    row["seconds"] = round(time.perf_counter() - start, 1)
    row |= {key: None for key in _OPTIONAL if key not in row}
    if not all(np.isfinite(v) for v in row.values() if isinstance(v, float)):
        raise ValueError(f"{model.name}: a metric came out NaN or infinite; the model's images or features are broken")
    row["details"] = details
    return row


def _histograms(judge, ref: Reference, preds, n: int) -> dict:
    """Per-attribute distances between the judge's histograms of real and generated photos (unconditional models)."""
    from prodgen import metrics

    num = judge.num_classes
    hist = metrics.histogram_distance(metrics.attribute_histograms(ref.train["predictions"][:n], num),
                                      metrics.attribute_histograms(preds, num))
    return {k: round(v, 4) for k, v in hist.items()}


_OPTIONAL = ("control_mean", "control_min", "control_min_attribute", "control_heldout", "control_en", "control_zh",
             "control_unseen", "histogram_distance", "diversity")  # columns a row holds as None where they do not apply


def _schema_and_judge(model, judge):
    """The schema ``model`` is measured in and the judge to read it (default: the shipped one, course catalog)."""
    from prodgen.catalog.schema import BUILTIN

    schema = model.schema if model.reads_attributes else BUILTIN
    if judge is None and schema != BUILTIN:
        raise ValueError(f"{model.name} controls {', '.join(schema.names)}: measure it with a judge trained on "
                         "the same catalog (prodgen train judge --data DIR)")
    judge = judge if judge is not None else registry.load(judge_name(model.image_size))
    if getattr(judge, "resolution", 32) != model.image_size:
        raise ValueError(f"{model.name} is measured at {model.image_size} px but the judge reads "
                         f"{judge.resolution} px photos: use {judge_name(model.image_size)}")
    if list(judge.heads) != list(schema.names):
        raise ValueError(f"the judge reads {', '.join(judge.heads)} but {model.name} controls "
                         f"{', '.join(schema.names)}: use a judge trained on the model's catalog")
    return schema, judge


def plan(model, n: int = 2000) -> list[tuple[str, int]]:
    """The stages :func:`measure` goes through for ``model`` at ``n``, in order, each with the images it asks the
    model for (diversity: at most; speed: at least, a warm-up batch and two timed ones): what the leaderboard's
    estimate and progress lines count."""
    from prodgen.catalog.schema import BUILTIN
    from prodgen.models.text2img import NEW_PHRASINGS

    n = _check_n(n)
    quarter = max(n // 4, MIN_N)
    if not model.conditional:
        stages = [("unconditional images", n)]
    else:
        stages = [("balanced requests", n)]
        if not model.reads_attributes or model.schema == BUILTIN:
            stages.append(("held-out pairs", quarter))
        stages.append(("partial requests", quarter) if model.reads_attributes else
                      ("descriptions", 4 * quarter + 8 * len(NEW_PHRASINGS)))
        stages.append(("diversity", PER_REQUEST * max(n // 16, 2)))
    return stages + [("speed", 3 * SPEED_BATCH)]


def _encode(encoder, images):
    """The SSL encoder's features of uint8 photos; it was trained on 32 px ones, so larger photos (a 64 px board)
    are :func:`downsample`-d to 32 px first."""
    return encoder.features(downsample(images, 32) if images.shape[-1] > 32 else images)


def _ssl_fid(images, ref: Reference, n: int) -> dict:
    """FID (SSL) of the generated ``images`` against the first ``n`` training photos, and its floor, in the SSL
    encoder's space (:class:`Reference` ``ssl_features``)."""
    from prodgen import metrics

    fake = _encode(ref.encoder, images)
    return {"fid_ssl": round(metrics.fid(ref.train["ssl_features"][:n], fake), 3),
            "fid_ssl_floor": round(ref.floor(n, "ssl"), 3)}


def _distribution_metrics(real, fake, ref, n: int, seed: int) -> dict:
    """How the generated photos' features spread against the real ones': FID (with its floor and FID∞), KID,
    precision/recall, density/coverage, and the memorisation ratio."""
    from prodgen import metrics

    kid_mean, kid_std = metrics.kid(real, fake, seed=seed)
    precision, recall = metrics.precision_recall(real, fake)
    density, coverage = metrics.density_coverage(real, fake)
    return {"fid": round(metrics.fid(real, fake), 3), "fid_floor": round(ref.floor(n), 3),
            "fid_inf": round(metrics.fid_infinity(real, fake, seed=seed)["intercept"], 3),
            "kid": round(kid_mean, 6), "kid_std": round(kid_std, 6),
            "precision": round(precision, 4), "recall": round(recall, 4), "density": round(density, 4),
            "coverage": round(coverage, 4),
            "memorisation": round(metrics.memorisation_ratio(ref.train["features"], fake, ref.test["features"][:n]), 4)}


# ----------------------------------------------------------------------------- the whole board
class _Session:
    """The judge and the real reference, loaded once for all the rows measured in one call (``refresh``: the
    reference is measured again too)."""

    def __init__(self, refresh: bool = False):
        self._judges, self._refs = {}, {}
        self._refresh = refresh

    def judge_at(self, size: int = 32):
        if size not in self._judges:
            self._judges[size] = registry.load(judge_name(size))
        return self._judges[size]

    def ref_at(self, size: int = 32):
        if size not in self._refs:
            self._refs[size] = Reference(self.judge_at(size), refresh=self._refresh)
        return self._refs[size]

    @property
    def judge(self):
        return self.judge_at(32)

    @property
    def ref(self):
        return self.ref_at(32)


def cached_row(name: str, n: int = 2000, seed: int = 0, resolution: int | None = None) -> dict | None:
    """The cached row of registry generator ``name`` (its current checkpoint, ``n``, ``seed``), or ``None`` when
    it has not been measured yet: reads a JSON file, measures nothing (lessons 11 and 13 read the board this way).
    ``None`` too when ``name`` is not shipped."""
    (name,) = _check_models([name])
    if name not in registry.manifest():
        return None
    row = _read_cached(cache_file(name, _check_n(n), seed, resolution))
    return None if row is None else {**row, "cached": True}


def evaluate_model(name: str, n: int = 2000, seed: int = 0, refresh: bool = False, _session=None,
                   speed_seconds: float = 1.0, progress=None, _model=None, resolution: int | None = None) -> dict:
    """The row of registry generator ``name`` at its own resolution or on the board ``resolution``: read from the
    cache, or measured (:func:`measure`, which calls ``progress`` before each stage) and cached."""
    (name,) = _check_models([name])
    n = _check_n(n)
    own, board = _model_board(name, resolution)
    path = cache_file(name, n, seed, board)
    if not refresh and (row := _read_cached(path)) is not None:
        return {**row, "cached": True}
    session = _session or _Session(refresh)
    model = _model if _model is not None else registry.load_generator(name)
    extra = {"progress": progress} if progress is not None else {}
    extra |= {"resolution": board} if board != own else {}  # downsampled to a smaller board
    row = measure(model, n, seed, judge=session.judge_at(board), speed_seconds=speed_seconds,
                  _ref=session.ref_at(board), **extra)
    row["sha256"] = registry.manifest()[name]["sha256"]
    row["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _atomic_write_text(path, json.dumps(row, indent=1, ensure_ascii=False) + "\n")
    return {**row, "cached": False}


def evaluate_all(models=None, n: int = 2000, refresh: bool = False, seed: int = 0, progress: bool = False,
                 speed_seconds: float = 1.0, log=None, resolution: int | None = None) -> list[dict]:
    """One row per generator (``models``: names, or None for every shipped generator in the registry), in
    registry order; cached rows come back without measuring (``refresh=True`` re-measures). ``resolution``: every
    row on that board (larger models downsampled; without ``models``, the shipped generators it can measure);
    default: each model at its own resolution.

    ``progress``: before measuring, an estimate of each model's time (:func:`estimate`); while measuring, a line
    per stage (images so far of the planned total, time left at the rate so far); each row's headline figures
    as soon as it is measured. Lines go to ``log`` (default: standard error)."""
    names, n = _check_models(models), _check_n(n)
    if models is None and resolution is not None:
        judge_name(resolution)  # a board that exists, else a clear error
        names = [m for m in names if (own := registry.spec(m).resolution) >= resolution and own % resolution == 0]
    log = log or _stderr
    todo = [name for name in names if refresh or _read_cached(cache_file(name, n, seed, resolution)) is None]
    loaded = {name: registry.load_generator(name) for name in todo} if progress else {}
    if progress and todo:
        _log_estimates(loaded, n, len(names) - len(todo), log)
    session, rows = _Session(refresh), []
    for name in names:
        tracker = _Tracker(name, plan(loaded[name], n), log) if name in loaded else None
        row = evaluate_model(name, n, seed, refresh, _session=session, speed_seconds=speed_seconds,
                             progress=tracker, _model=loaded.get(name), resolution=resolution)
        if tracker is not None and not row["cached"]:
            log(f"  {format_summary(row)}")
        rows.append(row)
    return rows


def retime(models=None, n: int = 2000, seed: int = 0, speed_seconds: float = 2.0, resolution: int | None = None,
           log=None) -> tuple[list[dict], list[str]]:
    """Time the speed column again and nothing else (``prodgen leaderboard --retime``): the only column that
    depends on the machine and on what else runs on it, so a board measured on a busy machine can be re-timed on
    a quiet one in a minute or two instead of re-measured. For each cached row of ``models`` (default: every
    shipped generator): ``images_per_s`` and ``threads`` replaced, ``speed_measured_at`` added, the file rewritten
    atomically. Returns ``(rows re-timed, names without a cached row)``."""
    names, n = _check_models(models), _check_n(n)
    done, missing = [], []
    for name in names:
        path = cache_file(name, n, seed, _model_board(name, resolution)[1])
        row = _read_cached(path)
        if row is None:
            missing.append(name)
            continue
        import torch

        from prodgen.catalog.schema import BUILTIN

        model, _ = _on_board(registry.load_generator(name), resolution)
        schema = model.schema if model.reads_attributes else BUILTIN
        before = row["images_per_s"]
        row["images_per_s"] = round(_speed(model, _speed_requests(model, n, seed, schema), speed_seconds), 1)
        row["threads"] = torch.get_num_threads()
        row["speed_measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _atomic_write_text(path, json.dumps(row, indent=1, ensure_ascii=False) + "\n")
        if log:
            log(f"{name}: {before:,.1f} -> {row['images_per_s']:,.1f} images/s ({row['threads']} thread(s))")
        done.append({**row, "cached": True})
    return done, missing


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def estimate(model, n: int = 2000, seed: int = 0) -> dict:
    """How long measuring ``model`` at ``n`` should take: the images :func:`plan` asks for, at the rate of the
    last cached row of the same checkpoint (its ``images_per_s``, any ``n``), or else of one timed batch of
    ``MIN_N`` requests. Generation only: judging the images and the metrics add seconds. Keys: ``images``,
    ``images_per_s``, ``source`` (``"cached row"`` or ``"timed batch"``), ``seconds``."""
    images = sum(count for _, count in plan(model, n))
    rate, source = _cached_rate(model.name), "cached row"
    if rate is None:
        from prodgen.models.condition import balanced_requests

        requests = (MIN_N if not model.conditional else
                    _requests(model, balanced_requests(MIN_N, seed, schema=model.schema), seed))
        start = time.perf_counter()
        model.generate(requests, seed=seed)
        rate, source = MIN_N / max(time.perf_counter() - start, 1e-6), "timed batch"
    return {"images": images, "images_per_s": rate, "source": source, "seconds": images / rate}


def _cached_rate(name: str) -> float | None:
    """``images_per_s`` of the newest intact cached row of ``name``'s current checkpoint, or ``None``."""
    sha = registry.manifest().get(name, {}).get("sha256")
    best = None
    for path in cache_folder().glob(f"{name}-n*-s*.json"):
        row = _read_cached(path)
        if row and row.get("model") == name and row.get("sha256") == sha and row.get("images_per_s"):
            if best is None or row.get("measured_at", "") > best.get("measured_at", ""):
                best = row
    return None if best is None else float(best["images_per_s"])


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _log_estimates(models: dict, n: int, cached: int, log) -> None:
    """One line per model to measure (images, rate and where it comes from, expected time) and the total."""
    log(f"leaderboard: {cached} row(s) cached, {len(models)} to measure at n = {n}; estimate (generation only):")
    total = 0.0
    for name, model in models.items():
        est = estimate(model, n)
        total += est["seconds"]
        log(f"  {name}: {est['images']:,} images at {est['images_per_s']:,.1f} img/s ({est['source']}) "
            f"≈ {_duration(est['seconds'])}")
    log(f"  total ≈ {_duration(total)}")


class _Tracker:
    """Progress lines of one model's measurement: ``name [k/K] stage: N images (done/total so far, elapsed,
    about T left)``, the time left from the rate of the images so far (none before the first stage ends)."""

    def __init__(self, name: str, stages: list[tuple[str, int]], log):
        self.name, self.log, self.stages = name, log, [stage for stage, _ in stages]
        self.total, self.done, self.start, self._last = sum(c for _, c in stages), 0, None, 0

    def __call__(self, stage: str, images: int) -> None:
        now = time.perf_counter()
        if self.start is None:
            self.start = now
            self.log(f"measuring {self.name} ({self.total:,} images) ...")
        self.done += self._last
        self._last = images
        elapsed = now - self.start
        left = f", about {_duration(elapsed / self.done * (self.total - self.done))} left" if self.done else ""
        k = self.stages.index(stage) + 1
        self.log(f"  {self.name} [{k}/{len(self.stages)}] {stage}: {images:,} images "
                 f"({self.done:,}/{self.total:,} so far, {_duration(elapsed)}{left})")


def format_summary(row: dict) -> str:
    """One measured row's headline figures on one line (printed by ``prodgen leaderboard`` as each row ends)."""
    parts = [f"FID {_cell(row, 'fid')} (floor {_cell(row, 'fid_floor')})"]
    if row.get("fid_ssl") is not None:
        parts.append(f"FID (SSL) {_cell(row, 'fid_ssl')} (floor {_cell(row, 'fid_ssl_floor')})")
    if row.get("control_mean") is not None:
        parts.append(f"control {_cell(row, 'control_mean')}, weakest {_cell(row, 'control_min')}")
    if row.get("control_en") is not None:
        parts.append(f"EN {_cell(row, 'control_en')}, ZH {_cell(row, 'control_zh')}")
    if row.get("histogram_distance") is not None:
        parts.append(f"hist. dist. {_cell(row, 'histogram_distance')}")
    parts.append(f"{_cell(row, 'images_per_s')} img/s")
    seconds = f" in {_duration(row['seconds'])}" if row.get("seconds") is not None else ""
    return f"{row['model']}: " + ", ".join(parts) + f" (measured{seconds})"


# ----------------------------------------------------------------------------- formatting
def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    if key == "model" and row.get("resolution") is not None:  # which board: "(64 px)", "(64→32 px)"
        source = f"{row['downsampled_from']}→" if row.get("downsampled_from") else ""
        return f"{value} ({source}{row['resolution']} px)"
    if key == "kid" and value is not None:
        return f"{value:.2f} ± {row.get('kid_std', 0):.2f}"
    if key == "control_min" and value is not None:
        return f"{value:.3f} ({row.get('control_min_attribute')})"
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if key.startswith("fid"):
        return f"{value:.1f}"
    if key == "images_per_s":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned plain-text table (what ``prodgen leaderboard`` prints)."""
    cells = [[header for _, header in COLUMNS]] + [[_cell(r, key) for key, _ in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c)))
             for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (the README's model table)."""
    lines = ["| " + " | ".join(header for _, header in COLUMNS) + " |",
             "|" + "|".join("---" if key == "model" else "---:" for key, _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(r, key) for key, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)

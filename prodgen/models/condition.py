"""Attribute conditions: how a request such as "red, large, any brand" becomes numbers a network can use.

A request is a row of class indices, one per attribute of a *schema* (``prodgen.catalog.schema``), the same
layout as ``Catalog.labels``; **-1 means "unspecified"** (the generator may choose). The course catalog's
schema (:data:`BUILTIN`: category, color, size, brand, pattern) is the default everywhere; a model trained on
your own catalog passes its schema (lesson 12). Every attribute with ``K`` values gets ``K + 1`` slots: its
values, then "unspecified".

- :func:`one_hot`: N x 5 labels -> N x 34 one-hot vector (the concatenation discriminator, the CVAE);
  sizes here are the built-in schema's.
- :class:`AttributeEmbedding`: a learned vector per value (the generators, the projection discriminator);
  it also takes *soft* requests, N x 34 probabilities (lesson 07: what a text reader heard).
- :class:`OneHot`: :func:`one_hot` as a module (the CVAE's decoder).
- :func:`hide_attributes`: hide attributes at random while training, so partial requests work;
  :func:`fill_unspecified`: draw the unspecified attributes of a request at random when generating.
- :func:`parse_request` / :func:`balanced_requests`: requests from ``{name: value}`` dicts, and the
  balanced request sets every evaluation uses (each value of each attribute equally often).

Used by lessons 05 (conditional GANs), 06 (conditional VAEs), 07 (text to image), 11, 12 and ``prodgen generate``.
"""
from __future__ import annotations

import torch
from torch import nn

from prodgen.catalog.schema import BUILTIN, Schema

__all__ = ["NUM_CLASSES", "CONDITION_DIM", "BUILTIN", "Schema", "slots", "one_hot", "OneHot", "AttributeEmbedding",
           "hide_attributes",
           "fill_unspecified",
           "parse_request", "request_to_dict", "balanced_requests", "check_labels"]

NUM_CLASSES: dict[str, int] = BUILTIN.num_classes  # the built-in schema: 8, 10, 3, 4, 4
CONDITION_DIM = BUILTIN.condition_dim  # 34: every value plus one "unspecified" per attribute


def check_labels(labels: torch.Tensor, schema: Schema = BUILTIN) -> torch.Tensor:
    """``labels`` as an int64 N x A tensor (A attributes of ``schema``), after checking every entry is -1 or
    a valid class index."""
    labels = torch.as_tensor(labels)
    names = schema.names
    if labels.ndim != 2 or labels.shape[1] != len(names) or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be an integer tensor N x {len(names)} "
                         f"({', '.join(names)}; -1 = unspecified), got {tuple(labels.shape)} {labels.dtype}")
    for j, (a, k) in enumerate(schema.num_classes.items()):
        col = labels[:, j]
        if ((col < -1) | (col >= k)).any():
            raise ValueError(f"{a} labels must be -1 (unspecified) or 0..{k - 1}, got {sorted(set(col.tolist()))[:8]}")
    return labels.long()


def slots(labels: torch.Tensor, schema: Schema = BUILTIN) -> torch.Tensor:
    """Labels with -1 replaced by each attribute's "unspecified" slot ``K``: N x A, values 0..K."""
    k = torch.tensor(list(schema.num_classes.values()), device=labels.device)
    return torch.where(labels < 0, k, labels)


def one_hot(labels: torch.Tensor, schema: Schema = BUILTIN) -> torch.Tensor:
    """N x A labels -> N x ``schema.condition_dim`` floats (34 for the built-in schema): one 1 per attribute,
    in the value's slot or in "unspecified".

    Soft requests (floats N x 34, a probability distribution per attribute) pass through unchanged.
    """
    if labels.is_floating_point() and labels.shape[-1] == schema.condition_dim:
        return labels
    s = slots(labels, schema)
    parts = [nn.functional.one_hot(s[:, j], k + 1) for j, k in enumerate(schema.num_classes.values())]
    return torch.cat(parts, dim=1).float()  # N x (9 + 11 + 4 + 5 + 5) for the built-in schema


class AttributeEmbedding(nn.Module):
    """A learned ``dim``-vector per attribute value: N x A labels -> N x A x dim (A attributes of ``schema``).

    ``unspecified="learned"``: "unspecified" has its own learned vector (what a generator needs to
    draw *something*); ``"zero"``: it is the zero vector and never trained (the projection
    discriminator: an attribute nobody asked for adds nothing to the score).
    """

    def __init__(self, dim: int, unspecified: str = "learned", schema: Schema = BUILTIN):
        super().__init__()
        if unspecified not in ("learned", "zero"):
            raise ValueError(f"unspecified must be 'learned' or 'zero', got {unspecified!r}")
        self.dim, self.schema = dim, schema
        self.tables = nn.ModuleList(
            nn.Embedding(k + 1, dim,
                         padding_idx=k if unspecified == "zero" else None) for k in schema.num_classes.values())

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.is_floating_point():  # soft request N x 34: each attribute's probability-weighted mix of rows
            probs = labels.split([t.num_embeddings for t in self.tables], dim=1)
            if self.tables[0].padding_idx is not None:  # "zero": leave the unspecified row out (no value, no gradient)
                return torch.stack([p[:, :-1] @ t.weight[:-1] for p, t in zip(probs, self.tables)], dim=1)
            return torch.stack([p @ t.weight for p, t in zip(probs, self.tables)], dim=1)  # N x 5 x dim
        s = slots(labels, self.schema)
        return torch.stack([table(s[:, j]) for j, table in enumerate(self.tables)], dim=1)  # N x A x dim


class OneHot(nn.Module):
    """:func:`one_hot` as a layer (N x 5 labels -> N x 34 for the built-in schema), a generator's ``embed``."""

    def __init__(self, schema: Schema = BUILTIN):
        super().__init__()
        self.schema = schema

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return one_hot(labels, self.schema)


def hide_attributes(labels: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of ``labels`` with each entry set to -1 ("unspecified") with probability ``p``.

    Training on such partial requests teaches a generator what "any colour" means: when the
    colour is hidden, the real photo it is compared with can have any colour.
    """
    if p <= 0:
        return labels.clone()
    hide = torch.rand(labels.shape, generator=generator, device=labels.device) < p
    return labels.masked_fill(hide, -1)


def fill_unspecified(labels: torch.Tensor, generator: torch.Generator | None = None,
                     schema: Schema = BUILTIN) -> torch.Tensor:
    """Replace every unspecified attribute by a value drawn uniformly at random (the catalog draws its
    attributes uniformly), so that "a red mug" comes in every size, brand and pattern.

    Hard requests (N x 5): -1 entries are filled. Soft requests (N x 34 probabilities): an attribute whose
    most likely slot is "unspecified" becomes a one-hot of a random value. Our generators map their
    learned "unspecified" to one look per request (lesson 05 measures it), hence this step.
    """
    if labels.is_floating_point():
        out, start = labels.clone(), 0
        for k in schema.num_classes.values():
            block = out[:, start:start + k + 1]
            missing = block.argmax(dim=1) == k
            if missing.any():
                pick = torch.randint(k, (int(missing.sum()),), generator=generator).to(labels.device)
                block[missing] = nn.functional.one_hot(pick, k + 1).to(block.dtype)
            start += k + 1
        return out
    labels = check_labels(labels, schema).clone()
    for j, k in enumerate(schema.num_classes.values()):
        missing = labels[:, j] < 0
        if missing.any():
            labels[missing, j] = torch.randint(k, (int(missing.sum()),), generator=generator).to(labels.device)
    return labels


def parse_request(attrs: dict, schema: Schema = BUILTIN) -> torch.Tensor:
    """``{"color": "red", "size": "large"}`` -> a 1 x A label row (-1 for attributes not given).

    Unknown attribute names or values raise a ``ValueError`` that lists the valid ones.
    """
    row = [-1] * len(schema)
    for name, value in attrs.items():
        j = schema.column(name)
        if value in (None, ""):
            continue
        row[j] = schema.index_of(name, value)
    return torch.tensor([row], dtype=torch.long)


def request_to_dict(row, schema: Schema = BUILTIN) -> dict:
    """A label row back to ``{name: value}`` (unspecified attributes left out)."""
    return {a: schema.values[a][int(k)] for a, k in zip(schema.names, row) if int(k) >= 0}


def balanced_requests(n: int, seed: int = 0, exclude_pairs=(), only_pairs=(), schema: Schema = BUILTIN) -> torch.Tensor:
    """``n`` fully specified requests (n x A) in which every value of every attribute appears equally
    often (up to rounding), the attributes shuffled independently.

    ``exclude_pairs`` / ``only_pairs`` (built-in schema only): (category, color) pairs to avoid, or to draw
    from exclusively (e.g. ``HELD_OUT_PAIRS`` for the unseen combinations); the colour column is re-balanced
    within them.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of requests, got {n}")
    if (exclude_pairs or only_pairs) and schema != BUILTIN:
        raise ValueError("exclude_pairs / only_pairs are (category, color) pairs of the course catalog's schema")
    gen = torch.Generator().manual_seed(seed)
    cols = []
    for k in schema.num_classes.values():
        col = torch.arange(n) % k
        cols.append(col[torch.randperm(n, generator=gen)])
    labels = torch.stack(cols, dim=1)
    if not (exclude_pairs or only_pairs):
        return labels
    cat, col = schema.column("category"), schema.column("color")
    index_of = schema.index_of
    if only_pairs:
        pairs = torch.tensor([[index_of("category", c), index_of("color", v)] for c, v in only_pairs])
        pick = pairs[torch.arange(n) % len(pairs)][torch.randperm(n, generator=gen)]
        labels[:, cat], labels[:, col] = pick[:, 0], pick[:, 1]
    elif exclude_pairs:
        banned = {(index_of("category", c), index_of("color", v)) for c, v in exclude_pairs}
        for i in range(n):  # re-draw the colour until the pair is allowed (keeps categories balanced)
            while (int(labels[i, cat]), int(labels[i, col])) in banned:
                labels[i, col] = int(torch.randint(NUM_CLASSES["color"], (1,), generator=gen))
    return labels

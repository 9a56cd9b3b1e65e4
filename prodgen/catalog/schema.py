"""A catalog's schema: which attributes it has and the values each one takes, in column order.

The course's own catalog is one schema (:data:`BUILTIN`: category, color, size, brand, pattern); a
folder of your own photos with a ``metadata.csv`` defines another (its attribute columns, lesson 12).
Every conditional model keeps the schema it was trained on in its checkpoint, so requests, the
"unspecified" slots, balanced requests and control accuracy are read from it instead of a fixed list.

A value's position in its attribute's list is its class index; -1 means "unspecified".
Used by ``prodgen.models.condition`` (lessons 05-07, 11, 12), the judge and ``prodgen train --data``.
"""
from __future__ import annotations

from prodgen.catalog.attributes import ATTRIBUTE_NAMES, values_of

__all__ = ["Schema", "BUILTIN", "schema_of"]


class Schema:
    """Ordered attributes and their values, e.g. ``Schema({"shape": ["circle", "star"], "color": [...]})``.

    Immutable and comparable: two schemas are equal when they have the same attributes, in the same
    order, with the same values in the same order (then their class indices mean the same thing).
    """

    def __init__(self, attributes):
        pairs = list(attributes.items()) if isinstance(attributes, dict) else [tuple(p) for p in attributes]
        if not pairs:
            raise ValueError("a schema needs at least one attribute")
        seen = set()
        clean = []
        for name, values in pairs:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"attribute names must be non-empty strings, got {name!r}")
            if name in seen:
                raise ValueError(f"attribute {name!r} appears twice")
            seen.add(name)
            values = tuple(str(v) for v in values)
            if len(values) < 2:
                raise ValueError(f"attribute {name!r} needs at least 2 values to be controlled, got {list(values)}")
            if len(set(values)) != len(values):
                raise ValueError(f"attribute {name!r} lists a value twice: {list(values)}")
            clean.append((name, values))
        self._pairs = tuple(clean)

    # ---------------------------------------------------------------- what it holds
    @property
    def names(self) -> tuple[str, ...]:
        """The attribute names, in column order."""
        return tuple(name for name, _ in self._pairs)

    @property
    def values(self) -> dict[str, tuple[str, ...]]:
        """``{attribute: its values}`` in column order."""
        return dict(self._pairs)

    @property
    def num_classes(self) -> dict[str, int]:
        """``{attribute: number of values}``."""
        return {name: len(values) for name, values in self._pairs}

    @property
    def condition_dim(self) -> int:
        """Length of a one-hot request: every value plus one "unspecified" slot per attribute."""
        return sum(len(values) + 1 for _, values in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other) -> bool:
        return isinstance(other, Schema) and self._pairs == other._pairs

    def __hash__(self) -> int:
        return hash(self._pairs)

    def __repr__(self) -> str:
        return "Schema(" + "; ".join(f"{n}: {', '.join(v)}" for n, v in self._pairs) + ")"

    def describe(self) -> str:
        """One line per attribute: ``shape (5): circle, square, ...``."""
        return "\n".join(f"{n} ({len(v)}): {', '.join(v)}" for n, v in self._pairs)

    # ---------------------------------------------------------------- lookups with clear errors
    def column(self, attribute: str) -> int:
        """The column of ``attribute`` in a label row; a ``ValueError`` listing the valid ones."""
        if attribute not in self.names:
            raise ValueError(f"unknown attribute {attribute!r}; valid attributes: {', '.join(self.names)}")
        return self.names.index(attribute)

    def index_of(self, attribute: str, value: str) -> int:
        """The class index of ``value``; a ``ValueError`` listing the valid values."""
        values = self._pairs[self.column(attribute)][1]
        if value not in values:
            raise ValueError(f"unknown {attribute} {value!r}; valid values: {', '.join(values)}")
        return values.index(value)

    # ---------------------------------------------------------------- checkpoints
    def to_config(self) -> list:
        """JSON-ready form saved in every checkpoint: ``[[name, [values...]], ...]``."""
        return [[name, list(values)] for name, values in self._pairs]

    @classmethod
    def from_config(cls, data) -> Schema:
        """The inverse of :meth:`to_config` (``None``: the built-in schema)."""
        return BUILTIN if data is None else cls([(name, values) for name, values in data])


BUILTIN = Schema([(a, values_of(a)) for a in ATTRIBUTE_NAMES])
"""The course catalog's schema: category (8), color (10), size (3), brand (4), pattern (4)."""


def schema_of(config: dict | None) -> Schema:
    """The schema a checkpoint config records (``config["schema"]``), the built-in one when it has none
    (checkpoints of the course catalog)."""
    return Schema.from_config((config or {}).get("schema"))

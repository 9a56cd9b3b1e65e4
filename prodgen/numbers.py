"""One validator for the numbers people type: whole numbers with a lower bound, positive amounts.

Every option and argument that must be "a whole number >= k" or "a positive number" is checked here, so
the messages read the same everywhere (``prodgen train --epochs``, ``generate --n``, the studies' counts, ...).
Values may be Python numbers or, from the command line, text. Used by the CLI, the registry's ``train``
and the studies.
"""
from __future__ import annotations

import math

__all__ = ["whole", "positive"]


def whole(value, name: str, low: int = 0, high: int | None = None):
    """``value`` as an ``int`` in ``[low, high]``; ``None`` stays ``None``; a bool, a fraction, text that is not
    a whole number or a value out of range -> ``ValueError`` naming ``name`` and the valid range."""
    if value is None:
        return None
    valid = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be {valid}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return value


def positive(value, name: str):
    """``value`` as a finite ``float`` > 0; ``None`` stays ``None``; anything else -> ``ValueError``."""
    if value is None:
        return None
    given = value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {given!r}")
    return float(value)

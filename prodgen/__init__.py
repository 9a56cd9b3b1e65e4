"""prodgen: the helper package of the controllable product image generation course.

Submodules are imported on first use (``prodgen.catalog``, ``prodgen.checks``, ...),
so ``import prodgen`` stays cheap: no torch, no matplotlib until a lesson needs them.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "apps", "catalog", "checks", "cli", "course", "engine", "evaluation", "metrics", "models", "paths", "studies",
    "viz",
)
__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'prodgen' has no attribute {name!r}")

"""Where prodgen keeps things on disk: the data folder, the catalog cache, checkpoints.

The catalog cache is ``$PRODGEN_CACHE`` if set, else ``data/cache/`` in the course
repository (when prodgen runs from a checkout), else ``~/.cache/prodgen``.
Used by the catalog, the checkpoints registry and ``prodgen doctor``.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "data_dir", "cache_dir", "checkpoints_dir"]


def repo_root() -> Path | None:
    """The course checkout this package sits in, or None when installed elsewhere."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "solutions").is_dir() else None


def data_dir() -> Path:
    """The repository's ``data/`` folder (shipped checkpoints live here)."""
    root = repo_root()
    return root / "data" if root else Path.home() / ".cache" / "prodgen"


def cache_dir() -> Path:
    """Where rendered catalogs are cached."""
    if os.environ.get("PRODGEN_CACHE"):
        return Path(os.environ["PRODGEN_CACHE"]).expanduser()
    root = repo_root()
    return root / "data" / "cache" if root else Path.home() / ".cache" / "prodgen"


def checkpoints_dir() -> Path:
    """Shipped checkpoints and their manifest (``$PRODGEN_CHECKPOINTS`` overrides, e.g. in tests)."""
    if os.environ.get("PRODGEN_CHECKPOINTS"):
        return Path(os.environ["PRODGEN_CHECKPOINTS"]).expanduser()
    return data_dir() / "checkpoints"

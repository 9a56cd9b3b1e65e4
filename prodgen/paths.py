"""Where prodgen keeps things on disk: the data folder, the catalog cache, checkpoints.

The catalog cache is ``$PRODGEN_CACHE`` if set, else ``data/cache/`` in the course
repository (when prodgen runs from a checkout), else ``~/.cache/prodgen``.
Used by the catalog, the checkpoints registry and ``prodgen doctor``.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["repo_root", "data_dir", "cache_dir", "checkpoints_dir", "atomic_folder", "atomic_file", "sweep_partial"]


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


@contextmanager
def atomic_folder(out) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; when the block ends without an error it becomes ``out``
    (which the caller has checked is missing or empty), otherwise it is removed, so an interrupted write
    leaves nothing. Used by the catalog export, ``prodgen generate`` and the studio's export."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_partial(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked by the caller
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def sweep_partial(out) -> list[Path]:
    """Remove the temporary folders ``.NAME.partial-PID`` beside ``out`` left by runs that were killed (their
    process is gone: SIGKILL, a power cut); a run still going keeps its own. Returns what was removed."""
    out = Path(out)
    removed = []
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


@contextmanager
def atomic_file(path) -> Iterator[Path]:
    """A temporary file name beside ``path`` to write to; when the block ends without an error it replaces
    ``path`` in one rename, otherwise it is removed: a reader never sees a half-written file. Used for
    training checkpoints, the leaderboard's cache and lesson 10's grid results."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

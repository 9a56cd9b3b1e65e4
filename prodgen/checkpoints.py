"""The checkpoint store: shipped weights, their manifest with sha256 sums, safe reading and atomic writing.

``data/checkpoints/manifest.json`` lists every shipped checkpoint: its file, sha256, the configuration that
rebuilds the network, how it was trained and what was measured when it was saved. This module knows files,
not models: :func:`verify` checks a shipped file against its sum, :func:`read` loads a payload with
``torch.load(weights_only=True)`` (which cannot run code hidden in a file), :func:`write_shipped` and
:func:`write_file` write atomically (temp file + rename), so an interrupted save never leaves a half-written
checkpoint or manifest. Which network a name rebuilds is the registry's business (``prodgen.models.registry``).
Used by the registry, ``prodgen doctor``, the leaderboard's cache keys and lessons 02+ (``manifest()``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prodgen import paths

__all__ = ["manifest", "names", "entry", "sha256", "verify", "available", "read", "write_shipped", "write_file"]


def _manifest_path() -> Path:
    return paths.checkpoints_dir() / "manifest.json"


def manifest() -> dict:
    """The manifest as a dict ``{name: entry}`` (empty if nothing is shipped)."""
    path = _manifest_path()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it with `git checkout -- {path}`") from None


def names() -> list[str]:
    """Names of the shipped checkpoints."""
    return sorted(manifest())


def sha256(path: Path) -> str:
    """The file's sha256 as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def entry(name: str) -> dict:
    """The manifest entry of ``name``; an unknown name -> ``ValueError`` listing the shipped ones."""
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none shipped yet"
        raise ValueError(f"unknown model {name!r}; shipped models: {known}")
    return entries[name]


def verify(name: str) -> Path:
    """The checkpoint's path, after checking that it exists and its sha256 matches the manifest."""
    record = entry(name)
    path = paths.checkpoints_dir() / record["file"]
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint for {name!r} is missing: {path}. Restore it with "
                                f"`git checkout -- {path}` or retrain it with `prodgen train {name}`")
    if sha256(path) != record["sha256"]:
        raise ValueError(f"checkpoint for {name!r} is corrupt (sha256 does not match the manifest): {path}. "
                         f"Restore it with `git checkout -- {path}` or retrain it with `prodgen train {name}`")
    return path


def available(name: str) -> bool:
    """Whether ``name`` is shipped and its file is intact."""
    try:
        verify(name)
        return True
    except (ValueError, FileNotFoundError):
        return False


def read(path, device="cpu") -> dict:
    """The payload dict saved in checkpoint file ``path``, loaded with ``weights_only=True``; an unreadable file
    -> ``ValueError`` naming it."""
    import torch

    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ValueError(f"{path} is not a prodgen checkpoint (no state_dict in it)")
    return payload


def write_file(path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically (the folder is created)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: torch.save(payload, f))
    return path


def write_shipped(name: str, payload: dict, record: dict) -> Path:
    """Write ``payload`` as the shipped checkpoint ``name`` and its manifest entry (``record`` plus the file
    name and sha256), both atomically."""
    path = write_file(paths.checkpoints_dir() / f"{name}.pt", payload)
    entries = manifest()
    entries[name] = {"file": path.name, "sha256": sha256(path), **record}
    text = json.dumps(dict(sorted(entries.items())), indent=2, ensure_ascii=False) + "\n"
    _atomic_write(_manifest_path(), lambda f: f.write(text.encode("utf-8")))
    return path


def _atomic_write(path: Path, write) -> None:
    with paths.atomic_file(path) as tmp, open(tmp, "wb") as f:
        write(f)

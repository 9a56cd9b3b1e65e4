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
import pickle
import re
import warnings
import zipfile
from pathlib import Path

from prodgen import paths

__all__ = ["manifest", "names", "entry", "sha256", "verify", "available", "read", "write_shipped", "write_file",
           "sidecar", "verify_file", "unverified_note", "UnverifiedCheckpoint", "VALID"]


def _manifest_path() -> Path:
    return paths.checkpoints_dir() / "manifest.json"


def manifest() -> dict:
    """The manifest as a dict ``{name: entry}`` (empty if nothing is shipped)."""
    path = _manifest_path()
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it with `git checkout -- {path}`") from None
    _check_manifest(entries, path)
    return entries


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_manifest(entries, path: Path) -> None:
    """One ``ValueError`` line naming the first malformed entry and what is wrong with it (a hand-edited or
    half-merged manifest), so ``prodgen models``, ``generate`` and ``doctor`` never end in a ``KeyError``."""
    fix = f"restore it with `git checkout -- {path}`"
    if not isinstance(entries, dict):
        raise ValueError(f"{path} must hold an object {{name: entry}}, not a {type(entries).__name__}; {fix}")
    for name, record in entries.items():
        where = f"{path}: entry {name!r}"
        if not isinstance(record, dict):
            raise ValueError(f"{where} must be an object with file and sha256, not a {type(record).__name__}; {fix}")
        missing = [k for k in ("file", "sha256") if k not in record]
        if missing:
            raise ValueError(f"{where} has no {' and no '.join(missing)}; {fix}")
        file = record["file"]
        if not isinstance(file, str) or not file or Path(file).name != file or file in (".", ".."):
            raise ValueError(f"{where}: 'file' must be the name of a file in {path.parent} (no folders), "
                             f"got {file!r}; {fix}")
        if not isinstance(record["sha256"], str) or not _SHA256.fullmatch(record["sha256"]):
            raise ValueError(f"{where}: 'sha256' must be 64 lower-case hex digits, got {record['sha256']!r}; {fix}")
        for key in ("config", "training", "metrics"):
            if not isinstance(record.get(key, {}), dict):
                raise ValueError(f"{where}: {key!r} must be an object, not a {type(record[key]).__name__}; {fix}")


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


VALID = ("a checkpoint is a .pt file written by `prodgen train MODEL --out FILE.pt` or `--data DIR`, or a shipped "
         "model's name (`prodgen models`)")


class UnverifiedCheckpoint(UserWarning):
    """A checkpoint file without its ``.sha256`` record (written before files carried one, or copied without it)."""


def read(path, device="cpu") -> dict:
    """The payload dict saved in checkpoint file ``path``, loaded with ``weights_only=True`` (nothing in the file
    can run code); a file that is not a checkpoint, or one whose weights hold NaN or infinite values ->
    ``ValueError`` naming it and saying what it is not (torch's own advice to load it unsafely is never relayed)."""
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not the reader's business
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=device, weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # noqa: BLE001 - whatever torch raises, one line, and never its message
        raise ValueError(f"{path} is not a prodgen checkpoint: {_unreadable(path, e)}; {VALID}") from None
    _check_payload(path, payload)
    return payload


def _unreadable(path: Path, error: Exception) -> str:
    """Why torch could not read ``path``, in our words (torch's message may advise ``weights_only=False``)."""
    with open(path, "rb") as f:
        head = f.read(2)
    if not head:
        return "it is empty"
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and head[:1] != b"\x80":  # torch.save writes a zip archive (or, long ago, a pickle)
        return "it is neither a zip archive nor a pickle that torch.save wrote (a text or other file?)"
    if isinstance(error, pickle.UnpicklingError) and "global" in str(error).lower():
        return ("it asks to rebuild Python objects that no checkpoint holds (refused without running anything: "
                "such a file can run code when loaded unsafely)")
    if isinstance(error, EOFError):
        return "it is cut short"
    if is_zip:
        return "it is a zip archive, but not one torch.save wrote (damaged, or another kind of zip)"
    return ("it is a Python pickle that torch.save did not write (refused without running anything: a pickle can "
            "run code when loaded unsafely)")


def _check_payload(path: Path, payload) -> None:
    import torch

    if not isinstance(payload, dict):
        raise ValueError(f"{path} is not a prodgen checkpoint: it holds a {type(payload).__name__}, not a dict "
                         f"with a state_dict; {VALID}")
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        keys = ", ".join(map(str, list(payload)[:6])) or "none"
        raise ValueError(f"{path} is not a prodgen checkpoint: it holds a dict without a state_dict (keys: {keys}); "
                         f"{VALID}")
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path} is not a prodgen checkpoint: its state_dict holds something other than tensors "
                         f"under {bad[0]!r}; {VALID}")
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise ValueError(f"{path} holds NaN or infinite weights ({len(broken)} of {len(state)} tensors, e.g. "
                         f"{broken[0]!r}): it would draw and measure garbage, so it is refused; retrain it "
                         "(training that diverged: a lower learning rate or `prodgen train ... --resume` from an "
                         "earlier state)")


def sidecar(path) -> Path:
    """The sha256 record of checkpoint file ``path``: ``NAME.pt.sha256`` beside it, in ``sha256sum`` format
    (``sha256sum -c NAME.pt.sha256`` checks it too)."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def verify_file(path) -> bool:
    """Check checkpoint file ``path`` against its :func:`sidecar`: ``True`` if it matches, ``False`` if there is
    no record (a file written before checkpoints carried one); a mismatch -> ``ValueError`` ("corrupt")."""
    path = Path(path)
    record = sidecar(path)
    if not record.is_file():
        return False
    words = record.read_text(encoding="utf-8", errors="replace").split()
    if not words or not _SHA256.fullmatch(words[0].lower()):
        raise ValueError(f"{record} is not a sha256 record (64 hex digits, then the file name); re-create it "
                         f"with `sha256sum {path.name} > {record.name}` if you trust {path.name}, or retrain it")
    if sha256(path) != words[0].lower():
        raise ValueError(f"{path} is corrupt: its sha256 does not match {record.name} (a damaged or changed file); "
                         f"retrain it (`prodgen train MODEL --out {path}`) or copy it again with its .sha256 file")
    return True


def unverified_note(path) -> str:
    """What ``prodgen`` says of a checkpoint file without its sha256 record (it is still read weights-only and
    checked for finite weights)."""
    path = Path(path)
    return (f"{path} has no {sidecar(path).name} beside it (written before checkpoints carried a sha256 record, or "
            f"copied without it): its bytes cannot be checked for damage; if you trust it, record them with "
            f"`sha256sum {path.name} > {sidecar(path).name}` in its folder, or retrain it")


def write_file(path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` and its sha256 to :func:`sidecar`, both atomically (the folder is created);
    the record is written before the file is renamed into place."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with paths.atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
        digest = sha256(tmp)
        _atomic_write(sidecar(path), lambda f: f.write(f"{digest}  {path.name}\n".encode()))
    return path


def write_shipped(name: str, payload: dict, record: dict) -> Path:
    """Write ``payload`` as the shipped checkpoint ``name`` and its manifest entry (``record`` plus the file
    name and sha256), both atomically."""
    import torch

    path = paths.checkpoints_dir() / f"{name}.pt"
    _atomic_write(path, lambda f: torch.save(payload, f))  # the manifest holds its sha256 (no sidecar)
    entries = manifest()
    entries[name] = {"file": path.name, "sha256": sha256(path), **record}
    text = json.dumps(dict(sorted(entries.items())), indent=2, ensure_ascii=False) + "\n"
    _atomic_write(_manifest_path(), lambda f: f.write(text.encode("utf-8")))
    return path


def _atomic_write(path: Path, write) -> None:
    with paths.atomic_file(path) as tmp, open(tmp, "wb") as f:
        write(f)

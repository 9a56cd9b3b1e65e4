"""Commit a training state that outlives a session, and restore it (CONTRIBUTING: long CPU trainings).

    python tools/train_state.py pack NAME      # <cache>/train-state/NAME.pt -> data/train-state/NAME.pt.partK
    python tools/train_state.py unpack NAME    # the parts -> <cache>/train-state/NAME.pt (then train with --resume)

`prodgen train NAME --resume` saves its whole state (weights, optimiser, history, random generators) after every
epoch in the cache, which a fresh clone does not have. A state can be larger than the repository's 10 MB per file,
so `pack` splits it into parts of at most 9 MB plus `NAME.pt.sha256` (the whole file's sha256); `unpack` joins the
parts, checks the sha256 and writes the state atomically, refusing to replace a newer state already in the cache.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PART = 9 << 20
FOLDER = ROOT / "data" / "train-state"


def _cache_state(name: str) -> Path:
    sys.path.insert(0, str(ROOT))
    from prodgen.models import registry

    return registry.state_path(name)


def pack(name: str) -> list[Path]:
    source = _cache_state(name)
    if not source.is_file():
        raise FileNotFoundError(f"no training state at {source}: train with `prodgen train {name} --resume` first")
    data = source.read_bytes()
    FOLDER.mkdir(parents=True, exist_ok=True)
    for old in FOLDER.glob(f"{name}.pt.part*"):
        old.unlink()
    parts = []
    for k, start in enumerate(range(0, len(data), PART)):
        part = FOLDER / f"{name}.pt.part{k}"
        part.write_bytes(data[start:start + PART])
        parts.append(part)
    (FOLDER / f"{name}.pt.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}.pt\n", encoding="utf-8")
    return parts


def unpack(name: str) -> Path:
    record = FOLDER / f"{name}.pt.sha256"
    if not record.is_file():
        raise FileNotFoundError(f"no packed state of {name} in {FOLDER}")
    parts = sorted(FOLDER.glob(f"{name}.pt.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    data = b"".join(p.read_bytes() for p in parts)
    if hashlib.sha256(data).hexdigest() != record.read_text(encoding="utf-8").split()[0]:
        raise ValueError(f"the parts of {name}'s state do not match {record.name}: missing or damaged part")
    target = _cache_state(name)
    if target.is_file() and target.read_bytes() != data:
        import io

        import torch

        have = torch.load(target, map_location="cpu", weights_only=False).get("epoch", 0)
        packed = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False).get("epoch", 0)
        if have >= packed:
            raise ValueError(f"{target} is already at epoch {have} (the packed state: {packed}); left as it is")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("name", help="the model, e.g. ae-64")
    args = parser.parse_args(argv)
    try:
        if args.action == "pack":
            print("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in pack(args.name)))
        else:
            print(f"restored {unpack(args.name)}")
    except (FileNotFoundError, ValueError) as e:
        print(f"train_state: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""tools/train_state.py: a training state split into committable parts and restored byte for byte."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train_state", ROOT / "tools" / "train_state.py")
train_state = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_state)


def test_pack_and_unpack_round_trip_and_refuse_damage_or_older_states(tmp_path, monkeypatch, capsys):
    cache, folder = tmp_path / "cache" / "x.pt", tmp_path / "parts"
    monkeypatch.setattr(train_state, "FOLDER", folder)
    monkeypatch.setattr(train_state, "PART", 1000)
    monkeypatch.setattr(train_state, "_cache_state", lambda name: cache)
    cache.parent.mkdir()
    torch.save({"epoch": 3, "state": torch.arange(1000.0)}, cache)
    original = cache.read_bytes()
    parts = train_state.pack("x")
    assert len(parts) > 2 and all(p.stat().st_size <= 1000 for p in parts)
    cache.unlink()
    assert train_state.unpack("x") == cache and cache.read_bytes() == original
    torch.save({"epoch": 5, "state": torch.zeros(3)}, cache)  # a newer state in the cache is kept
    assert train_state.main(["unpack", "x"]) == 2 and "already at epoch 5" in capsys.readouterr().err
    parts[1].write_bytes(b"damaged")
    cache.unlink()
    assert train_state.main(["unpack", "x"]) == 2 and "do not match" in capsys.readouterr().err
    assert train_state.main(["pack", "x"]) == 2 and "no training state" in capsys.readouterr().err

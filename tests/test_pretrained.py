"""Shipped checkpoints: manifest, sha256 verification, safe loading, atomic saving, the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from prodgen.cli import main
from prodgen.models import registry
from prodgen.models.judge import Judge


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty checkpoint folder for this test."""
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(tmp_path / "ckpt"))
    return tmp_path / "ckpt"


def _tiny_judge():
    torch.manual_seed(0)
    return Judge(width=4)


def test_save_then_load_round_trip(store, monkeypatch):
    model = _tiny_judge()
    registry.save("judge", model, {"num_classes": model.num_classes, "width": 4}, metrics={"acc": 0.5})
    entry = registry.manifest()["judge"]
    assert entry["metrics"] == {"acc": 0.5} and len(entry["sha256"]) == 64
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded = registry.load("judge")
    assert calls == [True], "checkpoints must load with weights_only=True"
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert not loaded.training


def test_missing_corrupt_and_unknown(store):
    model = _tiny_judge()
    path = registry.save("judge", model, {"num_classes": model.num_classes, "width": 4})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt .*sha256"):
        registry.load("judge")
    assert not registry.available("judge")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        registry.load("judge")
    with pytest.raises(ValueError, match="unknown model 'nope'; shipped models: judge"):
        registry.load("nope")


def test_interrupted_save_leaves_nothing_behind(store, monkeypatch):
    model = _tiny_judge()
    registry.save("judge", model, {"num_classes": model.num_classes, "width": 4})
    before = {p.name: p.read_bytes() for p in store.iterdir()}

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        registry.save("judge", _tiny_judge(), {"num_classes": model.num_classes, "width": 4})
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before


def test_shipped_judge_is_intact_and_accurate():
    assert registry.available("judge"), "data/checkpoints/judge.pt is missing or corrupt"
    metrics = registry.manifest()["judge"]["metrics"]
    for attribute in ("category", "color", "size", "brand", "pattern"):
        assert metrics[f"test_{attribute}"] >= 0.98


def test_shipped_judge_64_reads_64px_photos_and_only_those(capsys):
    from prodgen.catalog import load_catalog
    from prodgen.models.judge import judge_accuracy

    spec = registry.spec("judge-64")
    assert spec.resolution == 64 and spec.family == "judge" and not spec.is_generator
    assert registry.available("judge-64"), "data/checkpoints/judge-64.pt is missing or corrupt"
    metrics = registry.manifest()["judge-64"]["metrics"]
    assert all(metrics[f"test_{a}"] >= 0.98 for a in ("category", "color", "size", "brand", "pattern"))
    judge = registry.load("judge-64")
    assert judge.resolution == 64 and registry.manifest()["judge-64"]["config"]["resolution"] == 64
    assert min(judge_accuracy(judge, load_catalog("test", n=100, size=64, progress=False)).values()) >= 0.97
    with pytest.raises(ValueError, match=r"this judge reads 64x64 images, got a batch of shape \(2, 3, 32, 32\)"):
        judge.predict(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="this judge reads 32x32 images"):
        registry.load("judge").embed(torch.zeros(2, 3, 64, 64))
    assert main(["evaluate", "judge-64", "--n", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["mean"] > 0.97


def test_cli_models_and_evaluate(capsys):
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "judge" in listed and "sha256" in listed["judge"]
    assert main(["evaluate", "judge", "--n", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test"]["mean"] > 0.95
    assert main(["evaluate", "judge", "--n", "2"]) == 2
    assert "at least 4" in capsys.readouterr().err


def test_cli_models_is_a_table_saying_how_to_ask_each_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[0]
    lines = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert lines["model"].split()[:3] == ["model", "lesson", "generate"]
    assert "--attrs" in lines["cgan-projection"] and "control 0.98" in lines["cgan-projection"]
    assert "--text" in lines["text2img"] and "text EN 0.98" in lines["text2img"]
    assert "--n only" in lines["dcgan"] and "(not a generator)" in lines["judge"]
    assert "(not a generator)" in lines["ssl-encoder"] and "linear probe 0.8" in lines["ssl-encoder"]
    assert "{" not in out  # no raw Python dicts

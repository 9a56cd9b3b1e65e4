"""Adding a model is one spec and one class (CONTRIBUTING.md, "Add a model"): a toy model registered here, with no
other module touched, appears in `prodgen models`, trains with `prodgen train toy`, generates with `prodgen generate
--model toy`, is measured by the leaderboard and offered by the studio; then it is removed again."""
from __future__ import annotations

import csv
import shutil

import pytest
import torch
from torch import nn

from prodgen import paths
from prodgen.cli import main
from prodgen.evaluation import leaderboard
from prodgen.models import registry
from prodgen.models.protocol import ImageModel
from prodgen.models.registry import ModelSpec

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


# ----------------------------------------------------------------------------- the toy model: a spec and a class
class ToyPainter(nn.Module):
    """Paints a plain square in the requested colour: one learnable RGB value per catalog colour."""

    def __init__(self):
        super().__init__()
        self.palette = nn.Parameter(torch.rand(10, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1)  # 10 x 3


class ToyModel(ImageModel):
    accepts = "attributes"

    def _latents(self, labels, generator, **knobs):
        return {"labels": labels, "jitter": torch.rand(len(labels), 1, 1, 1, generator=generator) * 0.1}

    def _decode(self, latents, noise=None, **knobs):
        colour = latents["labels"][:, 1].clamp(min=0)  # N; an open colour paints colour 0
        rgb = self.network.palette[colour].view(-1, 3, 1, 1)  # N x 3 x 1 x 1
        return (rgb + latents["jitter"]).clamp(-1, 1).expand(-1, 3, 32, 32)  # N x 3 x 32 x 32


def train_toy(name, fast=False, log=print, out=None):
    registry.save(name, ToyPainter(), {}, metrics={"painted": 1.0}, training={"fast": fast}, out=out)
    return {"painted": 1.0}


TOY = ModelSpec("toy", "toy", lambda config: ToyPainter(), train_toy, ToyModel, lesson=99, summary="a toy painter")


# ----------------------------------------------------------------------------- the test
@pytest.fixture
def private_checkpoints(tmp_path, monkeypatch):
    """The shipped judge and SSL encoder (the leaderboard's two feature spaces) in a checkpoint folder of the test's
    own (training the toy writes a manifest entry)."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shipped = paths.checkpoints_dir()
    manifest = registry.manifest()
    for name in ("judge", "ssl-encoder"):
        shutil.copy(shipped / manifest[name]["file"], folder / manifest[name]["file"])
    (folder / "manifest.json").write_text(__import__("json").dumps({k: manifest[k] for k in ("judge", "ssl-encoder")}))
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(folder))
    monkeypatch.setattr(leaderboard, "cache_folder", lambda: tmp_path / "rows")
    return folder


@pytest.mark.slow(seconds=40)
def test_a_toy_model_joins_every_tool_with_one_spec(private_checkpoints, tmp_path, capsys):
    with registry.registered(TOY):
        assert main(["models"]) == 0
        table = capsys.readouterr().out
        assert "toy" in table and "a toy painter" in table

        assert main(["train", "toy"]) == 0  # writes the shipped checkpoint and its manifest entry
        assert "saved toy" in capsys.readouterr().out
        assert registry.available("toy") and "toy" in registry.generators(shipped=True)

        out = tmp_path / "red"
        assert main(["generate", "--model", "toy", "--attrs", "color=red", "--n", "3", "--out", str(out)]) == 0
        with open(out / "metadata.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 3 and {r["color"] for r in rows} == {"red"} and {r["model"] for r in rows} == {"toy"}

        row = leaderboard.evaluate_all(["toy"], n=64)[0]
        assert row["model"] == "toy" and row["control_mean"] is not None and row["images_per_s"] > 0

        from prodgen.apps.studio import Studio

        studio = Studio()
        assert "toy" in studio.models
        assert "toy" in [value for _, value in studio.model.options]
    assert "toy" not in registry.generators() and "toy" not in [s.name for s in registry.specs()]
    with pytest.raises(ValueError, match="unknown model 'toy'"):
        registry.spec("toy")

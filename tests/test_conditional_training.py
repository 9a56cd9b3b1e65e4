"""`prodgen train` for the conditional models: each trainer runs its recipe end to end (fast=True: one epoch
on 1,024 products), saves atomically into the manifest and gives a loadable model. Quality is not asserted
here (one epoch); the shipped checkpoints' figures are tested in test_conditional.py."""
from __future__ import annotations

import json

import pytest

from prodgen.apps.generate import MODELS
from prodgen.models import registry

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # one_thread: conftest.py; slow: trains


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    """A private checkpoint folder holding only what the trainers need (judge and the text readers)."""
    from cli_helpers import shipped_subset

    return shipped_subset(tmp_path / "checkpoints", ("judge", "text-gru", "text-votes"), monkeypatch)


@pytest.mark.parametrize("name", ["cgan-projection", "cvae", "text2img", "text2img-embedding"])
def test_trainer_runs_and_registers_the_model(checkpoints, name):
    metrics = registry.train(name, fast=True, log=None)
    entry = registry.manifest()[name]
    assert entry["training"]["fast"] is True and entry["training"]["epochs_done"] == 1
    assert entry["metrics"] == json.loads(json.dumps(metrics))  # what was measured is what was recorded
    assert {"fid", "fid_floor", "precision", "recall"} <= set(metrics)
    if MODELS[name] == "text":
        assert {"test_en", "test_zh", "unseen_en", "unseen_zh", "new_phrasings"} <= set(metrics)
    else:
        assert 0.0 <= metrics["control"]["mean"] <= 1.0
    model = registry.load(name)  # sha256-verified, rebuilt from the recorded config
    assert model is not None
    assert not list(checkpoints.glob(".*.tmp")), "no temporary file may be left behind"


def test_unknown_training_setting_is_refused(checkpoints):
    from prodgen.models import cgan

    with pytest.raises(ValueError, match="unknown training setting"):
        cgan.train_checkpoint("cgan-projection", fast=True, log=None, learning_rate=1e-3)
    with pytest.raises(ValueError, match="deep=True is an option of the projection discriminator only"):
        cgan.train_checkpoint("cgan-concat", fast=True, log=None, deep=True)

"""Every attribute must be visible at 32x32: a small CNN trained on >= 10k catalog images
reads each attribute on held-out test images with >= 98 % accuracy (DESIGN.md section 2)."""
from __future__ import annotations

import pytest

from prodgen.catalog import ATTRIBUTE_NAMES, load_catalog
from prodgen.models.judge import fit_judge, judge_accuracy


@pytest.mark.slow(seconds=80)  # trains a CNN for 4 epochs on 10k images (seconds: conftest.py starts it first)
def test_each_attribute_is_identifiable_at_32px():
    train = load_catalog("train", size=32, progress=False).subset(range(10_000))
    test = load_catalog("test", size=32, progress=False)
    judge = fit_judge(train, epochs=4, seed=0)
    accuracy = judge_accuracy(judge, test)
    print({a: round(v, 4) for a, v in accuracy.items()})
    for attribute in ATTRIBUTE_NAMES:
        assert accuracy[attribute] >= 0.98, f"{attribute}: {accuracy[attribute]:.3f} < 0.98 on held-out images"

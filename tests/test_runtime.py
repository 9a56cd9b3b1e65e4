"""The lessons' runtime set-up: the course-wide CPU thread count (issue 23) and bad input."""
from __future__ import annotations

import pytest
import torch

from prodgen.engine import runtime


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (4, 2), (8, 4), (64, 4), (None, 1)])
def test_auto_threads_are_half_the_cores_at_most_four(monkeypatch, cores, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: cores)
    assert runtime.pick_threads("auto") == expected


def test_omp_num_threads_is_respected_and_numbers_are_used_as_given(monkeypatch, restore_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)
    assert runtime.pick_threads() == 3
    assert runtime.pick_threads(2) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two"])
def test_bad_threads_are_refused(bad):
    with pytest.raises(ValueError, match="threads must be 'auto' or a whole number >= 1"):
        runtime.pick_threads(bad)


def test_setup_sets_the_threads_and_says_so(capsys, restore_threads):
    device = runtime.setup(0, "cpu", threads=1)
    assert device.type == "cpu" and torch.get_num_threads() == 1
    assert "| 1 CPU thread (of " in capsys.readouterr().out

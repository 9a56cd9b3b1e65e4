"""The machine a lesson runs on: device choice, CPU threads, seeding and versions.

Every lesson's setup cell calls :func:`setup` (which also sets the course's CPU thread count, :func:`pick_threads`);
lesson 00 shows :func:`environment`;
``prodgen doctor``'s health check (``prodgen.course.doctor.diagnose``) reports it.
"""
from __future__ import annotations

import os
import platform
import random
import warnings
from importlib import metadata

__all__ = ["pick_device", "pick_threads", "seed_everything", "setup", "environment"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(preference: str = "auto"):
    """``auto`` picks cuda, then mps, then cpu; asking for one that is missing warns and uses the CPU."""
    import torch

    if preference not in DEVICES and not str(preference).startswith("cuda:"):
        raise ValueError(f"unknown device {preference!r}; valid devices: {', '.join(DEVICES)}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": has_mps}
    if not available.get(str(preference).split(":")[0], False):
        warnings.warn(f"device {preference!r} is not available on this machine; using the CPU instead "
                      "(everything in the course runs on a CPU, only slower)", stacklevel=2)
        return torch.device("cpu")
    return torch.device(preference)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (same seed, same device -> same numbers)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_threads(threads="auto") -> int:
    """The CPU threads torch computes with in the course: ``"auto"`` is half the cores, at least 1 and at most 4
    (1 on the 2-core machines the course's timings assume), unless ``OMP_NUM_THREADS`` is set (then torch's own
    count, which follows it); a whole number >= 1 is used as given.

    Why half the cores: the course's networks are small, so each step is many short operations and the threads
    of one operation wait for each other at its end. When other programs use the cores too (another notebook, a
    browser, a test run), a thread that is not scheduled holds all the others up. Measured on 2 busy cores
    (``benchmarks/threads.py``, ``data/results/threads.json``: load average 5-8 from other programs; 3 blocks of 20
    steps each), lesson 05's cGAN step took 0.14-0.23 s with one thread and 3.4-4.1 s with two (16x slower, medians);
    lesson 11's U-Net step 0.6-1.7 s with one and 3.6-9.6 s with two (7x). On a quiet machine two threads are
    faster, but by far less (the earlier committed outputs of lessons 10 and 12 ran the same 600-step recipe in 94 s
    with one thread and 61 s with two): one thread costs at most that when the machine is free and avoids a 7-16x
    slowdown when it is not. Lessons do not set threads themselves."""
    import torch

    if threads == "auto":
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        return max(1, min(4, (os.cpu_count() or 1) // 2))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be 'auto' or a whole number >= 1, got {threads!r}")
    return threads


def setup(seed: int = 0, device: str = "auto", threads="auto"):
    """A lesson's setup: seed everything, pick the device, set the course's CPU thread count
    (:func:`pick_threads`), say what was picked. Returns the device. Used by every lesson's setup cell."""
    n = pick_threads(threads)
    seed_everything(seed)
    dev = pick_device(device)
    import torch

    torch.set_num_threads(n)
    print(f"device: {dev} | torch {torch.__version__} | {n} CPU thread{'s' if n > 1 else ''} "
          f"(of {os.cpu_count()} cores) | seed {seed}")
    return dev


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict:
    """Versions, device and threads, as a dict (lesson 00, ``prodgen doctor``)."""
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in ("prodgen", "torch", "numpy", "pillow", "matplotlib", "ipywidgets", "jupyterlab", "papermill", "nbval"):
        info[pkg] = _version(pkg)
    info["device"] = str(pick_device("auto"))
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["cpu_cores"] = os.cpu_count()
    info["torch_threads"] = torch.get_num_threads()
    info["bf16_cpu"] = _cpu_has_bf16()
    return info


def _cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False

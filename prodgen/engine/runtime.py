"""The machine a lesson runs on: device choice, seeding and versions.

Every lesson's setup cell calls :func:`setup`; lesson 00 shows :func:`environment`;
``prodgen doctor``'s health check (``prodgen.course.doctor.diagnose``) reports it.
"""
from __future__ import annotations

import os
import platform
import random
import warnings
from importlib import metadata

__all__ = ["pick_device", "seed_everything", "setup", "environment"]

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


def setup(seed: int = 0, device: str = "auto"):
    """A lesson's setup: seed everything, pick the device, say what was picked. Returns the device."""
    seed_everything(seed)
    dev = pick_device(device)
    import torch

    print(f"device: {dev} | torch {torch.__version__} | {torch.get_num_threads()} CPU threads | seed {seed}")
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

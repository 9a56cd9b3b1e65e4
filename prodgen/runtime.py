"""The machine a lesson runs on: device choice, seeding, versions, and a health check.

Every lesson's setup cell calls :func:`setup`; lesson 00 shows :func:`environment`;
``prodgen doctor`` runs :func:`diagnose`.
"""
from __future__ import annotations

import os
import platform
import random
import warnings
from dataclasses import dataclass
from importlib import metadata

__all__ = ["pick_device", "seed_everything", "setup", "environment", "diagnose", "Finding"]

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


@dataclass
class Finding:
    """One line of ``prodgen doctor``: what was checked, whether it is fine, and the fix."""

    item: str
    ok: bool
    detail: str
    fix: str = ""


def diagnose() -> list[Finding]:
    """Check the installation: packages, device, the catalog cache, shipped checkpoints."""
    findings = []
    env = environment()
    for pkg in ("torch", "numpy", "pillow", "matplotlib", "ipywidgets", "jupyterlab", "papermill"):
        ok = env[pkg] != "not installed"
        findings.append(Finding(pkg, ok, env[pkg], "" if ok else "pip install -e . (from the course folder)"))
    for pkg in ("nbval",):
        findings.append(Finding(pkg, True, env[pkg] + ("" if env[pkg] != "not installed" else " (only for tests: pip install -e '.[dev]')")))
    findings.append(Finding("device", True, f"{env['device']}" + (f" ({env['gpu']})" if "gpu" in env else "")
                            + f", {env['cpu_cores']} cores, {env['torch_threads']} torch threads"))
    findings.append(_catalog_finding())
    findings.append(_checkpoints_finding())
    return findings


def _catalog_finding() -> Finding:
    from .catalog.dataset import DEFAULT_N, _cached, _load_npz

    missing = []
    for split in ("train", "val", "test", "unseen"):
        hit = _cached(split, DEFAULT_N[split], 32, 0)
        if hit is None:
            missing.append(split)
            continue
        try:
            arrays = _load_npz(hit[0], DEFAULT_N[split])
            assert arrays["images"].shape[1:] == (3, 32, 32) and len(arrays["images"]) == DEFAULT_N[split]
        except Exception:
            missing.append(f"{split} (damaged)")
    if missing:
        return Finding("catalog cache", False, "missing: " + ", ".join(missing),
                       "prodgen data build   (renders the default catalog once, about a minute)")
    from .paths import cache_dir

    return Finding("catalog cache", True, f"train/val/test/unseen at 32 px in {cache_dir()}")


def _checkpoints_finding() -> Finding:
    from . import pretrained

    shipped = pretrained.names()
    if not shipped:
        return Finding("checkpoints", True, "none shipped yet")
    bad = []
    for name in shipped:
        try:
            pretrained.verify(name)
        except (ValueError, FileNotFoundError) as e:
            bad.append(str(e).split(":")[0])
    if bad:
        return Finding("checkpoints", False, "; ".join(bad), "git checkout -- data/checkpoints  (restore the shipped files)")
    return Finding("checkpoints", True, f"{len(shipped)} shipped ({', '.join(shipped)}), all sha256 verified")

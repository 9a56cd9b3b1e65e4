"""``prodgen doctor``: is the installation ready for the course? Packages, device, the catalog cache and the
shipped checkpoints, one finding each with the fix (tooling; lesson 00 shows the same environment facts)."""
from __future__ import annotations

from dataclasses import dataclass

from prodgen.engine.runtime import environment

__all__ = ["Finding", "diagnose"]


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
    from prodgen.catalog.dataset import DEFAULT_N, _cached, _load_npz

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
    from prodgen.paths import cache_dir

    return Finding("catalog cache", True, f"train/val/test/unseen at 32 px in {cache_dir()}")


def _checkpoints_finding() -> Finding:
    from prodgen.models import registry

    shipped = registry.names()
    if not shipped:
        return Finding("checkpoints", True, "none shipped yet")
    bad = []
    for name in shipped:
        try:
            registry.verify(name)
        except (ValueError, FileNotFoundError) as e:
            bad.append(str(e).split(":")[0])
    if bad:
        return Finding("checkpoints", False, "; ".join(bad), "git checkout -- data/checkpoints  (restore the shipped files)")
    return Finding("checkpoints", True, f"{len(shipped)} shipped ({', '.join(shipped)}), all sha256 verified")

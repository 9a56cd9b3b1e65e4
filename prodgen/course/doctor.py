"""``prodgen doctor``: is the installation ready for the course? Packages, device, the catalog cache, the
shipped checkpoints and drift from the tested versions in requirements-lock.txt, one finding each with the fix
(tooling; lesson 00 shows the same environment facts)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prodgen.engine.runtime import environment

__all__ = ["Drift", "Finding", "SENSITIVE", "course_lock", "diagnose", "lock_drift", "read_lock"]


# Packages whose drift from the lock is known to matter for the course: (version parts that must match, why).
# Only what is known; any other drift is reported as "not known to matter".
SENSITIVE = {
    "torch": (2, "the shipped checkpoints' metrics and the lessons' figures were measured with this release; "
                 "kernels and so numerics change between minor releases"),
    "numpy": (1, "numpy 2 changed type promotion (NEP 50) and how scalars print"),
    "nbformat": (1, "reads and writes the lessons (prodgen course build/run/grade)"),
    "nbval": (2, "checks the lessons' outputs in the test suite (0.x: minor releases may break)"),
    "papermill": (1, "executes the lessons headless (prodgen course run/grade)"),
    "ipywidgets": (1, "widget rendering: kernel and browser sides must share a major version"),
    "jupyterlab-widgets": (1, "widget rendering in JupyterLab: must match ipywidgets' major version"),
    "jupyterlab": (1, "widget rendering and the lessons' front end"),
}


@dataclass
class Finding:
    """One line of ``prodgen doctor``: what was checked, whether it is fine, and the fix."""

    item: str
    ok: bool
    detail: str
    fix: str = ""


def diagnose(lock=None) -> list[Finding]:
    """Check the installation: packages, device, the catalog cache, shipped checkpoints, drift from the lock
    (``lock``: a requirements-lock.txt; default: the course folder's, skipped when there is none)."""
    findings = []
    env = environment()
    for pkg in ("torch", "numpy", "pillow", "matplotlib", "ipywidgets", "jupyterlab", "papermill"):
        ok = env[pkg] != "not installed"
        fix = "pip install -r requirements-lock.txt && pip install --no-deps -e . (from the course folder)"
        findings.append(Finding(pkg, ok, env[pkg], "" if ok else fix))
    for pkg in ("nbval",):
        note = " (only for tests: pip install -r requirements-lock.txt)" if env[pkg] == "not installed" else ""
        findings.append(Finding(pkg, True, env[pkg] + note))
    findings.append(Finding("device", True, f"{env['device']}" + (f" ({env['gpu']})" if "gpu" in env else "")
                            + f", {env['cpu_cores']} cores, {env['torch_threads']} torch threads"))
    findings.append(_catalog_finding())
    findings.append(_checkpoints_finding())
    if lock is not None or course_lock().exists():
        findings.extend(_lock_findings(course_lock() if lock is None else Path(lock)))
    else:
        findings.append(Finding("lock", True, "no requirements-lock.txt beside the package: drift not checked"))
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

    try:
        shipped = registry.names()
    except ValueError as e:  # a malformed manifest.json: one finding naming the entry, not a traceback
        return Finding("checkpoints", False, str(e), "git checkout -- data/checkpoints/manifest.json")
    if not shipped:
        return Finding("checkpoints", True, "none shipped yet")
    bad = []
    for name in shipped:
        try:
            registry.verify(name)
        except (ValueError, FileNotFoundError) as e:
            bad.append(str(e).split(":")[0])
    if bad:
        return Finding("checkpoints", False, "; ".join(bad),
                       "git checkout -- data/checkpoints  (restore the shipped files)")
    return Finding("checkpoints", True, f"{len(shipped)} shipped ({', '.join(shipped)}), all sha256 verified")


@dataclass
class Drift:
    """One package whose installed version is not the locked one (``installed`` None: not installed)."""

    name: str
    locked: str
    installed: str | None
    matters: str = ""  # why it is known to matter; "" = not known to matter


def read_lock(path) -> dict[str, str]:
    """The lock's pins that apply to this interpreter and platform, {normalised name: version}."""
    from packaging.markers import InvalidMarker, Marker

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FileNotFoundError(f"cannot read the lock {path}: {getattr(e, 'strerror', None) or e}") from None
    pins = {}
    for no, line in enumerate(lines, 1):
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith(("#", "-")):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?", text)
        try:
            applies = m is not None and (m[3] is None or Marker(m[3]).evaluate())
        except InvalidMarker:
            m = None
        if m is None:
            raise ValueError(f"{path.name} line {no}: expected name==version [; marker], got {text[:60]!r}")
        if applies:
            pins[_norm(m[1])] = m[2]
    if not pins:
        raise ValueError(f"{path.name}: no name==version pins in it (regenerate it with tools/lock.sh)")
    return pins


def course_lock() -> Path:
    """The course folder's requirements-lock.txt (beside the ``prodgen`` package in an editable install)."""
    import prodgen

    return Path(prodgen.__file__).resolve().parents[1] / "requirements-lock.txt"


def lock_drift(path, installed: dict[str, str] | None = None) -> list[Drift]:
    """Packages whose installed version differs from the lock, or that are missing. ``installed`` defaults to
    this environment; a local build label (2.13.0+cpu) matches its release (2.13.0)."""
    from packaging.version import InvalidVersion, Version

    pins = read_lock(path)
    if installed is None:
        from importlib.metadata import distributions

        installed = {_norm(d.metadata["Name"] or ""): d.version for d in distributions()}
    else:
        installed = {_norm(k): v for k, v in installed.items()}
    drift = []
    for name, locked in sorted(pins.items()):
        have = installed.get(name)
        try:
            same = have is not None and Version(have).public == Version(locked).public
            lv, hv = Version(locked).release, (Version(have).release if have else ())
        except InvalidVersion:
            same, lv, hv = have == locked, (), ()
        if same:
            continue
        parts, why = SENSITIVE.get(name, (0, ""))
        drift.append(Drift(name, locked, have, why if have is None or lv[:parts] != hv[:parts] else ""))
    return drift


def _lock_findings(path) -> list[Finding]:
    """``prodgen doctor``'s lines on the lock: one FIX per installed version whose drift is known to matter, then
    one summary (other drift, missing packages)."""
    try:
        n_pins = len(read_lock(path))
        drift = lock_drift(path)
    except (ValueError, FileNotFoundError) as e:
        return [Finding("lock", False, str(e), "git checkout -- requirements-lock.txt  (or regenerate: tools/lock.sh)")]
    cpu = "  (CPU-only: add --index-url https://download.pytorch.org/whl/cpu)"
    out = [Finding(d.name, False, f"{d.installed}, the lock has {d.locked}: {d.matters}",
                   f"pip install {d.name}=={d.locked}" + (cpu if d.name == "torch" else ""))
           for d in drift if d.installed and d.matters]
    detail = f"{n_pins - len(drift)} of {n_pins} packages as in {Path(path).name}"
    other = [f"{d.name} {d.installed} (lock {d.locked})" for d in drift if d.installed and not d.matters]
    missing = [f"{d.name} {d.locked}" for d in drift if not d.installed]
    if other:
        detail += "; differ, not known to matter: " + ", ".join(other)
    if missing:
        detail += "; missing: " + ", ".join(missing) + " (pip install -r requirements-lock.txt)"
    return out + [Finding("lock", True, detail)]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

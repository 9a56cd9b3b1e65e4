"""``prodgen bench``: the speed figures the README quotes, measured on this machine.

- catalog rendering throughput (images/s) at 32, 64 and 128 px, all CPU cores;
- the first build of the default training split (20k images at 32 px) into an empty cache;
- loading that split again from the cache.

The build runs in a temporary cache folder, so the user's cache is never touched.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from contextlib import contextmanager

__all__ = ["run_benchmarks", "format_report"]


@contextmanager
def _temporary_cache():
    old = os.environ.get("PRODGEN_CACHE")
    with tempfile.TemporaryDirectory(prefix="prodgen-bench-") as tmp:
        os.environ["PRODGEN_CACHE"] = tmp
        try:
            yield tmp
        finally:
            if old is None:
                os.environ.pop("PRODGEN_CACHE", None)
            else:
                os.environ["PRODGEN_CACHE"] = old


def run_benchmarks(quick: bool = False, log=print) -> dict:
    """Run the benchmarks and return their figures as a JSON-ready dict."""
    import torch

    from .catalog import DEFAULT_N, load_catalog, render_catalog

    report = {
        "machine": {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "render_images_per_s": {},
    }
    render_catalog("train", 64, 32)  # warm-up: imports, worker start-up
    for size, n in ((32, 4000), (64, 1000), (128, 300)):
        start = time.perf_counter()
        render_catalog("val", n, size)
        rate = n / (time.perf_counter() - start)
        report["render_images_per_s"][str(size)] = round(rate, 1)
        log(f"render {size:>3} px: {rate:8.1f} images/s ({n} images)")

    n_train = 2000 if quick else DEFAULT_N["train"]
    with _temporary_cache():
        start = time.perf_counter()
        load_catalog("train", n=n_train, progress=False)
        build = time.perf_counter() - start
        loads = []
        for _ in range(3):
            start = time.perf_counter()
            cat = load_catalog("train", n=n_train, progress=False)
            loads.append(time.perf_counter() - start)
        assert len(cat) == n_train
    report["first_build"] = {"split": "train", "n": n_train, "size": 32, "seconds": round(build, 2)}
    report["cached_load"] = {"split": "train", "n": n_train, "size": 32, "seconds": round(min(loads), 3)}
    log(f"first build of train ({n_train} images, 32 px): {build:.1f} s")
    log(f"cached load of train ({n_train} images): {min(loads):.3f} s (best of 3)")
    return report


def format_report(report: dict) -> str:
    """The report as a small table."""
    m = report["machine"]
    lines = [f"machine: {m['cpu_cores']} cores, {m['torch_threads']} torch threads, Python {m['python']}, torch {m['torch']}",
             "", f"{'measurement':<44}{'figure':>14}"]
    for size, rate in report["render_images_per_s"].items():
        lines.append(f"{'catalog rendering, ' + size + ' px':<44}{rate:>10.0f} img/s")
    fb, cl = report["first_build"], report["cached_load"]
    lines.append(f"{'first build, ' + fb['split'] + ' split (' + str(fb['n']) + ' images)':<44}{fb['seconds']:>12.1f} s")
    lines.append(f"{'cached load, ' + cl['split'] + ' split (' + str(cl['n']) + ' images)':<44}{cl['seconds']:>12.3f} s")
    return "\n".join(lines)

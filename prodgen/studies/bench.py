"""``prodgen bench``: the speed figures the README quotes, measured on this machine.

- catalog rendering throughput (images/s) at 32, 64 and 128 px, all CPU cores;
- the first build of the default training split (20k images at 32 px) into an empty cache;
- loading that split again from the cache;
- the training engine (``prodgen.engine.train``) on the CPU: its cost over a bare loop, and its default
  path (channels_last, the precision ``"auto"`` picks) against a plain fp32 NCHW loop;
- the Product Studio (lesson 09): a grid of 16 from each shipped GAN, click to picture;
- diffusion and flow sampling (lessons 11, 13): images/s of every shipped generator that samples in steps (a
  ``steps`` knob), at its default steps and guidance, for 16 images and for a batch of 64
  (``prodgen bench --only sampling``);
- batches across requests (``prodgen bench --only batching``): ``prodgen generate --batch`` with 960 single-image
  rows against one 960-image request, with diffusion and a cGAN (the rows share batches, each with its own seed).

The build runs in a temporary cache folder, so the user's cache is never touched.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from contextlib import contextmanager

__all__ = ["PARTS", "run_benchmarks", "sampling_benchmark", "batching_benchmark", "format_report"]

PARTS = ("render", "build", "engine", "studio", "sampling", "batching")
"""What ``prodgen bench --only PART`` can run on its own."""


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


def run_benchmarks(quick: bool = False, log=print, only: str | None = None) -> dict:
    """Run the benchmarks (all, or ``only`` one of :data:`PARTS`) and return their figures as a JSON-ready dict."""
    import torch

    from prodgen.catalog import DEFAULT_N, load_catalog, render_catalog

    if only is not None and only not in PARTS:
        raise ValueError(f"unknown benchmark {only!r}; valid: {', '.join(PARTS)}")
    report = {
        "machine": {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "render_images_per_s": {},
    }
    if only == "sampling":
        report["sampling"] = sampling_benchmark(rounds=1 if quick else 5, log=log, quick=quick)
        return report
    if only == "studio":
        report["studio"] = studio_benchmark(rounds=2 if quick else 7, log=log)
        return report
    if only == "batching":
        report["batching"] = batching_benchmark(n=64 if quick else 960, knobs={"steps": 2} if quick else None, log=log)
        return report
    if only == "engine":
        report["engine"] = engine_benchmark(load_catalog("train", n=2000 if quick else None, progress=False),
                                            quick=quick, log=log)
        return report
    render_catalog("train", 64, 32)  # warm-up: imports, worker start-up
    for size, n in ((32, 1000), (64, 250), (128, 80)) if quick else ((32, 4000), (64, 1000), (128, 300)):
        start = time.perf_counter()
        render_catalog("val", n, size)
        rate = n / (time.perf_counter() - start)
        report["render_images_per_s"][str(size)] = round(rate, 1)
        log(f"render {size:>3} px: {rate:8.1f} images/s ({n} images)")

    if only == "render":
        return report
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
    if only == "build":
        return report
    report["engine"] = engine_benchmark(cat, quick=quick, log=log)
    report["studio"] = studio_benchmark(rounds=2 if quick else 7, log=log)
    report["sampling"] = sampling_benchmark(rounds=1 if quick else 5, log=log, quick=quick)
    return report


# ----------------------------------------------------------------------------- sampling in steps (lessons 11, 13)
def sampling_benchmark(rounds: int = 5, log=print, quick: bool = False) -> dict | None:
    """Images/s of every shipped generator that samples in steps (a ``steps`` knob: the diffusion and flow models,
    ``flow-fast`` with its guidance distilled in), at its default steps and guidance: 16 images (one request, as
    ``prodgen generate --n 16``) and a batch of 64 balanced requests; best of ``rounds`` timed calls after a
    warm-up call. None if no such model is shipped. ``quick``: the 16 images only, after a warm-up of one image (a
    check that it runs; rough figures)."""
    import torch

    from prodgen.models import registry
    from prodgen.models.condition import balanced_requests, request_to_dict

    result = {}
    for name in registry.generators(shipped=True):
        model = registry.load_generator(name)
        if "steps" not in model.knobs or not model.reads_attributes:
            continue
        defaults = {k: knob.default for k, knob in model.knobs.items() if k in ("guidance", "steps")}
        figures = {}
        cases = [("16", [request_to_dict(balanced_requests(1, 0)[0])] * 16), ("64", balanced_requests(64, 0))]
        for label, requests in cases[:1] if quick else cases:
            model.generate(requests[:1] if quick else requests, seed=0)  # warm-up
            times = []
            for seed in range(1, rounds + 1):
                start = time.perf_counter()
                model.generate(requests, seed=seed)
                times.append(time.perf_counter() - start)
            figures[label] = {"seconds": round(min(times), 3), "images_per_s": round(len(requests) / min(times), 1)}
        result[name] = {**defaults, "threads": torch.get_num_threads(), **figures}
        batch = f"; batch of 64: {figures['64']['images_per_s']:.1f} img/s" if "64" in figures else ""
        log(f"sampling {name} ({defaults}): 16 images in {figures['16']['seconds']:.2f} s "
            f"({figures['16']['images_per_s']:.1f} img/s){batch} (best of {rounds})")
    return result or None


# ----------------------------------------------------------------------------- the studio (lesson 09)
def _timed_catalog(model, rows, out, knobs) -> float:
    """Seconds ``generate_catalog`` takes for ``rows`` into the new folder ``out``."""
    from prodgen.apps.generate import generate_catalog

    start = time.perf_counter()
    generate_catalog(model, rows, out, seed=0, knobs=knobs)
    return time.perf_counter() - start


def batching_benchmark(n: int = 960, models=("diffusion", "cgan-projection"), knobs: dict | None = None,
                       per_row: int = 32, log=print) -> dict | None:
    """Seconds for ``generate_catalog`` (what ``prodgen generate`` runs, PNGs and metadata included) with ``n``
    single-image rows of balanced requests (seeds ``0 .. n - 1``), and with one request for ``n`` images, per shipped
    model of ``models``; ``knobs`` apply to models that have them (e.g. ``{"steps": 5}``). Also the rows sent one
    per model call (the old way) for the first ``per_row`` rows, as images/s. After a warm-up of 8 images.
    The figures go with ``torch.get_num_threads()``; run it with ``OMP_NUM_THREADS=2`` for the README's 2 cores."""
    import tempfile
    from pathlib import Path
    from unittest import mock

    import torch

    from prodgen.apps import generate as app
    from prodgen.models import registry
    from prodgen.models.condition import balanced_requests, request_to_dict
    from prodgen.models.protocol import Request

    result = {}
    for name in [m for m in models if registry.available(m)]:
        model = registry.load_generator(name)
        settings = {k: v for k, v in (knobs or {}).items() if k in model.knobs}
        requests = [Request(request_to_dict(row, model.schema)) for row in balanced_requests(n, 0, schema=model.schema)]
        model.generate(requests[:8], seed=0, **settings)  # warm-up: allocations, kernel choice
        with tempfile.TemporaryDirectory(prefix="prodgen-bench-") as tmp:
            one = _timed_catalog(model, [app.Row(requests[0], n)], Path(tmp) / "one", settings)
            rows = _timed_catalog(model, [app.Row(r) for r in requests], Path(tmp) / "rows", settings)
            with mock.patch.object(app, "BATCH_IMAGES", 1):  # one model call per row, as before batching
                single = _timed_catalog(model, [app.Row(r) for r in requests[:per_row]], Path(tmp) / "single",
                                        settings)
        result[name] = {"images": n, **settings, "threads": torch.get_num_threads(),
                        "one_request_s": round(one, 2), "rows_s": round(rows, 2), "ratio": round(rows / one, 3),
                        "row_per_call_images_per_s": round(per_row / single, 1)}
        log(f"batching {name} {settings or ''}: {n} single-image rows {rows:.1f} s, one {n}-image request "
            f"{one:.1f} s (x{rows / one:.2f}); rows one call each: {per_row / single:.1f} img/s "
            f"vs {n / rows:.1f} img/s batched")
    return result or None


def studio_benchmark(rounds: int = 7, log=print) -> dict | None:
    """Seconds from the Generate click to the grid PNG in the Product Studio, for a grid of 16 from every
    shipped GAN (a generator with a truncation knob), after a first call; median of ``rounds`` clicks with
    new seeds. The browser then only has to show a PNG of a few tens of KB. None without ipywidgets."""
    import importlib.util
    import statistics

    from prodgen.models import registry

    if importlib.util.find_spec("ipywidgets") is None:
        return None
    from prodgen.apps.studio import Studio

    result = {}
    for name in registry.generators(shipped=True):
        studio = Studio(models=[name], editors=[])
        if "truncation" not in studio.generator().knobs:
            continue
        studio.count.value = 16
        studio.description.value = "a large red striped mug by Acme"  # read only by text models
        studio.on_generate()  # the first call (lazy imports, allocator warm-up)
        times = []
        for seed in range(1, rounds + 1):
            studio.seed.value = seed
            studio.generate_button.click()
            times.append(studio.last_seconds)
        result[name] = round(statistics.median(times), 3)
        log(f"studio grid of 16 from {name}: {result[name]:.3f} s (median of {rounds} clicks)")
    return {"grid": 16, "rounds": rounds, "seconds": result}


# ----------------------------------------------------------------------------- the training engine
def _examples_style_loop(g, d, catalog, batch_size: int) -> None:
    """A plain fp32 NCHW loop in the style of pytorch/examples' dcgan/main.py: a per-item DataLoader,
    sigmoid + BCELoss, separate backward passes for real and fake, ``.item()`` every step."""
    import torch
    from torch import nn

    loader = torch.utils.data.DataLoader(catalog, batch_size=batch_size, shuffle=True, drop_last=True)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    for real, _ in loader:
        b = real.size(0)
        d.zero_grad()
        label = torch.full((b,), 1.0)
        err_d_real = criterion(torch.sigmoid(d(real)), label)
        err_d_real.backward()
        fake = g(torch.randn(b, g.z_dim))
        label.fill_(0.0)
        err_d_fake = criterion(torch.sigmoid(d(fake.detach())), label)
        err_d_fake.backward()
        opt_d.step()
        g.zero_grad()
        label.fill_(1.0)
        err_g = criterion(torch.sigmoid(d(fake)), label)
        err_g.backward()
        opt_g.step()
        _ = (err_d_real.item() + err_d_fake.item(), err_g.item())


def _bare_loop(g, d, catalog, batch_size: int, precision: str) -> None:
    """The engine's computation written out with no bookkeeping: the same layout, precision and step."""
    import torch
    from torch.nn import functional as F

    from prodgen.engine.train import autocast_for

    cl = torch.channels_last
    g.to(memory_format=cl)
    d.to(memory_format=cl)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    for real, _ in catalog.batches(batch_size, shuffle=True, generator=gen, drop_last=True):
        real = real.contiguous(memory_format=cl)
        with autocast_for("cpu", precision):
            fake = g(torch.randn(len(real), g.z_dim))
            loss_d = F.softplus(-d(real).float()).mean() + F.softplus(d(fake.detach()).float()).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast_for("cpu", precision):
            loss_g = F.softplus(-d(fake).float()).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()


def engine_benchmark(catalog=None, quick: bool = False, log=print) -> dict:
    """``prodgen.engine.train.train_gan`` on the CPU against a bare loop of the same computation, and its default
    path against a plain fp32 NCHW loop in the style of pytorch/examples' DCGAN (same model, same batch).

    The variants run interleaved, in a rotating order, for several rounds after a warm-up round, and each
    figure is a variant's best round: work of other programs only ever adds time. (On a machine with more
    busy threads than cores, PyTorch's OpenMP threads wait for each other and everything slows down
    unevenly; the median of the per-round ratios is reported too, to show how much that happened.)
    """
    import statistics

    from prodgen.catalog import load_catalog
    from prodgen.engine.train import GANSettings, Progress, resolve_precision, train_gan
    from prodgen.models.dcgan import build_pair

    width, batch, steps, rounds = (64, 128, 1, 1) if quick else (64, 128, 4, 6)  # quick: a check that it runs
    n = batch * steps
    if catalog is None or len(catalog) < n:
        catalog = load_catalog("train", n=n, cache=False, progress=False)
    catalog = catalog.subset(range(n))
    default = resolve_precision("auto", "cpu")
    other = "fp32" if default == "bf16" else "bf16"

    def engine(precision):
        return lambda g, d: train_gan(g, d, catalog, epochs=1, batch_size=batch, device="cpu",
                                      settings=GANSettings(precision=precision), callbacks=[Progress(False)])

    variants = {
        "engine": engine("auto"),
        "bare": lambda g, d: _bare_loop(g, d, catalog, batch, default),
        "examples_fp32_nchw": lambda g, d: _examples_style_loop(g, d, catalog, batch),
        f"engine_{other}": engine(other),
    }
    times = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds + 1):  # round 0 warms up (oneDNN builds its kernels on first use)
        for k in names[r % len(names):] + names[:r % len(names)]:
            g, d = build_pair(100, width, 32, seed=0)
            start = time.perf_counter()
            variants[k](g, d)
            if r:
                times[k].append(time.perf_counter() - start)
    # Best of the rounds: other work on the machine only ever adds time, so each variant's fastest round is
    # the closest to its real cost; the median of the per-round ratios is reported beside it.
    ratio = lambda a, b: min(times[a]) / min(times[b])  # noqa: E731
    median_ratio = lambda a, b: statistics.median(x / y for x, y in zip(times[a], times[b]))  # noqa: E731
    rate = {k: round(n / min(v), 1) for k, v in times.items()}
    result = {
        "model": f"DCGAN width {width}, 32 px", "batch_size": batch, "steps_per_run": steps, "rounds": rounds,
        "default_precision": default, "default_layout": "channels_last",
        "precision_rule": "bf16 autocast on CPUs with native bf16 (AVX512-BF16 or AMX); fp32 otherwise",
        "images_per_s": rate,
        "engine_over_bare": round(ratio("engine", "bare"), 3),
        "speedup_vs_examples": round(ratio("examples_fp32_nchw", "engine"), 3),
        f"{other}_vs_default": round(ratio("engine", f"engine_{other}"), 3),
        "median_round_ratios": {"engine_over_bare": round(median_ratio("engine", "bare"), 3),
                                "speedup_vs_examples": round(median_ratio("examples_fp32_nchw", "engine"), 3)},
    }
    log(f"engine ({result['model']}, batch {batch}): default path {default} + channels_last, "
        f"{rate['engine']:.0f} img/s; engine/bare {result['engine_over_bare']:.3f}; "
        f"speed-up over a pytorch/examples-style fp32 NCHW loop {result['speedup_vs_examples']:.2f}x; "
        f"{'bf16 autocast' if other == 'bf16' else 'plain fp32'} runs at {result[f'{other}_vs_default']:.2f}x the "
        f"default")
    return result


def format_report(report: dict) -> str:
    """The report as a small table."""
    m = report["machine"]
    lines = [f"machine: {m['cpu_cores']} cores, {m['torch_threads']} torch threads, Python {m['python']}, torch "
             f"{m['torch']}",
             "", f"{'measurement':<44}{'figure':>14}"]
    for size, rate in report["render_images_per_s"].items():
        lines.append(f"{'catalog rendering, ' + size + ' px':<44}{rate:>10.0f} img/s")
    fb, cl = report.get("first_build"), report.get("cached_load")
    if fb:
        first = f"first build, {fb['split']} split ({fb['n']} images)"
        cached = f"cached load, {cl['split']} split ({cl['n']} images)"
        lines.append(f"{first:<44}{fb['seconds']:>12.1f} s")
        lines.append(f"{cached:<44}{cl['seconds']:>12.3f} s")
    e = report.get("engine")
    if e:
        other = next(k for k in e if k.endswith("_vs_default"))
        lines += ["", f"training engine on the CPU: {e['model']}, batch {e['batch_size']}, "
                      f"best of {e['rounds']} interleaved rounds",
                  f"{'default path (' + e['default_precision'] + ', ' + e['default_layout'] + ')':<44}"
                  f"{e['images_per_s']['engine']:>10.0f} img/s",
                  f"{'bare loop, same computation':<44}{e['images_per_s']['bare']:>10.0f} img/s",
                  f"{'pytorch/examples-style loop (fp32, NCHW)':<44}{e['images_per_s']['examples_fp32_nchw']:>10.0f} "
                  f"img/s",
                  f"{'engine time / bare loop time':<44}{e['engine_over_bare']:>12.3f}",
                  f"{'speed-up over the examples-style loop':<44}{e['speedup_vs_examples']:>12.2f}x",
                  f"{_other_path(other):<44}{e[other]:>12.2f}x"]
    st = report.get("studio")
    if st:
        lines += ["", f"Product Studio: a grid of {st['grid']}, click to PNG, median of {st['rounds']} clicks"]
        lines += [f"{name:<44}{sec:>12.3f} s" for name, sec in st["seconds"].items()]
    sa = report.get("sampling")
    if sa:
        lines += ["", "diffusion sampling at the default steps and guidance (best of the timed calls)"]
        for name, f in sa.items():
            lines.append(f"{name + ': 16 images, ' + str(f['steps']) + ' steps, w ' + str(f['guidance']):<44}"
                         f"{f['16']['images_per_s']:>10.1f} img/s")
            if "64" in f:
                lines.append(f"{name + ': a batch of 64 requests':<44}{f['64']['images_per_s']:>10.1f} img/s")
    ba = report.get("batching")
    if ba:
        lines += ["", "prodgen generate: single-image rows against one request for as many images"]
        for name, f in ba.items():
            lines += [f"{name + ': ' + str(f['images']) + ' rows of 1 image':<44}{f['rows_s']:>10.1f} s",
                      f"{name + ': 1 request of ' + str(f['images']) + ' images':<44}{f['one_request_s']:>10.1f} s",
                      f"{name + ': rows / one request':<44}{f['ratio']:>10.2f}x"]
    return "\n".join(lines)


def _other_path(other: str) -> str:
    """The report's label for the engine path that is not the default."""
    return ("bf16 autocast" if other.startswith("bf16") else "fp32, no autocast") + ", speed vs the default"

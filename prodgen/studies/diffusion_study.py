"""Lesson 11's measurements of the shipped ``diffusion`` model, as a rerunnable benchmark: used by lesson 11 and
``prodgen diffusion-study``.

Four parts, each measured on the shipped ``diffusion`` checkpoint with the leaderboard's judge and real reference
photos (``prodgen.evaluation.leaderboard``), so lesson 11 reads figures instead of recomputing them:

- ``guidance``: the classifier-free guidance sweep w in :data:`GUIDANCE_SWEEP` at the model's default steps: control
  per attribute on ``balanced_requests(n, seed)``, FID against the first ``n`` training photos (and the FID floor
  at that n), precision and recall, within-request diversity (the leaderboard's ``_diversity``), and seconds per
  image (batches of 64 after a warm-up, the leaderboard's ``_speed``).
- ``samplers``: DDIM (eta 0) and ancestral DDPM (eta 1) at :data:`SAMPLER_STEPS` steps with the default guidance:
  FID (with the floor at the same n: FID at small n is biased upward), control, seconds per image (the timed
  generation of the n images, after a one-step warm-up with the same shapes).
- ``edits``: inpainting edits (``diffusion.edit_table``, with ``diffusion.EDIT_KNOBS``) beside the CVAE's
  (``cvae.edit_table``, lesson 06) on the same first ``n_edits`` test photos, both judged alike; the knobs used
  are recorded.
- ``leaderboard``: the leaderboard rows (``leaderboard.evaluate_model``, without ``details``) of
  :data:`LEADERBOARD_MODELS`, so lesson 11 shows where diffusion stands and its cost per image.

Every part records its provenance (n, seed, threads, wall seconds, when, the command, and the sha256 of the
checkpoints and the judge it was measured on). A part already measured on the same checkpoints with the same
settings is kept as it is (``refresh=True`` measures it again); the file is rewritten (atomically) only when a
part was measured: ``data/results/diffusion-study.json``. Before each part runs, its expected time is printed
from a short calibration of the network's speed on this machine.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from prodgen import paths
from prodgen.numbers import whole

__all__ = ["RESULTS", "PARTS", "GUIDANCE_SWEEP", "SAMPLER_STEPS", "SAMPLERS", "DEFAULT_N", "LEADERBOARD_MODELS",
           "MODEL", "results_path", "run_study", "estimate_seconds", "load_results", "format_markdown"]

RESULTS = "results/diffusion-study.json"
"""Where the study's results live, relative to the data folder."""
MODEL = "diffusion"
"""The checkpoint every part measures."""
PARTS = ("guidance", "samplers", "edits", "leaderboard")
GUIDANCE_SWEEP = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
"""Guidance scales w of the sweep (0 = unconditional, 1 = plain conditional)."""
SAMPLER_STEPS = (10, 25, 50, 250)
SAMPLERS = {"DDIM": 0.0, "DDPM": 1.0}
"""Sampler name -> eta."""
DEFAULT_N = {"guidance": 1000, "samplers": 300, "edits": 2000, "leaderboard": 2000}
"""Samples per part (``edits``: test photos) when not given."""
LEADERBOARD_MODELS = ("diffusion", "diffusion-text", "cgan-projection", "cgan-stable", "cvae")
SPEED_BATCH = 64
EDITED_ATTRIBUTES = 5  # edit_table edits every attribute in turn


def results_path() -> Path:
    return paths.data_dir() / RESULTS


# ----------------------------------------------------------------------------- checking input
def _whole(value, name: str, low: int) -> int:
    if isinstance(value, str):  # only numbers here: text is the command line's to convert
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return whole(value, name, low)


def _check_parts(parts) -> list[str]:
    if parts is None:
        return list(PARTS)
    given = [parts] if isinstance(parts, str) else list(parts)
    names = [name.strip() for item in given for name in str(item).split(",") if name.strip()]
    unknown = [p for p in names if p not in PARTS]
    if unknown or not names:
        raise ValueError(f"unknown part(s) {', '.join(unknown) or '(none given)'}; valid parts: {', '.join(PARTS)}")
    return list(dict.fromkeys(names))


class _WithKnobs:
    """A protocol model whose ``generate`` always uses the given knobs: lets the leaderboard's ``_diversity`` and
    ``_speed`` measure the model at any guidance, steps or eta."""

    def __init__(self, model, **knobs):
        self.model, self.knobs = model, knobs

    def __getattr__(self, name):  # everything else (name, schema, reads_text, condition, ...) is the model's
        return getattr(self.model, name)

    def generate(self, requests, seed: int = 0):
        return self.model.generate(requests, seed=seed, **self.knobs)


# ----------------------------------------------------------------------------- expected time
def _calibrate(model) -> dict:
    """Seconds per image per sampling step on this machine, for one network pass (w = 0 or 1) and for a guided
    step (conditional and unconditional rows together): timed on a batch of 64 after a one-step warm-up."""
    from prodgen.models.condition import balanced_requests

    requests = balanced_requests(SPEED_BATCH, 0)
    out = {}
    for kind, w in (("single", 1.0), ("guided", 2.0)):
        model.generate(requests, seed=0, steps=1, guidance=w)  # warm-up: allocations, kernel choice
        start = time.perf_counter()
        model.generate(requests, seed=0, steps=2, guidance=w)
        out[kind] = (time.perf_counter() - start) / (2 * SPEED_BATCH)
    return out


def _diversity_images(n: int) -> int:
    from prodgen.evaluation.leaderboard import PER_REQUEST

    return max(n // 16, 2) * PER_REQUEST


def _step_cost(w: float, per_step: dict) -> float:
    return per_step["single"] if float(w) in (0.0, 1.0) else per_step["guided"]


def estimate_seconds(part: str, n: int, per_step: dict, steps: int, guidance: float, edit_knobs: dict | None = None,
                     sampler_steps=SAMPLER_STEPS, guidance_values=GUIDANCE_SWEEP, cached=()) -> float:
    """Expected seconds of ``part``'s network passes (image-steps x the calibrated ``per_step`` cost, see
    :func:`_calibrate`) at the model's default ``steps`` and ``guidance``; the metrics add a few seconds.
    ``edit_knobs``: what the edits sample with (default ``diffusion.EDIT_KNOBS``); ``cached``: leaderboard models
    whose rows are cached. Non-diffusion leaderboard rows (GANs, CVAE: fast generators) are not included."""
    from prodgen.evaluation.leaderboard import MIN_N
    from prodgen.models.text2img import NEW_PHRASINGS

    speed = 3 * SPEED_BATCH  # leaderboard._speed: a warm-up batch and at least two timed ones
    if part == "guidance":
        return sum((n + _diversity_images(n) + speed) * steps * _step_cost(w, per_step) for w in guidance_values)
    if part == "samplers":
        return sum((n * (1 + s)) * _step_cost(guidance, per_step) for s in sampler_steps for _ in SAMPLERS)
    if part == "edits":
        k = _edit_knobs() if edit_knobs is None else edit_knobs
        return EDITED_ATTRIBUTES * n * k["resample"] * k["steps"] * _step_cost(k["guidance"], per_step)
    if part == "leaderboard":
        quarter = max(n // 4, MIN_N)
        images = {"diffusion": n + 2 * quarter + _diversity_images(n) + speed,
                  "diffusion-text": n + quarter + 4 * quarter + 8 * len(NEW_PHRASINGS) + _diversity_images(n) + speed}
        return sum(images[m] * steps * _step_cost(guidance, per_step) for m in images if m not in cached)
    raise ValueError(f"unknown part {part!r}; valid parts: {', '.join(PARTS)}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


# ----------------------------------------------------------------------------- the parts
def _guidance(model, judge, ref, n: int, seed: int, values, speed_seconds: float) -> dict:
    from prodgen import metrics
    from prodgen.evaluation import leaderboard
    from prodgen.models.condition import balanced_requests

    requests = balanced_requests(n, seed)
    real = ref.train["features"][:n]
    rows = []
    for w in values:
        fixed = _WithKnobs(model, guidance=float(w))
        fake, preds = leaderboard._judge(judge, fixed.generate(requests, seed=seed))
        control = leaderboard._control(preds, requests)
        precision, recall = metrics.precision_recall(real, fake)
        ips = leaderboard._speed(fixed, requests[:SPEED_BATCH].repeat(-(-SPEED_BATCH // n), 1)[:SPEED_BATCH],
                                 speed_seconds)
        rows.append({"guidance": float(w), "control": control, "control_mean": control["mean"],
                     "fid": round(metrics.fid(real, fake), 3), "fid_floor": round(ref.floor(n), 3),
                     "precision": round(precision, 4), "recall": round(recall, 4),
                     "diversity": round(leaderboard._diversity(fixed, ref, n, seed), 4),
                     "seconds_per_image": round(1 / ips, 5)})
    return {"rows": rows, "knobs": {"steps": model.knobs["steps"].default, "eta": model.knobs["eta"].default}}


def _samplers(model, judge, ref, n: int, seed: int, step_counts) -> dict:
    from prodgen import metrics
    from prodgen.evaluation import leaderboard
    from prodgen.models.condition import balanced_requests

    requests = balanced_requests(n, seed)
    real = ref.train["features"][:n]
    guidance = model.knobs["guidance"].default
    rows = []
    for sampler, eta in SAMPLERS.items():
        for steps in step_counts:
            model.generate(requests, seed=seed, steps=1, guidance=guidance, eta=eta)  # warm-up, same shapes
            start = time.perf_counter()
            images = model.generate(requests, seed=seed, steps=int(steps), guidance=guidance, eta=eta)
            seconds = time.perf_counter() - start
            fake, preds = leaderboard._judge(judge, images)
            rows.append({"sampler": sampler, "eta": eta, "steps": int(steps),
                         "fid": round(metrics.fid(real, fake), 3), "fid_floor": round(ref.floor(n), 3),
                         "control_mean": leaderboard._control(preds, requests)["mean"],
                         "seconds_per_image": round(seconds / n, 5)})
    return {"rows": rows, "knobs": {"guidance": guidance}}


def _edit_knobs() -> dict:
    """The knobs ``diffusion.edit_table`` edits with (``diffusion.EDIT_KNOBS``) and how far each edit's region
    reaches beyond the product (``diffusion.EDIT_GROW``)."""
    from prodgen.models import diffusion

    return {**diffusion.EDIT_KNOBS, "grow": dict(diffusion.EDIT_GROW)}


def _finite(x):
    """``inf`` (identical pixels) as the string "inf": the results file stays strict JSON."""
    return "inf" if isinstance(x, float) and math.isinf(x) else x


def _edits(model, judge, n: int, seed: int) -> dict:
    from prodgen.catalog import load_catalog
    from prodgen.models import cvae, diffusion, registry

    test = load_catalog("test", progress=False)
    start = time.perf_counter()
    table = diffusion.edit_table(model.network, test, judge, n=n, seed=seed)
    diffusion_seconds = time.perf_counter() - start
    table["psnr_outside"] = _finite(table["psnr_outside"])
    knobs = {**table.pop("knobs", diffusion.EDIT_KNOBS), "grow": dict(diffusion.EDIT_GROW)}  # what it used
    start = time.perf_counter()
    cvae_table = cvae.edit_table(registry.load("cvae"), test, judge, n=n, seed=seed)
    return {"diffusion": table, "cvae": cvae_table, "knobs": knobs,
            "seconds": {"diffusion": round(diffusion_seconds, 1), "cvae": round(time.perf_counter() - start, 1)},
            "photos": f"the first {n} test photos"}


def _leaderboard(n: int, seed: int, models, speed_seconds: float) -> dict:
    from prodgen.evaluation import leaderboard

    session = leaderboard._Session()
    rows = []
    for name in models:
        row = leaderboard.evaluate_model(name, n=n, seed=seed, _session=session, speed_seconds=speed_seconds)
        row = {k: v for k, v in row.items() if k not in ("details", "cached")}
        row["seconds_per_image"] = round(1 / row["images_per_s"], 6) if row.get("images_per_s") else None
        rows.append(row)
    return {"rows": rows}


# ----------------------------------------------------------------------------- the study
def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


@dataclass
class _Request:
    """One ``run_study`` call's checked request: the parts, their sizes and the grids they sweep."""

    parts: list[str]
    sizes: dict
    seed: int
    step_counts: list[int]
    values: list[float]
    models: list[str]


def _check_request(parts, n, n_edits, seed, sampler_steps, guidance_values, leaderboard_models) -> _Request:
    """``run_study``'s arguments checked, with the module's defaults (read at call time) filled in."""
    from prodgen.evaluation import leaderboard

    parts = _check_parts(parts)
    if n is not None:
        n = _whole(n, "n", leaderboard.MIN_N)
    if n_edits is not None:
        n_edits = _whole(n_edits, "n_edits", 1)
    step_counts = [_whole(s, "sampler steps", 1) for s in (SAMPLER_STEPS if sampler_steps is None else sampler_steps)]
    values = [float(w) for w in (GUIDANCE_SWEEP if guidance_values is None else guidance_values)]
    if not step_counts or not values or any(not 0 <= w <= 50 for w in values):
        raise ValueError("sampler_steps and guidance_values must be non-empty; guidance from 0 to 50")
    models = leaderboard._check_models(list(LEADERBOARD_MODELS if leaderboard_models is None else leaderboard_models))
    sizes = {p: (n_edits if p == "edits" else n) or DEFAULT_N[p] for p in parts}
    return _Request(parts, sizes, seed, step_counts, values, models)


def _check_edit_photos(request: _Request) -> None:
    """Before anything is measured: more edits than test photos writes nothing."""
    if "edits" in request.parts:
        from prodgen.catalog import load_catalog

        photos = len(load_catalog("test", progress=False))
        if request.sizes["edits"] > photos:
            raise ValueError(f"n_edits must be at most {photos} (the test photos), got {request.sizes['edits']}")


def _settings(request: _Request, manifest: dict) -> dict:
    """Per part, the settings a saved measurement must match to be kept."""
    from prodgen.evaluation import leaderboard

    models = request.models
    return {"guidance": {"values": request.values},
            "samplers": {"steps": request.step_counts, "samplers": SAMPLERS},
            "edits": {"knobs": _edit_knobs()},
            "leaderboard": {"models": models, "protocol": leaderboard.PROTOCOL_VERSION,
                            "checkpoints": {d: manifest.get(d, {}).get("sha256") for m in models
                                            for d in leaderboard._depends_on(m)}}}


def _parts_to_measure(request: _Request, saved_parts: dict, sha: str, judge_sha: str, settings: dict,
                      refresh: bool, log) -> list[tuple[str, dict]]:
    """``(part, key)`` for each requested part not already measured with the same key (all, with ``refresh``)."""
    todo = []
    for part in request.parts:
        key = {"checkpoint_sha256": sha, "judge_sha256": judge_sha, "n": request.sizes[part], "seed": request.seed,
               "settings": settings[part]}
        old = saved_parts.get(part)
        if not refresh and old and old.get("provenance", {}).get("key") == key:
            log(f"{part}: already measured on this checkpoint ({sha[:12]}, n = {request.sizes[part]}): kept "
                "(--refresh measures it again)")
        else:
            todo.append((part, key))
    return todo


def _plan(request: _Request, todo, per_step: dict, steps: int, guidance: float, log) -> list[tuple[str, dict, float]]:
    """``(part, key, expected seconds)`` for each part to measure, each estimate printed."""
    from prodgen.evaluation import leaderboard

    models, sizes, seed = request.models, request.sizes, request.seed
    plans = []
    for part, key in todo:
        cached, note = [], ""
        if part == "leaderboard":
            cached = [m for m in models if leaderboard._read_cached(leaderboard.cache_file(m, sizes[part], seed))]
            fresh = [m for m in models if m not in cached]
            note = f"; rows to measure: {', '.join(fresh) or 'none (all cached)'}"
            others = [m for m in fresh if m not in ("diffusion", "diffusion-text")]
            note += f" (the estimate leaves out {', '.join(others)})" if others else ""
        expected = estimate_seconds(part, sizes[part], per_step, steps, guidance, _edit_knobs(),
                                    request.step_counts, request.values, cached)
        log(f"{part}: n = {sizes[part]}, expected about {_minutes(expected)}{note}")
        plans.append((part, key, expected))
    return plans


def _measure(part: str, request: _Request, model, judge, ref, speed_seconds: float) -> dict:
    """Run one part's measurement (see the module docstring) at its requested size."""
    n, seed = request.sizes[part], request.seed
    if part == "guidance":
        return _guidance(model, judge, ref, n, seed, request.values, speed_seconds)
    if part == "samplers":
        return _samplers(model, judge, ref, n, seed, request.step_counts)
    if part == "edits":
        return _edits(model, judge, n, seed)
    return _leaderboard(n, seed, request.models, speed_seconds)


def run_study(parts=None, n: int | None = None, n_edits: int | None = None, seed: int = 0, out=None,
              refresh: bool = False, log=print, command: str = "prodgen diffusion-study",
              speed_seconds: float = 1.0, sampler_steps=None, guidance_values=None, leaderboard_models=None,
              estimate_only: bool = False) -> dict:
    """Measure the requested ``parts`` (default: all) of the shipped ``diffusion`` model and write them, with the
    parts already in ``out`` (default :func:`results_path`), to ``out``; returns the whole file's content.

    ``n``: samples for guidance, samplers and leaderboard (default :data:`DEFAULT_N` per part); ``n_edits``: test
    photos edited (default 2000). A part measured before on the same checkpoints, judge and settings is kept
    unless ``refresh``. ``sampler_steps``, ``guidance_values``, ``leaderboard_models``: the grids (default
    :data:`SAMPLER_STEPS`, :data:`GUIDANCE_SWEEP`, :data:`LEADERBOARD_MODELS`; smaller ones in tests).
    ``estimate_only``: calibrate, print each part's expected time and stop (nothing measured or written)."""
    import torch

    from prodgen.evaluation import leaderboard
    from prodgen.models import registry

    request = _check_request(parts, n, n_edits, seed, sampler_steps, guidance_values, leaderboard_models)
    out = Path(out) if out is not None else results_path()
    _check_edit_photos(request)

    registry.verify(MODEL)
    manifest = registry.manifest()
    sha = manifest[MODEL]["sha256"]
    judge_sha = manifest["judge"]["sha256"]
    saved = _read(out) or {}
    result = {"model": MODEL, "parts": dict(saved.get("parts", {}))}
    todo = _parts_to_measure(request, result["parts"], sha, judge_sha, _settings(request, manifest), refresh, log)
    if not todo:
        return load_results(out) if out.is_file() else result

    model = registry.load_generator(MODEL)
    per_step = _calibrate(model)
    steps, guidance = model.knobs["steps"].default, model.knobs["guidance"].default
    log(f"diffusion study of {MODEL} ({sha[:12]}), {torch.get_num_threads()} thread(s): "
        f"{per_step['single'] * 1000:.2f} ms per image-step, {per_step['guided'] * 1000:.2f} ms guided")
    plans = _plan(request, todo, per_step, steps, guidance, log)
    log(f"in all about {_minutes(sum(e for _, _, e in plans))}"
        + (": nothing measured (estimate only)" if estimate_only else ""))
    if estimate_only:
        return result
    judge = registry.load("judge")
    ref = leaderboard.Reference(judge)
    for part, key, expected in plans:
        log(f"{part}: measuring ...")
        start = time.perf_counter()
        measured = _measure(part, request, model, judge, ref, speed_seconds)
        wall = time.perf_counter() - start
        measured["provenance"] = {"n": request.sizes[part], "seed": seed, "threads": torch.get_num_threads(),
                                  "wall_seconds": round(wall, 1), "expected_seconds": round(expected, 1),
                                  "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "command": command, "checkpoint_sha256": sha, "judge_sha256": judge_sha,
                                  "key": key}
        result["parts"][part] = measured
        result["parts"] = {p: result["parts"][p] for p in PARTS if p in result["parts"]}
        result["checkpoint_sha256"] = sha
        with paths.atomic_file(out) as tmp:  # after every part: an interrupted study keeps what it measured
            tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        log(f"{part}: {_minutes(wall)} (expected {_minutes(expected)}); wrote {out}")
    return result


def load_results(path=None) -> dict:
    """The study's results (lesson 11); a missing file -> ``FileNotFoundError`` saying which command makes it."""
    path = Path(path) if path is not None else results_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `prodgen diffusion-study` to measure the shipped "
                                "diffusion model (guidance sweep, samplers, edits, leaderboard)")
    result = json.loads(path.read_text(encoding="utf-8"))
    edits = result.get("parts", {}).get("edits")
    if edits and edits["diffusion"].get("psnr_outside") == "inf":
        edits["diffusion"]["psnr_outside"] = float("inf")
    return result


# ----------------------------------------------------------------------------- tables
def _when(part: dict) -> str:
    p = part["provenance"]
    return (f"n = {p['n']}, seed {p['seed']}, {p['threads']} thread(s), {p['wall_seconds']:.0f} s, "
            f"checkpoint {p['checkpoint_sha256'][:12]}, {p['measured_at']}")


def format_markdown(result: dict) -> str:
    """Every measured part as a Markdown table, each under a heading with its provenance."""
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES

    parts, out = result.get("parts", {}), []
    if "guidance" in parts:
        g = parts["guidance"]
        out += [f"**Guidance sweep** ({g['knobs']['steps']} steps, eta {g['knobs']['eta']}; {_when(g)})", "",
                "| w | control | " + " | ".join(ATTRIBUTE_NAMES) + " | FID | floor | prec. | recall | diversity "
                "| s / image |",
                "|---:|---:|" + "---:|" * len(ATTRIBUTE_NAMES) + "---:|---:|---:|---:|---:|---:|"]
        for r in g["rows"]:
            attrs = " | ".join(f"{r['control'][a]:.3f}" for a in ATTRIBUTE_NAMES)
            out.append(f"| {r['guidance']:g} | {r['control_mean']:.3f} | {attrs} "
                       f"| {r['fid']:.1f} | {r['fid_floor']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} "
                       f"| {r['diversity']:.2f} | {r['seconds_per_image']:.4f} |")
        out.append("")
    if "samplers" in parts:
        s = parts["samplers"]
        out += [f"**Samplers** (guidance {s['knobs']['guidance']:g}; {_when(s)})", "",
                "| sampler | steps | FID | floor | control | s / image |", "|---|---:|---:|---:|---:|---:|"]
        out += [f"| {r['sampler']} (eta {r['eta']:g}) | {r['steps']} | {r['fid']:.1f} | {r['fid_floor']:.1f} "
                f"| {r['control_mean']:.3f} | {r['seconds_per_image']:.4f} |" for r in s["rows"]]
        out.append("")
    if "edits" in parts:
        e = parts["edits"]
        k = e["knobs"]
        psnr = e["diffusion"]["psnr_outside"]
        psnr = "identical (∞ dB)" if psnr in ("inf", float("inf")) else f"{psnr:.1f} dB"
        out += [(f"**Edits of real photos** ({e['photos']}; diffusion: guidance {k['guidance']:g}, {k['steps']} steps, "
                 f"resample {k['resample']}, eta {k['eta']:g}; {_when(e)})"), "",
                "| attribute changed | diffusion success | diffusion preservation | CVAE success | CVAE preservation |",
                "|---|---:|---:|---:|---:|"]
        for a in (*ATTRIBUTE_NAMES, "mean"):
            d, c = e["diffusion"][a], e["cvae"][a]
            out.append(f"| {a} | {d['success']:.3f} | {d['preservation']:.3f} | {c['success']:.3f} "
                       f"| {c['preservation']:.3f} |")
        out += ["", (f"Diffusion pixels outside the mask: PSNR {psnr}; {e['seconds']['diffusion']:.0f} s for the "
                     f"diffusion edits, {e['seconds']['cvae']:.0f} s for the CVAE's."), ""]
    if "leaderboard" in parts:
        from prodgen.evaluation.leaderboard import format_markdown as board

        lb = parts["leaderboard"]
        out += [f"**Leaderboard rows** ({_when(lb)})", "", board(lb["rows"]), ""]
    return "\n".join(out).rstrip() + "\n" if out else "no parts measured yet\n"

"""The ``prodgen`` command: doctor, bench, data, course, models, train, generate, edit, restore, tryon, ads, evaluate,
leaderboard, stability-grid, diffusion-study, studio.

A mistake in the input gives one line on stderr saying what is wrong and what is
valid, and exit status 2; never a traceback. Tooling for students and instructors.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import warnings

__all__ = ["main"]


def _doctor(args) -> int:
    from prodgen.course.doctor import diagnose

    if args.lock is not None and not os.path.isfile(args.lock):
        raise FileNotFoundError(f"--lock {args.lock}: no such file")
    findings = diagnose(lock=args.lock)
    for f in findings:
        mark = "ok " if f.ok else "FIX"
        print(f"[{mark}] {f.item:<14} {f.detail}")
        if not f.ok:
            print(f"      fix: {f.fix}")
    bad = [f for f in findings if not f.ok]
    print("\nall good" if not bad else f"\n{len(bad)} problem(s) found: run the fix lines above")
    return 1 if bad else 0


def _bench(args) -> int:
    from prodgen.studies.bench import format_report, run_benchmarks

    report = run_benchmarks(quick=args.quick, log=(lambda s: None) if args.json else print, only=args.only)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _data_build(args) -> int:
    from prodgen.catalog import DEFAULT_N, load_catalog

    workers = None if args.workers is None else _number(args.workers, "--workers", int, 1)
    for split in args.split or DEFAULT_N:
        cat = load_catalog(split, size=args.size, seed=args.seed, workers=workers, look=args.look)
        look = "" if args.look == "photo" else f" as {args.look}es" if args.look == "sketch" else f" as {args.look}s"
        print(f"{split:>7}: {len(cat)} products at {args.size} px{look}, cached")
    return 0


def _data_export(args) -> int:
    from prodgen.catalog import export_catalog, load_catalog

    cat = load_catalog(args.split, n=args.n, size=args.size, seed=args.seed, look=args.look)
    out = export_catalog(cat, args.out, progress=True)
    print(f"wrote {len(cat)} {args.split} products ({args.size} px) and metadata.csv to {out}")
    return 0


def _data_info(args) -> int:
    from prodgen.catalog.folder import MIN_PER_VALUE, describe_folder, format_description

    minimum = MIN_PER_VALUE if args.min_per_value is None else args.min_per_value
    print(format_description(describe_folder(args.folder, attributes=args.attributes, min_per_value=minimum)))
    return 0


def _course_build(args) -> int:
    from prodgen import course

    written = course.build()
    print(f"wrote {len(written)} student notebook(s)" + "".join(f"\n  {p}" for p in written))
    return 0


def _course_check(args) -> int:
    from prodgen import course

    problems = course.check()
    for p in problems:
        print(f"- {p}")
    print("course is consistent" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _course_run(args) -> int:
    from prodgen import course

    if args.update and (args.fast or args.student):
        print("prodgen course run: --update re-executes solutions/ with their saved parameters; it cannot be "
              "combined with --fast or --student", file=sys.stderr)
        return 2
    runs = course.run(args.lessons, fast=args.fast, student=args.student, timeout=args.timeout, update=args.update)
    print(course.format_table(runs))
    return 0 if all(r.ok for r in runs) else 1


def _course_grade(args) -> int:
    from prodgen.course import grade

    timeout = _number(args.timeout, "--timeout", float, 0)
    jobs = _number(args.jobs, "--jobs", int, 1, grade.MAX_JOBS)
    rows = grade.grade(args.submissions, out=args.out, timeout=timeout, fast=args.fast, overwrite=args.overwrite,
                       sandbox=args.sandbox, jobs=jobs)
    print("\n" + grade.format_summary(rows))
    if args.out:
        print(f"\nwrote {len(rows)} row(s) to {args.out}")
    return 0


def _headline(metrics: dict) -> str:
    """The few numbers that say how good a shipped model is: control (mean), text (EN/ZH), FID and its floor."""
    parts = []
    if isinstance(metrics.get("control"), dict):
        parts.append(f"control {metrics['control']['mean']:.3f}")
    for key, label in (("test_en", "text EN"), ("test_zh", "ZH")):
        if isinstance(metrics.get(key), dict):
            parts.append(f"{label} {metrics[key]['mean']:.3f}")
    if "psnr" in metrics:  # an autoencoder (ae-64): how well it gives the photo back
        parts.append(f"PSNR {metrics['psnr']:.1f} dB")
    if "fid" in metrics:
        floor = f" (floor {metrics['fid_floor']:.1f})" if "fid_floor" in metrics else ""
        parts.append(f"FID {metrics['fid']:.1f}{floor}")
    if "probe_mean" in metrics:  # the label-free encoder: what a linear probe reads off its features
        parts.append(f"linear probe {metrics['probe_mean']:.3f}, FID floor {metrics['fid_floor']:.1f}")
    accuracies = [v for k, v in metrics.items() if k.startswith(("test_", "en_", "zh_")) and isinstance(v, float)
                  and not any(w in k for w in ("loss", "mse", "recon", "kl"))]
    if not parts and accuracies:
        parts.append(f"held-out accuracy >= {min(accuracies):.3f}")
    if not parts and "test_mse" in metrics:
        parts.append(f"test reconstruction MSE {metrics['test_mse']:.4f}")
    return ", ".join(parts)


_ASKS = {"attributes": "--attrs", "text": "--text", "nothing": "--n only"}


def _models(args) -> int:
    from prodgen.models import registry

    entries = registry.manifest()
    if args.json:
        print(json.dumps({n: {k: e[k] for k in ("file", "sha256", "config", "training", "metrics")}
                          for n, e in entries.items()}, indent=2, ensure_ascii=False))
        return 0
    rows = [("model", "lesson", "generate with", "shipped", "headline (prodgen leaderboard for all)")]
    for spec in registry.specs():
        entry = entries.get(spec.name)
        state = "-" if entry is None else ("ok" if registry.available(spec.name) else "MISSING/CORRUPT")
        state = "no weights" if spec.weightless else state
        asks = _ASKS[spec.model.accepts] if spec.is_generator else "prodgen tryon" if spec.is_tryon else \
            "(not a generator)"
        headline = _headline(entry["metrics"]) if entry else ""
        if entry and not headline and entry["training"].get("same_weights_as"):
            headline = f"the weights of {entry['training']['same_weights_as']}"
        rows.append((spec.name, f"{spec.lesson:02d}", asks, state, headline))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * len(row[4]))
    print("\nwhat each one is: prodgen models --json (configs, training, every metric); the summaries:")
    for spec in registry.specs():
        print(f"  {spec.name:<20} {spec.summary}")
    return 0


def _knob(text, flag: str, kind):
    """A model setting from the command line as a number (its range is checked by the model), or None."""
    if text is None:
        return None
    try:
        return kind(str(text).strip())
    except ValueError:
        raise ValueError(f"{flag} must be {'a whole number' if kind is int else 'a number'}, got {text!r}") from None


def _number(text, flag: str, kind, low, high=None):
    """``--flag``'s value as an int in ``[low, high]`` or a positive float (``prodgen.numbers``), or one clear
    error."""
    from prodgen.numbers import positive, whole

    return whole(text, flag, low, high) if kind is int else positive(text, flag)


def _train(args) -> int:
    from prodgen.models import registry

    metrics = registry.train(args.model, fast=args.fast, out=args.out,
                               epochs=_number(args.epochs, "--epochs", int, 1),
                               minutes=_number(args.minutes, "--minutes", float, 0),
                               seed=_number(args.seed, "--seed", int, 0), batch=_number(args.batch, "--batch", int, 2),
                               device=args.device, resume=args.resume, data=args.data)
    if os.environ.get("RANK", "0") == "0":  # under torchrun rank 0 alone saves and reports
        from prodgen.catalog.own import default_out

        where = args.out or (default_out(args.data, args.model) if args.data else "the shipped checkpoint and manifest")
        print(f"saved {args.model} to {where}" + (": " if metrics else "")
              + ", ".join(f"{k} {v}" for k, v in metrics.items() if not isinstance(v, dict)))
        if args.data and args.model != "judge":
            print(f"measure it with: prodgen evaluate {where} --data {args.data}")
    return 0


def _evaluate_file(args) -> dict:
    """``prodgen evaluate PATH [--data DIR] [--judge JUDGE.pt]``: a checkpoint file (lesson 12)."""
    from prodgen.evaluation import leaderboard, own_catalog

    if args.refresh:
        raise ValueError("--refresh is for shipped models (their rows are cached); "
                         "a checkpoint file is measured afresh")
    model = own_catalog.load_model(args.model)
    if args.data is not None:
        n = None if args.n_given is None else args.n
        row = own_catalog.evaluate(model, args.data, judge=args.judge, n=n, seed=args.seed)
    else:
        if args.judge is not None:
            raise ValueError("--judge needs --data, the catalog folder the judge and the model were trained on")
        row = leaderboard.measure(model, n=args.n, seed=args.seed)  # the course catalog's protocol
    args.n = row["n"]
    skip = {"model", "accepts", "n", "seed", "protocol", "details", "control_mean", "control_heldout"}
    return {**row["details"], **{k: v for k, v in row.items() if k not in skip and v is not None}}


def _evaluate(args) -> int:
    from prodgen import metrics
    from prodgen.models import registry

    if args.model.endswith(".pt") or os.sep in args.model or "/" in args.model:
        result = _evaluate_file(args)
    elif args.data is not None or args.judge is not None:
        raise ValueError(f"--data and --judge go with a checkpoint file (prodgen evaluate PATH.pt --data DIR); "
                         f"{args.model!r} is a shipped model, measured on the course catalog")
    elif args.model in registry.generators():  # every image model: measured through the one protocol
        from prodgen.evaluation import leaderboard

        row = leaderboard.evaluate_model(args.model, n=args.n, seed=args.seed, refresh=args.refresh)
        model = registry.load_generator(args.model)
        extra = model.extra_evaluation(args.n, args.seed,
                                       registry.load(leaderboard.judge_name(registry.spec(args.model).resolution)))
        skip = {"model", "accepts", "n", "seed", "protocol", "details", "sha256", "measured_at", "cached",
                "control_mean", "control_heldout", "control_en", "control_zh", "control_unseen"}  # in details
        result = {"n": row["n"], **row["details"], **extra,
                  **{k: v for k, v in row.items() if k not in skip and k not in row["details"] and v is not None}}
    elif args.model in {s.name for s in registry.specs() if s.family == "judge"}:  # the measuring instrument
        from prodgen.catalog import DEFAULT_N, load_catalog  # itself: accuracy on real photos of its resolution

        if args.n < 4:
            raise ValueError(f"--n must be at least 4 (precision/recall use k = 3 neighbours), got {args.n}")
        model = registry.load(args.model)
        size = registry.spec(args.model).resolution
        photos = {split: load_catalog(split, n=min(args.n, DEFAULT_N[split]), size=size, progress=False)
                  for split in ("test", "unseen")}  # the first n of the split (rendered alone if not cached)
        result = {split: metrics.control_accuracy(model, cat.images, cat.labels) for split, cat in photos.items()}
    elif args.model in registry.tryon_models():
        raise ValueError(f"{args.model!r} is a try-on model: benchmarks/tryon.py measures it against rendered truth "
                         "(docs/tryon-baseline.md); `prodgen tryon` runs it")
    else:
        registry.verify(args.model)  # unknown or damaged -> its own clear error
        raise ValueError(f"{args.model!r} is not an image model; `prodgen models` lists its accuracy "
                         f"(image models: {', '.join(registry.generators())})")
    if args.json:
        print(json.dumps({"model": args.model, **result}, indent=2))
    else:
        print(f"{args.model} ({args.n} samples)")
        for key, value in result.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v:.4f}" if not isinstance(v, dict) else
                                  f"{k} ({', '.join(f'{kk} {vv:.4f}' for kk, vv in v.items())})"
                                  for k, v in value.items())
            print(f"  {key:<22} {value}")
    return 0


def _leaderboard(args) -> int:
    from prodgen.evaluation import leaderboard

    try:
        n = int(str(args.n).strip())
    except ValueError:
        raise ValueError(f"--n must be a whole number of samples (at least {leaderboard.MIN_N}), "
                         f"got {args.n!r}") from None
    if n < leaderboard.MIN_N:
        raise ValueError(f"--n must be at least {leaderboard.MIN_N} (density/coverage use k = 5 neighbours, FID∞ "
                         f"fits several sample sizes), got {n}")
    models = None if args.models is None else args.models.split(",")
    resolution = None if args.resolution is None else _number(args.resolution, "--resolution", int, 1)
    if args.retime:
        done, missing = leaderboard.retime(models, n=n, seed=args.seed, resolution=resolution, log=print)
        if missing:
            print(f"no cached row to re-time (measure first: prodgen leaderboard --models {','.join(missing)}): "
                  f"{', '.join(missing)}")
        print(f"re-timed {len(done)} row(s) on {done[0]['threads'] if done else '-'} thread(s)")
        return 0
    rows = leaderboard.evaluate_all(models, n=n, refresh=args.refresh, seed=args.seed, progress=not args.json,
                                    resolution=resolution)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "details"} for r in rows], indent=2, ensure_ascii=False))
    elif args.markdown:
        print(leaderboard.format_markdown(rows))
    else:
        print(leaderboard.format_table(rows))
    return 0


def _generate(args) -> int:
    from prodgen.apps.generate import (
        Request,
        Row,
        check_n,
        generate_catalog,
        load_generator,
        parse_attrs,
        read_requests,
    )

    n = check_n(args.n, "--n")
    model = load_generator(args.model)  # a shipped name or a checkpoint file; its schema checks the requests
    if args.batch is not None:
        if not args.batch.strip():
            raise ValueError("--batch needs the path of a CSV file with a description column and/or attribute columns")
        requests = read_requests(args.batch, default_n=n, schema=model.schema)
    elif args.attrs is not None:
        requests = [Row(Request(parse_attrs(args.attrs, schema=model.schema)), n)]
    elif args.text is not None:
        if not args.text.strip():
            raise ValueError("the description is empty; describe the product, e.g. --text 'a red striped mug by Acme'")
        requests = [Row(Request(text=args.text), n)]
    else:  # no request: fine for an unconditional model; the others say what they need
        requests = [Row(Request(), n)]
    knobs = {"guidance": _knob(args.guidance, "--guidance", float), "steps": _knob(args.steps, "--steps", int),
             "sampler": args.sampler}  # a name: the model checks it against its choices
    out = generate_catalog(model, requests, args.out, seed=args.seed, progress=args.batch is not None,
                           knobs=knobs)
    total = sum(r.n for r in requests)
    print(f"wrote {total} image(s) from {len(requests)} request(s) and metadata.csv to {out}")
    if args.text is not None:
        from prodgen.models.text import not_understood

        if ignored := not_understood(args.text):  # read as <unk>: nothing was drawn for them
            print(f"note: words not understood (ignored): {', '.join(ignored)}; metadata.csv says what was read")
    return 0


def _edit(args) -> int:
    from prodgen.apps.edit import edit_to_folder
    from prodgen.apps.generate import check_n, parse_attrs

    n = check_n(args.n, "--n")
    seed = _number(args.seed, "--seed", int, 0)
    if not args.set.strip():
        raise ValueError("--set is empty; give the attributes to change, e.g. --set color=teal,pattern=dotted")
    if not args.image.strip():
        raise FileNotFoundError("--image needs the path of a photo (PNG, JPEG, ...)")
    out, info = edit_to_folder(args.model, args.image, parse_attrs(args.set, "--set"), args.out, seed=seed, n=n)
    if info["note"]:
        print(f"note: {info['note']}")
    said = lambda d: ", ".join(f"{a}={v}" for a, v in d.items())  # noqa: E731
    print(f"the judge reads on the photo: {said(info['read'])}")
    if info["already"]:
        print(f"note: the photo already reads {said(info['already'])}")
    for file, result in zip(info["files"], info["results"]):
        print(f"{file}: {said({a: result[a] for a in info['changes']})} (asked {said(info['changes'])})")
    print(f"wrote before.png, {len(info['files'])} edited image(s) and metadata.csv to {out}")
    return 0


def _restore(args) -> int:
    from prodgen.apps.generate import check_n
    from prodgen.apps.restore import restore_to_folder

    n = check_n(args.n, "--n")
    seed = _number(args.seed, "--seed", int, 0)
    strength = {}
    for flag, kind, task in (("sigma", float, ("denoise", "deblur")), ("quality", int, ("deblock",)),
                             ("factor", int, ("upscale",))):
        value = getattr(args, flag)
        if value is not None:
            if args.task not in task:
                raise ValueError(f"--{flag} is a setting of --task {' / '.join(task)}, not {args.task}")
            strength[flag] = _number(value, f"--{flag}", kind, 1)
    if not args.image.strip():
        raise FileNotFoundError("--image needs the path of a photo (PNG, JPEG, ...)")
    out, info = restore_to_folder(args.image, args.task, args.out, model=args.model, mask_path=args.mask,
                                  seed=seed, n=n, **strength)
    if info["note"]:
        print(f"note: {info['note']}")
    print(f"wrote damaged.png, classic.png ({info['classic']}), {n} restored image(s) by {args.model} and "
          f"metadata.csv (what the judge reads on each) to {out}")
    return 0


def _tryon(args) -> int:
    from prodgen.apps.generate import check_n
    from prodgen.apps.tryon import MAX_N, list_slots, tryon_to_folder

    if args.list_slots is not None:
        given = [f"--{k}" for k in ("scene", "slot", "product", "out") if getattr(args, k) is not None]
        if given:
            raise ValueError(f"--list-slots only prints what a scene holds; it takes no {', '.join(given)}")
        print(list_slots(args.list_slots))
        return 0
    missing = [f"--{k}" for k in ("scene", "product", "out") if not (getattr(args, k) or "").strip()]
    if missing:
        raise ValueError(f"prodgen tryon needs {', '.join(missing)} (e.g. --scene test:17 --slot top --product "
                         "shirt.png --out tried); see a scene's slots with --list-slots test:17")
    n = check_n(args.n, "--n")
    if n > MAX_N:
        raise ValueError(f"--n: at most {MAX_N} try-ons per run, got {n}")
    out, info = tryon_to_folder(args.scene, args.slot, args.product, args.out, model_name=args.model,
                                seed=_number(args.seed, "--seed", int, 0), n=n)
    if info["note"]:
        print(f"note: {info['note']}")
    said = lambda d: ", ".join(f"{a}={v}" for a, v in d.items())  # noqa: E731
    print(f"the product photo reads: {said(info['read']['product'])}")
    print(f"{info['name']} {info['slot']} before: {said(info['read']['scene'])}")
    for file, read in zip(info["files"], info["read"]["results"]):
        print(f"{file}: {said(read)}")
    print(f"wrote scene.png, product.png, mask.png, {len(info['files'])} result(s) by {info['model']} and "
          f"metadata.csv to {out}")
    return 0


def _ads(args) -> int:
    from prodgen.apps.ad_layout import default_fonts, font_face
    from prodgen.apps.ads import make_ads

    if not args.batch.strip():
        raise ValueError("--batch needs the path of a CSV file with a description column and/or attribute columns")
    faces = default_fonts() + tuple(font_face(f) for f in args.font or ())
    report = make_ads(args.batch, args.out, sizes=args.size, lang=args.lang, model=args.model,
                      seed=_number(args.seed, "--seed", int, 0), faces=faces)
    for row, message in report.bad:
        print(f"prodgen: row {row}: {_short(message)}", file=sys.stderr)
    rows = len(report.models)
    print(f"wrote {len(report.files)} banner(s) for {rows} row(s), contact-sheet.png and manifest.csv to {report.out}"
          + (f"; {len(report.bad)} row(s) skipped (listed above and in manifest.csv)" if report.bad else ""))
    return 1 if report.bad else 0


def _stability_grid(args) -> int:
    from prodgen.studies.recipe_grid import run_grid

    recipes = None if args.recipes is None else [r.strip() for r in args.recipes.split(",") if r.strip()]
    try:
        seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated whole numbers, e.g. 0,1,2; got {args.seeds!r}") from None
    if args.markdown:  # the table only: runs already cached are read, missing ones trained first
        from prodgen.studies.recipe_grid import format_markdown

        result = run_grid(recipes, seeds, steps=args.steps, jobs=args.jobs, out=args.out, log=lambda s: None)
        print(format_markdown(result))
        return 0
    run_grid(recipes, seeds, steps=args.steps, jobs=args.jobs, out=args.out)
    return 0


def _diffusion_study(args) -> int:
    from prodgen.studies.diffusion_study import format_markdown, run_study

    n = _number(args.n, "--n", int, 16)
    n_edits = _number(args.n_edits, "--n-edits", int, 1)
    command = " ".join(["prodgen diffusion-study"] + [f"--{k.replace('_', '-')} {v}" for k, v in
                                                      (("parts", args.parts), ("n", args.n), ("n_edits", args.n_edits),
                                                       ("seed", args.seed)) if v is not None]
                       + (["--refresh"] if args.refresh else []))
    result = run_study(args.parts, n=n, n_edits=n_edits, seed=_number(args.seed, "--seed", int, 0) or 0,
                       out=args.out, refresh=args.refresh, command=command, estimate_only=args.estimate,
                       log=(lambda s: print(s, file=sys.stderr, flush=True)) if args.markdown else print)
    if args.markdown and not args.estimate:
        print(format_markdown(result), end="")
    return 0


def _studio(args) -> int:
    from prodgen.apps.studio_server import serve

    return serve(port=args.port, open_browser=not args.no_browser, export_dir=args.export)


def _add_doctor(sub) -> None:
    s = sub.add_parser("doctor", help="check the installation, device, catalog cache, checkpoints "
                       "and drift from requirements-lock.txt")
    s.add_argument("--lock", metavar="FILE", help="compare installed versions with this lock "
                   "(default: the course folder's requirements-lock.txt)")
    s.set_defaults(func=_doctor)


def _add_bench(sub) -> None:
    s = sub.add_parser("bench", help="measure catalog rendering throughput and cached load time")
    s.add_argument("--json", action="store_true", help="print the figures as JSON")
    s.add_argument("--quick", action="store_true", help="small sizes, one round: a check that every benchmark runs "
                                                        "(rough figures)")
    s.add_argument("--only", help="one benchmark: render, build, engine, studio, sampling (diffusion, lesson 11) "
                                  "or batching (generate --batch rows against one request)")
    s.set_defaults(func=_bench)


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="the product catalog").add_subparsers(dest="data_command", required=True,
                                                                             metavar="ACTION")
    s = data.add_parser("build", help="render and cache the default catalog splits")
    s.add_argument("--split", action="append", help="only this split (repeatable)")
    s.add_argument("--size", type=int, default=32, help="image size: 32 (default), 64 (lessons 14+) or 128")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", help="rendering processes (default: up to 8, one per core)")
    s.add_argument("--look", default="photo", help="photo (default), sketch, poster or watercolour: the same "
                                                   "products drawn another way (lesson 16)")
    s.set_defaults(func=_data_build)
    s = data.add_parser("export", help="write a split as PNGs plus metadata.csv")
    s.add_argument("--split", required=True, help="train, val, test or unseen")
    s.add_argument("--n", type=int, default=None, help="number of products (default: the split's standard size)")
    s.add_argument("--size", type=int, default=32, help="image size: 32, 64 or 128")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output folder (new or empty)")
    s.add_argument("--look", default="photo", help="photo (default), sketch, poster or watercolour (lesson 16)")
    s.set_defaults(func=_data_export)
    s = data.add_parser("info", help="check a catalog folder (images plus metadata.csv): schema, counts, image "
                                     "sizes and modes, duplicates, problems")
    s.add_argument("folder")
    s.add_argument("--attributes", help="comma-separated attribute columns to use, e.g. shape,colour (default: "
                                        "every column except file and the descriptions)")
    s.add_argument("--min-per-value", type=int, default=None, metavar="N",
                   help="fewest images a value may have (default 20, prodgen.catalog.folder.MIN_PER_VALUE)")
    s.set_defaults(func=_data_info)


def _add_course(sub) -> None:
    course = sub.add_parser("course", help="lessons: build student versions, check, run headless")
    course_sub = course.add_subparsers(dest="course_command", required=True, metavar="ACTION")
    s = course_sub.add_parser("build", help="write notebooks/ from solutions/")
    s.set_defaults(func=_course_build)
    s = course_sub.add_parser("check", help="fail if notebooks/ is stale or a lesson breaks the notebook anatomy")
    s.set_defaults(func=_course_check)
    s = course_sub.add_parser("run", help="execute lessons with papermill and print a timing table")
    s.add_argument("lessons", nargs="*", metavar="LESSON", help="lesson numbers or names (default: all)")
    s.add_argument("--fast", action="store_true", help="run with FAST=True (small data, few epochs)")
    s.add_argument("--student", action="store_true",
                   help="run the student notebooks (only NotImplementedError allowed)")
    s.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell")
    s.add_argument("--update", action="store_true",
                   help="contributors: save each solution that ran without an error with its new outputs, then "
                        "rebuild notebooks/")
    s.set_defaults(func=_course_run)
    s = course_sub.add_parser("grade", help="execute submitted student notebooks and report each exercise "
                                            "(INSTRUCTORS.md)")
    s.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="student notebooks (.ipynb) or folders of them")
    s.add_argument("--out", help="write one CSV row per student and exercise to this new file")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    s.add_argument("--timeout", default="300", help="seconds allowed per notebook, in all (default 300)")
    s.add_argument("--jobs", default="1", help="submissions graded at once, each in its own sandboxes (default 1; "
                                               "up to 16: about one per CPU core, each needs about 1 GB of memory)")
    s.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True,
                   help="run with FAST=True (default; --no-fast: with the notebook's own parameters)")
    s.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                   help="grade without bubblewrap (students' code can then read and change your files; INSTRUCTORS.md)")
    s.set_defaults(func=_course_grade)


def _add_models(sub) -> None:
    s = sub.add_parser("models", help="list the shipped checkpoints and their metrics")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_models)


def _add_train(sub) -> None:
    s = sub.add_parser("train", help="retrain a shipped checkpoint with its recorded configuration (torchrun: several "
                                     "processes)")
    s.add_argument("model", help="a name from `prodgen models` (judge, text-gru, dcgan, vae, ...)")
    s.add_argument("--fast", action="store_true", help="a tiny run, to check that training works")
    s.add_argument("--out", help="write the checkpoint to this .pt file; without it the shipped one is replaced")
    s.add_argument("--epochs", help="epochs to train (with --resume: the total to reach); default: the recipe's")
    s.add_argument("--minutes", help="stop cleanly after this many minutes (at a batch boundary)")
    s.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    s.add_argument("--seed", help="the recipe's seed (initial weights, data order, noise); default: the recipe's")
    s.add_argument("--batch", help="the global batch size (split across torchrun's processes); default: the recipe's")
    s.add_argument("--data", help="train on your own catalog folder (PNGs + metadata.csv, any attributes); the "
                   "checkpoint goes to DATA/models/MODEL.pt unless --out is given")
    s.add_argument("--resume", action="store_true",
                   help="continue from the training state saved after each epoch (next to --out, or in the cache)")
    s.set_defaults(func=_train)


def _add_generate(sub) -> None:
    s = sub.add_parser("generate", help="generate product photos from attributes, a description or a CSV of requests")
    s.add_argument("--model", required=True, help="cgan-projection, cvae, text2img, dcgan, ... (`prodgen "
                                                  "leaderboard`), "
                   "or a checkpoint file (.pt) from `prodgen train --out / --data`")
    what = s.add_mutually_exclusive_group()  # none of them: an unconditional model (dcgan, vae)
    what.add_argument("--text", help="a description, e.g. 'a large red striped t-shirt by Acme' (text models)")
    what.add_argument("--attrs", help="key=value pairs, e.g. category=mug,color=red (attribute models)")
    what.add_argument("--batch", help="a CSV with a description column and/or attribute columns, optional n column")
    s.add_argument("--n", default="1", help="images per request (default 1; a CSV's n column overrides it)")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives byte-identical images")
    s.add_argument("--guidance", help="diffusion, flow: classifier-free guidance w (0 = unconditional, "
                                      "1 = conditional; default: the model's)")
    s.add_argument("--steps", help="diffusion, flow: sampling steps (default: the model's)")
    s.add_argument("--sampler", help="flow: the ODE solver, euler, heun or ab2 (default: the model's)")
    s.add_argument("--out", required=True, help="output folder (new or empty)")
    s.set_defaults(func=_generate)


def _add_edit(sub) -> None:
    s = sub.add_parser("edit", help="change attributes of a real photo (before/after PNGs and metadata.csv)")
    s.add_argument("--model", required=True, help="a model that edits (`prodgen models` lists them): "
                   "cvae (deterministic), diffusion, flow, flow-fast (inpainting)")
    s.add_argument("--image", required=True, help="the photo (PNG, JPEG, ...); other sizes are resized to 32x32")
    s.add_argument("--set", required=True, help="attributes to change, e.g. color=teal,pattern=dotted")
    s.add_argument("--seed", default="0", help="variant i uses seed S + i (inpainting models); same seed, same bytes")
    s.add_argument("--n", default="1", help="variants (default 1; cvae is deterministic: 1)")
    s.add_argument("--out", required=True, help="output folder (new or empty)")
    s.set_defaults(func=_edit)


def _add_restore(sub) -> None:
    s = sub.add_parser("restore", help="repair a damaged photo: a classic filter and a generator as the prior")
    s.add_argument("--image", required=True, help="the damaged photo (32x32; --task upscale: 32/factor px)")
    s.add_argument("--task", required=True, choices=["denoise", "deblur", "inpaint", "deblock", "upscale"])
    s.add_argument("--mask", help="inpaint: a 32x32 image, white = lost pixels (default: the photo's pure white)")
    s.add_argument("--sigma", help="denoise: the noise's std in [-1, 1] units (default 0.2); deblur: the blur's "
                                   "std in px (default 1.0)")
    s.add_argument("--quality", help="deblock: the JPEG quality it was saved at, 1-100 (default 15)")
    s.add_argument("--factor", help="upscale: 2, 4 or 8 (default 2)")
    s.add_argument("--model", default="flow", help="a model that restores (default flow)")
    s.add_argument("--seed", default="0", help="restoration i uses seed S + i; same seed, same bytes")
    s.add_argument("--n", default="1", help="restorations to draw (default 1)")
    s.add_argument("--out", required=True, help="output folder (new or empty)")
    s.set_defaults(func=_restore)


def _add_tryon(sub) -> None:
    s = sub.add_parser("tryon", help="try a product photo on a rendered scene (scene, product, mask, result PNGs and "
                                     "metadata.csv)")
    _options(s, ("--scene", "the scene, SPLIT:INDEX of the scene renderer, e.g. test:17 (train 0-7999, val and "
                            "test 0-999)"),
             ("--slot", "top, cap, shoes or bag on a mannequin, table on a tabletop (default: a scene's only slot)"),
             ("--product", "the product photo (PNG, JPEG, ...); other sizes are fitted to 64x64"),
             ("--model", "a try-on model (default cut-paste, the baseline)", {"default": "cut-paste"}),
             ("--seed", "try-on i uses seed S + i (models that draw); same seed, same bytes", {"default": "0"}),
             ("--n", "try-ons (default 1; a deterministic model: 1)", {"default": "1"}),
             ("--out", "output folder (new or empty)"),
             ("--list-slots", "print what scene SPLIT:INDEX holds (its slots and their products) and stop",
              {"metavar": "SCENE"}))
    s.set_defaults(func=_tryon)


def _add_ads(sub) -> None:
    s = sub.add_parser("ads", help="banner ads from a CSV of products: one generated product per row, in standard "
                                   "display sizes, with headline, brand colour, price and a call to action")
    _options(s, ("--batch", "a CSV with description and/or attribute columns (category, color, size, brand, pattern), "
                            "optional headline and price", {"required": True}),
             ("--size", "sizes WxH or standard names, comma-separated (default 300x250,728x90,160x600)",
              {"default": "300x250,728x90,160x600"}),
             ("--lang", "the banners' language: en or zh (call to action, default headline, currency sign)",
              {"default": "en"}),
             ("--model", "every row with this model (a shipped name or a .pt file); default: the best shipped text "
                         "model for rows with a description, attribute model for the others"),
             ("--seed", "row r uses seed S + r - 2; same seed, same bytes (default 0)", {"default": "0"}),
             ("--font", "a font file (.ttf, .otf, .ttc) for characters the shipped fonts lack, tried after them "
                        "(repeatable)", {"action": "append"}),
             ("--out", "output folder (new or empty)", {"required": True}))
    s.set_defaults(func=_ads)


def _add_evaluate(sub) -> None:
    s = sub.add_parser("evaluate", help="control accuracy, FID (with its floor), precision/recall and more for a "
                                        "shipped "
                       "model or a checkpoint file")
    s.add_argument("model", help="a shipped model's name, or a checkpoint file (.pt) from `prodgen train --out / "
                                 "--data`")
    s.add_argument("--data", help="with a checkpoint file: the catalog folder it was trained on (its test photos, "
                   "its schema)")
    s.add_argument("--judge", help="with --data: the judge checkpoint (default DATA/models/judge.pt)")
    s.add_argument("--n", type=int, default=None, dest="n_given",
                   help="samples to generate and real images to compare (default 2000; with --data: the test "
                        "photos, at most 2000)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.add_argument("--refresh", action="store_true", help="measure again even if the leaderboard cache has the figures")
    s.set_defaults(func=_evaluate)


def _add_leaderboard(sub) -> None:
    s = sub.add_parser("leaderboard",
                       help="every shipped image generator measured the same way (cached per checkpoint)")
    s.add_argument("--models", help="comma-separated names (default: every shipped generator)")
    s.add_argument("--n", default="2000", help="samples per model and real photos in the reference (default 2000)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--refresh", action="store_true", help="re-measure instead of reading cached rows")
    s.add_argument("--retime", action="store_true", help="time the img/s column of the cached rows again and "
                   "nothing else (a minute or two; run it on a quiet machine)")
    s.add_argument("--resolution", help="measure every model on this board (32 or 64 px): larger models' images are "
                                        "downsampled, and the table says so (default: each at its own resolution)")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="the rows as JSON")
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table (the README's)")
    s.set_defaults(func=_leaderboard)


def _options(parser, *options) -> None:
    """Add ``(flag, help)`` or ``(flag, help, {argparse keywords})`` options to ``parser``."""
    for flag, text, *keywords in options:
        parser.add_argument(flag, help=text, **(keywords[0] if keywords else {}))


def _add_stability_grid(sub) -> None:
    s = sub.add_parser("stability-grid", help="lesson 10's experiment: every GAN recipe x seeds, one budget, measured "
                                              "alike")
    _options(s, ("--recipes", "comma-separated recipe names (default: all)"),
             ("--seeds", "comma-separated seeds (default: 0,1,2)"),
             ("--steps", "training steps per run (default: the grid's budget)", {"type": int}),
             ("--jobs", "runs trained at once, one thread each (default 2)", {"type": int, "default": 2}),
             ("--out", "results file (default data/results/stability-grid.json)"),
             ("--markdown", "print the summary as a Markdown table (the README's)", {"action": "store_true"}))
    s.set_defaults(func=_stability_grid)


def _add_diffusion_study(sub) -> None:
    s = sub.add_parser("diffusion-study", help="lesson 11's measurements of the shipped diffusion model: guidance "
                                              "sweep, samplers, edits, leaderboard rows")
    _options(s, ("--parts", "comma-separated: guidance, samplers, edits, leaderboard (default: all)"),
             ("--n", "samples per part (default: guidance 1000, samplers 300, leaderboard 2000)"),
             ("--n-edits", "test photos edited by diffusion and the CVAE (default 2000)"),
             ("--seed", "requests and noise seed (default 0)"),
             ("--refresh", "measure parts again even if measured on this checkpoint", {"action": "store_true"}),
             ("--out", "results file (default data/results/diffusion-study.json)"),
             ("--markdown", "print the tables as Markdown (progress goes to stderr)", {"action": "store_true"}),
             ("--estimate", "time the network here and print each part's expected time; measure nothing",
              {"action": "store_true"}))
    s.set_defaults(func=_diffusion_study)


def _add_studio(sub) -> None:
    s = sub.add_parser("studio", help="serve the Product Studio (lesson 09) as a web page with Voilà on 127.0.0.1")
    s.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    s.add_argument("--no-browser", action="store_true", help="only print the URL (with its token)")
    s.add_argument("--export", default="studio-export", help="folder the studio exports pinned images to")
    s.set_defaults(func=_studio)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prodgen",
                                description="Controllable product image generation: the course's tools.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_doctor, _add_bench, _add_data, _add_course, _add_models, _add_train, _add_generate, _add_edit,
                _add_restore, _add_tryon, _add_ads, _add_evaluate, _add_leaderboard, _add_stability_grid,
                _add_diffusion_study, _add_studio):
        add(sub)
    return p


_LONG = re.compile(r"\S{121,}")


def _short(text: str) -> str:
    """``text`` with every run of more than 120 non-space characters (an over-long path) cut to its two ends."""
    return _LONG.sub(lambda m: f"{m[0][:50]}...{m[0][-50:]} ({len(m[0])} characters)", str(text))


def _os_error(e: OSError) -> str:
    """An ``OSError`` as one line naming the path (shortened) and what went wrong, without ``[Errno N]``."""
    if e.filename is None:
        return str(e)
    name = str(e.filename) + (f" -> {e.filename2}" if e.filename2 else "")
    return f"{e.strerror or type(e).__name__}: {name}"


def _warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"prodgen: warning: {_short(message)}", file=sys.stderr)


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (``kill``, a job scheduler, a closed terminal's shell) ends a command like Ctrl-C: the
    ``KeyboardInterrupt`` unwinds through the atomic writers, so nothing half-written is left. Only in the main
    thread, and the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "evaluate":  # --n: remember whether it was given (with --data the default is the test split)
        args.n = 2000 if args.n_given is None else args.n_given
    with warnings.catch_warnings(), _sigterm_interrupts():
        warnings.showwarning = _warning  # a warning is one line too (restored on leaving the block)
        try:
            return args.func(args)
        except (ValueError, FileNotFoundError, FileExistsError, TypeError) as e:
            print(f"prodgen: error: {_short(e)}", file=sys.stderr)
            return 2
        except OSError as e:  # a name too long, no permission, a full disk, ...: one line, never a traceback
            print(f"prodgen: error: {_short(_os_error(e))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("prodgen: interrupted; nothing half-written was left behind", file=sys.stderr)
            return 130  # for SIGTERM too: the run was stopped, and cleaned up


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Lesson 12's exercise checks on right, wrong and unfinished answers: one line, never an exception, and the
message names the mistake."""
from __future__ import annotations

import pytest
import torch

from prodgen import checks

from check_helpers import run_check as _run
from check_helpers import verdict_tests


# ------------------------------------------------------------------ drawing answers (the lesson's own shapes)
def _profile(draw, cx, cy, r, profile, fill):
    right = [(cx + r * w, cy + r * y) for y, w in profile]
    left = [(cx - r * w, cy + r * y) for y, w in reversed(profile)]
    draw.polygon(right + left, fill=fill)


def draw_vase(draw, cx, cy, r, fill):
    _profile(draw, cx, cy, r,
             [(-1.0, 0.22), (-0.75, 0.14), (-0.45, 0.32), (0.05, 0.55), (0.6, 0.42), (1.0, 0.24)], fill)


def draw_plate(draw, cx, cy, r, fill):
    draw.ellipse((cx - r, cy - 0.42 * r, cx + r, cy + 0.42 * r), fill=fill)


def draw_jug(draw, cx, cy, r, fill):
    draw.ellipse((cx + 0.2 * r, cy - 0.7 * r, cx + 0.85 * r, cy + 0.3 * r), outline=fill, width=max(1, round(0.12 * r)))
    _profile(draw, cx, cy, r, [(-0.85, 0.3), (-0.3, 0.34), (0.3, 0.55), (0.85, 0.42)], fill)
    draw.polygon([(cx - 0.26 * r, cy - 0.85 * r), (cx - 0.62 * r, cy - 0.98 * r), (cx - 0.34 * r, cy - 0.55 * r)],
                 fill=fill)


def draw_star(draw, cx, cy, r, fill):  # another right answer: any shape of its own
    import math

    pts = [((1.0 if k % 2 == 0 else 0.45) * math.cos(k * math.pi / 5 - math.pi / 2),
            (1.0 if k % 2 == 0 else 0.45) * math.sin(k * math.pi / 5 - math.pi / 2)) for k in range(10)]
    draw.polygon([(cx + r * x, cy + r * y) for x, y in pts], fill=fill)


OTHERS = {"vase": draw_vase, "plate": draw_plate}


def _jug_fixed_place(draw, cx, cy, r, fill):
    draw_jug(draw, 64, 66, r, fill)


def _jug_fixed_size(draw, cx, cy, r, fill):
    draw_jug(draw, cx, cy, 40, fill)


def _jug_red(draw, cx, cy, r, fill):
    draw_jug(draw, cx, cy, r, (200, 40, 40) if fill != (200, 40, 40) else (90, 20, 20))


def _jug_outlined(draw, cx, cy, r, fill):
    draw_jug(draw, cx, cy, r, fill)
    draw.ellipse((cx - 0.3 * r, cy - 0.2 * r, cx + 0.3 * r, cy + 0.2 * r), outline=(0, 0, 0), width=2)


def _nothing(draw, cx, cy, r, fill):
    pass


def _tiny(draw, cx, cy, r, fill):
    draw.ellipse((cx - 0.1 * r, cy - 0.1 * r, cx + 0.1 * r, cy + 0.1 * r), fill=fill)


def _block(draw, cx, cy, r, fill):
    draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)


def _too_wide(draw, cx, cy, r, fill):
    draw.ellipse((cx - 1.5 * r, cy - 0.4 * r, cx + 1.5 * r, cy + 0.4 * r), fill=fill)


def _like_plate(draw, cx, cy, r, fill):
    draw.ellipse((cx - 0.95 * r, cy - 0.4 * r, cx + 0.95 * r, cy + 0.42 * r), fill=fill)


def _draw_check(answer):
    return checks.check_draw_product(answer, OTHERS, "jug")


# ------------------------------------------------------------------ audit answers
def _audit(images, labels, schema, *, form="right"):
    counts = {}
    for j, (a, values) in enumerate(schema.values.items()):
        column = labels[:, j]
        if form == "unknown counted":
            counts[a] = {**{v: int((column == k).sum()) for k, v in enumerate(values)}, "-1": int((column < 0).sum())}
        elif form == "no zeros":
            counts[a] = {v: int((column == k).sum()) for k, v in enumerate(values) if (column == k).any()}
        elif form == "unknown as first":
            counts[a] = {v: int((column.clamp(min=0) == k).sum()) for k, v in enumerate(values)}
        else:
            counts[a] = {v: int((column == k).sum()) for k, v in enumerate(values)}
    first, pairs = {}, []
    for i in range(len(images)):
        if form == "by label":
            key = tuple(labels[i].tolist())
        elif form == "by mean":
            key = round(float(images[i].float().mean()), 1)
        elif form == "pixels and labels":
            key = (images[i].numpy().tobytes(), tuple(labels[i].tolist()))
        else:
            key = images[i].numpy().tobytes()
        j = first.get(key)
        if j is None:
            first[key] = i
        else:
            pairs.append((i, j) if form == "reversed" else (j, i))
        if form == "chain":
            first[key] = i
    return {"counts": counts, "duplicates": pairs}


def _audit_as(form):
    return lambda images, labels, schema: _audit(images, labels, schema, form=form)


def _audit_in_place(images, labels, schema):
    out = _audit(images, labels, schema)
    labels[labels < 0] = 0
    return out


def _audit_list(images, labels, schema):
    return [_audit(images, labels, schema)["counts"], _audit(images, labels, schema)["duplicates"]]


def _audit_unsorted(images, labels, schema):
    out = _audit(images, labels, schema)
    return {**out, "duplicates": out["duplicates"][::-1]}


# ------------------------------------------------------------------ control-table answers
def _table(predicted, requested, names, *, form="right"):
    table = {}
    for j, a in enumerate(names):
        asked = requested[:, j] >= 0
        if form == "misses counted":
            table[a] = float((predicted[:, j] == requested[:, j]).float().mean())
        elif form == "zero for unasked" or asked.any():
            table[a] = float((predicted[asked, j] == requested[asked, j]).float().mean()) if asked.any() else 0.0
        if form == "misses" and a in table:
            table[a] = 1 - table[a]
    if form == "pooled":
        asked = requested >= 0
        table["mean"] = float((predicted[asked] == requested[asked]).float().mean())
    else:
        table["mean"] = sum(table.values()) / len(table)
    return table


def _table_as(form):
    return lambda predicted, requested, names: _table(predicted, requested, names, form=form)


def _table_nan(predicted, requested, names):
    table = {a: float((predicted[requested[:, j] >= 0, j] == requested[requested[:, j] >= 0, j]).float().mean())
             for j, a in enumerate(names)}  # NaN for an attribute nobody asked for
    return {**table, "mean": sum(table.values()) / len(table)}


def _table_no_mean(predicted, requested, names):
    out = _table(predicted, requested, names)
    out.pop("mean")
    return out


CASES = {
    "draw": (_draw_check, [draw_jug, draw_star], [
        ("ignores cx, cy", _jug_fixed_place), ("ignores r", _jug_fixed_size), ("own colour", _jug_red),
        ("outline in black", _jug_outlined), ("draws nothing", _nothing), ("a dot", _tiny), ("a block", _block),
        ("outside its square", _too_wide), ("looks like the plate", _like_plate), ("not a function", "jug"),
    ]),
    "audit": (checks.check_audit, [_audit], [
        ("unknown counted", _audit_as("unknown counted")), ("value with no photos left out", _audit_as("no zeros")),
        ("unknown read as the first value", _audit_as("unknown as first")),
        ("duplicates by label", _audit_as("by label")),
        ("duplicates by mean pixel", _audit_as("by mean")), ("relabelled copy missed", _audit_as("pixels and labels")),
        ("pairs reversed", _audit_as("reversed")), ("copy paired with the previous copy", _audit_as("chain")),
        ("changes the labels", _audit_in_place), ("returns a list", _audit_list),
        ("pairs out of order", _audit_unsorted),
    ]),
    "control table": (checks.check_control_table, [_table], [
        ("unrequested counted as misses", _table_as("misses counted")), ("share of misses", _table_as("misses")),
        ("pooled mean", _table_as("pooled")), ("0 for an attribute nobody asked for", _table_as("zero for unasked")),
        ("NaN for an attribute nobody asked for", _table_nan), ("no mean", _table_no_mean),
    ]),
}

(test_right_answers_pass, test_wrong_answers_fail_with_a_hint,
 test_unfinished_answer_says_not_done) = verdict_tests(CASES)


@pytest.mark.parametrize("answer, words", [
    (_jug_fixed_place, "use cx and cy"), (_jug_fixed_size, "multiply every offset from the centre by r"),
    (_jug_red, "fill=fill"), (_like_plate, "same pixels as the plate"), (_too_wide, "outside the square"),
])
def test_drawing_messages_name_the_mistake(answer, words, capsys):
    ok, out = _run(_draw_check, answer, capsys)
    assert not ok and words in out, out


@pytest.mark.parametrize("form, words", [
    ("unknown counted", "unknown label -1"), ("no zeros", "also one with 0 images"), ("unknown as first", "count only "
     "labels >= 0"), ("by label", "same PIXELS"), ("by mean", "differ in one pixel value"),
    ("pixels and labels", "whatever its labels say"), ("reversed", "(first, copy)"), ("chain", "FIRST image it copies"),
])
def test_audit_messages_name_the_mistake(form, words, capsys):
    ok, out = _run(checks.check_audit, _audit_as(form), capsys)
    assert not ok and words in out, out


@pytest.mark.parametrize("form, words", [
    ("misses counted", "counts the requests that left"), ("misses", "share of misses"),
    ("pooled", "pools all requested"), ("zero for unasked", "leave it out of the table"),
])
def test_control_table_messages_name_the_mistake(form, words, capsys):
    ok, out = _run(checks.check_control_table, _table_as(form), capsys)
    assert not ok and words in out, out


def test_the_checks_leave_torch_random_state_alone():
    state = torch.random.get_rng_state()
    checks.check_audit(_audit)
    checks.check_control_table(_table)
    assert torch.equal(state, torch.random.get_rng_state())

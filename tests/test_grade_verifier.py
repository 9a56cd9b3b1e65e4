"""`prodgen course grade`'s verifier (prodgen/course/grade_verify.py) against code in the exercise function itself:
it patches the checks, reaches the check's closure, walks the frames or a traceback's, writes verdict lines of its
own to every file descriptor, or returns a tensor subclass. That code runs in the verifier (the check calls the
student's function there), so the verifier alone decides these rows: each submission goes through the grader's
preparation and its verify stage in the bubblewrap sandbox (the notebook's own run, stage 1, cannot change a
verdict: tests/test_grade_hostile.py grades whole notebooks), several at once as `--jobs` does, and each must be
graded error with the reason the verifier saw.
"""
from __future__ import annotations

import concurrent.futures

import pytest
from test_grade_hostile import ROOT, _with, needs_bwrap

from prodgen.course import grade

FUNCTION_ATTACKS = {
    "function_patch": _with(exercise="""\
        def to_channels_first(image):
            import prodgen.checks.catalog as c
            c._expect = lambda *a, **k: None
            return image
        """),
    "function_closure": _with(exercise="""\
        def to_channels_first(image):
            from prodgen import checks
            checks.check_channels_first.__closure__[0].cell_contents = lambda f: None
            return image
        """),
    "function_frames": _with(exercise="""\
        def to_channels_first(image):
            import sys
            frame = sys._getframe(1)
            return image.permute(2, 0, 1)
        """),
    "function_traceback": _with(exercise="""\
        def to_channels_first(image):
            try:
                1 / 0
            except ZeroDivisionError as e:
                e.__traceback__.tb_frame.f_back.f_globals
            return image.permute(2, 0, 1)
        """),
    "function_forges_lines": _with(exercise="""\
        def to_channels_first(image):
            import json, os
            line = json.dumps({"body": json.dumps({"exercise": "channels_first", "result": True}), "mac": "0" * 64})
            for fd in range(3, 64):
                try:
                    os.write(fd, (line + "\\n").encode())
                except OSError:
                    pass
            return image.permute(2, 0, 1)
        """),
    "tensor_subclass": _with(exercise="""\
        import torch
        class Liar(torch.Tensor):
            pass
        def to_channels_first(image):
            return image.as_subclass(Liar)
        """),
}

REASONS = {"function_patch": "changed prodgen.checks.catalog._expect",
           "function_closure": "object.__setattr__",  # cell_contents may be set only via its type: refused
           "function_frames": "sys._getframe", "function_traceback": "object.__getattr__",
           "function_forges_lines": "without this run's key", "tensor_subclass": "subclass of torch.Tensor"}


def _verified(nb, lesson) -> tuple[str, str]:
    """(status, detail) of lesson 00's one exercise when the verifier alone grades `nb`."""
    copy, [plan] = grade._prepare(nb, lesson, fast=True)
    verdicts, why = grade._verify(copy, lesson, [plan], sandbox=True, timeout=60)
    ran = [{"ran": True}] * len(copy.cells)  # as if the notebook's run had gone through: only the verifier decides
    return grade._verdict(plan, copy.cells, ran, "", verdicts.get(plan.exercise.name), why)


@needs_bwrap
@pytest.mark.slow(seconds=40)
def test_attacks_inside_the_exercise_function_are_graded_error_with_their_reason():
    assert set(REASONS) == set(FUNCTION_ATTACKS)
    lesson = grade.load_lessons(ROOT)["00_welcome"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:  # each stage in a sandbox of its own
        found = dict(zip(FUNCTION_ATTACKS, pool.map(lambda nb: _verified(nb, lesson), FUNCTION_ATTACKS.values())))
    for name, (status, detail) in found.items():
        assert status == "error", (name, status, detail)
        assert REASONS[name] in detail or (name == "function_closure" and "closure" in detail), (name, detail)

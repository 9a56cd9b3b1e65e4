"""tools/ci_budget.py: CI's test seconds grouped by part (each lesson, grading, browser, the rest)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ci_budget", ROOT / "tools" / "ci_budget.py")
ci_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ci_budget)

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="solutions.03_gans.ipynb" name="Cell 4" time="10.5"/>
<testcase classname="solutions.03_gans.ipynb" name="lesson assertions" time="0.5"/>
<testcase classname="tests.test_lessons" name="test_student_lesson[03_gans]" time="9.0"/>
<testcase classname="solutions.11_diffusion.ipynb" name="Cell 2" time="30"/>
<testcase classname="tests.test_grade_hostile" name="test_escapes" time="100"/>
<testcase classname="tests.test_browser" name="test_studio_in_jupyterlab" time="40"/>
<testcase classname="tests.test_catalog" name="test_render" time="2"/>
</testsuite></testsuites>"""


def test_parts_group_each_lesson_with_its_student_run(tmp_path, capsys):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT, encoding="utf-8")
    found = ci_budget.parts(path)
    assert found == {"browser (JupyterLab, Voila)": 40.0, "grading (sandboxed, hostile submissions)": 100.0,
                     "lesson 03": 20.0, "lesson 11": 30.0, "other tests": 2.0}
    assert ci_budget.main([str(path), "--wall", "96"]) == 0
    out = capsys.readouterr().out
    assert "| lesson 03 | 20 | 10 s |" in out and "2 lessons, 25 test seconds each on average, 12 s of wall time" in out


def test_a_missing_file_is_one_line(tmp_path, capsys):
    assert ci_budget.main([str(tmp_path / "none.xml")]) == 2
    assert capsys.readouterr().err.startswith("ci_budget: no JUnit file at")

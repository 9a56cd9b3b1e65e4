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


def test_the_timeline_says_which_worker_ran_out_of_work_first(tmp_path):
    (tmp_path / "timeline-gw0.tsv").write_text("gw0\t100.0\t160.0\ttests/a.py::long\n", encoding="utf-8")
    (tmp_path / "timeline-gw1.tsv").write_text("gw1\t100.0\t110.0\ttests/b.py::one\n"
                                               "gw1\t110.0\t130.0\ttests/b.py::two\n"
                                               "a broken line\n", encoding="utf-8")
    (tmp_path / "timeline-main.tsv").write_text("main\t100.0\t161.0\ttests/a.py::long\n", encoding="utf-8")
    out = "\n".join(ci_budget.timeline(tmp_path))
    assert "60 s from the first test's start to the last test's end" in out
    assert "| gw0 | 1 | 60 | 0 |" in out and "| gw1 | 2 | 30 | 30 |" in out
    assert out.endswith("tests/a.py::long (gw0, 60 s, ended 60 s in)")
    assert ci_budget.timeline(tmp_path / "nothing") == [f"no timeline lines in {tmp_path / 'nothing'}"]


def test_conftest_writes_a_timeline_line_per_test(tmp_path, monkeypatch, pytestconfig):
    conftest = pytestconfig.pluginmanager.get_plugin(str(ROOT / "conftest.py"))
    monkeypatch.setenv("PRODGEN_TIMELINE", str(tmp_path))
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    conftest.pytest_runtest_logstart("tests/x.py::t", None)
    conftest.pytest_runtest_logfinish("tests/x.py::t", None)
    worker, start, end, test = (tmp_path / "timeline-gw7.tsv").read_text(encoding="utf-8").strip().split("\t")
    assert (worker, test) == ("gw7", "tests/x.py::t") and float(end) >= float(start)

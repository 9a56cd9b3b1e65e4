"""`prodgen course grade` (prodgen/grade.py): submissions made here from real lessons' student and solution
versions, graded for real (executed with FAST=True), and the command's bad input.

Lesson 00 (one exercise, the cheapest FAST run) gives the batch: solved, unsolved, a wrong answer whose check
cell was also edited to print [PASS], a renamed solved copy without its check cell, one that crashes in a
non-exercise cell, one that is not JSON, and (with a short time limit) one that hangs. Lesson 09 (three
exercises) shows the exercises are graded one by one: a check that crashes does not stop the next one.
"""
from __future__ import annotations

import copy
import csv
import os

import nbformat
import pytest

from prodgen import course
from prodgen.course import grade

from cli_helpers import in_this_process

ROOT = course.find_root()


def _lesson(name):
    return (nbformat.read(str(ROOT / "notebooks" / f"{name}.ipynb"), as_version=4),
            nbformat.read(str(ROOT / "solutions" / f"{name}.ipynb"), as_version=4))


def _exercises(nb):
    return [i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", [])]


def _save(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _welcome_batch(folder):
    """Lesson 00's submissions: {name: path}."""
    student, solution = _lesson("00_welcome")
    [ex] = _exercises(student)
    check = ex + 1
    assert "checks.check_channels_first" in student.cells[check].source
    solved = copy.deepcopy(student)
    solved.cells[ex].source = solution.cells[ex].source  # with its ### BEGIN/END SOLUTION markers
    wrong = copy.deepcopy(solved)
    wrong.cells[ex].source = wrong.cells[ex].source.replace("permute(2, 0, 1)", "permute(2, 1, 0)")
    assert wrong.cells[ex].source != solved.cells[ex].source
    wrong.cells[check].source = 'print("[PASS] channels first")'  # an edited check must not pass itself
    renamed = copy.deepcopy(solved)
    del renamed.cells[check]  # the lesson's check is put back
    crash = copy.deepcopy(solved)
    crash.cells.insert(3, nbformat.v4.new_code_cell('raise RuntimeError("boom")'))  # before the setup
    paths = {
        "solved": _save(solved, folder / "alice" / "00_welcome.ipynb"),
        "unsolved": _save(student, folder / "bob" / "00_welcome.ipynb"),
        "wrong": _save(wrong, folder / "carol-00_welcome.ipynb"),
        "renamed": _save(renamed, folder / "erin_homework.ipynb"),
        "crash": _save(crash, folder / "dave" / "00_welcome.ipynb"),
        "broken": folder / "frank" / "00_welcome.ipynb",
    }
    paths["broken"].parent.mkdir()
    paths["broken"].write_text("{this is not a notebook", encoding="utf-8")
    return paths


@pytest.fixture
def cli(monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return in_this_process(monkeypatch, capsys)


@pytest.mark.slow(seconds=60)
def test_a_batch_of_lesson_00_submissions_gets_one_clear_row_each(tmp_path, cli):
    paths = _welcome_batch(tmp_path / "in")
    out = tmp_path / "report.csv"
    order = ["solved", "unsolved", "wrong", "renamed", "crash", "broken"]
    code, stdout, stderr = cli(["course", "grade", *(paths[k] for k in order), "--out", out, "--timeout", "120",
                                "--jobs", "3"])
    assert code == 0, stderr
    assert "Traceback" not in stdout + stderr
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(grade.COLUMNS)
    assert [r["submission"] for r in rows] == [str(paths[k]) for k in order]  # in order, whichever finished first
    assert sorted(int(line[1:line.index("/")]) for line in stdout.splitlines() if line.startswith("[")) == [
        1, 2, 3, 4, 5, 6]  # one progress line per submission as it finishes
    by = {row["submission"]: row for row in rows}
    assert len(rows) == len(by) == 6  # one exercise each; the unreadable one gets one row too
    row = {k: by[str(paths[k])] for k in order}
    assert [row[k]["student"] for k in order] == ["alice", "bob", "carol", "erin_homework", "dave", "frank"]
    assert {row[k]["exercise"] for k in order[:5]} == {"channels_first"}
    assert {row[k]["lesson"] for k in order[:5]} == {"00_welcome"}
    assert row["solved"]["status"] == "passed" and row["solved"]["detail"] == ""
    assert row["unsolved"]["status"] == "not attempted"
    assert row["wrong"]["status"] == "failed"
    assert row["wrong"]["detail"].startswith("[FAIL] channels first:") and "edited" in row["wrong"]["detail"]
    assert row["renamed"]["status"] == "passed"
    assert "identified as 00_welcome by its content" in row["renamed"]["detail"]
    assert "check cell was missing" in row["renamed"]["detail"]
    assert row["crash"]["status"] == "error"
    assert row["crash"]["detail"] == "not run: cell 4 raised RuntimeError: boom"
    assert row["broken"]["status"] == "error" and row["broken"]["exercise"] == ""
    assert row["broken"]["detail"].startswith("not a readable notebook")
    assert 0 < float(row["solved"]["seconds"]) < 120
    summary = stdout[stdout.index("student"):]
    assert "alice" in summary and "1 of 1" in summary
    assert "channels_first  2 of 5" in summary  # per exercise: the readable five, two passed
    for path in paths.values():  # graded in copies: the submissions are untouched
        assert path.stat().st_size > 0
    assert nbformat.read(str(paths["solved"]), as_version=4).cells[14].get("outputs") == []


@pytest.mark.slow(seconds=15)
def test_a_notebook_that_hangs_is_stopped_at_the_time_limit(tmp_path):
    student, solution = _lesson("00_welcome")
    [ex] = _exercises(student)
    hang = copy.deepcopy(student)
    hang.cells[ex].source = solution.cells[ex].source
    hang.cells.insert(3, nbformat.v4.new_code_cell("import time\ntime.sleep(600)"))
    path = _save(hang, tmp_path / "grace" / "00_welcome.ipynb")
    [row] = grade.grade([path], timeout=10, log=lambda s: None)
    assert (row.student, row.exercise, row.status) == ("grace", "channels_first", "error")
    assert row.detail == "not run: the time limit of 10 s was reached in cell 4"
    assert row.seconds < 40  # the kernel was stopped, not waited for


@pytest.mark.slow(seconds=40)
def test_each_exercise_of_a_lesson_is_graded_on_its_own(tmp_path):
    student, solution = _lesson("09_control_studio")
    slerp, noise, direction = _exercises(student)
    nb = copy.deepcopy(student)
    nb.cells[slerp].source = solution.cells[slerp].source
    nb.cells[noise].source = "# I deleted my truncated_noise"  # its check raises NameError
    nb.cells[direction].source = solution.cells[direction].source.replace(
        "return (w / w.norm()).detach()", "return torch.ones(z.shape[1]) / z.shape[1] ** 0.5")
    path = _save(nb, tmp_path / "heidi.ipynb")
    rows = grade.grade([path], timeout=300, log=lambda s: None)
    got = {row.exercise: row for row in rows}
    assert [row.exercise for row in rows] == ["slerp", "truncated_noise", "attribute_direction"]
    assert {row.lesson for row in rows} == {"09_control_studio"}
    assert got["slerp"].status == "passed"
    assert got["truncated_noise"].status == "error"
    assert got["truncated_noise"].detail.startswith("the check raised NameError")
    assert got["attribute_direction"].status == "failed"  # still graded after the crashing check
    assert got["attribute_direction"].detail.startswith("[FAIL]")


# ------------------------------------------------------------------ identification, names (no execution)


def test_a_submission_is_identified_by_its_content(tmp_path):
    lessons = grade.load_lessons()
    assert {"00_welcome", "09_control_studio"} <= set(lessons)
    assert [e.name for e in lessons["09_control_studio"].exercises] == ["slerp", "truncated_noise",
                                                                        "attribute_direction"]
    welcome, _ = _lesson("00_welcome")
    lesson, note = grade.identify(welcome, tmp_path / "00_welcome.ipynb", lessons)
    assert (lesson.name, note) == ("00_welcome", "")
    lesson, note = grade.identify(welcome, tmp_path / "09_control_studio.ipynb", lessons)
    assert lesson.name == "00_welcome" and "file name says 09_control_studio" in note
    lesson, note = grade.identify(welcome, tmp_path / "Untitled.ipynb", lessons)
    assert lesson.name == "00_welcome" and note.startswith("renamed")
    stranger = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    lesson, note = grade.identify(stranger, tmp_path / "Untitled.ipynb", lessons)
    assert lesson is None and note.startswith("cannot tell which lesson")
    lesson, note = grade.identify(stranger, tmp_path / "00_welcome.ipynb", lessons)  # only the name is left
    assert lesson.name == "00_welcome" and "because of its file name" in note


def test_a_notebook_that_is_no_lesson_gets_one_row_without_running(tmp_path):
    path = _save(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), tmp_path / "ivan.ipynb")
    [row] = grade.grade([path], log=lambda s: None)
    assert (row.student, row.lesson, row.exercise, row.status) == ("ivan", "", "", "error")
    assert row.detail.startswith("cannot tell which lesson")


@pytest.mark.parametrize("path, name", [
    ("submitted/alice/00_welcome.ipynb", "alice"), ("bob-00_welcome.ipynb", "bob"),
    ("x/00_welcome_carol.ipynb", "carol"), ("class/dave/00_welcome (1).ipynb", "dave"),
    ("erin homework.ipynb", "erin homework"),
])
def test_student_names(tmp_path, path, name):
    assert grade.student_name(tmp_path / path, ["00_welcome", "09_control_studio"]) == name


def test_folders_are_searched_and_repeats_dropped(tmp_path):
    a = _save(nbformat.v4.new_notebook(), tmp_path / "in" / "a" / "00_welcome.ipynb")
    b = _save(nbformat.v4.new_notebook(), tmp_path / "in" / "b.ipynb")
    _save(nbformat.v4.new_notebook(), tmp_path / "in" / ".ipynb_checkpoints" / "b-checkpoint.ipynb")
    assert grade.submissions([tmp_path / "in", b]) == [a, b]


# ------------------------------------------------------------------ bad input: exit 2, one line, nothing written


def _bad(cli, args, message, out=None):
    code, stdout, stderr = cli(["course", "grade", *args])
    assert code == 2
    assert stderr.startswith("prodgen: error: ") and message in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "[1/" not in stdout  # nothing was graded
    if out is not None:
        assert not out.exists() or out.read_text() == "old report\n"


def test_bad_input(tmp_path, cli):
    good = _save(nbformat.v4.new_notebook(), tmp_path / "ok.ipynb")
    out = tmp_path / "report.csv"
    _bad(cli, [tmp_path / "missing.ipynb", "--out", out], "missing.ipynb does not exist", out)
    (tmp_path / "notes.txt").write_text("hello")
    _bad(cli, [tmp_path / "notes.txt", "--out", out], "is not a notebook (.ipynb)", out)
    (tmp_path / "empty").mkdir()
    _bad(cli, [tmp_path / "empty"], "holds no .ipynb notebook")
    _bad(cli, [good, "--timeout", "0"], "--timeout must be a positive number")
    _bad(cli, [good, "--timeout", "soon"], "--timeout must be a positive number, got 'soon'")
    _bad(cli, [good, "--jobs", "0"], "--jobs must be a whole number from 1 to 16, got 0")
    _bad(cli, [good, "--jobs", "1e9"], "--jobs must be a whole number from 1 to 16, got '1e9'")
    _bad(cli, [good, "--out", tmp_path], "is a folder")
    _bad(cli, [good, "--out", tmp_path / "nowhere" / "r.csv"], "does not exist")
    _bad(cli, [good, "--out", tmp_path / "notes.txt" / "r.csv"], "is a file, not a folder")
    out.write_text("old report\n")
    _bad(cli, [good, "--out", out], "already exists and is not empty", out)
    code, _, stderr = cli(["course", "grade"])  # argparse: a submission is required
    assert code == 2 and "SUBMISSION" in stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_report_folder_is_refused(tmp_path, cli):
    good = _save(nbformat.v4.new_notebook(), tmp_path / "ok.ipynb")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _bad(cli, [good, "--out", locked / "r.csv"], "is not writable")
    finally:
        locked.chmod(0o700)


def test_the_report_is_written_atomically_with_a_header(tmp_path):
    rows = [grade.Row("alice", "00_welcome", "channels_first", "failed", 'a "quoted", detail', "a.ipynb", 1.5)]
    out = grade.write_csv(rows, tmp_path / "r.csv")
    with open(out, encoding="utf-8", newline="") as f:
        assert list(csv.reader(f)) == [list(grade.COLUMNS), ["alice", "00_welcome", "channels_first", "failed",
                                                               'a "quoted", detail', "a.ipynb", "1.5", ""]]
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_every_prodgen_command_in_the_instructors_guide_parses():
    """INSTRUCTORS.md's command lines stay in step with the command line (parsed, not run)."""
    import re
    import shlex

    from prodgen.cli import _parser

    guide = (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", guide, re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("prodgen ")]
    assert len(commands) >= 10 and ["course", "grade", "submitted/", "--out", "report.csv"] in commands
    for args in commands:
        _parser().parse_args(args)  # argparse exits (status 2) on a command the guide gets wrong

"""Unit tests for prodgen.course (tooling: `prodgen course build|check|run`), on tiny notebooks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from prodgen import course

INTRO = (
    "# Tiny lesson\n\n## Learning objectives\n- build things\n\n"
    "**Time:** about 1 min on a laptop CPU (2 cores), seconds on a GPU"
)
EXERCISE = (
    "def f(x):\n    # Hint: add one\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION"
)
STUB = (
    "def f(x):\n    # Hint: add one\n    # YOUR CODE HERE\n"
    '    raise NotImplementedError("Exercise not done yet. Hint: add one")'
)


def lesson(*cells) -> nbformat.NotebookNode:
    """A notebook that follows the lesson anatomy, with `cells` in its middle."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "version": "3.11.4"},
            "widgets": {"state": {}},
        }
    )
    params = new_code_cell("FAST = False\nSEED = 0", metadata={"tags": ["parameters"]})
    body = list(cells) or [new_code_cell(EXERCISE), new_code_cell("checks.check_f(f)")]
    nb.cells = [new_markdown_cell(INTRO), params, *body, new_markdown_cell("## Summary\nDone.")]
    return nb


def make_repo(root: Path, lessons: dict[str, nbformat.NotebookNode], build=True) -> Path:
    """A course folder with these solution notebooks (and their student versions)."""
    (root / "solutions").mkdir(parents=True)
    for name, nb in lessons.items():
        nbformat.write(nb, str(root / "solutions" / f"{name}.ipynb"))
    if build:
        course.build(root)
    return root


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path, {"00_intro": lesson(), "01_catalog": lesson()})


# --------------------------------------------------------------------------- stubs


def test_stub_keeps_indentation_and_hint():
    source, blocks = course.strip_solutions(EXERCISE)
    assert (source, blocks) == (STUB, 1)


def test_stub_without_hint_and_trailing_newline_kept():
    source, _ = course.strip_solutions("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\nprint(x)\n")
    expected = '# YOUR CODE HERE\nraise NotImplementedError("Exercise not done yet.")\nprint(x)\n'
    assert source == expected


def test_stub_escapes_quotes():
    hint = """use "sum" and 'len' \\ then divide"""
    source, _ = course.strip_solutions(f"# Hint: {hint}\n### BEGIN SOLUTION\n### END SOLUTION")
    with pytest.raises(NotImplementedError) as info:
        exec(source, {})
    assert str(info.value) == f"Exercise not done yet. Hint: {hint}"


def test_several_blocks_each_get_their_own_hint():
    source = (
        "# Hint: first\n### BEGIN SOLUTION\na = 1\n### END SOLUTION\n"
        "b = 2\n"
        "  ### BEGIN SOLUTION\n  c = 3\n  ### END SOLUTION\n"
    )
    stripped, blocks = course.strip_solutions(source)
    assert blocks == 2
    assert stripped.count("# YOUR CODE HERE") == 2
    assert "Hint: first" in stripped.splitlines()[2]
    assert stripped.splitlines()[-1] == '  raise NotImplementedError("Exercise not done yet.")'
    assert "a = 1" not in stripped and "c = 3" not in stripped and "b = 2" in stripped


def test_markdown_block_becomes_answer_placeholder():
    source = "Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION\n"
    assert course.strip_solutions(source, "markdown") == ("Why?\n\n*Your answer here.*\n", 1)


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\nx = 1", "without ### END"),
        ("x = 1\n### END SOLUTION", "without ### BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
    ],
)
def test_bad_blocks_raise(source, problem):
    with pytest.raises(ValueError, match=problem):
        course.strip_solutions(source)


def test_make_student_cleans_cells_and_metadata():
    exercise = new_code_cell(EXERCISE, execution_count=3, metadata={"tags": ["exercise", "x"]})
    exercise.outputs = [new_output("stream", name="stdout", text="hi\n")]
    plain = new_code_cell("y = 2", execution_count=4, metadata={"collapsed": True})
    markdown = new_markdown_cell("### BEGIN SOLUTION\nsecret\n### END SOLUTION")
    nb = lesson(exercise, plain, markdown)
    before = json.dumps(nb, sort_keys=True)

    student = course.make_student(nb)

    assert json.dumps(nb, sort_keys=True) == before  # pure
    assert student.metadata == {
        "kernelspec": nb.metadata.kernelspec,
        "language_info": {"name": "python"},
    }
    assert [c.id for c in student.cells] == [c.id for c in nb.cells]
    ex, pl, md = student.cells[2:5]
    assert ex.source == STUB
    assert ex.metadata == {"tags": ["exercise", "x", "raises-exception"]}
    assert (ex.outputs, ex.execution_count) == ([], None)
    assert (pl.metadata, pl.execution_count) == ({}, None)
    assert student.cells[1].metadata == {"tags": ["parameters"]}
    assert md.source == "*Your answer here.*" and md.metadata == {}


def test_make_student_of_empty_notebook():
    assert course.make_student(new_notebook()).cells == []
    assert course.student_text(new_notebook()).endswith("}\n")


# --------------------------------------------------------------------------- build


def test_build_is_deterministic_and_removes_stale_notebooks(repo):
    written = sorted(p.name for p in (repo / "notebooks").iterdir())
    assert written == ["00_intro.ipynb", "01_catalog.ipynb"]
    first = (repo / "notebooks" / "00_intro.ipynb").read_bytes()
    assert first.endswith(b"}\n") and b"return x + 1" not in first

    (repo / "notebooks" / "07_gone.ipynb").write_text("{}")
    (repo / "notebooks" / "README.md").write_text("not a lesson")
    assert course.build(repo) == []  # nothing changed, nothing rewritten
    assert (repo / "notebooks" / "00_intro.ipynb").read_bytes() == first
    assert not (repo / "notebooks" / "07_gone.ipynb").exists()
    assert (repo / "notebooks" / "README.md").exists()
    assert not list((repo / "notebooks").glob(".*.tmp"))


def test_build_rewrites_only_changed_notebooks(repo):
    nbformat.write(lesson(new_code_cell("z = 1")), str(repo / "solutions" / "01_catalog.ipynb"))
    assert course.build(repo) == [repo / "notebooks" / "01_catalog.ipynb"]


def test_build_without_solutions_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no solutions/ folder"):
        course.build(tmp_path)


# --------------------------------------------------------------------------- check


def test_check_passes_on_fresh_build(repo):
    assert course.check(repo) == []


def test_check_student_notebook_problems(repo):
    (repo / "notebooks" / "00_intro.ipynb").unlink()
    edited = repo / "notebooks" / "01_catalog.ipynb"
    edited.write_text(edited.read_text().replace("add one", "add two"))
    (repo / "notebooks" / "05_extra.ipynb").write_text("{}")
    assert course.check(repo) == [
        "notebooks/00_intro.ipynb is missing: run `prodgen course build`",
        "notebooks/01_catalog.ipynb is out of date: run `prodgen course build`",
        "notebooks/05_extra.ipynb has no solution: run `prodgen course build` to remove it",
    ]


def _no_parameters(nb):
    nb.cells[1].metadata = {}


def _no_fast(nb):
    nb.cells[1].source = "SEED = 0\nFAST_MODE = True"


def _two_parameters(nb):
    nb.cells.insert(2, new_code_cell("FAST = True", metadata={"tags": ["parameters"]}))


def _no_objectives(nb):
    nb.cells[0].source = "# Tiny lesson\n\n**Time:** 1 min on CPU"


def _no_time(nb):
    nb.cells[0].source = "# Tiny lesson\n\n## Learning objectives\n- things"


def _no_title(nb):
    nb.cells[0].source = nb.cells[0].source.replace("# Tiny", "Tiny")


def _unchecked_exercise(nb):
    nb.cells[3].source = "print('no check here')"


def _unclosed_block(nb):
    nb.cells[2].source = EXERCISE.replace("### END SOLUTION", "")


def _error_output(nb):
    nb.cells[3].outputs = [new_output("error", ename="KeyError", evalue="x", traceback=[])]


def _no_summary(nb):
    nb.cells[-1].source = "The end."


@pytest.mark.parametrize(
    "break_it, problem",
    [
        (_no_parameters, "exactly one code cell tagged 'parameters', found 0"),
        (_two_parameters, "exactly one code cell tagged 'parameters', found 2"),
        (_no_fast, "does not assign FAST"),
        (_no_objectives, "Learning objectives"),
        (_no_time, "time estimate"),
        (_no_title, "markdown title"),
        (_unchecked_exercise, "exercise in cell 3 has no check cell"),
        (_unclosed_block, "cell 3: ### BEGIN SOLUTION without ### END SOLUTION"),
        (_error_output, "cell 4 has an error output (KeyError)"),
        (_no_summary, "Summary"),
    ],
)
def test_check_anatomy_rules(tmp_path, break_it, problem):
    nb = lesson()
    break_it(nb)
    make_repo(tmp_path, {"03_gans": nb}, build=False)
    (tmp_path / "notebooks").mkdir()
    if "BEGIN" not in problem:
        course.build(tmp_path)
    problems = course.check(tmp_path)
    label = "solutions/03_gans.ipynb: "
    assert any(p.startswith(label) and problem in p for p in problems), problems


def test_check_empty_notebook(tmp_path):
    make_repo(tmp_path, {"00_empty": new_notebook()})
    assert course.check(tmp_path) == ["solutions/00_empty.ipynb: has no cells"]


def test_build_names_lesson_with_unclosed_block(tmp_path):
    make_repo(tmp_path, {"04_bad": lesson(new_code_cell("### BEGIN SOLUTION"))}, build=False)
    with pytest.raises(ValueError, match="solutions/04_bad.ipynb: cell 3"):
        course.build(tmp_path)


# --------------------------------------------------------------------------- lesson names


@pytest.mark.parametrize("name", ["1", "01", "01_catalog", "01_catalog.ipynb", "PATH"])
def test_resolve_lessons_name_forms(repo, name):
    path = repo / "solutions" / "01_catalog.ipynb"
    assert course.resolve_lessons([str(path) if name == "PATH" else name], repo) == [path]


def test_resolve_lessons_all_and_unknown(repo):
    names = [p.name for p in course.resolve_lessons([], repo)]
    assert names == ["00_intro.ipynb", "01_catalog.ipynb"]
    with pytest.raises(ValueError, match="unknown lesson '9'; valid lessons: 00_intro, 01_catalog"):
        course.resolve_lessons(["0", "9"], repo)


# --------------------------------------------------------------------------- results


def test_record_converts_numbers_and_rejects_objects(capsys):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    course.record(loss=np.float32(0.5), n=np.int64(3), acc=torch.tensor(0.123456), bad=float("nan"))
    table = capsys.readouterr().out.splitlines()
    assert table == ["loss  0.5", "n     3", "acc   0.1235", "bad   nan"]
    assert course._jsonable("v", torch.tensor([1, 2])) == [1, 2]
    with pytest.raises(TypeError, match="'model' is a object"):
        course.record(model=object())


def test_record_leaves_nbformat_unimported():
    """Every lesson kernel calls `course.record`; importing nbformat there (it pulls in jsonschema's format
    checkers) cost 4-7 s per lesson run on the busy 2-core machine, twice per lesson in CI."""
    code = "import sys\nimport prodgen.course as c\nc.record(x=1)\nprint('nbformat' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["x  1", "False"]


def test_read_results_merges_in_order():
    nb = new_notebook(cells=[new_code_cell("a"), new_markdown_cell("b"), new_code_cell("c")])
    mime = course.RESULTS_MIME
    nb.cells[0].outputs = [new_output("display_data", data={mime: {"a": 1, "b": 2}})]
    nb.cells[2].outputs = [new_output("display_data", data={mime: {"b": 3}, "text/plain": "b  3"})]
    assert course.read_results(nb) == {"a": 1, "b": 3}


# --------------------------------------------------------------------------- running (papermill)

RECORDING = lesson(
    new_code_cell(
        "import numpy as np\nfrom prodgen.course import record\n"
        "record(loss=np.float32(0.5), fast=FAST)"
    ),
    new_code_cell(
        "record(loss=0.25)\n# Hint: x is one\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    ),
    new_code_cell("record(x=x if 'x' in dir() else None)"),
)
BROKEN = lesson(new_code_cell("raise ValueError('broken lesson')"))


def test_run_solution_records_results(tmp_path):
    root = make_repo(tmp_path, {"00_record": RECORDING})
    lines = []
    [result] = course.run(["0"], fast=True, root=root, log=lines.append)
    assert result.ok, result.message
    assert result.output_path == root / "build" / "executed" / "solutions" / "00_record.ipynb"
    assert result.results == {"loss": 0.25, "fast": True, "x": 1}
    assert course.read_results(result.output_path) == result.results
    assert lines == [f"00_record (fast solution, {result.seconds:.1f} s): ok"]
    assert not course.read_results(root / "solutions" / "00_record.ipynb")  # source untouched


def test_run_students_allows_only_not_implemented(tmp_path):
    root = make_repo(tmp_path, {"00_record": RECORDING, "01_broken": BROKEN})
    runs = course.run([], student=True, root=root, out_dir=tmp_path / "out", log=lambda line: None)
    assert [r.ok for r in runs] == [True, False]
    assert runs[0].results == {"loss": 0.25, "fast": False, "x": None}
    assert runs[1].message == "ValueError: broken lesson (cell 3)"
    table = course.format_table(runs)
    assert "full student" in table and "FAILED: ValueError: broken lesson" in table
    assert table.splitlines()[-1].startswith("total") and table.endswith("1/2 ok")


def test_update_saves_solutions_that_ran_and_leaves_failed_ones(tmp_path):
    root = make_repo(tmp_path, {"00_record": RECORDING, "01_broken": BROKEN})
    broken_before = (root / "solutions" / "01_broken.ipynb").read_text()
    lines = []
    runs = course.run([], update=True, root=root, log=lines.append)
    assert [r.ok for r in runs] == [True, False] and ", saved," in lines[0] and "saved" not in lines[1]
    saved = nbformat.read(str(root / "solutions" / "00_record.ipynb"), as_version=4)
    assert course.read_results(saved) == {"loss": 0.25, "fast": False, "x": 1}  # its own FAST = False
    assert len(saved.cells) == len(RECORDING.cells) and "papermill" not in saved.metadata
    assert all("execution" not in c.metadata and "papermill" not in c.metadata for c in saved.cells)
    assert (root / "solutions" / "01_broken.ipynb").read_text() == broken_before
    assert (root / "notebooks" / "00_record.ipynb").read_text() == course.student_text(saved)  # rebuilt
    with pytest.raises(ValueError, match="drop fast/student"):
        course.run([], update=True, fast=True, root=root)


def test_judge_rejects_not_implemented_outside_exercises():
    error = new_output("error", ename="NotImplementedError", evalue="todo", traceback=[])
    nb = new_notebook(cells=[new_code_cell("f()", outputs=[error])])
    assert "not an exercise" in course._judge(nb, student=True)
    nb.cells[0].metadata["tags"] = ["raises-exception"]
    assert course._judge(nb, student=True) == ""
    assert course._judge(nb, student=False) == "NotImplementedError: todo (cell 1)"


def test_format_table_without_runs():
    assert course.format_table([]).splitlines()[-1].endswith("0/0 ok")


# --------------------------------------------------------------------------- nbval sanitising


def test_nbval_sanitize_masks_volatile_text():
    plugin = pytest.importorskip("nbval.plugin")
    cfg = Path(__file__).with_name("nbval_sanitize.cfg").read_text()
    patterns = plugin.get_sanitize_patterns(cfg)
    assert len(patterns) >= 8

    def sanitize(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    a = "took 12.3 s, 0.52s/step; total 1m 3s; device: cuda:0 torch 2.3.1+cu121 at 0x7f3a2b1c4d50"
    b = "took 9.0 s, 0.61s/step; total 2m 10s; device: cpu torch 2.4.0 at 0x7f00aa11bb22"
    assert sanitize(a) == sanitize(b)
    bar_a = " 45%|████▌     | 45/100 [00:01<00:02, 30.5it/s]"
    bar_b = " 45%|████▌     | 45/100 [00:03<00:04, 12.5it/s]"
    assert sanitize(bar_a) == sanitize(bar_b)
    assert sanitize("saved /home/ann/prodgen/data/x.pt") == sanitize("saved /tmp/y/x.pt")
    assert sanitize("Python 3.11.4") == sanitize("Python 3.12.0")
    stable = "[PASS] shape (16, 3, 32, 32), 1/2 of 45 parameters"
    assert sanitize(stable) == stable

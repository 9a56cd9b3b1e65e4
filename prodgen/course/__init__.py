"""Course tooling: student notebooks, lesson checks, headless runs and recorded results (this module);
``grade`` (submissions, sandboxed) and ``doctor`` (the installation) beside it. May import every layer below.

Used by the command line (tooling: `prodgen course build`, `prodgen course check`,
`prodgen course run`), by the integration tests (`tests/test_lessons.py`) and by every
lesson, which calls `record(...)` to publish the numbers the tests assert on.

- `solutions/NN_slug.ipynb` is the source of truth (committed with outputs).
- `notebooks/NN_slug.ipynb` is generated from it by `build`: solution blocks
  (`### BEGIN SOLUTION` ... `### END SOLUTION`) become a stub that raises
  `NotImplementedError` with the exercise's hint, and outputs are removed.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

LESSON_RE = re.compile(r"^(?P<num>\d{2})_(?P<slug>[A-Za-z0-9_-]+)\.ipynb$")
"""File name of a lesson: two digits, underscore, slug, `.ipynb`."""

FOLDERS = ("solutions", "notebooks")
RESULTS_MIME = "application/vnd.prodgen.results+json"

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
HINT_RE = re.compile(r"^\s*#\s*Hint:\s*(?P<hint>.*?)\s*$", re.IGNORECASE)
CODE_STUB = "# YOUR CODE HERE"
MARKDOWN_STUB = "*Your answer here.*"
EXERCISE_TAGS = ("exercise", "raises-exception")
CHECK_WINDOW = 3  # an exercise cell needs a `checks.` cell within this many cells

OBJECTIVES_RE = re.compile(r"learning objectives", re.IGNORECASE)
TIME_RE = re.compile(r"\btime\b.*\bcpu\b", re.IGNORECASE)
FAST_RE = re.compile(r"^FAST\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
CHECK_CALL_RE = re.compile(r"\bchecks\.")
SUMMARY_RE = re.compile(r"^\s{0,3}#{1,6}\s.*summary", re.IGNORECASE | re.MULTILINE)


def _nbformat():
    """nbformat, imported on first use: `record` runs in every lesson kernel, and importing nbformat pulls
    in jsonschema's format checkers (several seconds on a busy CPU), which the lessons never need."""
    import nbformat

    return nbformat


# --------------------------------------------------------------------------- finding lessons


def find_root() -> Path:
    """The course repository: the folder holding both `prodgen/` and `solutions/`."""
    candidates = [Path(__file__).resolve().parents[2]]
    cwd = Path.cwd().resolve()
    candidates += [cwd, *cwd.parents]
    for folder in candidates:
        if (folder / "solutions").is_dir():
            return folder
    raise FileNotFoundError(
        "cannot find the course folder (one with a solutions/ folder) next to the prodgen "
        f"package or above {cwd}; run from the repository or pass root="
    )


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else find_root()


def _lesson_files(folder: Path) -> list[Path]:
    """Lesson notebooks in `folder` (none if the folder does not exist), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and LESSON_RE.match(p.name))


def list_lessons(root: Path | str | None = None, which: str = "solutions") -> list[Path]:
    """Sorted lesson paths in `<root>/solutions` or `<root>/notebooks`."""
    if which not in FOLDERS:
        raise ValueError(f"which must be one of {FOLDERS}, not {which!r}")
    folder = _root(root) / which
    if not folder.is_dir():
        raise FileNotFoundError(f"no {which}/ folder in {folder.parent}")
    return _lesson_files(folder)


def _matches(name: str, lesson: Path) -> bool:
    """Whether `name` is this lesson's number, stem or file name."""
    if name.isdigit():
        return int(name) == int(LESSON_RE.match(lesson.name)["num"])
    return name in (lesson.stem, lesson.name)


def _resolve_one(name: str, lessons: list[Path], root: Path) -> Path:
    """One lesson named by number, stem, file name or path."""
    found = [lesson for lesson in lessons if _matches(name, lesson)]
    if len(found) == 1:
        return found[0]
    for path in (Path(name), root / name):
        if path.suffix == ".ipynb" and path.is_file():
            return path
    valid = ", ".join(lesson.stem for lesson in lessons) or "(none)"
    problem = "ambiguous" if found else "unknown"
    raise ValueError(f"{problem} lesson {name!r}; valid lessons: {valid}")


def resolve_lessons(
    names: list[str] | None, root: Path | str | None = None, which: str = "solutions"
) -> list[Path]:
    """Lesson paths for `names` ("3", "03", "03_gans", "03_gans.ipynb" or a path); [] = all."""
    root = _root(root)
    lessons = list_lessons(root, which)
    if not names:
        return lessons
    resolved: list[Path] = []
    for name in names:
        path = _resolve_one(str(name).strip(), lessons, root)
        if path not in resolved:
            resolved.append(path)
    return resolved


# --------------------------------------------------------------------------- student version


def _split_lines(text: str) -> list[str]:
    """Lines of `text`, keeping their "\\n" (splits on "\\n" only, like Python's tokenizer)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    return lines + ([parts[-1]] if parts[-1] else [])


def _py_string(text: str) -> str:
    """A Python string literal for `text`, in double quotes where that needs no escaping."""
    literal = repr(text)
    if '"' not in text and "'" not in text:
        literal = '"' + literal[1:-1] + '"'
    return literal


def _stub(kind: str, indent: str, hint: str | None) -> list[str]:
    """Lines that replace a solution block in a code or markdown cell."""
    if kind == "markdown":
        return [indent + MARKDOWN_STUB]
    message = "Exercise not done yet." + (f" Hint: {hint}" if hint else "")
    return [indent + CODE_STUB, f"{indent}raise NotImplementedError({_py_string(message)})"]


def strip_solutions(source: str, kind: str = "code") -> tuple[str, int]:
    """Replace every solution block in a cell's source; returns (new source, number of blocks).

    Raises ValueError for a BEGIN without END, a nested BEGIN or an END without BEGIN.
    """
    out: list[str] = []
    hint: str | None = None
    begin: str | None = None  # the BEGIN line while inside a block
    blocks = 0
    for line in _split_lines(source):
        marker = line.strip()
        if begin is None and marker == BEGIN_MARKER:
            begin = line
        elif begin is None and marker == END_MARKER:
            raise ValueError(f"{END_MARKER} without {BEGIN_MARKER}")
        elif begin is None:
            out.append(line)
            match = HINT_RE.match(line) if kind == "code" else None
            hint = (match["hint"] or None) if match else hint
        elif marker == BEGIN_MARKER:
            raise ValueError(f"nested {BEGIN_MARKER}")
        elif marker == END_MARKER:
            indent = begin[: len(begin) - len(begin.lstrip())]
            ending = line[len(line.rstrip("\r\n")) :]
            out.append("\n".join(_stub(kind, indent, hint)) + ending)
            begin, hint, blocks = None, None, blocks + 1
    if begin is not None:
        raise ValueError(f"{BEGIN_MARKER} without {END_MARKER}")
    return "".join(out), blocks


def _with_exercise_tags(tags: list[str]) -> list[str]:
    """`tags` plus the exercise tags, in a stable order and without duplicates."""
    return list(dict.fromkeys([*tags, *EXERCISE_TAGS]))


def _student_cell(cell: nbformat.NotebookNode, index: int) -> nbformat.NotebookNode:
    """The student version of one cell (raises ValueError naming the cell on a bad block)."""
    source, blocks = cell.source, 0
    if cell.cell_type in ("code", "markdown"):
        try:
            source, blocks = strip_solutions(cell.source, cell.cell_type)
        except ValueError as error:
            raise ValueError(f"cell {index + 1}: {error}") from None
    tags = list(cell.get("metadata", {}).get("tags", []))
    if blocks and cell.cell_type == "code":
        tags = _with_exercise_tags(tags)
    new = _nbformat().NotebookNode(cell_type=cell.cell_type, id=cell.get("id") or f"cell-{index}")
    new.metadata = _nbformat().NotebookNode({"tags": tags} if tags else {})
    new.source = source
    if cell.cell_type == "code":
        new.execution_count = None
        new.outputs = []
    if "attachments" in cell:
        new.attachments = copy.deepcopy(cell.attachments)
    return new


def make_student(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a solution notebook (pure: `nb` is not changed)."""
    student = _nbformat().v4.new_notebook()
    metadata = nb.get("metadata", {})
    if "kernelspec" in metadata:
        student.metadata.kernelspec = copy.deepcopy(metadata["kernelspec"])
    if "name" in metadata.get("language_info", {}):
        student.metadata.language_info = {"name": metadata["language_info"]["name"]}
    student.cells = [_student_cell(cell, i) for i, cell in enumerate(nb.get("cells", []))]
    return student


def student_text(nb: nbformat.NotebookNode) -> str:
    """The student notebook for `nb`, serialised exactly as `build` writes it."""
    return _nbformat().writes(make_student(nb), version=4, indent=1) + "\n"


def _read(path: Path) -> nbformat.NotebookNode:
    return _nbformat().read(str(path), as_version=4)


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and os.replace."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _student_texts(root: Path) -> dict[str, str]:
    """File name -> student notebook text for every solution (ValueError names the lesson)."""
    texts = {}
    for solution in list_lessons(root, "solutions"):
        try:
            texts[solution.name] = student_text(_read(solution))
        except ValueError as error:
            raise ValueError(f"solutions/{solution.name}: {error}") from None
    return texts


def build(root: Path | str | None = None) -> list[Path]:
    """Write `notebooks/` from `solutions/`; returns the paths whose content changed."""
    root = _root(root)
    texts = _student_texts(root)  # all or nothing: fail before writing anything
    folder = root / "notebooks"
    folder.mkdir(exist_ok=True)
    written = []
    for name, text in texts.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            _write_atomically(path, text)
            written.append(path)
    for path in _lesson_files(folder):
        if path.name not in texts:
            path.unlink()
    return written


# --------------------------------------------------------------------------- checking


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _has_solution(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and any(
        line.strip() == BEGIN_MARKER for line in cell.source.splitlines()
    )


def _intro_problems(cells: list) -> list[str]:
    """Rule 1 of the anatomy: title, learning objectives and a time estimate up front."""
    problems = []
    if cells[0].cell_type != "markdown" or not cells[0].source.lstrip().startswith("# "):
        problems.append("the first cell must be a markdown title starting with '# '")
    intro = "\n".join([c.source for c in cells if c.cell_type == "markdown"][:2])
    if not OBJECTIVES_RE.search(intro):
        problems.append("no 'Learning objectives' in the first two markdown cells")
    if not TIME_RE.search(intro):
        problems.append("no time estimate line ('Time ... CPU') in the first two markdown cells")
    return problems


def _parameters_problems(cells: list) -> list[str]:
    """Exactly one code cell tagged `parameters`, assigning FAST."""
    tagged = [c for c in cells if c.cell_type == "code" and "parameters" in _tags(c)]
    if len(tagged) != 1:
        return [f"needs exactly one code cell tagged 'parameters', found {len(tagged)}"]
    if not FAST_RE.search(tagged[0].source):
        return ["the 'parameters' cell does not assign FAST"]
    return []


def _exercise_problems(cells: list) -> list[str]:
    """Each exercise cell is followed, within CHECK_WINDOW cells, by a `checks.` cell."""
    problems = []
    for i, cell in enumerate(cells):
        following = cells[i + 1 : i + 1 + CHECK_WINDOW]
        checked = any(c.cell_type == "code" and CHECK_CALL_RE.search(c.source) for c in following)
        if _has_solution(cell) and not checked:
            problems.append(
                f"exercise in cell {i + 1} has no check cell (calling `checks.`) "
                f"in the next {CHECK_WINDOW} cells"
            )
    return problems


def _summary_problems(cells: list) -> list[str]:
    if any(c.cell_type == "markdown" and SUMMARY_RE.search(c.source) for c in cells):
        return []
    return ["no markdown heading containing 'Summary'"]


def _content_problems(cells: list) -> list[str]:
    """Error outputs and malformed solution blocks."""
    problems = []
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {i + 1} has an error output ({output.get('ename')})")
        try:
            if cell.cell_type in ("code", "markdown"):
                strip_solutions(cell.source, cell.cell_type)
        except ValueError as error:
            problems.append(f"cell {i + 1}: {error}")
    return problems


def anatomy_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Ways a solution notebook breaks the lesson anatomy (DESIGN §5); [] = fine."""
    cells = nb.get("cells", [])
    if not cells:
        return ["has no cells"]
    return (
        _intro_problems(cells)
        + _parameters_problems(cells)
        + _exercise_problems(cells)
        + _summary_problems(cells)
        + _content_problems(cells)
    )


def _solution_problems(solution: Path) -> tuple[list[str], str | None]:
    """(problems, expected student text or None) for one solution notebook."""
    label = f"solutions/{solution.name}"
    try:
        nb = _read(solution)
    except ValueError as error:  # includes nbformat's NotJSONError
        return [f"{label}: cannot be read ({error})"], None
    problems = [f"{label}: {problem}" for problem in anatomy_problems(nb)]
    try:
        return problems, student_text(nb)
    except ValueError:
        return problems, None  # the bad block is already among the problems


def check(root: Path | str | None = None) -> list[str]:
    """Problems with the lessons and student notebooks; [] means all is well."""
    root = _root(root)
    problems: list[str] = []
    solutions = list_lessons(root, "solutions")
    for solution in solutions:
        found, expected = _solution_problems(solution)
        problems += found
        student = root / "notebooks" / solution.name
        label = f"notebooks/{solution.name}"
        if not student.is_file():
            problems.append(f"{label} is missing: run `prodgen course build`")
        elif expected is not None and student.read_text(encoding="utf-8") != expected:
            problems.append(f"{label} is out of date: run `prodgen course build`")
    names = {solution.name for solution in solutions}
    for student in _lesson_files(root / "notebooks"):
        if student.name not in names:
            problems.append(
                f"notebooks/{student.name} has no solution: run `prodgen course build` to remove it"
            )
    return problems


# --------------------------------------------------------------------------- recorded results


def _jsonable(key: str, value):
    """`value` as plain JSON data (numpy/torch scalars become numbers); TypeError names `key`."""
    if hasattr(value, "tolist") and not isinstance(value, (str, list, tuple, dict)):
        value = value.tolist()  # numpy/torch scalar -> number, array/tensor -> nested list
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": JSON has no such numbers
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(key, v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(key, v) for k, v in value.items()}
    kind = type(value).__name__
    raise TypeError(f"record(): {key!r} is a {kind}, which is not JSON-serialisable")


def _format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def results_table(values: dict) -> str:
    """`key  value` lines, keys padded to one width, floats to 4 significant digits."""
    width = max((len(key) for key in values), default=0)
    return "\n".join(f"{key:<{width}}  {_format_value(v)}" for key, v in values.items())


def record(**values) -> None:
    """Publish a lesson's results (shown as a table; read back by `read_results`)."""
    values = {key: _jsonable(key, value) for key, value in values.items()}
    text = results_table(values)
    from IPython import get_ipython

    if get_ipython() is None:  # plain Python: just show the table
        print(text)
        return
    from IPython.display import display

    display({RESULTS_MIME: values, "text/plain": text}, raw=True)


def results_in(outputs) -> dict:
    """The values recorded in a list of cell outputs, merged in order (later wins)."""
    results: dict = {}
    for output in outputs or []:
        data = output.get("data", {}).get(RESULTS_MIME)
        if isinstance(data, str):
            data = json.loads(data)
        if isinstance(data, dict):
            results.update(data)
    return results


def read_results(nb_or_path: nbformat.NotebookNode | Path | str) -> dict:
    """All values recorded in an executed notebook, merged in order (later wins)."""
    nb = nb_or_path
    if isinstance(nb_or_path, (str, Path)):
        nb = _read(Path(nb_or_path))
    return results_in([output for cell in nb.get("cells", []) for output in cell.get("outputs", [])])


# --------------------------------------------------------------------------- running lessons


@dataclass
class LessonRun:
    """The outcome of executing one lesson."""

    name: str
    seconds: float
    ok: bool
    message: str = ""
    output_path: Path | None = None
    results: dict = field(default_factory=dict)
    fast: bool = False
    student: bool = False

    @property
    def mode(self) -> str:
        return f"{'fast' if self.fast else 'full'} {'student' if self.student else 'solution'}"


def _one_line(ename: str, evalue: str) -> str:
    first = (evalue or "").strip().splitlines()
    return f"{ename}: {first[0]}" if first else ename


PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


def _run_errors(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode, dict]]:
    """(cell number in the source, cell, error output) for each error in an executed notebook."""
    cells = [c for c in nb.get("cells", []) if not PAPERMILL_TAGS.intersection(_tags(c))]
    return [
        (i + 1, cell, output)
        for i, cell in enumerate(cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def _judge(nb: nbformat.NotebookNode, student: bool) -> str:
    """'' if the executed notebook is acceptable, else a one-line reason.

    Solutions may not raise at all. Student notebooks may raise only NotImplementedError,
    and only in exercise cells (tagged `raises-exception`), so the rest of the lesson ran.
    """
    for number, cell, error in _run_errors(nb):
        line = _one_line(error.get("ename", "Error"), error.get("evalue", ""))
        if not student or error.get("ename") != "NotImplementedError":
            return f"{line} (cell {number})"
        if "raises-exception" not in _tags(cell):
            return f"{line} in cell {number}, which is not an exercise: the rest did not run"
    return ""


@contextmanager
def _kernel_can_import_prodgen() -> Iterator[None]:
    """Let kernels import this checkout's prodgen (adds it to PYTHONPATH while running)."""
    checkout = Path(__file__).resolve().parents[2]
    old = os.environ.get("PYTHONPATH")
    if (checkout / "solutions").is_dir():
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), old]))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _encrypted_kernel_config() -> dict:
    """Kernel-manager settings that encrypt the kernel's local TCP channels (CurveZMQ).

    ipykernel >= 7 logs "Kernel is running over TCP without encryption" to the terminal for every
    kernel started without keys: one warning per lesson in `prodgen course run`. jupyter_client
    >= 8.10 provisions the keys itself when asked ("auto": for kernels whose kernelspec declares
    curve support, as ipykernel's does), which fixes the cause instead of hiding the message.
    Older jupyter_client or a pyzmq without CurveZMQ: {} (those kernels do not log it anyway,
    or cannot encrypt).
    """
    try:
        import zmq
        from jupyter_client.manager import KernelManager
        from traitlets.config import Config
    except ImportError:  # pragma: no cover - papermill depends on all three
        return {}
    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


def _kernel_log_manager(log) -> dict:
    """A kernel manager class whose kernel process writes its own log to ``log`` (an open file).

    The kernel process's stderr holds only the kernel's log, never a lesson's output (cell output
    travels in the notebook). Shutting a kernel down interrupts it first (jupyter_client's design),
    and when the interrupt lands inside a message handler ipykernel logs "KeyboardInterrupt caught
    in kernel" as an ERROR: harmless after the last cell, but it would be printed between the lines
    of `prodgen course run`. The log file keeps such lines (and any real kernel crash) for reading.
    """
    try:
        from jupyter_client.manager import AsyncKernelManager
    except ImportError:  # pragma: no cover - papermill depends on jupyter_client
        return {}
    if not hasattr(AsyncKernelManager, "_async_launch_kernel"):
        return {}

    class LessonKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):  # the documented extension point
            kw.setdefault("stderr", log)
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return {"kernel_manager_class": LessonKernelManager}


def _execute(src: Path, dst: Path, fast: bool, timeout: float | None) -> None:
    """Run `src` with papermill into `dst`, with FAST set and the notebook's folder as cwd.

    Cell errors do not raise here: papermill leaves them in `dst`, for `_judge`. The kernel's own
    log goes to `dst` with the suffix `.kernel.log`, so the terminal shows only the run's progress.
    """
    import inspect

    import papermill
    from papermill.exceptions import PapermillExecutionError

    kwargs = dict(
        parameters={"FAST": fast},
        cwd=str(src.parent),
        progress_bar=False,
        kernel_name="python3",
    )
    if "request_save_on_cell_execute" in inspect.signature(papermill.execute_notebook).parameters:
        kwargs["request_save_on_cell_execute"] = False
    if timeout is not None:
        kwargs["execution_timeout"] = timeout
    kwargs.update(_encrypted_kernel_config())
    with open(dst.with_suffix(".kernel.log"), "w", encoding="utf-8") as log:
        kwargs.update(_kernel_log_manager(log))
        try:
            papermill.execute_notebook(str(src), str(dst), **kwargs)
        except PapermillExecutionError:
            pass  # the executed notebook, with its error outputs, is in dst


def _execute_as_saved(src: Path, dst: Path, timeout: float | None) -> None:
    """Run `src` with the parameters it was saved with into `dst`: no injected cell and no papermill
    metadata, so the result can replace a solution (`run(update=True)`). Stops at the first error,
    which stays in that cell's outputs for `_judge`."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = _read(src)
    with open(dst.with_suffix(".kernel.log"), "w", encoding="utf-8") as log:  # the kernel's own log, as in _execute
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": str(src.parent)}}, **_encrypted_kernel_config(),
                                **_kernel_log_manager(log))
        try:
            client.execute()
        except CellExecutionError:
            pass
        finally:
            _write_atomically(dst, _nbformat().writes(nb))


def run_lesson(
    src: Path, dst: Path, fast: bool = False, student: bool = False, timeout: float | None = None,
    as_saved: bool = False,
) -> LessonRun:
    """Execute one lesson into `dst` and judge the executed notebook (`as_saved`: with the notebook's own
    parameters and no papermill metadata, see `_execute_as_saved`)."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if src == dst:
        raise ValueError(f"refusing to write the executed notebook over its source {src}")
    dst.unlink(missing_ok=True)  # never judge a stale copy
    run = LessonRun(src.stem, 0.0, False, fast=fast, student=student)
    start = time.perf_counter()
    try:
        with _kernel_can_import_prodgen():
            if as_saved:
                _execute_as_saved(src, dst, timeout)
            else:
                _execute(src, dst, fast, timeout)
    except Exception as error:  # kernel died, cell timed out, bad notebook, ...
        run.message = _one_line(type(error).__name__, str(error))
        log = dst.with_suffix(".kernel.log")
        if log.is_file() and log.stat().st_size:
            run.message += f" (kernel log: {log})"
    run.seconds = time.perf_counter() - start
    if dst.is_file():
        executed = _read(dst)
        run.output_path, run.results = dst, read_results(executed)
        run.message = run.message or _judge(executed, student)
    run.ok = not run.message
    return run


def run(
    lessons: list[str] | None = None,
    fast: bool = False,
    student: bool = False,
    root: Path | str | None = None,
    out_dir: Path | str | None = None,
    timeout: float | None = None,
    log: Callable[[str], object] = print,
    update: bool = False,
) -> list[LessonRun]:
    """Execute lessons (all if `lessons` is empty) headlessly; `timeout` is per cell, in seconds.

    Executed copies go to `out_dir` (default `<root>/build/executed/<solutions|notebooks>/`).
    `update=True` (contributors): run each solution with the parameters it is saved with and, when it ran
    without an error, write it back over `solutions/` with its new outputs (atomically), then rebuild the
    student notebooks; a failed lesson's source stays as it was.
    """
    if update and (fast or student):
        raise ValueError("update=True re-executes the solutions with their saved parameters: drop fast/student")
    root = _root(root)
    which = "notebooks" if student else "solutions"
    sources = resolve_lessons(lessons or [], root, which)
    out = Path(out_dir) if out_dir is not None else root / "build" / "executed" / which
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for src in sources:
        lesson = run_lesson(src, out / src.name, fast=fast, student=student, timeout=timeout, as_saved=update)
        if update and lesson.ok:
            _write_atomically(src, lesson.output_path.read_text(encoding="utf-8"))
        log(f"{lesson.name} ({lesson.mode}{', saved' if update and lesson.ok else ''}, {lesson.seconds:.1f} s): "
            f"{_result(lesson)}")
        runs.append(lesson)
    if update and any(r.ok for r in runs):
        build(root)
    return runs


def _result(run: LessonRun) -> str:
    return "ok" if run.ok else f"FAILED: {run.message}"


def format_table(runs: list[LessonRun]) -> str:
    """A plain-text table of lesson, mode, wall time and result, with a total row."""
    rows = [("lesson", "mode", "wall time", "result")]
    rows += [(r.name, r.mode, f"{r.seconds:.1f} s", _result(r)) for r in runs]
    passed = sum(r.ok for r in runs)
    rows.append(("total", "", f"{sum(r.seconds for r in runs):.1f} s", f"{passed}/{len(runs)} ok"))
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths)), row[3]]).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    lines.insert(-1, lines[1])
    return "\n".join(lines)

"""The instructor's kit, used by `prodgen course grade`: grade submitted student notebooks, whose code is untrusted.

Each submission is identified by its content (its cells against the student versions in `notebooks/`; the
file name only stands in when the content is too far gone, so a renamed file is still graded). Then, each
stage in a fresh bubblewrap sandbox (prodgen/course/grade_sandbox.py: no network, read-only system, hidden home,
own pid namespace and uid, resource limits; refused without one unless `sandbox=False`, `--no-sandbox`):

1. the copy runs headless (prodgen/course/grade_verify.py `run` stage) with `FAST = True` after its parameters cell
   and a time limit for the whole notebook. This only says where the run stopped (a crash in a non-exercise
   cell stops it, as "Run all" would; later exercises are errors naming that cell). Its outputs are never a
   verdict: whatever a notebook prints, patches or writes into its outputs happens in a process that is gone.
2. the verdicts come from a fresh interpreter (`verify` stage): `prodgen.checks` and the lesson's imports are
   loaded from the installed read-only package before any student code; only the definitions of the
   submission's cells are executed (imports, def, class, call-free assignments: a cell that patches `print`,
   `prodgen.checks` or `sys.modules` is a statement and never runs there); each check cell runs as the lesson
   has it (an edited check counts for nothing) on guarded student functions; verdict lines are HMAC-signed
   with a per-run secret the notebook never had and read from a pipe of their own.

Why this design: a verdict read from the student's own kernel can be forged by any cell; re-running only
definitions in a clean process removes every notebook-level attack, and what is left (code inside the
exercise function, which the check must call) is guarded by an audit hook and a before/after fingerprint of
the checks (grade_verify's docstring). One row per student and exercise: passed, failed, not attempted (the
`NotImplementedError` stub is still there) or error (the check did not run, crashed or was interfered with;
the detail says why), with the protection in force. Tooling for instructors (INSTRUCTORS.md); no lesson uses it.
"""
from __future__ import annotations

import concurrent.futures
import csv
import functools
import hmac
import io
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from prodgen import course
from prodgen.course import grade_sandbox
from prodgen.paths import atomic_file

__all__ = ["STATUSES", "Exercise", "Lesson", "Row", "load_lessons", "identify", "student_name",
           "submissions", "check_out", "grade_notebook", "grade", "write_csv", "format_summary"]

STATUSES = ("passed", "failed", "not attempted", "error")
MAX_JOBS = 16  # submissions graded at once (`--jobs`): one sandbox uid each (grade_sandbox.SLOTS)
DEFAULT_TIMEOUT = 300.0  # seconds per notebook: every lesson's FAST run takes well under a minute
CHECK_TIMEOUT = 120.0  # seconds for all of a notebook's checks in the verifier (imports included)
STARTUP = 30.0  # seconds a sandbox gets on top of a limit to start Python (the stage keeps its own clock)
MATCH = 0.5  # a submission is a lesson when it holds at least this share of the lesson's cells unchanged
GRADER_TAG = "prodgen-grade"  # cells the grader adds to its copy (never counted, never reported)
NOT_DONE = "not done yet"  # what a check prints when the student's code raised NotImplementedError
STUB_RAISE = 'raise NotImplementedError("Exercise not done yet'

OFFLINE_CELL = '''\
# added by prodgen course grade: no network while grading (connections to this machine only)
def _prodgen_grade_offline():
    import socket

    def local(address):
        if not isinstance(address, tuple):
            return True  # a Unix socket
        host = str(address[0])
        return host in ("", "localhost", "::1") or host.startswith("127.")

    def guarded(real):
        def connect(self, address):
            if not local(address):
                raise OSError(f"no network while grading: {address[0]} is not this machine")
            return real(self, address)
        return connect

    socket.socket.connect = guarded(socket.socket.connect)
    socket.socket.connect_ex = guarded(socket.socket.connect_ex)


_prodgen_grade_offline()
del _prodgen_grade_offline
'''
FAST_CELL = "FAST = True  # added by prodgen course grade"


def _nbformat():
    import nbformat

    return nbformat


def _normal(source: str) -> str:
    """A cell's source without trailing spaces or blank lines (what an editor changes by itself)."""
    return "\n".join(line.rstrip() for line in str(source).splitlines() if line.strip())


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


# --------------------------------------------------------------------------- the lessons


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson: its cell as students get it and the check cell after it."""

    name: str  # the check's name without `check_`: channels_first, slerp, ...
    cell_id: str
    stub: str  # the exercise cell's source in the student version
    check_id: str
    check_source: str
    check_call: str  # check_channels_first


@dataclass(frozen=True)
class Lesson:
    """A lesson's student version, as the grader reads it."""

    name: str  # 00_welcome
    cells: frozenset  # normalised sources of its non-exercise cells (the fingerprint)
    parameters: str  # the parameters cell's normalised source
    exercises: tuple
    sources: tuple = ()  # its code cells as handed out: the verifier loads their imports before student code


CHECK_NAME_RE = re.compile(r"\bchecks\.(check_\w+)\s*\(")


def _lesson(path: Path) -> Lesson:
    nb = _nbformat().read(str(path), as_version=4)
    cells = nb.cells
    exercises, fingerprint, parameters = [], set(), ""
    for i, cell in enumerate(cells):
        if "parameters" in _tags(cell):
            parameters = _normal(cell.source)
        if cell.cell_type != "code" or "exercise" not in _tags(cell):
            if _normal(cell.source):
                fingerprint.add(_normal(cell.source))
            continue
        window = cells[i + 1: i + 1 + course.CHECK_WINDOW]
        check = next((c for c in window if c.cell_type == "code" and CHECK_NAME_RE.search(c.source)), None)
        if check is None:  # `prodgen course check` refuses such a lesson
            raise ValueError(f"{path}: the exercise in cell {i + 1} has no check cell")
        call = CHECK_NAME_RE.search(check.source)[1]
        exercises.append(Exercise(call.removeprefix("check_"), cell.get("id", ""), cell.source,
                                  check.get("id", ""), check.source, call))
    sources = tuple(c.source for c in cells if c.cell_type == "code" and "exercise" not in _tags(c))
    return Lesson(path.stem, frozenset(fingerprint), parameters, tuple(exercises), sources)


def load_lessons(root: Path | str | None = None) -> dict[str, Lesson]:
    """The lessons students get (`notebooks/`, which `prodgen course build` writes), by name."""
    return {path.stem: _lesson(path) for path in course.list_lessons(root, "notebooks")}


def _name_hint(path: Path, lessons: dict[str, Lesson]) -> str | None:
    """The lesson a file's name points at (`00_welcome.ipynb`, `alice-00_welcome.ipynb`), if any."""
    found = [name for name in lessons if name in path.stem]
    return max(found, key=len) if found else None


def identify(nb, path: Path, lessons: dict[str, Lesson]) -> tuple[Lesson | None, str]:
    """(the lesson a submission is, a note when its name says otherwise or content alone did not decide)."""
    sources = {_normal(cell.get("source", "")) for cell in nb.get("cells", [])}
    scores = {name: len(lesson.cells & sources) / max(len(lesson.cells), 1) for name, lesson in lessons.items()}
    best = max(scores, key=scores.get, default=None)
    hint = _name_hint(path, lessons)
    if best is not None and scores[best] >= MATCH:
        if hint and hint != best:
            return lessons[best], f"the file name says {hint} but its content is {best}; graded as {best}"
        if not hint:
            return lessons[best], f"renamed: identified as {best} by its content"
        return lessons[best], ""
    if hint:
        return lessons[hint], (f"only {scores[hint]:.0%} of {hint}'s cells are unchanged; "
                               f"graded as {hint} because of its file name")
    share = f" (closest: {best}, {scores[best]:.0%} of its cells)" if best else ""
    return None, f"cannot tell which lesson this is: it matches no lesson in notebooks/{share}"


def student_name(path: Path, lessons=()) -> str:
    """Who submitted `path`: the file name without the lesson's name (`alice-00_welcome.ipynb` -> alice), or the
    folder's name when nothing else is left (`submitted/alice/00_welcome.ipynb` -> alice)."""
    rest = path.stem
    for lesson in sorted(lessons, key=len, reverse=True):
        rest = rest.replace(lesson, " ")
    rest = re.sub(r"^[\W_]+|[\W_]+$", "", rest)
    if re.search(r"[^\W\d_]", rest):  # some letters left: a name
        return rest
    return path.resolve().parent.name or path.stem


# --------------------------------------------------------------------------- the graded copy


@dataclass
class _Plan:
    """Where each exercise sits in the graded copy (cell indices; None = absent) and what was done to it."""

    exercise: Exercise
    cell: int | None
    check: int | None
    note: str = ""


def _find_check(cells, ex: Exercise) -> int | None:
    call = re.compile(rf"\bchecks\.{re.escape(ex.check_call)}\s*\(")
    found = [i for i, c in enumerate(cells) if c.cell_type == "code" and call.search(c.source)]
    by_id = [i for i in found if cells[i].get("id") == ex.check_id]
    edited = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.get("id") == ex.check_id]
    return (by_id or found or edited or [None])[0]  # edited: the check's cell without its call


def _find_exercise(cells, ex: Exercise, check: int | None) -> int | None:
    by_id = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.get("id") == ex.cell_id]
    if by_id:
        return by_id[0]
    if check is None:
        return None
    before = [i for i in range(max(0, check - course.CHECK_WINDOW), check) if cells[i].cell_type == "code"]
    tagged = [i for i in before if "exercise" in _tags(cells[i])]
    return (tagged or before or [None])[-1]


def _grader_cell(source: str):
    cell = _nbformat().v4.new_code_cell(source)
    cell.metadata["tags"] = [GRADER_TAG]
    return cell


def _parameters_index(cells, lesson: Lesson) -> int | None:
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and ("parameters" in _tags(cell) or _normal(cell.source) == lesson.parameters):
            return i
    return next((i for i, c in enumerate(cells) if c.cell_type == "code" and course.FAST_RE.search(c.source)), None)


def _prepare(nb, lesson: Lesson, fast: bool) -> tuple[object, list[_Plan]]:
    """The copy to execute: outputs cleared, check cells as the lesson has them (missing ones put back after
    their exercise) and tagged `raises-exception`, the offline guard first and FAST=True after the parameters."""
    nb = _nbformat().from_dict(nb)  # a deep copy
    cells = nb.cells
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notes = {}
    for ex in lesson.exercises:
        check = _find_check(cells, ex)
        note = ""
        if check is None:
            exercise = _find_exercise(cells, ex, None)
            if exercise is None:
                continue
            cells.insert(exercise + 1, _nbformat().v4.new_code_cell(ex.check_source))
            note = "its check cell was missing: the lesson's was put back"
        elif _normal(cells[check].source) != _normal(ex.check_source):
            cells[check].source = ex.check_source
            note = "its check cell had been edited: the lesson's was run instead"
        notes[ex.name] = note
    if fast:
        where = _parameters_index(cells, lesson)
        cells.insert(0 if where is None else where + 1, _grader_cell(FAST_CELL))
    cells.insert(0, _grader_cell(OFFLINE_CELL))
    plans = []
    for ex in lesson.exercises:
        check = _find_check(cells, ex) if ex.name in notes else None
        if check is not None:
            cells[check].metadata["tags"] = list(dict.fromkeys([*_tags(cells[check]), "raises-exception"]))
        plans.append(_Plan(ex, _find_exercise(cells, ex, check), check, notes.get(ex.name, "")))
    return nb, plans


def _number(cells, index: int) -> int:
    """The cell's number in the student's own notebook (the grader's cells not counted)."""
    return sum(GRADER_TAG not in _tags(c) for c in cells[: index + 1])


# --------------------------------------------------------------------------- running


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_of(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            first = (output.get("evalue") or "").strip().splitlines()
            return output.get("ename", "Error") + (f": {first[0]}" if first else "")
    return ""


def _execute(nb, folder: Path, limit: float) -> str:
    """Run `nb` in place (cwd `folder`) within `limit` seconds in all; '' or why the run stopped."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    deadline = time.monotonic() + limit
    running = [None]

    def remember(cell, cell_index, **kw):
        running[0] = cell_index

    with open(folder / "kernel.log", "w", encoding="utf-8") as log:
        client = NotebookClient(
            nb, kernel_name="python3", record_timing=False, shutdown_kernel="immediate",
            timeout_func=lambda cell: max(1.0, deadline - time.monotonic()), startup_timeout=max(1, int(limit)),
            resources={"metadata": {"path": str(folder)}}, on_cell_start=remember,
            **course._encrypted_kernel_config(), **course._kernel_log_manager(log),  # as `prodgen course run`
        )
        try:
            with course._kernel_can_import_prodgen():
                client.execute()
        except CellTimeoutError:
            where = f" in cell {_number(nb.cells, running[0])}" if running[0] is not None else ""
            return f"the time limit of {limit:g} s was reached{where}"
        except CellExecutionError:
            index = running[0]
            return f"cell {_number(nb.cells, index)} raised {_error_of(nb.cells[index]) or 'an error'}"
        except DeadKernelError:
            return "the kernel died (out of memory, or the code ended the process)"
        except Exception as error:  # kernel did not start in time, ...
            if time.monotonic() >= deadline:
                return f"the time limit of {limit:g} s was reached while the kernel started"
            return f"the run failed: {_one_line(f'{type(error).__name__}: {error}')}"
    return ""


def _run_notebook(copy, sandbox: bool, timeout: float) -> tuple[list[dict], str]:
    """Stage 1, in its own sandbox: execute the prepared copy; (per cell {"ran", "error"}, why it stopped).
    Only where the run stopped comes from here: the notebook's own outputs never make a verdict."""
    with tempfile.TemporaryDirectory(prefix="prodgen-grade-nb-") as tmp:
        path = Path(tmp) / "submission.ipynb"
        _nbformat().write(copy, str(path))
        job = {"stage": "run", "notebook": "submission.ipynb", "timeout": timeout}
        result = grade_sandbox.run(job, {"submission.ipynb": path}, timeout + STARTUP, sandbox)
    try:
        answer = json.loads(result.channel.decode().splitlines()[0])
        cells, stopped = list(answer["cells"]), str(answer["stopped"])
    except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError):
        cells, stopped = [], ""
    if result.timed_out:
        stopped = f"the time limit of {timeout:g} s was reached"
    elif not cells:
        stopped = stopped or _stage_failure(result, "the notebook's run")
    cells += [{}] * (len(copy.cells) - len(cells))
    return [c if isinstance(c, dict) else {} for c in cells[: len(copy.cells)]], _one_line(stopped)


def _stage_failure(result, what: str) -> str:
    if result.overflow:
        return f"{what} sent more than the grader keeps"
    if result.returncode in (-9, 137) or "MemoryError" in result.stderr:
        return f"{what} ended abruptly (killed: out of memory or another limit)"
    last = [line for line in result.stderr.splitlines() if line.strip()]
    return f"{what} ended with status {result.returncode}" + (f": {_one_line(last[-1], 200)}" if last else "")


def _verify(copy, lesson: Lesson, plans: list[_Plan], sandbox: bool, timeout: float) -> tuple[dict, str]:
    """Stage 2, in a fresh sandbox and interpreter: each exercise's check against the student's definitions.
    ({exercise: verdict payload}, why some are missing). Only lines carrying this run's HMAC count."""
    checks = {plan.check: plan.exercise for plan in plans if plan.check is not None}
    steps = []
    for i, cell in enumerate(copy.cells):
        if cell.cell_type != "code" or (GRADER_TAG in _tags(cell) and cell.source != FAST_CELL):
            continue
        if i in checks:
            steps.append({"kind": "check", "exercise": checks[i].name, "source": checks[i].check_source})
        else:
            steps.append({"kind": "cell", "source": cell.source})
    secret = secrets.token_bytes(32)
    job = {"stage": "verify", "steps": steps, "lesson_sources": list(lesson.sources)}
    result = grade_sandbox.run(job, {}, timeout + STARTUP, sandbox, secret)
    verdicts, forged, done = {}, 0, False
    for line in result.channel.decode(errors="replace").splitlines():
        try:
            outer = json.loads(line)
            body, mac = str(outer["body"]), str(outer["mac"])
        except (ValueError, KeyError, TypeError):
            forged += 1
            continue
        if not hmac.compare_digest(hmac.new(secret, body.encode(), "sha256").hexdigest(), mac):
            forged += 1
            continue
        payload = json.loads(body)
        done = done or bool(payload.get("done"))
        if "exercise" in payload:
            verdicts[payload["exercise"]] = payload
    if forged:
        return {}, f"the check's answer carried {forged} line(s) without this run's key: something forged a verdict"
    if result.timed_out:
        return verdicts, f"the checks did not finish within {timeout:g} s"
    return verdicts, "" if done else _stage_failure(result, "the checks")


def _verdict(plan: _Plan, cells, ran: list[dict], stopped: str, verdict: dict | None, why: str) -> tuple[str, str]:
    """(status, detail) of one exercise: the verifier's verdict, and where the notebook's own run stopped."""
    ex = plan.exercise
    if plan.check is None:
        return "error", "neither its exercise cell nor its check cell is in the notebook"
    source = cells[plan.cell].source if plan.cell is not None else ""
    if plan.cell is not None and _normal(source) == _normal(ex.stub):
        return "not attempted", "the exercise cell is unchanged"
    if verdict is None:
        return "error", f"not verified: {why or 'the checks stopped before it'}"
    if verdict.get("violation"):
        return "error", _one_line(f"the submission's code interfered with grading: {verdict['violation']}")
    if not ran[plan.check].get("ran"):
        return "error", f"not run: {stopped or 'the run stopped before it'}"
    if verdict.get("result") is True:
        return "passed", ""
    failed = str(verdict.get("fail") or "")
    if verdict.get("result") is False and failed:
        stubs_left = source.count(STUB_RAISE) >= max(1, ex.stub.count(STUB_RAISE))
        if NOT_DONE in failed and stubs_left:
            return "not attempted", "the NotImplementedError stub is still there"
        return "failed", _one_line(failed)
    if verdict.get("crash"):
        own = ran[plan.cell].get("error") if plan.cell is not None else ""
        return "error", _one_line(f"the check raised {verdict['crash']}" +
                                  (f" (the exercise cell raised {own})" if own else ""))
    return "error", "the check gave no verdict"


# --------------------------------------------------------------------------- grading


@dataclass
class Row:
    """One line of the report: a student's exercise."""

    student: str
    lesson: str
    exercise: str
    status: str
    detail: str
    submission: str
    seconds: float
    protection: str = ""  # what contained and checked the submission's code (grade_sandbox.protection)


COLUMNS = tuple(f.name for f in fields(Row))


def grade_notebook(path: Path | str, lessons: dict[str, Lesson], timeout: float = DEFAULT_TIMEOUT,
                   fast: bool = True, sandbox: bool = True, check_timeout: float = CHECK_TIMEOUT) -> list[Row]:
    """The rows of one submission; never raises for a bad submission (it gets an error row instead). Its notebook
    runs in one sandbox (`timeout`), then its checks in another (`check_timeout`; prodgen/course/grade_verify.py)."""
    path = Path(path)
    student = student_name(path, lessons)
    start = time.perf_counter()
    shield = grade_sandbox.protection(sandbox)

    def single(lesson: str, detail: str) -> list[Row]:
        return [Row(student, lesson, "", "error", detail, str(path), round(time.perf_counter() - start, 1), shield)]

    try:
        nb = _nbformat().read(str(path), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as error:  # not JSON, not a notebook, unreadable
        return single("", f"not a readable notebook: {_one_line(f'{type(error).__name__}: {error}', 200)}")
    lesson, note = identify(nb, path, lessons)
    if lesson is None:
        return single("", note)
    if not lesson.exercises:
        return single(lesson.name, "this lesson has no exercises to grade")
    copy, plans = _prepare(nb, lesson, fast)
    ran, stopped = _run_notebook(copy, sandbox, timeout)
    verdicts, why = _verify(copy, lesson, plans, sandbox, check_timeout)
    seconds = round(time.perf_counter() - start, 1)
    rows = []
    for plan in plans:
        status, detail = _verdict(plan, copy.cells, ran, stopped, verdicts.get(plan.exercise.name), why)
        extra = "; ".join(filter(None, [plan.note, note]))
        if stopped and status != "error":
            extra = "; ".join(filter(None, [extra, f"the notebook stopped: {stopped}"]))
        rows.append(Row(student, lesson.name, plan.exercise.name, status,
                        "; ".join(filter(None, [detail, extra])), str(path), seconds, shield))
    return rows


def submissions(paths) -> list[Path]:
    """The notebooks to grade: files as given, folders searched for `*.ipynb` (checkpoints skipped), in
    order and without repeats. FileNotFoundError / ValueError for a path that is neither."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*.ipynb")
                            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not inside:
                raise ValueError(f"{path} holds no .ipynb notebook to grade")
            found += inside
        elif not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        elif path.suffix != ".ipynb":
            raise ValueError(f"{path} is not a notebook (.ipynb); pass student notebooks or folders of them")
        else:
            found.append(path)
    if not found:
        raise ValueError("no submission given: pass student notebooks (.ipynb) or folders of them")
    unique = {p.resolve(): p for p in reversed(found)}
    return [p for p in found if unique.get(p.resolve()) is p]


def check_out(out: Path | str, overwrite: bool = False) -> Path:
    """The report's path, checked before any grading: a new (or empty) file in a writable folder."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the report's file name, e.g. {out / 'report.csv'}")
    if out.exists() and out.stat().st_size and not overwrite:
        raise ValueError(f"--out {out} already exists and is not empty; pass --overwrite or another file name")
    folder = out.parent if str(out.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {out}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: the folder {folder} is not writable")
    return out


def write_csv(rows: list[Row], out: Path | str) -> Path:
    """The rows as CSV (a header of COLUMNS), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(row) for row in rows)
    with atomic_file(out) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return Path(out)


def grade(paths, out: Path | str | None = None, timeout: float = DEFAULT_TIMEOUT, fast: bool = True,
          overwrite: bool = False, root: Path | str | None = None,
          log: Callable[[str], object] = print, sandbox: bool = True,
          check_timeout: float = CHECK_TIMEOUT, jobs: int = 1) -> list[Row]:
    """Grade every submission in `paths` (files or folders), `jobs` at a time (each in sandboxes of its own, with
    its own clock); write the CSV to `out` if given. Rows come in submission order whatever finishes first. Bad
    arguments raise before anything runs (as does a missing sandbox, unless `sandbox=False`: the instructor's
    --no-sandbox); a bad submission only gets its error rows."""
    for value in (timeout, check_timeout):
        if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
            raise ValueError(f"the time limit must be a number of seconds > 0, got {value!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise ValueError(f"jobs must be a whole number from 1 to {MAX_JOBS} (submissions graded at once), "
                         f"got {jobs!r}")
    if sandbox and grade_sandbox.unavailable():
        raise ValueError(f"refusing to grade: {grade_sandbox.unavailable()}; students' code would run unconfined "
                         f"(pass --no-sandbox to grade anyway, knowing it can read and change your files)")
    files = submissions(paths)
    if out is not None:
        out = check_out(out, overwrite)
    lessons = load_lessons(root)
    one = functools.partial(grade_notebook, lessons=lessons, timeout=timeout, fast=fast, sandbox=sandbox,
                            check_timeout=check_timeout)
    found: dict[Path, list[Row]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:  # each stage is a sandboxed process
        futures = {pool.submit(one, path): path for path in files}
        for i, future in enumerate(concurrent.futures.as_completed(futures), 1):
            path = futures[future]
            found[path] = future.result()
            log(f"[{i}/{len(files)}] {path} ({found[path][0].student}): {_progress(found[path])}")
    rows = [row for path in files for row in found[path]]
    if out is not None:
        write_csv(rows, out)
    return rows


def _progress(found: list[Row]) -> str:
    passed = sum(r.status == "passed" for r in found)
    graded = [r for r in found if r.exercise]
    what = f"{found[0].lesson}, {passed} of {len(graded)} passed" if graded else f"not graded: {found[0].detail}"
    return f"{what} ({found[0].seconds:.1f} s)"


# --------------------------------------------------------------------------- the summary


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return [lines[0], "-" * max(map(len, lines)), *lines[1:]]


def format_summary(rows: list[Row]) -> str:
    """Per submission: passed x of y and the other outcomes; per exercise: how many passed; then what went
    wrong where (failed, error and notebooks that could not be graded, with their detail)."""
    by_submission: dict[str, list[Row]] = {}
    by_exercise: dict[tuple, list[Row]] = {}
    for row in rows:
        by_submission.setdefault(row.submission, []).append(row)
        if row.exercise:
            by_exercise.setdefault((row.lesson, row.exercise), []).append(row)
    counts = STATUSES[1:]
    students = []
    for submission, found in by_submission.items():
        graded = [r for r in found if r.exercise]
        passed = sum(r.status == "passed" for r in graded)
        students.append((found[0].student, found[0].lesson or "?", f"{passed} of {len(graded)}" if graded else "-",
                         *(sum(r.status == s for r in graded) for s in counts), f"{found[0].seconds:.1f}", submission))
    lines = _table(("student", "lesson", "passed", *counts, "seconds", "submission"), students)
    lines = [f"protection: {p}" for p in dict.fromkeys(r.protection for r in rows if r.protection)] + lines
    if by_exercise:
        exercises = [(lesson, name, f"{sum(r.status == 'passed' for r in found)} of {len(found)}",
                      *(sum(r.status == s for r in found) for s in counts))
                     for (lesson, name), found in sorted(by_exercise.items())]
        lines += ["", *_table(("lesson", "exercise", "passed", *counts), exercises)]
    problems = [r for r in rows if r.status in ("failed", "error")]
    if problems:
        lines += ["", "what went wrong:"]
        lines += [f"  {r.student} {r.lesson or '?'} {r.exercise or '(notebook)'}: "
                  f"{r.status}: {_one_line(r.detail, 160)}"
                  for r in problems]
    return "\n".join(lines)

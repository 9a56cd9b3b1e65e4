"""What `prodgen course grade` (prodgen/course/grade.py) runs inside its sandbox (prodgen/course/grade_sandbox.py).

Two stages per submission, each in a fresh sandbox and a fresh interpreter:

* ``run``: execute the notebook copy headless (nbclient, the grader's time limit) and send back, per cell,
  whether it ran and the error it raised. Only used to say *where* a notebook stopped; never a verdict.
* ``verify``: the verdicts. Before any student code runs, this interpreter imports `prodgen.checks` and the
  lesson's own imports from the installed (read-only) package, reads a per-run secret from a pipe the
  notebook never had, and arms an audit hook. It then executes only the *definitions* of the submission's
  code cells (imports, `def`, `class`, assignments without calls: never a top-level statement such as a
  `print` patch or `checks.x = ...`), runs each lesson check cell (the lesson's text, not the student's) with
  every student function wrapped, and writes one JSON line per exercise, tagged with an HMAC of the secret,
  on a pipe the student's stdout never reaches.

Inside the verifier the student's own function still runs (the check calls it), so the wrapper and the audit
hook guard that code: frames (`sys._getframe`, `tb_frame`, ...), `gc`, `ctypes`, `/proc`, tracing, threads,
signals and processes are refused, every watched module (builtins, `prodgen.*`, `torch`, the checks' closures)
is compared with its state before any student code after each call, and return values must be plain data
(no Tensor subclass, no student object the check would call unwatched). Any of these -> "error" with the
reason. Used by `prodgen course grade` only; no lesson uses it.
"""
from __future__ import annotations

import ast
import contextlib
import hmac
import io
import json
import os
import sys
import types
from pathlib import Path

BLOCKED = ("sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
           "gc.get_objects", "gc.get_referrers", "gc.get_referents",
           "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
           "os.kill", "os.killpg", "pty.spawn", "_thread.start_new_thread", "signal.pthread_kill",
           "sys.addaudithook", "os.putenv", "os.unsetenv")
BLOCKED_PREFIXES = ("ctypes.", "socket.", "_ctypes", "mmap.", "winreg.")
FRAME_ATTRS = ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back")
FUNCTION_PARTS = ("__code__", "__closure__", "__globals__", "__defaults__", "__kwdefaults__", "__dict__", "__class__")
SETATTR = ("object.__setattr__", "object.__delattr__")
LIBRARY_MAY = ("os.putenv", "os.unsetenv", "gc.get_objects", "gc.get_referrers", "gc.get_referents")
STUDENT = "__student__"  # the module name student definitions get
TEXT_LIMIT = 4000


def send(fd: int, signer, payload: dict) -> None:
    """One JSON line on the verdict pipe: {"body": ..., "mac": hex HMAC of body}."""
    body = json.dumps(payload, sort_keys=True)
    mac = signer.copy()
    mac.update(body.encode())
    os.write(fd, (json.dumps({"body": body, "mac": mac.hexdigest()}) + "\n").encode())


def main() -> None:
    """Entry point (`python -I -c ...`): argv[1] is the job file the launcher copied in."""
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    if job["stage"] == "run":
        _run_stage(job)
    else:
        _verify_stage(job)
    os._exit(0)  # no atexit, no finalizer of student objects after the last verdict


# --------------------------------------------------------------------------- stage 1: the notebook


def _run_stage(job: dict) -> None:
    import nbformat

    from prodgen.course import grade

    nb = nbformat.read(job["notebook"], as_version=4)
    stopped = grade._execute(nb, Path.cwd(), float(job["timeout"]))
    cells = [{"ran": c.get("execution_count") is not None or bool(c.get("outputs")),
              "error": grade._error_of(c)[:TEXT_LIMIT]} if c.cell_type == "code" else {}
             for c in nb.cells]
    line = json.dumps({"stopped": stopped, "cells": cells}) + "\n"
    os.write(job["channel"], line.encode())


# --------------------------------------------------------------------------- stage 2: the verdicts


def definitions(source: str) -> list[ast.stmt]:
    """The top-level nodes of a cell the verifier executes: imports, functions, classes and assignments to
    plain names whose value calls nothing (outside lambdas). Everything else (calls, attribute or item
    assignments, loops, magics) is left out; a cell that does not parse gives nothing."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) for t in targets) and not _calls(node.value):
                kept.append(node)
    return kept


def _calls(node: ast.AST) -> bool:
    if isinstance(node, ast.Lambda):
        return False
    if isinstance(node, (ast.Call, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
        return True
    return any(_calls(child) for child in ast.iter_child_nodes(node))


def _watched_modules() -> list[str]:
    names = ("builtins", "torch", "torch.nn", "torch.nn.functional", "math", "functools", "json", "hmac", "os",
             "io", "numpy", "signal", "_signal", "contextlib")
    return [n for n in sys.modules if n.startswith("prodgen")] + [n for n in names if n in sys.modules]


def _fingerprint() -> dict:
    """Identity of everything a check's verdict depends on: watched modules' attributes, sys.modules' entries
    for them, and every prodgen function's code, defaults and closure contents."""
    state = {}
    for name in _watched_modules():
        module = sys.modules[name]
        state[("module", name)] = id(module)
        for key, value in list(vars(module).items()):
            state[(name, key)] = id(value)
            if name.startswith("prodgen") and isinstance(value, types.FunctionType):
                closure = tuple(id(c.cell_contents) if _filled(c) else 0 for c in value.__closure__ or ())
                state[(name, key, "fn")] = (id(value.__code__), id(value.__defaults__), id(value.__kwdefaults__),
                                            closure, id(value.__dict__))
    return state


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (reading an empty cell raises)
    except ValueError:
        return False
    return True


def _changes(before: dict) -> str:
    """'' or the first watched thing that differs from `before` (new attributes of prodgen modules count)."""
    now = _fingerprint()
    for key, value in before.items():
        if now.get(key) != value:
            return ".".join(str(k) for k in key[:2]) + (" (its code or closure)" if len(key) > 2 else "")
    for key in now.keys() - before.keys():
        if str(key[0]).startswith("prodgen"):
            return f"{key[0]}.{key[1]} (added)"
    return ""


class _Stop(BaseException):
    """Raised by the guard through the check (which catches only Exception): the verdict is an error."""


def _protected_target(obj, name) -> bool:
    """Whether setting ``obj.name`` could change grading: a function's code or closure, or a class or module of
    the checks, the verifier or Python itself. Ordinary objects (an ``nn.Module`` setting its own fields through
    ``object.__setattr__``, a library caching on its own classes) are left alone; the tamper fingerprint taken
    after every call catches what this misses."""
    if isinstance(obj, types.CellType):  # a closure's contents (``nonlocal`` does not pass here)
        return True
    if name in FUNCTION_PARTS and not isinstance(obj, type):
        return isinstance(obj, (types.FunctionType, types.MethodType, types.CodeType))
    owner = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "")
    if not isinstance(obj, (type, types.ModuleType)):
        return False
    return str(owner).split(".")[0] in ("prodgen", "builtins", "sys", "types", "__main__") or \
        str(owner) == __name__


FRAME_GIVERS = ("inspect", "traceback", "pdb", "bdb", "cgitb", "sys")  # modules whose functions hand out frames


def _is_student(frame) -> bool:
    return frame is not None and (frame.f_code.co_filename in ("<exercise>", "<lesson>")
                                  or frame.f_globals.get("__name__") == STUDENT)


def _asked_by_student(state: dict, via: tuple = FRAME_GIVERS) -> bool:
    """Whether the ``sys._getframe`` being audited serves student code: called from it directly, or through a
    module whose job is to hand frames out (``inspect.currentframe``, ``traceback.extract_stack``...). A
    library's own use (``torch.optim``, ``typing``, ``collections.namedtuple``) is allowed: the frames it
    reads stay inside it. Deeper chains are not followed (INSTRUCTORS.md says what grading cannot promise)."""
    state["trusted"] += 1  # our own sys._getframe below must not re-enter the hook
    try:
        frame = sys._getframe(1)  # the hook, then (skipped: this file's frames) the audited call's caller
        while frame is not None and frame.f_code.co_filename == __file__:
            frame = frame.f_back
        if _is_student(frame):
            return True
        name = frame.f_globals.get("__name__", "") if frame is not None else ""
        return name.split(".")[0] in via and _is_student(frame.f_back)
    finally:
        state["trusted"] -= 1


def _audit(state: dict):
    """The audit hook: while student code may run (state['armed']), refuse what could reach the verifier's
    frames, memory or the outside, and remember the first refusal as the verdict's reason."""

    def hook(event, args):
        if not state["armed"] or state["trusted"]:
            return
        bad = event in BLOCKED or event.startswith(BLOCKED_PREFIXES)
        if event == "object.__getattr__" and len(args) > 1 and args[1] in FRAME_ATTRS:
            bad = True
        if event in SETATTR and args:  # libraries set their own functions' defaults (namedtuple): only the student's
            bad = _protected_target(args[0], args[1] if len(args) > 1 else "") and _asked_by_student(state, via=())
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            bad = path.startswith(("/proc", "/dev/mem", "/sys/kernel"))
        if bad and event == "sys._getframe" and not _asked_by_student(state):
            bad = False  # a library's own bookkeeping (torch.optim, typing, namedtuple): not the student's hands
        if bad and event in LIBRARY_MAY and not _asked_by_student(state, via=()):
            bad = False  # torch sets environment variables and walks the collector for its own reasons
        if bad:
            state["violation"] = state["violation"] or f"it used {event}, which grading does not allow"
            raise RuntimeError(f"{event} is not allowed while grading")

    return hook


def _plain(value, student_classes: tuple, depth: int = 0) -> str:
    """'' when a student function's return value is plain data the check may use, else why not."""
    import torch

    if depth > 20:
        return "its return value is nested too deeply"
    kind = type(value)
    if isinstance(value, torch.Tensor) and kind not in (torch.Tensor, torch.nn.Parameter):
        return f"it returned a {kind.__name__}, a subclass of torch.Tensor"
    if isinstance(value, (types.FunctionType, types.MethodType, types.GeneratorType, types.CoroutineType)):
        return "it returned a function or generator"
    if getattr(kind, "__module__", "") == STUDENT and not isinstance(value, student_classes):
        return f"it returned an object of its own class {kind.__name__}"
    if kind in (list, tuple, set, frozenset):
        return next(filter(None, (_plain(v, student_classes, depth + 1) for v in list(value)[:10000])), "")
    if kind is dict:
        items = [v for kv in list(value.items())[:10000] for v in kv]
        return next(filter(None, (_plain(v, student_classes, depth + 1) for v in items)), "")
    return ""


def _guard(fn, state: dict, before: dict, student_classes: tuple):
    """`fn` wrapped: after every call the watched state must be as before and the result plain data."""

    def guarded(*args, **kwargs):
        if state["violation"]:
            raise _Stop()
        try:
            result = fn(*args, **kwargs)
        finally:
            state["trusted"] += 1
            try:
                changed = _changes(before)
                if changed and not state["violation"]:
                    state["violation"] = f"its code changed {changed}"
            finally:
                state["trusted"] -= 1
        state["trusted"] += 1
        try:
            why = _plain(result, student_classes)
        finally:
            state["trusted"] -= 1
        if why:
            state["violation"] = state["violation"] or why
        if state["violation"]:
            raise _Stop()
        return result

    guarded.__name__ = getattr(fn, "__name__", "guarded")
    guarded.__doc__ = getattr(fn, "__doc__", None)
    return guarded


def _wrap_student(namespace: dict, state: dict, before: dict) -> dict:
    """A copy of `namespace` whose student functions are guarded; student classes get guarded methods."""
    classes = tuple(v for v in namespace.values() if isinstance(v, type) and v.__module__ == STUDENT)
    wrapped = dict(namespace)
    state["trusted"] += 1
    try:
        for cls in classes:
            for key, value in list(vars(cls).items()):
                if isinstance(value, types.FunctionType) and not getattr(value, "_prodgen_guarded", False):
                    guarded = _guard(value, state, before, classes)
                    guarded._prodgen_guarded = True
                    setattr(cls, key, guarded)
        for key, value in namespace.items():
            if isinstance(value, types.FunctionType) and value.__module__ == STUDENT:
                wrapped[key] = _guard(value, state, before, classes)
    finally:
        state["trusted"] -= 1
    return wrapped


def _trusted_imports(sources: list[str]) -> None:
    """The lesson's own imports (from notebooks/, not the submission), loaded before any student code."""
    scratch: dict = {"__name__": "__lesson__"}
    for source in sources:
        for node in definitions(source):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                with contextlib.suppress(Exception):
                    exec(compile(ast.Module([node], []), "<lesson>", "exec"), scratch)


def _silence_signals() -> None:
    """Signal handlers receive the interrupted frame: no student code may install one."""
    import signal

    def refused(*args, **kwargs):
        raise RuntimeError("signal handlers are not allowed while grading")

    for module in (signal, sys.modules.get("_signal")):
        if module is not None:
            for name in ("signal", "set_wakeup_fd", "setitimer", "alarm", "pthread_sigmask", "raise_signal"):
                if hasattr(module, name):
                    setattr(module, name, refused)


def _warm_up_torch() -> None:
    """Let torch make its lazy changes before the fingerprint is taken: the first optimiser step imports
    ``torch._dynamo``, which wraps ``torch.manual_seed`` and friends (an honest answer would look like tampering)."""
    try:
        import torch
        import torch._dynamo  # noqa: F401

        w = torch.zeros(2, requires_grad=True)
        optimiser = torch.optim.Adam([w], lr=0.1)
        (w.sum() ** 2).backward()
        optimiser.step()
    except Exception:  # noqa: BLE001  (a torch without dynamo: nothing to warm up)
        pass


def _verify_stage(job: dict) -> None:
    key = os.read(job["secret"], 1024)
    os.close(job["secret"])
    signer = hmac.new(key, digestmod="sha256")
    del key
    channel = job["channel"]
    _trusted_imports(job["lesson_sources"])
    import prodgen.checks as checks  # noqa: F401  from the read-only package, before any student code

    _warm_up_torch()
    _silence_signals()
    state = {"armed": False, "trusted": 0, "violation": ""}
    before = _fingerprint()
    sys.addaudithook(_audit(state))
    namespace: dict = {"__name__": STUDENT, "__builtins__": __builtins__}
    state["armed"] = True
    for step in job["steps"]:
        if step["kind"] == "cell":
            _define(step["source"], namespace, state, before)
        else:
            send(channel, signer, _one_check(step, namespace, state, before))
    send(channel, signer, {"done": True})


def _define(source: str, namespace: dict, state: dict, before: dict) -> None:
    """Execute a cell's definitions (each node on its own: one that fails is skipped, as a cell would go on)."""
    sink = io.StringIO()
    for node in definitions(source):
        with contextlib.suppress(Exception), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            exec(compile(ast.Module([node], []), "<exercise>", "exec"), namespace)
    _note_changes(state, before, "its definitions changed")


def _note_changes(state: dict, before: dict, what: str) -> None:
    """Compare the watched state with ``before`` (trusted: no audit) and keep the first change as the violation."""
    state["trusted"] += 1
    try:
        changed = _changes(before)
    finally:
        state["trusted"] -= 1
    if changed and not state["violation"]:
        state["violation"] = f"{what} {changed}"


def _one_check(step: dict, namespace: dict, state: dict, before: dict) -> dict:
    """Run one lesson check cell against the guarded student functions: the verdict line's payload."""
    import prodgen.checks as checks

    results: list = []

    def recorder(real):
        def call(*args, **kwargs):
            results.append(real(*args, **kwargs))
            return results[-1]
        return call

    proxy = types.SimpleNamespace(**{name: recorder(getattr(checks, name)) for name in dir(checks)
                                     if name.startswith("check_")})
    scope = _wrap_student(namespace, state, before)
    scope.update(checks=proxy, passed={})
    text = io.StringIO()
    crash = ""
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            exec(compile(step["source"], "<check>", "exec"), scope)
    except _Stop:
        pass
    except Exception as error:
        crash = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    _note_changes(state, before, "its code changed")
    lines = [line.strip() for line in text.getvalue().splitlines() if line.strip().startswith("[FAIL]")]
    return {"exercise": step["exercise"], "violation": state["violation"], "crash": crash[:TEXT_LIMIT],
            "result": results[-1] if results and isinstance(results[-1], bool) else None,
            "fail": lines[0][:TEXT_LIMIT] if lines else ""}

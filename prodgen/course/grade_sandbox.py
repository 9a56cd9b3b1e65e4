"""Containment for `prodgen course grade` (prodgen/course/grade.py): run one grading stage
(prodgen/course/grade_verify.py) on untrusted student code, inside bubblewrap when the system has it.

The sandbox (`bwrap`): no network (its own network namespace: only its own loopback, no DNS), its own process
namespace (every process it started, `setsid` ones included, dies with it), the system read-only and only
what Python and prodgen need of it visible (the instructor's home, /tmp, /run and the course's `solutions/`
and `.git` hidden), a private size-limited tmpfs as its only writable folder. Started as root, the code inside
runs as an unprivileged uid of its own, one per stage running at once (`--jobs`), so the process limit holds for
each (the kernel does not apply RLIMIT_NPROC to root; not as root, all stages share your uid's limit). Resource limits
apply in any case, sandbox or not: address space, processes, file size, CPU time, and
the grader keeps at most a few MB of anything the stage sends back (a bounded pipe, stdout discarded, stderr
kept to a capped file). The grader's clock kills the whole process group at the time limit.
Without bubblewrap, `prodgen course grade` refuses to run unless the instructor passes `--no-sandbox`.
No lesson uses this module.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

MEMORY = 6 << 30  # address space per process: torch + a kernel fit; a memory bomb does not
PROCESSES = 256  # tasks (threads count) of the sandbox's uid
FILE_SIZE = 256 << 20  # largest file a stage may write
DISK = 1 << 30  # the tmpfs that is the stage's only writable folder
CHANNEL_LIMIT = 4 << 20  # bytes of a stage's answer the grader keeps
STDERR_LIMIT = 1 << 20
INSIDE = "/sandbox"  # the stage's folder (and home) inside bubblewrap
INBOX = "/sandbox-in"  # the grader's inputs, read-only
HIDDEN = ("/root", "/home", "/tmp", "/var/tmp", "/run", "/var/run", "/mnt", "/media", "/srv")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt")

LAUNCHER = r'''
import json, os, resource, shutil, sys
cfg = json.loads(sys.argv[1])
for name, value in cfg["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
home = cfg["home"]
if cfg["inbox"]:
    for name in os.listdir(cfg["inbox"]):
        shutil.copy(os.path.join(cfg["inbox"], name), os.path.join(home, name))
if cfg["cache"]:  # the shared cache, read-only: a writable mirror of links to it (new entries stay here)
    mirror = os.path.join(home, ".prodgen-cache")
    for top, dirs, files in os.walk(cfg["cache"]):
        here = os.path.join(mirror, os.path.relpath(top, cfg["cache"]))
        os.makedirs(here, exist_ok=True)
        for name in files:
            os.symlink(os.path.join(top, name), os.path.join(here, name))
    cfg["env"]["PRODGEN_CACHE"] = mirror
if cfg["uid"] is not None:
    for top, dirs, files in os.walk(home):
        for name in [top] + [os.path.join(top, n) for n in files]:
            os.lchown(name, cfg["uid"], cfg["uid"])
    os.setgroups([])
    os.setgid(cfg["uid"])
    os.setuid(cfg["uid"])
os.chdir(home)
boot = "import sys; sys.path[:0] = %r; from prodgen.course.grade_verify import main; main()" % (cfg["path"],)
os.execve(sys.executable, [sys.executable, "-I", "-c", boot, os.path.join(home, "job.json")], cfg["env"])
'''


@dataclass
class Result:
    """What one stage sent back: its answer (bytes from the pipe), exit code, whether the clock stopped it."""

    channel: bytes
    returncode: int
    timed_out: bool
    overflow: bool
    stderr: str


_probe: dict = {}


def unavailable() -> str:
    """'' when bubblewrap can make this sandbox here, else why not (checked once per process)."""
    if "why" not in _probe:
        bwrap = shutil.which("bwrap")
        if not bwrap:
            _probe["why"] = "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)"
        else:
            try:
                done = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                       "--unshare-net", "--unshare-pid", "--die-with-parent", "true"],
                                      capture_output=True, timeout=30)
                _probe["why"] = "" if done.returncode == 0 else (
                    "bubblewrap cannot create a sandbox here: " + done.stderr.decode(errors="replace").strip()[:200])
            except (OSError, subprocess.TimeoutExpired) as error:
                _probe["why"] = f"bubblewrap did not start: {error}"
    return _probe["why"]


def protection(sandbox: bool) -> str:
    """The protection in force, as the report states it."""
    limits = (f"limits: memory {MEMORY >> 30} GiB per process, {PROCESSES} processes, files {FILE_SIZE >> 20} MiB, "
              f"output kept {CHANNEL_LIMIT >> 20} MiB, time")
    if sandbox:
        user = "a uid of its own" if os.geteuid() == 0 else "your uid"
        return (f"bubblewrap sandbox (no network, own process namespace, read-only system, home and /tmp hidden, "
                f"{DISK >> 20} MiB private folder, runs as {user}); {limits}")
    return f"NO SANDBOX (--no-sandbox): student code runs as you, with network and your files; {limits}"


def _python_paths() -> list[str]:
    """Folders Python and prodgen need: the interpreter's prefixes and the grader's own import path."""
    import prodgen

    found = [sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent.parent)]
    found += [p for p in sys.path if p and os.path.isdir(p)]
    found.append(str(Path(prodgen.__file__).resolve().parent.parent))
    from prodgen.paths import cache_dir, checkpoints_dir

    found += [str(p) for p in (cache_dir(), checkpoints_dir()) if p.is_dir()]
    return sorted({str(Path(p).resolve()) for p in found})


def _bwrap_args(inbox: Path) -> list[str]:
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--dev", "/dev", "--proc", "/proc"]
    for folder in SYSTEM:
        if os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for folder in dict.fromkeys(HIDDEN + (str(Path.home()),)):
        if folder in HIDDEN or os.path.isdir(folder):
            args += ["--tmpfs", folder]
    import prodgen

    root = Path(prodgen.__file__).resolve().parent.parent
    made = set()
    for folder in _python_paths():
        for parent in reversed(Path(folder).parents):  # bwrap would make missing ones 0700: unreachable
            if str(parent) != "/" and str(parent) not in made and not _bound(str(parent)):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", folder, folder]
        made.add(folder)
    for secret in ("solutions", ".git"):  # the answers and their history stay with the instructor
        if (root / secret).is_dir():
            args += ["--tmpfs", str(root / secret)]
        elif (root / secret).exists():
            args += ["--ro-bind", "/dev/null", str(root / secret)]
    args += ["--size", str(DISK), "--tmpfs", INSIDE, "--ro-bind", str(inbox), INBOX, "--chdir", "/"]
    return args


def _bound(path: str) -> bool:
    """Whether `path` lies inside a folder bound read-only as a whole (no directory may be made there)."""
    return any(path == f or path.startswith(f + "/") for f in SYSTEM)


def _environment(home: str) -> dict:
    import prodgen

    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "PRODGEN_CACHE", "PRODGEN_CHECKPOINTS")
            if k in os.environ}
    pythonpath = os.pathsep.join([str(Path(prodgen.__file__).resolve().parent.parent)]
                                 + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return {**keep, "HOME": home, "TMPDIR": home, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{home}/.mpl",
            "IPYTHONDIR": f"{home}/.ipython", "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter-runtime",
            "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def _drain(fd: int, limit: int, out: dict) -> None:
    chunks, size = [], 0
    with open(fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            if size < limit:
                chunks.append(chunk[: limit - size])
            size += len(chunk)
    out["data"], out["overflow"] = b"".join(chunks), size > limit


def _launch_config(folder: Path, sandbox: bool, timeout: float) -> tuple[list[str], dict]:
    """The command that runs the launcher and the launcher's settings."""
    import prodgen

    home = INSIDE if sandbox else str(folder / "home")
    rlimits = {"RLIMIT_AS": MEMORY, "RLIMIT_FSIZE": FILE_SIZE, "RLIMIT_CPU": int(timeout) + 60,
               "RLIMIT_CORE": 0}
    uid = _uid_slot.get(None) if sandbox and os.geteuid() == 0 else None
    if uid is not None or os.geteuid() != 0:
        rlimits["RLIMIT_NPROC"] = PROCESSES if uid is not None else _own_tasks() + PROCESSES
    from prodgen.paths import cache_dir

    cache = str(cache_dir())
    cfg = {"rlimits": rlimits, "home": home, "inbox": INBOX if sandbox else "", "uid": uid,
           "cache": str(Path(cache).resolve()) if sandbox and cache and os.path.isdir(cache) else "",
           "env": _environment(home), "path": [str(Path(prodgen.__file__).resolve().parent.parent)]}
    command = [sys.executable, "-I", "-c", LAUNCHER, json.dumps(cfg)]
    if sandbox:
        command = [shutil.which("bwrap") or "bwrap", *_bwrap_args(folder / "inbox"), *command]
    return command, cfg


def _own_tasks() -> int:
    """Threads and processes this uid runs now (RLIMIT_NPROC counts them all, across the system)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == os.geteuid():
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass
    return count


UID_BASE, SLOTS = 100_000, 16  # sandbox uids: UID_BASE + (grader pid % 4096) * SLOTS + the stage's slot
_uid_slot: contextvars.ContextVar[int | None] = contextvars.ContextVar("prodgen_sandbox_uid", default=None)
_slots_lock = threading.Lock()
_slots_used: set[int] = set()


def uids() -> range:
    """The sandbox uids this grader process may give its stages (another grader beside it has its own)."""
    first = UID_BASE + (os.getpid() % 4096) * SLOTS
    return range(first, first + SLOTS)


@contextlib.contextmanager
def _own_uid():
    """A sandbox uid no other stage of this process uses now: the process limit (RLIMIT_NPROC counts a uid's
    tasks) then holds per stage, so a fork bomb in one submission cannot starve one graded beside it."""
    with _slots_lock:
        free = [s for s in range(SLOTS) if s not in _slots_used]
        if not free:
            raise RuntimeError(f"more than {SLOTS} sandboxes at once in one grader")
        _slots_used.add(free[0])
    token = _uid_slot.set(uids()[free[0]])
    try:
        yield
    finally:
        _uid_slot.reset(token)
        with _slots_lock:
            _slots_used.discard(free[0])


def run(job: dict, inputs: dict[str, Path], timeout: float, sandbox: bool, secret: bytes | None = None) -> Result:
    """Run one stage (`job`, with `inputs` copied into its folder) and return what it sent on its pipe.
    Thread-safe: `prodgen course grade --jobs N` runs N stages at once, each with a uid of its own."""
    with _own_uid():
        return _run(job, inputs, timeout, sandbox, secret)


def _run(job: dict, inputs: dict[str, Path], timeout: float, sandbox: bool, secret: bytes | None) -> Result:
    with tempfile.TemporaryDirectory(prefix="prodgen-grade-") as tmp:
        folder = Path(tmp)
        inbox = folder / "inbox" if sandbox else folder / "home"
        inbox.mkdir()
        for name, path in inputs.items():
            shutil.copy(path, inbox / name)
        channel_r, channel_w = os.pipe()
        secret_r, secret_w = os.pipe()
        job = {**job, "channel": channel_w, "secret": secret_r}
        (inbox / "job.json").write_text(json.dumps(job), encoding="utf-8")
        command, _ = _launch_config(folder, sandbox, timeout)
        os.write(secret_w, secret or b"-")
        os.close(secret_w)
        got: dict = {}
        with open(folder / "stderr", "wb") as err:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                       pass_fds=(channel_w, secret_r), start_new_session=True, cwd=tmp)
            os.close(channel_w)
            os.close(secret_r)
            reader = threading.Thread(target=_drain, args=(channel_r, CHANNEL_LIMIT, got), daemon=True)
            reader.start()
            timed_out = False
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill(process)
            reader.join(5)
        with open(folder / "stderr", "rb") as err:
            err.seek(max(0, (folder / "stderr").stat().st_size - 2000))
            tail = err.read().decode(errors="replace")
        return Result(got.get("data", b""), process.returncode, timed_out, got.get("overflow", False), tail)


def _kill(process: subprocess.Popen) -> None:
    """Kill the stage's whole process group (in the sandbox, its pid namespace dies with it)."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()

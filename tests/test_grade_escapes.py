"""`prodgen course grade` against submissions that try to escape (split from tests/test_grade_hostile.py so the
batches run on different test workers), graded four at a time (`--jobs`): an endless loop in a cell and in the
exercise, a memory bomb, a fork bomb, a `setsid` child with 50 MB printed, and one cell that tries the network five
ways and DNS, writes outside the folder and reads the instructor's home. Each is graded error with a reason,
nothing is written outside, no process outlives grading, and the honest student still passes."""
from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path

import pytest
from test_grade_hostile import ROOT, _grade, _solved, _with, needs_bwrap

from prodgen.course import grade_sandbox


def _canaries(tmp_path: Path) -> dict:
    """Paths outside the submission's folder that a submission tries to write."""
    import prodgen

    return {"package": Path(prodgen.__file__).parent / "pwned_by_grading.py", "repo": ROOT / "pwned_by_grading.txt",
            "tmp": tmp_path / "pwned.txt", "cache": grade_sandbox.Path(os.environ.get("PRODGEN_CACHE", "/nonexistent"))
            / "pwned.txt"}


def _escapes(tmp_path: Path, tcp: int, udp: int, secret: Path) -> dict:
    writes = "\n            ".join(f"try_write({str(p)!r})" for p in _canaries(tmp_path).values())  # as indented below
    return {
        # endless loops that sleep: the time limits stop them all the same, and CI's other worker keeps the CPU
        # (tests/test_grade.py stops a notebook that hangs too)
        "loop_cell": _with(cell="import time\nwhile True:\n    time.sleep(0.2)\n"),
        "loop_function": _with(exercise="def to_channels_first(image):\n    import time\n    while True:\n"
                                        "        time.sleep(0.2)\n"),
        # address space without touching it (np.empty): the sandbox's limit is on address space (RLIMIT_AS), and
        # zero-filling 6 GiB of pages first (bytearray) took longer than the 30 s limit on a busy CI machine
        "memory": _with(cell="import numpy as np\nblocks = []\nwhile True:\n    blocks.append(np.empty(1 << 28, "
                             "dtype=np.uint8))\n"),
        "fork_bomb": _with(cell="""\
            import os, time
            while True:
                if os.fork() == 0:
                    time.sleep(611)
                    os._exit(0)
            """),
        # harmless to the grade, but must be contained: a `setsid` child that outlives the notebook, 50 MB printed
        "harmless": _with(cell="import subprocess\nsubprocess.Popen(['setsid', 'sleep', '612'])\n"
                               "for _ in range(50):\n    print('x' * (1 << 20))\n"),
        # what a submission may reach outside its folder: the network five ways and DNS, files to write, the
        # instructor's secrets; one cell tries them all and says in its error what it got
        "reach": _with(cell=f"""\
            import importlib, os, socket, subprocess, sys, _socket
            reached, done, found = [], [], []
            def attempt(name, fn):
                try:
                    fn()
                    reached.append(name)
                except Exception:
                    pass
            attempt("_socket", lambda: _socket.socket().connect(("127.0.0.1", {tcp})))
            attempt("reload", lambda: importlib.reload(socket).create_connection(("127.0.0.1", {tcp}), 3))
            attempt("subprocess", lambda: subprocess.run([sys.executable, "-c",
                    "import socket; socket.create_connection(('127.0.0.1', {tcp}), 3)"], check=True, timeout=20))
            attempt("127-name", lambda: socket.create_connection(("127.0.0.1.nip.io", {tcp}), 3))
            attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("10.1.2.3", {udp})))
            try:  # "succeeds" into the sandbox's own loopback: the instructor's socket must get nothing
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", {udp}))
            except OSError:
                pass
            attempt("dns", lambda: socket.getaddrinfo("example.com", 80))
            def try_write(path):
                try:
                    with open(path, "w") as f:
                        f.write("pwned")
                    done.append(path)
                except OSError:
                    pass
            {writes}
            for path in [{str(secret)!r}, os.path.expanduser("~/.ssh/id_rsa"), "/root/.bash_history"]:
                try:
                    found.append(open(path).read())
                except OSError:
                    pass
            raise RuntimeError(f"network reached: {{reached}}; wrote: {{done}}; read: {{found}}")
            """),
    }


def _sandbox_processes() -> list[str]:
    """Processes of this grader's sandbox uids (grade_sandbox.uids(): another test worker grading beside this one
    has its own) or the attacks' sleepers still alive."""
    ours = grade_sandbox.uids()
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if entry.stat().st_uid in ours or "sleep 61" in cmdline:
                    left.append(cmdline)
            except OSError:
                pass
    return left


@needs_bwrap
@pytest.mark.slow(seconds=120)
def test_escapes_are_contained_and_the_honest_student_passes(tmp_path, monkeypatch):
    home = tmp_path / "instructor"
    (home / ".ssh").mkdir(parents=True)
    secret = home / ".ssh" / "id_rsa"
    secret.write_text("TOP-SECRET-KEY")
    monkeypatch.setenv("HOME", str(home))
    tcp, udp = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp.bind(("127.0.0.1", 0))
    tcp.settimeout(0.1)
    udp.settimeout(0.1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    notebooks = {"alice": _solved(), **_escapes(tmp_path, tcp.getsockname()[1], udp.getsockname()[1], secret)}
    # graded four at a time (--jobs): the endless loops wait on their clocks side by side, and a fork bomb or a
    # memory bomb beside the honest student must not take it down (all seven at once on a busy 2-core CI machine
    # left the memory bomb too little CPU to reach its limit within 30 s)
    rows = _grade(tmp_path / "in", notebooks, timeout=30, check_timeout=30, jobs=4)
    took = time.monotonic() - start
    assert rows["alice"].status == "passed", rows["alice"].detail
    harmless = ("harmless",)  # a solved notebook whose extra cell only has to be contained
    print({name: (row.status, row.detail) for name, row in rows.items()})
    for name, row in rows.items():
        assert "TOP-SECRET" not in row.detail
        if name not in ("alice", *harmless):
            assert row.status in ("error", "failed") and row.detail, (name, row.status, row.detail)
    assert rows["harmless"].status == "passed", rows["harmless"].detail  # 50 MB printed: graded, never kept
    assert "time limit of 30 s" in rows["loop_cell"].detail
    assert "did not finish within 30 s" in rows["loop_function"].detail
    assert "MemoryError" in rows["memory"].detail
    assert "BlockingIOError" in rows["fork_bomb"].detail or "time limit" in rows["fork_bomb"].detail
    assert "network reached: []; wrote: []; read: []" in rows["reach"].detail
    with pytest.raises(OSError):
        tcp.accept()  # nothing connected to the instructor's machine
    with pytest.raises(OSError):
        udp.recvfrom(10)
    for path in _canaries(tmp_path).values():
        assert not path.exists(), path
    assert _sandbox_processes() == []  # nothing outlived the grader: fork bomb children, setsid sleepers
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak  # KiB on Linux
    assert grown < 40 << 10, f"the grader's own memory grew by {grown} KiB (50 MB were printed)"
    spent = sum(row.seconds for row in rows.values())  # each submission's own time: they overlapped
    assert spent > 1.5 * took, f"{spent:.0f} s of grading in {took:.0f} s: the submissions were not graded at once"

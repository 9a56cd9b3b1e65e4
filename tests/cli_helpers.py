"""Running `prodgen ARGS` for the bad-input tests (tests/test_generate.py, test_cli.py, test_leaderboard.py).

The cases run `prodgen.cli.main` in the test's own process: a `python -m prodgen.cli` subprocess per case
spends ~2 s importing torch, most of such a test. A few cases per command also go through the subprocess, so
the installed command's own exit path (status 2, one line on stderr, no traceback) stays covered end to end.
"""
from __future__ import annotations

import os
import subprocess
import sys


def in_this_process(monkeypatch, capsys):
    """A runner ``run(args, cwd=None, env=None) -> (exit status, stdout, stderr)`` calling ``prodgen.cli.main``
    with ``env`` set and ``cwd`` as the working directory (both undone after the test)."""
    from prodgen.cli import main

    def run(args, cwd=None, env=None):
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()  # only this run's output
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse's own errors exit
            code = stop.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def in_a_subprocess(args, cwd=None, env=None):
    """The same through ``python -m prodgen.cli`` (one thread)."""
    done = subprocess.run([sys.executable, "-m", "prodgen.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, cwd=cwd, timeout=300)
    return done.returncode, done.stdout, done.stderr


def shipped_subset(folder, names, monkeypatch):
    """A private checkpoint folder (``PRODGEN_CHECKPOINTS``, undone after the test) holding only the shipped
    checkpoints ``names`` and their manifest entries: a test trains or ships into it without touching the course's."""
    import json
    import shutil
    from pathlib import Path

    from prodgen import paths

    shipped, folder = paths.checkpoints_dir(), Path(folder)
    folder.mkdir(parents=True)
    manifest = json.loads((shipped / "manifest.json").read_text(encoding="utf-8"))
    keep = {name: manifest[name] for name in names}
    for entry in keep.values():
        shutil.copy(shipped / entry["file"], folder)
    (folder / "manifest.json").write_text(json.dumps(keep), encoding="utf-8")
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(folder))
    return folder

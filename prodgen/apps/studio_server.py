"""``prodgen studio``: the Product Studio (``prodgen.apps.studio``) as a standalone web page, served by Voilà.

Voilà runs a notebook and shows only its widgets, so a workshop projector gets the studio without
JupyterLab around it. The server listens on 127.0.0.1 only and asks for a random token (in the printed
URL); Ctrl-C stops it and removes the temporary notebook. Voilà is an optional extra
(``pip install "prodgen[studio]"``). Used by ``prodgen studio`` and its browser test.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["voila_available", "write_notebook", "voila_command", "start", "serve", "MISSING", "KERNELS"]

MISSING = 'prodgen studio needs Voilà: pip install "prodgen[studio]"'


def voila_available() -> bool:
    return importlib.util.find_spec("voila") is not None


def write_notebook(folder, export_dir) -> Path:
    """A one-cell notebook that shows ``Studio(export_dir=...)``, written into ``folder``."""
    import nbformat

    source = f"from prodgen.apps.studio import Studio\nStudio(export_dir={str(Path(export_dir).resolve())!r})"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(folder) / "studio.ipynb"
    nbformat.write(nb, path)
    return path


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"--port must be a port number 1 to 65535, got {port!r}")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will (a closed port may linger)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ValueError(f"port {port} on 127.0.0.1 is in use; choose another with --port") from None


KERNELS = {"cull_idle_timeout": 300, "cull_interval": 60, "max_kernels": 4}
"""Voilà starts a ~270 MB kernel per page load: a kernel idle for ``cull_idle_timeout`` s whose page is closed is
shut down (checked every ``cull_interval`` s), and at most ``max_kernels`` run at once
(``prodgen.apps.studio_kernels``)."""


def voila_command(notebook: Path, port: int, token: str) -> list[str]:
    """The Voilà command line: 127.0.0.1 only, a token, no tracebacks to the page, idle kernels culled and capped."""
    return [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0", f"--token={token}", "--no-browser",
            "--VoilaConfiguration.show_tracebacks=False",
            f"--MappingKernelManager.cull_idle_timeout={KERNELS['cull_idle_timeout']}",
            f"--MappingKernelManager.cull_interval={KERNELS['cull_interval']}",
            "--MappingKernelManager.cull_connected=False",  # an open page keeps its kernel, however idle
            "--VoilaConfiguration.multi_kernel_manager_class=prodgen.apps.studio_kernels.CappedKernelManager",
            f"--CappedKernelManager.max_kernels={KERNELS['max_kernels']}"]


def start(port: int = 8866, export_dir="studio-export", timeout: float = 120.0, log_file=None):
    """Start Voilà serving the studio; returns ``(process, url, temp folder)`` once it answers.

    ``ValueError`` if Voilà is missing or the port is taken; ``RuntimeError`` if it does not start."""
    if not voila_available():
        raise ValueError(MISSING)
    _check_port(port)
    folder = Path(tempfile.mkdtemp(prefix="prodgen-studio-"))
    notebook = write_notebook(folder, export_dir)
    token = secrets.token_hex(16)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(voila_command(notebook, port, token), cwd=folder, stdin=subprocess.DEVNULL,
                            stdout=out, stderr=out, start_new_session=True)  # no stdin: no shutdown prompt
    url = f"http://127.0.0.1:{port}/?token={token}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"Voilà exited with code {proc.returncode} before serving the studio")
        try:  # any HTTP answer (even a refusal) means the server is up; rendering starts a kernel
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/voila/static/", timeout=2):
                return proc, url, folder
        except urllib.error.HTTPError:
            return proc, url, folder
        except OSError:
            time.sleep(0.3)
    stop(proc, folder)
    raise RuntimeError(f"Voilà did not answer on port {port} within {timeout:.0f} s")


def stop(proc, folder) -> None:
    """Stop Voilà (SIGINT twice, as Ctrl-C does; then terminate, then kill: a server that will not stop within
    about 20 s is stopped anyway) and remove the temporary notebook."""
    try:
        for sig in (signal.SIGINT, signal.SIGINT):
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
                time.sleep(0.3)
        for sig, wait in ((None, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if sig is not None:
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    except ProcessLookupError:
        pass
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve(port: int = 8866, open_browser: bool = True, export_dir="studio-export", log=print) -> int:
    """``prodgen studio``: serve until Ctrl-C; prints the URL (with its token)."""
    proc, url, folder = start(port, export_dir)
    # Ctrl-C and `kill` both stop it cleanly. SIGINT is installed explicitly: a process started in the
    # background by a non-interactive shell inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt for it (seen in CI: the studio outlived the test that sent it SIGINT).
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        log(f"Product Studio: {url}")
        log(f"exports go to {Path(export_dir).resolve()}; press Ctrl-C to stop")
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        proc.wait()
        return 0 if proc.returncode in (0, -signal.SIGINT) else 1
    except KeyboardInterrupt:
        log("stopping the studio")
        return 0
    finally:
        stop(proc, folder)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum, frame):
    raise KeyboardInterrupt

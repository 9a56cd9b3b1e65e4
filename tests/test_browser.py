"""The Product Studio in a real browser: Debian's Chromium driven by Playwright, in JupyterLab and in
Voilà (``prodgen studio``). Every request that leaves 127.0.0.1 is blocked and counted; the pages must
work with none. Skipped only when no Chromium or no playwright can be found (CI installs both)."""
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

from prodgen.models import registry

CHROMIUM = os.environ.get("PRODGEN_CHROMIUM", "/usr/lib/chromium/chromium")
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LONG = 120_000  # ms: a kernel start and the first model load on 2 busy cores

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

REQUIRED = os.environ.get("PRODGEN_REQUIRE_BROWSER") == "1"  # .ci/run sets it: CI fails instead of skipping

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sync_playwright is None and not REQUIRED,
                       reason="playwright is not installed (pip install playwright; never `playwright install`)"),
    pytest.mark.skipif(not Path(CHROMIUM).is_file() and not REQUIRED,
                       reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.skipif(not registry.available("dcgan") or not registry.available("text2img"),
                       reason="needs the shipped checkpoints"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def browser(tmp_path):
    """``(page, blocked)``: a fresh Chromium page whose requests off 127.0.0.1 are aborted and listed."""
    assert sync_playwright is not None, "playwright is not installed (pip install playwright)"
    assert Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    blocked = []

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(LONG)
        context.route("**/*", route)
        page = context.new_page()
        try:
            yield page, blocked
        finally:
            context.close()
    report = f"requests blocked (left 127.0.0.1): {len(blocked)}: {', '.join(sorted(set(blocked)))}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with open(SHOTS / "blocked-requests.txt", "a", encoding="utf-8") as f:
        f.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0]}: {report}\n")
    print("\n" + report)


def studio_text(page) -> str:
    return page.locator(".studio-status").inner_text()


def exercise_studio(page, name: str) -> None:
    """Generate, change an attribute, generate again, then a description with no product word."""
    app = page.locator(".prodgen-studio")
    app.wait_for(state="visible", timeout=LONG)
    generate = app.get_by_role("button", name="Generate")
    generate.click()
    page.wait_for_function("() => /^generated \\d+ images with dcgan/.test("
                           "document.querySelector('.studio-status')?.textContent || '')", timeout=LONG)
    grid = app.locator(".studio-grid")
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = grid.screenshot()
    model = app.locator("select").first
    model.select_option(label=next(o for o in model.locator("option").all_inner_texts() if "attributes" in o))
    attributes = app.locator(".studio-attributes")
    attributes.locator(".widget-dropdown", has_text="category").locator("select").select_option("mug")
    attributes.locator(".widget-dropdown", has_text="color").locator("select").select_option("red")
    generate.click()
    page.wait_for_function("() => /^generated \\d+ images with cgan/.test("
                           "document.querySelector('.studio-status')?.textContent || '')", timeout=LONG)
    seed = app.locator(".widget-inline-hbox", has_text="seed").locator("input")
    seed.fill("7")
    seed.press("Enter")
    page.evaluate("() => { const s = document.querySelector('.studio-status'); s.textContent = ''; }")
    start = time.perf_counter()
    generate.click()
    page.wait_for_function("() => /^generated \\d+ images/.test("
                           "document.querySelector('.studio-status')?.textContent || '')", timeout=LONG, polling=10)
    print(f"\n{name}: a grid of 16 from a GAN shown {time.perf_counter() - start:.2f} s after the click (second call)")
    assert grid.screenshot() != before, "the grid did not change after a new request"
    assert re.match(r"generated 16 images with \S+ in \d+\.\d\d s", studio_text(page))
    assert app.get_by_text("javascript error").count() == 0, "a widget failed to render"
    app.screenshot(path=str(SHOTS / f"studio-{name}-grid.png"))
    text_model = next(o for o in model.locator("option").all_inner_texts() if "(text)" in o)
    model.select_option(label=text_model)
    # the kernel has loaded the text model (and shown the description box) before we type and click
    ready = f"{text_model.split('(')[0].strip()} ready"  # the label is 'name\xa0(kind)'
    try:
        page.wait_for_function(f"() => (document.querySelector('.studio-status')?.textContent || '') === {ready!r}",
                               timeout=LONG)
    except Exception as e:
        raise AssertionError(f"no {ready!r} in the status line; it says {studio_text(page)!r}") from e
    description = app.get_by_placeholder(re.compile("red striped t-shirt"))
    description.fill("hello world, lovely weather")
    description.press("Tab")  # leave the box: the value is synced to the kernel whatever the update mode
    generate.click()
    try:
        page.wait_for_function("() => (document.querySelector('.studio-status')?.textContent || '')"
                               ".includes('names no product attribute')", timeout=LONG)
    except Exception as e:
        raise AssertionError("no 'names no product attribute' in the status line; "
                             f"it says {studio_text(page)!r}") from e
    page.screenshot(path=str(SHOTS / f"studio-{name}.png"), full_page=True)


def jupyter_env(tmp_path) -> dict:
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("JUPYTER_RUNTIME_DIR", "runtime")):
        (tmp_path / sub).mkdir()
        env[var] = str(tmp_path / sub)
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no news prompt over the page
    return env


def wait_http(url: str, proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with code {proc.returncode}"
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"no answer from {url} within {timeout} s")


def test_studio_in_jupyterlab(browser, tmp_path):
    page, blocked = browser
    work = tmp_path / "lab"
    work.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from prodgen.apps.studio import Studio"),
        nbformat.v4.new_code_cell(f"studio = Studio(export_dir={str(tmp_path / 'export')!r})\nstudio")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, work / "studio.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "jupyterlab.log", "wb")
    proc = subprocess.Popen(cmd, env=jupyter_env(tmp_path), cwd=work, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/status?token={token}", proc)
        page.goto(f"{base}/lab/tree/studio.ipynb?token={token}")
        # "Idle" in the status bar only once the kernel has really started (not the placeholder state)
        page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"Python 3.*\|\s*Idle")).wait_for(timeout=LONG)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
        exercise_studio(page, "jupyterlab")
    finally:
        try:
            request = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                             headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(request, timeout=10).close()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    assert proc.returncode == 0, (tmp_path / "jupyterlab.log").read_text()[-2000:]
    print(f"JupyterLab: {len(blocked)} requests blocked")


def test_prodgen_studio_in_voila(browser, tmp_path):
    pytest.importorskip("voila", reason="voila is not installed (pip install \"prodgen[studio]\")")
    page, blocked = browser
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "prodgen", "studio", "--no-browser", f"--port={port}",
                             "--export", str(tmp_path / "export")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        match = re.match(r"Product Studio: (http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{32})$", line.strip())
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        page.goto(match.group(1), timeout=LONG)
        exercise_studio(page, "voila")
        folder = re.search(r"/tmp/prodgen-studio-\w+|[^\s]*prodgen-studio-\w+", " ".join(
            open(f"/proc/{p}/cmdline").read() for p in os.listdir("/proc") if p.isdigit()
            and _child_of(int(p), proc.pid)) if sys.platform.startswith("linux") else "")
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            out, err = proc.communicate(timeout=60)  # stop() gives Voilà up to ~21 s
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "stopping the studio" in out and "Traceback" not in err
    if folder:
        assert not Path(folder.group(0)).exists(), "the temporary notebook was left behind"
    print(f"Voilà: {len(blocked)} requests blocked")


def _child_of(pid: int, parent: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == parent

"""Remake ``docs/studio.png`` (the README's picture of the Product Studio) in a real browser.

Starts ``prodgen studio`` (Voilà, 127.0.0.1 only), opens it in Debian's Chromium driven by Playwright at a laptop
window size (1280 x 900), generates a grid with the model the studio opens on, pins two tiles by clicking them,
puts a plain export folder (``~/studio-export``) in the folder box and saves a screenshot of the window. Every
request that leaves 127.0.0.1 is blocked (and counted). Tooling, not used by the lessons; run from the repository
root::

    python docs/make_screenshot.py                    # writes docs/studio.png
    python docs/make_screenshot.py --out /tmp/s.png --chromium /usr/bin/chromium

Needs Voilà (``pip install "prodgen[studio]"``), playwright (``pip install playwright``; never
``playwright install``: it drives the Chromium that is already installed) and the shipped checkpoints.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WINDOW = {"width": 1280, "height": 900}
PINS = (3, 6)  # the tiles pinned in the picture
WAIT = 180_000  # ms: a kernel start and the first model load on a busy machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_status(page, pattern: str) -> None:
    page.wait_for_function(f"() => new RegExp({pattern!r}).test("
                           "document.querySelector('.studio-status')?.textContent || '')", timeout=WAIT)


def drive(page) -> None:
    """Generate a grid, pin two tiles by clicking them, show a plain export folder."""
    app = page.locator(".prodgen-studio")
    app.wait_for(state="visible", timeout=WAIT)
    app.get_by_role("button", name="Generate").click()
    wait_status(page, "^generated 16 images with ")
    for n in PINS:
        app.get_by_role("button", name=f"image {n}", exact=True).click()
        wait_status(page, f"^pinned image {n} ")
    folder = app.locator(".widget-text", has_text="folder").locator("input")
    folder.fill("~/studio-export")
    folder.evaluate("e => e.blur()")  # synced; no focus ring left in the picture
    page.mouse.move(0, 0)  # no hover frame on a tile
    page.wait_for_function(f"() => document.querySelectorAll('.studio-pins .studio-pin').length === {len(PINS)}")
    page.wait_for_timeout(500)  # the pictures' style block and the fonts


def screenshot(out: Path, chromium: str) -> int:
    """Serve the studio, drive it, write ``out`` (atomically); the number of requests blocked."""
    from playwright.sync_api import sync_playwright

    from prodgen.apps import studio_server

    blocked = []

    def route(r):
        if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with tempfile.TemporaryDirectory(prefix="prodgen-screenshot-") as tmp:
        proc, url, folder = studio_server.start(free_port(), export_dir=Path(tmp) / "export",
                                                log_file=Path(tmp) / "voila.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
                page = browser.new_page(viewport=WINDOW)
                page.route("**/*", route)
                page.goto(url, timeout=WAIT)
                drive(page)
                partial = out.with_name(f".{out.stem}.partial.png")
                page.screenshot(path=str(partial))
                os.replace(partial, out)
                browser.close()
        finally:
            studio_server.stop(proc, folder)
    return len(blocked)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "studio.png")
    parser.add_argument("--chromium", default=os.environ.get("PRODGEN_CHROMIUM", "/usr/lib/chromium/chromium"))
    args = parser.parse_args(argv)
    if not Path(args.chromium).is_file():
        print(f"make_screenshot: no Chromium at {args.chromium} (apt-get install chromium, or --chromium PATH)",
              file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"make_screenshot: no folder {args.out.parent}", file=sys.stderr)
        return 2
    blocked = screenshot(args.out, args.chromium)
    print(f"wrote {args.out} ({WINDOW['width']} x {WINDOW['height']}); requests blocked (left 127.0.0.1): {blocked}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # this clone's prodgen, here and in the studio's kernel (no install needed)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    sys.exit(main())

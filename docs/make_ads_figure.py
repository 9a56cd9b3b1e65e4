"""Remake ``docs/ads.png``: ``prodgen ads`` contact sheets in English and Chinese (issue 27 §3).

The two example sheets beside this script (``ads-example-en.csv``, ``ads-example-zh.csv``: two rows of attributes
with a headline, one description without one) are made into the three standard sizes (300x250, 728x90, 160x600)
with the default model choice and seed 0, exactly as

    prodgen ads --batch docs/ads-example-en.csv --lang en --out OUT_EN
    prodgen ads --batch docs/ads-example-zh.csv --lang zh --out OUT_ZH

would; their contact sheets are stacked under a title each, shrunk to 1400 px wide and stored with 256
colours. About 5 s on one core:

    python docs/make_ads_figure.py [--out docs/ads.png]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodgen.apps.ad_layout import default_fonts, draw_text, fit  # noqa: E402
from prodgen.apps.ads import make_ads  # noqa: E402
from prodgen.paths import atomic_file  # noqa: E402

WIDTH = 1400
TITLE_H = 44


def _titled(sheet: Image.Image, title: str) -> Image.Image:
    faces = default_fonts()
    out = Image.new("RGB", (sheet.width, sheet.height + TITLE_H), (236, 236, 232))
    out.paste(sheet, (0, TITLE_H))
    fitted = fit(title, faces, sheet.width - 24, TITLE_H - 12, 24, 1)
    draw_text(ImageDraw.Draw(out), fitted, (12, 8, sheet.width - 12, TITLE_H - 4), faces, (28, 30, 34), "left")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "ads.png"))
    args = parser.parse_args(argv)
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for lang in ("en", "zh"):
            sheet = ROOT / "docs" / f"ads-example-{lang}.csv"
            report = make_ads(sheet, Path(tmp) / lang, lang=lang, seed=0)
            with Image.open(report.out / "contact-sheet.png") as image:
                title = (f"prodgen ads --batch docs/{sheet.name} --lang {lang}   (models: "
                         f"{', '.join(sorted(set(report.models.values())))})")
                parts.append(_titled(image.convert("RGB"), title))
    width = max(p.width for p in parts)
    figure = Image.new("RGB", (width, sum(p.height for p in parts)), (236, 236, 232))
    y = 0
    for part in parts:
        figure.paste(part, (0, y))
        y += part.height
    figure = figure.resize((WIDTH, round(figure.height * WIDTH / width)), Image.Resampling.LANCZOS)
    figure = figure.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)  # 655 -> 245 KB
    with atomic_file(args.out) as tmp_file:
        figure.save(tmp_file, format="PNG", optimize=True)
    print(f"wrote {args.out} ({figure.width}x{figure.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

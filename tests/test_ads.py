"""`prodgen ads` (issue 27 §3): banners in standard sizes from a CSV of products.

Sizes are exact, Chinese headlines are drawn with the shipped font (compared glyph for glyph with an independent
rendering, and never as the font's empty box), text never leaves its box, the same seed gives the same bytes, bad
rows are reported by row number while the good ones are made, hostile sheets give clear errors or safe output and
nothing is written outside --out. The cheap shipped models (cgan-projection, text2img) make the products.
"""
from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from prodgen.apps import ad_layout, ads
from prodgen.apps.ad_layout import (
    BACKGROUND,
    IAB_SIZES,
    INK,
    AdContent,
    default_fonts,
    draw_banner,
    draw_text,
    fit,
    layout,
    parse_sizes,
    undrawable,
)
from prodgen.apps.ads import make_ads, read_ads
from prodgen.catalog.attributes import BRAND_RGB
from prodgen.fonts import FONT_FILE

from cli_helpers import in_a_subprocess, in_this_process

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py

MODEL = "cgan-projection"  # a cheap shipped attribute model
HEADER = ["category", "color", "size", "brand", "pattern", "description", "headline", "price"]
GOOD = [["mug", "red", "", "acme", "striped", "", "The classic striped mug", "19.99"],
        ["t-shirt", "blue", "large", "zenith", "checked", "", "大号蓝色格子T恤 限时特价", "¥129"]]


def _csv(path: Path, rows: list[list], header=HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def _product(w: int, h: int) -> Image.Image:
    x0, _, x1, _ = layout(w, h)["product"]
    return Image.new("RGB", (x1 - x0, x1 - x0), (200, 200, 200))


# ----------------------------------------------------------------------------- sizes
def test_sizes_by_dimensions_and_by_name():
    assert parse_sizes("300x250, 728X90,160×600,leaderboard") == [(300, 250), (728, 90), (160, 600)]
    assert parse_sizes("medium-rectangle,wide-skyscraper,mobile-banner") == [(300, 250), (160, 600), (320, 50)]


@pytest.mark.parametrize("text", ["", " , ", "300", "300x", "x250", "0x0", "300x250;728x90", "-300x250", "1e3x250",
                                  "abc", "49x300", "3000x250", "1300x100", "100x100", "200x60", "99999x99999",
                                  ",".join(f"{300 + i}x250" for i in range(17))])
def test_bad_sizes_are_clear_errors(text):
    with pytest.raises(ValueError, match="--size"):
        parse_sizes(text)


def test_every_allowed_size_lays_out_inside_the_banner_without_overlaps():
    sides = [50, 60, 90, 100, 120, 125, 160, 200, 234, 250, 300, 450, 600, 728, 970, 1200, 2000]
    checked = 0
    for w, h in itertools.product(sides, sides):
        try:
            parse_sizes(f"{w}x{h}")
        except ValueError:
            continue
        checked += 1
        boxes = layout(w, h)
        for name, (x0, y0, x1, y1) in boxes.items():
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (w, h, name)
        for a, b in itertools.combinations(["product", "brand", "headline", "price", "cta"], 2):
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes[a], boxes[b]
            assert not (ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1), (w, h, a, b)
        x0, y0, x1, y1 = boxes["product"]
        assert x1 - x0 == y1 - y0 >= 30
        for name in ("headline", "price", "cta"):
            assert boxes[name][3] - boxes[name][1] >= 13, (w, h, name)  # a line of 8 px text
    assert checked > 150


def test_wide_and_tall_formats_arrange_differently():
    wide, tall = layout(728, 90), layout(160, 600)
    assert wide["headline"][0] > wide["product"][2] and wide["cta"][0] > wide["headline"][2]  # a row
    assert tall["headline"][1] > tall["product"][3] and tall["cta"][1] > tall["headline"][3]  # a column


# ----------------------------------------------------------------------------- text
HEADLINES = ["The classic striped mug", "Supercalifragilisticexpialidocious-and-then-some offer today only",
             "大号红色条纹T恤，Acme品牌 新款上市 限时特价 立即购买", "a" * 120, "Acme 大号 red mug 限时 特价 now",
             "x", "！！！", "Ünïcödé ÀÉÎÕÜ façade — “quotes” (brackets) 20% off"]


@pytest.mark.parametrize("headline", HEADLINES)
def test_fitted_text_stays_in_its_box_and_keeps_whole_characters(headline):
    faces = default_fonts()
    rng = random.Random(headline)
    for _ in range(12):
        w, h = rng.randint(20, 300), rng.randint(14, 200)
        fitted = fit(headline, faces, w, h, max_size=rng.randint(8, 60), max_lines=rng.randint(1, 5))
        if fitted is None:
            assert h < 13 or w < 20
            continue
        canvas = Image.new("L", (w + 200, h + 200), 0)
        draw = ImageDraw.Draw(canvas)
        drawn = draw_text(draw, fitted, (100, 100, 100 + w, 100 + h), faces, 255)
        ink = np.argwhere(np.asarray(canvas) > 0)
        assert len(ink)
        assert ink[:, 0].min() >= 100 and ink[:, 0].max() < 100 + h, (w, h, fitted)
        assert ink[:, 1].min() >= 100 and ink[:, 1].max() < 100 + w, (w, h, fitted)
        assert all(100 <= x0 and x1 <= 100 + w and 100 <= y0 and y1 <= 100 + h for x0, y0, x1, y1 in drawn)
        said = "".join("".join(fitted.lines).split())
        original = "".join(headline.split())
        if fitted.shortened:
            assert said.endswith("…") and original.startswith(said[:-1])
        else:
            assert said == original


def test_headline_in_chinese_is_drawn_with_the_shipped_font_not_as_empty_boxes():
    text = "红色马克杯"
    faces = default_fonts()
    assert undrawable(text, faces) == ""
    content = AdContent(text, "¥19.99", "立即购买", "Acme", BRAND_RGB["acme"], "triangle")
    banner, fitted = draw_banner(728, 90, _product(728, 90), content, faces)
    line = fitted["headline"]
    assert line.lines == (text,) and line.size >= 12
    x0, y0, x1, y1 = layout(728, 90)["headline"]
    region = np.asarray(banner)[y0:y1, x0:x1].astype(int)
    assert (np.abs(region - BACKGROUND).sum(axis=2) > 200).sum() > 100  # the headline's box has ink
    # the same characters drawn independently with the shipped font at the fitted size, in the banner's ink on its
    # background: the same pixels
    font = ImageFont.truetype(str(FONT_FILE), line.size, layout_engine=ImageFont.Layout.BASIC)
    alone = Image.new("RGB", (x1 - x0 + 40, y1 - y0 + 40), BACKGROUND)
    ImageDraw.Draw(alone).text((20, 20 + line.ascent), text, font=font, fill=INK, anchor="ls")

    def crop(pixels):
        rows, cols = np.nonzero(np.abs(pixels.astype(int) - BACKGROUND).sum(axis=2))
        return pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1].astype(int)

    assert crop(region).shape == crop(np.asarray(alone)).shape
    assert np.abs(crop(region) - crop(np.asarray(alone))).max() <= 1
    # and not the font's empty box: a character it lacks draws .notdef, which looks nothing like the glyphs
    tofu = Image.new("RGB", (line.size * 2, line.size * 2), BACKGROUND)
    ImageDraw.Draw(tofu).text((line.size // 2, line.size // 2), "龘", font=font, fill=INK, anchor="lt")
    tofu_ink = crop(np.asarray(tofu))
    for c in text:
        glyph = Image.new("RGB", (line.size * 2, line.size * 2), BACKGROUND)
        ImageDraw.Draw(glyph).text((line.size // 2, line.size // 2), c, font=font, fill=INK, anchor="lt")
        ink = crop(np.asarray(glyph))
        assert ink.shape != tofu_ink.shape or np.abs(ink - tofu_ink).mean() > 20, c


def test_brand_colour_and_neutral_colour():
    for brand, colour in BRAND_RGB.items():
        content = AdContent("Hi", "", "Shop now", brand.title(), colour, "disc")
        banner, _ = draw_banner(300, 250, _product(300, 250), content)
        band = layout(300, 250)["band"]
        assert banner.getpixel((band[2] - 3, band[1] + 2)) == colour
    banner, _ = draw_banner(728, 90, _product(728, 90), AdContent("Hi", "$1", "Go"))
    assert banner.getpixel((725, 45)) == ad_layout.NEUTRAL_RGB
    assert len(set(BRAND_RGB.values())) == len(BRAND_RGB)


# ----------------------------------------------------------------------------- whole runs
def test_banner_sizes_exact_and_the_outputs(tmp_path):
    sheet = _csv(tmp_path / "p.csv", GOOD)
    sizes = "300x250,728x90,160x600,320x50"
    report = make_ads(sheet, tmp_path / "out", sizes=sizes, lang="zh", model=MODEL)
    out = tmp_path / "out"
    assert report.bad == [] and report.models == {2: MODEL, 3: MODEL}
    names = {f"row{r:04d}_{w}x{h}.png" for r in (2, 3) for w, h in parse_sizes(sizes)}
    assert set(report.files) == names
    assert {p.name for p in out.iterdir()} == names | {"contact-sheet.png", "manifest.csv"}
    for name in names:
        with Image.open(out / name) as image:
            assert image.size == tuple(int(v) for v in name[8:-4].split("x")) and image.mode == "RGB"
    with Image.open(out / "contact-sheet.png") as sheet_image:
        assert sheet_image.width >= 728 and sheet_image.height >= 600
    lines = _manifest(out)
    assert len(lines) == 8 and {line["status"] for line in lines} == {"made"}
    row3 = [line for line in lines if line["row"] == "3"][0]
    assert row3["headline"] == "大号蓝色格子T恤 限时特价" and row3["price"] == "¥129" and row3["brand"] == "zenith"
    assert [line["price"] for line in lines if line["row"] == "2"][0] == "¥19.99"  # zh: the yuan sign by default


def test_same_seed_same_bytes_another_seed_differs(tmp_path):
    sheet = _csv(tmp_path / "p.csv", GOOD)
    runs = [make_ads(sheet, tmp_path / name, sizes="300x250,728x90", model=MODEL, seed=seed)
            for name, seed in (("a", 5), ("b", 5), ("c", 6))]
    for name in runs[0].files + ["contact-sheet.png", "manifest.csv"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / runs[0].files[0]).read_bytes() != (tmp_path / "c" / runs[0].files[0]).read_bytes()


def test_bad_rows_are_reported_by_row_number_and_the_good_ones_made(tmp_path):
    rows = [GOOD[0], ["sneaker", "purpel", "", "nova", "", "", "Run", "89"],
            ["mug", "red", "", "", "", "", "Hi", "12abc"],
            ["", "", "", "", "", "", "nothing asked", ""], ["cap", "green", "", "orbit", "", "", "", "7.5"],
            ["mug", "red", "", "", "", "", "a 龘 mug", ""]]
    report = make_ads(_csv(tmp_path / "p.csv", rows), tmp_path / "out", sizes="300x250", model=MODEL)
    bad = dict(report.bad)
    assert sorted(bad) == [3, 4, 5, 7]
    assert bad[3].startswith("unknown color 'purpel'; valid values: red, orange,")
    assert "price '12abc' is not an amount" in bad[4]
    assert "asks for nothing" in bad[5]
    assert "cannot draw: '龘'" in bad[7]
    assert report.files == ["row0002_300x250.png", "row0006_300x250.png"]
    lines = _manifest(tmp_path / "out")
    assert [(line["row"], line["status"]) for line in lines] == [("2", "made"), ("3", "skipped"), ("4", "skipped"),
                                                                 ("5", "skipped"), ("6", "made"), ("7", "skipped")]
    row6 = lines[4]
    assert row6["headline"] == "Orbit green cap" and row6["price"] == "$7.50"  # the default headline, a padded price


def test_the_manifest_says_which_banners_had_to_shorten_the_headline(tmp_path):
    long = "An extraordinarily long headline that no small banner can hold at any readable size whatsoever, really"
    make_ads(_csv(tmp_path / "p.csv", [["mug", "red", "", "", "", "", long, "9999999.99"]]), tmp_path / "out",
             sizes="160x170,970x250", model=MODEL)
    shortened = {line["banner"]: line["shortened"] for line in _manifest(tmp_path / "out")}
    assert shortened == {"160x170": "headline", "970x250": ""}  # never the price nor the button


@pytest.mark.parametrize("lang", ads.LANGS)
def test_every_standard_size_holds_the_longest_price_and_the_button_whole(lang):
    longest = {"price": f"{ads.CURRENCY[lang]}9999999.99", "cta": ads.CTA[lang]}
    for w, h in IAB_SIZES.values():
        assert ad_layout.unfit(w, h, longest) == [], (w, h)
    assert ad_layout.unfit(125, 125, longest)  # the IAB's old 125x125 button is too small for both


def test_a_size_too_small_for_the_price_and_button_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--size 125x125 is too small to show a price such as"):
        make_ads(_csv(tmp_path / "p.csv", GOOD), tmp_path / "out", sizes="300x250,125x125", model=MODEL)
    assert not (tmp_path / "out").exists()


def test_blank_rows_are_skipped_and_keep_the_row_numbers(tmp_path):
    report = make_ads(_csv(tmp_path / "p.csv", [GOOD[0], [""] * 8, GOOD[1]]), tmp_path / "out", sizes="300x250",
                      model=MODEL)
    assert report.bad == [] and report.files == ["row0002_300x250.png", "row0004_300x250.png"]


def test_rows_with_a_description_go_to_a_text_model_by_default(tmp_path):
    from prodgen.models import registry

    rows = [["", "", "", "", "", "a small teal dotted mug by Nova", "", "5"], GOOD[0]]
    report = make_ads(_csv(tmp_path / "p.csv", rows), tmp_path / "out", sizes="300x250", lang="zh")
    kinds = registry.generator_kinds()
    assert kinds[report.models[2]] == "text" and kinds[report.models[3]] == "attributes"
    line = _manifest(tmp_path / "out")[0]
    assert line["brand"] == "nova" and line["color"] == "teal"  # what the text model read
    assert line["headline"] == "Nova 小号青色波点马克杯"


def test_model_choice_follows_the_recorded_figures(monkeypatch):
    from prodgen.models import registry

    def fake(figures):
        manifest = {name: {"metrics": metrics} for name, (_, metrics) in figures.items()}
        monkeypatch.setattr(registry, "manifest", lambda: manifest)
        monkeypatch.setattr(registry, "generators", lambda shipped=False: list(figures))
        monkeypatch.setattr(registry, "generator_kinds", lambda: {n: k for n, (k, _) in figures.items()})

    attrs = lambda c, f: ("attributes", {"control": {"mean": c}, "fid": f})  # noqa: E731
    fake({"a": attrs(0.990, 100.0), "b": attrs(0.992, 60.0), "c": attrs(0.95, 10.0),
          "t": ("text", {"test_en": {"mean": 0.99}, "test_zh": {"mean": 0.97}, "fid": 80.0}),
          "u": ("text", {"test_en": {"mean": 0.95}, "test_zh": {"mean": 0.95}, "fid": 50.0}),
          "same": ("text", {})})
    assert ads.choose_model("attributes") == "b" and ads.choose_model("text") == "t"
    fake({"a": attrs(0.995, 100.0), "b": attrs(0.991, 60.0)})  # within the tie: the lower FID
    assert ads.choose_model("attributes") == "b"
    fake({"a": attrs(0.999, 100.0), "b": attrs(0.990, 60.0)})  # a clear lead in control wins
    assert ads.choose_model("attributes") == "a"
    with pytest.raises(ValueError, match="give --model"):
        ads.choose_model("text")


def test_upscale_is_an_interchangeable_step(tmp_path):
    sheet = _csv(tmp_path / "p.csv", GOOD[:1])
    nearest = lambda image, side: image.resize((side, side), Image.Resampling.NEAREST)  # noqa: E731
    a = make_ads(sheet, tmp_path / "a", sizes="300x250", model=MODEL)
    make_ads(sheet, tmp_path / "b", sizes="300x250", model=MODEL, upscale=nearest)
    assert (tmp_path / "a" / a.files[0]).read_bytes() != (tmp_path / "b" / a.files[0]).read_bytes()
    with pytest.raises(ValueError, match="upscale must return a PIL image of"):
        make_ads(sheet, tmp_path / "c", sizes="300x250", model=MODEL, upscale=lambda image, side: image)
    assert not (tmp_path / "c").exists()


def test_an_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    made = []
    banners = ads._banners

    def stop_on_the_second_row(*args, **kwargs):
        if made:
            raise KeyboardInterrupt
        made.append(banners(*args, **kwargs))  # the first row's files are written to the temporary folder
        return made[-1]

    monkeypatch.setattr(ads, "_banners", stop_on_the_second_row)
    sheet = _csv(tmp_path / "p.csv", GOOD)
    with pytest.raises(KeyboardInterrupt):
        make_ads(sheet, tmp_path / "out", sizes="300x250", model=MODEL)
    assert made and _files(tmp_path) == {Path("p.csv")}


def test_contact_sheet_is_bounded_and_shows_every_banner():
    sizes = [(300, 250), (728, 90), (160, 600)]
    banner = [Image.new("RGB", size, (200, 30, 60)) for size in sizes]
    small = ads.ContactSheet(3, sizes)
    for k in range(3):
        small.add(f"row {k + 2}", banner)
    assert small.scale == 1.0 and small.columns == 2
    red = np.all(np.asarray(small.image) == (200, 30, 60), axis=2).sum()
    assert red == 3 * sum(w * h for w, h in sizes)  # every banner pasted whole, none over another
    assert np.array_equal(np.asarray(ads.contact_sheet([(f"row {k + 2}", banner) for k in range(3)])),
                          np.asarray(small.image))
    big = ads.ContactSheet(ads.MAX_ROWS, sizes)
    assert big.image.width * big.image.height <= ads.CONTACT_MAX_PIXELS * 1.01 and big.scale < 0.5


# ----------------------------------------------------------------------------- hostile sheets
def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case, data, message", [
    ("unknown column", b"category,colour,headline\nmug,red,Hi\n", "unknown column(s) 'colour'"),
    ("n is not an ad column", b"category,n\nmug,3\n", "unknown column(s) 'n'"),
    ("no product column", b"headline,price\nHi,3\n", "has no product columns"),
    ("header only", b"category,headline\n", "has a header but no rows"),
    ("not UTF-8", "category,headline\nmug,Caf\u00e9\n".encode("latin-1"), "is not a readable UTF-8 CSV file"),
    ("huge field", b"category,headline\nmug," + b"x" * 200_000 + b"\n", "is not a readable UTF-8 CSV file"),
    ("too many rows", b"category\n" + b"mug\n" * (ads.MAX_ROWS + 1), f"at most {ads.MAX_ROWS} per run"),
    ("column twice", b"category,category\nmug,mug\n", "a column named twice"),
    ("unnamed column", b"category,headline,\nmug,Hi,\n", "unknown column(s) (unnamed)"),
    ("only blank rows", b"category,headline\n,\n , \n", "has a header but no rows"),
])
def test_hostile_sheets_are_clear_errors(tmp_path, case, data, message):
    with pytest.raises(ValueError, match=None) as error:
        read_ads(_raw(tmp_path / "p.csv", data))
    assert message in str(error.value)


def test_a_sheet_too_big_is_refused_before_reading(tmp_path):
    path = tmp_path / "p.csv"
    with open(path, "wb") as f:
        f.write(b"category\n")
        f.truncate(ads.MAX_SHEET_BYTES + 1)
    with pytest.raises(ValueError, match="an ad sheet may be at most"):
        read_ads(path)


def test_hostile_cells_give_safe_output_and_nothing_outside_out(tmp_path):
    rows = [["mug", "red", "", "acme", "", "", "=cmd()", ""],
            ["mug", "blue", "", "", "", "", "../../../etc/passwd", ""],
            ["mug", "red", "", "", "", "", "/tmp/evil.png", "@SUM(1)"], ["mug", "red", "", "", "", "", "x" * 500, ""],
            ["mug", "red", "", "", "", "", "evil\u202egnp.exe", ""], ["mug", "red", "", "", "", "", "+1-2", "-5"],
            ["mug", "teal", "", "", "", "", "two\nlines\tand tabs", "3"]]
    work = tmp_path / "work"
    work.mkdir()
    sheet = _csv(work / "p.csv", rows)
    before = _files(tmp_path)
    report = make_ads(sheet, work / "out", sizes="300x250", model=MODEL)
    bad = dict(report.bad)
    assert sorted(bad) == [4, 5, 6, 7]
    assert "at most 120 fit a banner" in bad[5] and "U+202E" in bad[6] and "is not an amount" in bad[4]
    assert "is not an amount" in bad[7]  # a negative price
    assert _files(tmp_path) - before == {Path("work/out")} | {Path("work/out") / f for f in
                                                             [*report.files, "contact-sheet.png", "manifest.csv"]}
    assert all(Path(f).name == f and f.startswith("row") for f in report.files)
    lines = {line["row"]: line for line in _manifest(work / "out")}
    assert lines["2"]["headline"] == "'=cmd()"  # a spreadsheet shows it as text, never runs it
    assert lines["3"]["headline"] == "../../../etc/passwd"
    assert lines["8"]["headline"] == "two lines and tabs"
    for line in lines.values():
        assert not any(str(v).startswith(("=", "+", "-", "@")) for v in line.values()), line


def test_too_many_banner_pixels_are_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(ads, "MAX_BANNER_PIXELS", 200_000)
    with pytest.raises(ValueError, match="million pixels of banners; at most 0 million per run"):
        make_ads(_csv(tmp_path / "p.csv", GOOD), tmp_path / "out", sizes="300x250,160x600", model=MODEL)
    assert not (tmp_path / "out").exists()


NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


@pytest.mark.skipif(not NOTO_CJK.is_file(), reason="needs a system CJK font (Debian's fonts-noto-cjk)")
def test_a_font_added_to_the_chain_draws_what_the_shipped_ones_lack(tmp_path):
    rows = [["mug", "red", "", "", "", "", "龘 mug", ""]]
    sheet = _csv(tmp_path / "p.csv", rows)
    with pytest.raises(ValueError, match="add a font that has them with --font FILE"):
        make_ads(sheet, tmp_path / "a", sizes="300x250", model=MODEL)
    faces = default_fonts() + (ad_layout.font_face(NOTO_CJK),)
    report = make_ads(sheet, tmp_path / "b", sizes="300x250", model=MODEL, faces=faces)
    assert report.bad == [] and report.files == ["row0002_300x250.png"]


def test_every_row_bad_writes_nothing(tmp_path):
    rows = [["mug", "purpel", "", "", "", "", "", ""], ["cup", "red", "", "", "", "", "", ""]]
    with pytest.raises(ValueError, match=r"no banner made: every row is bad \(2\); row 2: unknown color 'purpel'"):
        make_ads(_csv(tmp_path / "p.csv", rows), tmp_path / "out", model=MODEL)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the command
BAD_CLI = {
    "bad size": (["--size", "300by250"], "--size '300by250' is not WxH"),
    "size too thin": (["--size", "1300x100"], "too thin for a banner"),
    "bad language": (["--lang", "fr"], "--lang must be one of en, zh"),
    "bad seed": (["--seed", "-1"], "--seed must be a whole number"),
    "missing sheet": (["--batch", "nope.csv"], "request file not found"),
    "unknown model": (["--model", "nope"], "nope"),
    "unknown column": (["--batch", "cols.csv"], "unknown column(s) 'colour'"),
    "every row bad": (["--batch", "bad.csv"], "no banner made: every row is bad"),
    "missing font": (["--font", "nope.ttf"], "--font nope.ttf: no such file"),
    "not a font": (["--font", "p.csv"], "--font p.csv is not a font file"),
}


def _cli_case(tmp_path, case):
    args, message = BAD_CLI[case]
    _csv(tmp_path / "p.csv", GOOD)
    _raw(tmp_path / "cols.csv", b"category,colour\nmug,red\n")
    _csv(tmp_path / "bad.csv", [["mug", "purpel", "", "", "", "", "", ""]])
    given = dict(zip(args[::2], args[1::2]))
    full = {"--batch": "p.csv", "--out": "out", "--size": "300x250", "--model": MODEL, **given}
    return [x for k, v in full.items() for x in (k, v)], message


@pytest.mark.parametrize("case", list(BAD_CLI))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case, monkeypatch, capsys):
    run = in_this_process(monkeypatch, capsys)
    args, message = _cli_case(tmp_path, case)
    before = _files(tmp_path)
    code, stdout, stderr = run(["ads", *args], cwd=tmp_path)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("prodgen: error: "), stderr
    assert message in lines[0] and stdout == ""
    assert _files(tmp_path) == before


def test_the_command_reports_bad_rows_and_makes_the_others(tmp_path):
    _csv(tmp_path / "p.csv", [GOOD[0], ["sneaker", "purpel", "", "", "", "", "", ""]])
    code, stdout, stderr = in_a_subprocess(["ads", "--batch", "p.csv", "--size", "300x250,728x90", "--model", MODEL,
                                            "--out", "out"], cwd=tmp_path)
    assert code == 1 and "Traceback" not in stderr
    assert stderr.strip() == ("prodgen: row 3: unknown color 'purpel'; valid values: red, orange, yellow, green, teal, "
                              "blue, purple, pink, brown, black")
    assert "wrote 2 banner(s) for 1 row(s)" in stdout and "1 row(s) skipped" in stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["contact-sheet.png", "manifest.csv",
                                                                   "row0002_300x250.png", "row0002_728x90.png"]


def test_every_standard_size_is_made(tmp_path):
    report = make_ads(_csv(tmp_path / "p.csv", GOOD[1:]), tmp_path / "out", sizes=",".join(IAB_SIZES), model=MODEL,
                      lang="zh")
    assert len(report.files) == len(IAB_SIZES)
    for w, h in IAB_SIZES.values():
        with Image.open(tmp_path / "out" / f"row0002_{w}x{h}.png") as image:
            assert image.size == (w, h)
            assert np.asarray(image).std() > 10  # not blank

"""prodgen.viz: Chinese renders in figures (the shipped font covers every character the course
can write), grid titles wrap at word boundaries, and ``import prodgen`` stays free of matplotlib.

The font's character map is read with matplotlib's ft2font, so these tests need no fontTools.
"""
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
from matplotlib import ft2font  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties, findfont  # noqa: E402

from prodgen import viz  # noqa: E402
from prodgen.catalog.attributes import ATTRIBUTES  # noqa: E402
from prodgen.catalog.describe import TEMPLATES, describe, fill_template  # noqa: E402
from prodgen.fonts import FAMILY, FONT_FILE, LICENSE_FILE  # noqa: E402
from prodgen.fonts.build import MARGIN, PUNCTUATION  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REBUILD = "add them to the subset: python -m prodgen.fonts.build (see prodgen/fonts/build.py)"
# What needs the CJK font (DejaVu Sans draws none of it): as in prodgen/fonts/build.py, written again here.
CJK = re.compile(r"[\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")


def _cmap(path) -> set[str]:
    return {chr(code) for code in ft2font.FT2Font(str(path)).get_charmap()}


SUBSET = _cmap(FONT_FILE)
DRAWABLE = SUBSET | _cmap(findfont("DejaVu Sans"))


def _undrawable(texts) -> str:
    return "".join(sorted({c for text in texts for c in text if not c.isspace()} - DRAWABLE))


# ----------------------------------------------------------------------------- the font file


def test_font_file_is_small_licensed_and_named():
    assert FONT_FILE.is_file() and FONT_FILE.stat().st_size < 300 * 1024, FONT_FILE.stat().st_size
    licence = LICENSE_FILE.read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence and "Adobe" in licence
    font = ft2font.FT2Font(str(FONT_FILE))
    assert font.family_name == FAMILY
    assert "红" in SUBSET and "A" not in SUBSET  # CJK only: Latin stays with the default font


def test_every_catalog_word_is_drawable():
    words = [w for values in ATTRIBUTES.values() for v in values for w in (*v.en, *v.zh, *v.en_phrase)]
    assert not _undrawable(words), f"catalog words with characters no font can draw: {_undrawable(words)}; {REBUILD}"


def _every_description_piece(lang: str) -> list[str]:
    """Every template filled with every synonym of every value (and with the category alone), so
    the union of their characters is every character the describer can produce."""
    texts = []
    attrs = list(ATTRIBUTES)
    longest = max(len(v.en) + len(v.zh) + len(v.en_phrase) for values in ATTRIBUTES.values() for v in values)
    for template in TEMPLATES[lang]:
        for k in range(longest):
            for j in range(max(len(values) for values in ATTRIBUTES.values())):
                words = {}
                for name in attrs:
                    value = ATTRIBUTES[name][j % len(ATTRIBUTES[name])]
                    synonyms = value.en if lang == "en" else value.zh
                    words[name] = synonyms[k % len(synonyms)]
                    if lang == "en" and value.en_phrase:
                        words[name + "_phrase"] = value.en_phrase[k % len(value.en_phrase)]
                texts.append(fill_template(template, words))
            texts.append(fill_template(template, {"category": words["category"]}))
    return texts


@pytest.mark.parametrize("lang", sorted(TEMPLATES))
def test_every_description_the_describer_can_write_is_drawable(lang):
    texts = _every_description_piece(lang)
    template_text = "".join(re.sub(r"\{\w+\}|[\[\]]", "", t) for t in TEMPLATES[lang])
    assert set(template_text) - {" "} <= {c for t in texts for c in t}, "the enumeration missed template text"
    rng = np.random.default_rng(0)
    texts += [describe({"category": "mug", "color": "red", "size": "large", "brand": "acme", "pattern": "striped"},
                       lang, rng=rng) for _ in range(50)]
    assert not _undrawable(texts), (
        f"{lang} descriptions with characters no font can draw: {_undrawable(texts)}; {REBUILD}")


def _source_texts():
    for path in sorted((ROOT / "prodgen").rglob("*.py")):
        yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            yield f"{path.relative_to(ROOT)} cell {i + 1}", source


def test_every_chinese_character_in_the_package_and_the_lessons_is_in_the_font():
    """Text phrasings (prodgen/text.py, models/text2img.py's NEW_PHRASINGS), checkers, the studio's
    labels and every lesson cell: any CJK character written there can end up in a figure."""
    missing = {}
    for where, text in _source_texts():
        lacking = "".join(sorted(set(CJK.findall(text)) - SUBSET))
        if lacking:
            missing[where] = lacking
    assert not missing, f"CJK characters the shipped font cannot draw: {missing}; {REBUILD}"


def test_the_margin_and_cjk_punctuation_are_in_the_font():
    wanted = set(CJK.findall(MARGIN)) | set(PUNCTUATION)
    assert len(wanted) > 300
    assert wanted <= SUBSET, "".join(sorted(wanted - SUBSET))


def test_the_check_fails_for_a_character_the_subset_lacks():
    """The coverage tests can fail: a rare character outside the course's words is not in the subset."""
    assert "龘" not in SUBSET and _undrawable(["龘"]) == "龘"


# ----------------------------------------------------------------------------- rendering


def _render(text: str, **kwargs) -> np.ndarray:
    fig = Figure(figsize=(3.2, 0.6), dpi=100)
    FigureCanvasAgg(fig)
    fig.text(0.02, 0.3, text, fontsize=20, **kwargs)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., 0].copy()


def test_chinese_renders_with_the_shipped_font_without_warnings():
    viz.setup_fonts()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mixed = _render("红色马克杯，Acme品牌")
        fallback = _render("红色马克杯，")
        direct = _render("红色马克杯，", fontproperties=FontProperties(fname=FONT_FILE, size=20))
    assert not [w for w in caught if "missing from font" in str(w.message)], [str(w.message) for w in caught]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tofu = _render("红色马克杯，", family="DejaVu Sans")
    assert any("missing from font" in str(w.message) for w in caught)  # the test can tell tofu apart
    assert (fallback < 128).sum() > 300 and (mixed < 128).sum() > (fallback < 128).sum()  # ink: glyphs drawn
    assert np.array_equal(fallback, direct)  # the fallback draws exactly the shipped font's glyphs
    assert (fallback != tofu).sum() > 500  # not the empty boxes


def test_setup_fonts_is_idempotent_and_survives_a_reset():
    families = viz.setup_fonts()
    assert families.count(FAMILY) == 1 and families.index(FAMILY) >= 1  # after the default Latin font
    assert viz.setup_fonts() == families
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        assert FAMILY not in matplotlib.rcParams["font.family"]
        assert FAMILY in viz.setup_fonts()


def test_show_images_titles_chinese_without_warnings_and_fits_them():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.full((3, 32, 32, 3), 200, np.uint8)
    titles = ["a stripy baseball cap in checked print, from the Zenith range\n"
              "这款大号帽子是藏蓝色的，格纹设计，Zenith出品",
              "mug\n马克杯", "looking for a large polka-dot jet-black handbag made by Orbit"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        axes = viz.show_images(images, nrow=3, titles=titles, title="three products, 三件商品")
        axes[0][0].figure.canvas.draw()
    assert not [w for w in caught if "missing from font" in str(w.message)], [str(w.message) for w in caught]
    shown = [a.get_title() for a in axes.flat]
    columns = viz._columns(0.92 * 1.6, viz.TITLE_FONTSIZE)
    assert shown == [viz.fit_text(t, columns, 2) for t in titles]
    assert shown[1] == "mug\n马克杯" and shown[0].split("\n")[1].endswith("…")
    assert all(viz.text_width(line) <= columns for t in shown for line in t.split("\n"))
    plt.close("all")
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        viz.show_images(images, titles=titles[:2])


# ----------------------------------------------------------------------------- fit_text


def _whole_words(original: str, line: str, width: int) -> bool:
    """Every word of ``line`` is a word of ``original`` (punctuation aside); the one exception is a
    word wider than a whole line, cut with "…"."""
    strip = ",;:-—…"
    words = {w.strip(strip) for w in original.split()}
    for word in line.split():
        if word.strip(strip) not in words and not (
            word.endswith("…") and any(len(w) > width - 1 and w.startswith(word[:-1]) for w in words)
        ):
            return False
    return True


@pytest.mark.parametrize("width", [8, 12, 20, 26, 40])
@pytest.mark.parametrize("max_lines", [1, 2, 3])
def test_english_titles_break_only_between_words(width, max_lines):
    rng = np.random.default_rng(width * 10 + max_lines)
    for _ in range(40):
        attrs = {name: values[rng.integers(len(values))].key for name, values in ATTRIBUTES.items()}
        text = describe(attrs, "en", rng=rng)
        fitted = viz.fit_text(text, width, max_lines)
        lines = fitted.split("\n")
        assert len(lines) <= max_lines
        assert all(viz.text_width(line) <= width for line in lines), fitted
        assert all(_whole_words(text, line, width) for line in lines), (text, fitted)
        if not fitted.endswith("…"):
            assert " ".join(lines) == " ".join(text.split())  # nothing lost when nothing was cut
        else:
            kept = " ".join(lines)[:-1].rstrip(",;:-— ")
            assert " ".join(text.split()).startswith(kept)  # a prefix, in whole words


def test_the_bug_this_fixes():
    text = "a stripy baseball cap in checked print"
    assert "in c" not in viz.fit_text(text, 26, 1)
    assert viz.fit_text(text, 26, 1) == "a stripy baseball cap in…"
    assert viz.fit_text(text, 26, 2) == "a stripy baseball cap in\nchecked print"


@pytest.mark.parametrize("width", [6, 10, 14, 30])
def test_chinese_titles_break_between_characters(width):
    rng = np.random.default_rng(width)
    for _ in range(40):
        attrs = {name: values[rng.integers(len(values))].key for name, values in ATTRIBUTES.items()}
        text = describe(attrs, "zh", rng=rng)
        fitted = viz.fit_text(text, width, 2)
        lines = fitted.split("\n")
        assert len(lines) <= 2 and all(viz.text_width(line) <= width for line in lines), fitted
        joined = "".join(lines)
        assert text.startswith(joined.removesuffix("…").rstrip("，、：；")), (text, fitted)
        # no line starts with closing punctuation
        assert not any(line[0] in "，。、：；！？）" for line in lines), fitted
        assert "T\n恤" not in fitted


def test_fit_text_keeps_paragraphs_and_measures_wide_characters():
    assert viz.text_width("红色mug") == 7
    assert viz.fit_text("a red mug\n红色马克杯", 20) == "a red mug\n红色马克杯"
    assert viz.fit_text("红色马克杯，Acme品牌", 10, 1) == "红色马克…"
    assert viz.fit_text("supercalifragilistic", 8, 1) == "superca…"  # only a word wider than a line is cut
    with pytest.raises(ValueError, match="width"):
        viz.fit_text("a red mug", 1)


# ----------------------------------------------------------------------------- staying light


def test_import_prodgen_does_not_import_matplotlib_but_viz_sets_up_the_font():
    code = ("import sys, prodgen, prodgen.fonts; assert 'matplotlib' not in sys.modules; "
            "import prodgen.viz, matplotlib; print(matplotlib.rcParams['font.family'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert FAMILY in out.stdout


def _code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [c["source"] if isinstance(c["source"], str) else "".join(c["source"])
            for c in cells if c["cell_type"] == "code"]


DRAWS = re.compile(r"\bplt\.|\bshow_images\(|\bplot_(counts|curves)\(|\.imshow\(")
IMPORTS_VIZ = re.compile(r"^\s*(from prodgen\.viz import|import prodgen\.viz|from prodgen import .*\bviz\b)",
                         re.MULTILINE)


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_every_lesson_imports_prodgen_viz_before_its_first_figure(path):
    """Importing prodgen.viz is what makes Chinese render, so a lesson's figures come after it."""
    cells = _code_cells(path)
    first_figure = next((i for i, source in enumerate(cells) if DRAWS.search(source)), None)
    if first_figure is None:
        return  # no figures, nothing to draw Chinese in
    assert any(IMPORTS_VIZ.search(source) for source in cells[: first_figure + 1]), (
        f"{path.name}: import prodgen.viz (e.g. `from prodgen.viz import show_images`) in the setup cell, "
        "before the first figure, so that Chinese labels render")


def test_the_import_check_tells_a_lesson_without_viz(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": "import matplotlib.pyplot as plt\nimport prodgen", "metadata": {}},
                    {"cell_type": "code", "source": "fig, ax = plt.subplots()", "metadata": {}},
                    {"cell_type": "code", "source": "from prodgen.viz import show_images", "metadata": {}}]}
    path = tmp_path / "99_late.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(AssertionError, match="import prodgen.viz"):
        test_every_lesson_imports_prodgen_viz_before_its_first_figure(path)

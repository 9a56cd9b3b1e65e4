"""The README's figures come from `tools/readme_figures.py`, not from memory: the regions between
`<!-- figures:NAME -->` markers hold what the script computes now (lesson, generator and checkpoint counts and
lists; the quick loop's test count in the slow part), and the script rewrites only those regions."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIX = "out of date: run `python tools/readme_figures.py` and commit the files it rewrites"


def _tool():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "tools" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures_tool = _tool()


def _in_files(name: str) -> list[str]:
    found = []
    for file in figures_tool.FILES:
        found += figures_tool.regions((ROOT / file).read_text(encoding="utf-8")).get(name, [])
    return found


@pytest.mark.parametrize("name", ["lessons-words", "generators", "checkpoints"])
def test_the_cheap_figures_are_what_the_script_computes(name):
    expected = figures_tool.cheap_figures(tests=False)[name]
    found = _in_files(name)
    assert found, f"no <!-- figures:{name} --> region in {', '.join(figures_tool.FILES)}"
    assert set(found) == {expected}, f"{name}: {found} vs {expected!r}; {FIX}"


def test_the_figures_follow_the_course():
    from prodgen.models import registry

    figures = figures_tool.cheap_figures(tests=False)
    assert figures["lessons-words"] == figures_tool.in_words(len(list((ROOT / "solutions").glob("*.ipynb"))))
    assert figures["generators"] == str(len(registry.generators(shipped=True)))
    assert figures["checkpoints"].count("`") == 2 * len(registry.manifest()) and "`judge`" in figures["checkpoints"]
    assert figures_tool.in_words(13) == "thirteen" and figures_tool.in_words(1234) == "1,234"


def test_rewrite_replaces_only_the_named_regions():
    text = ("a <!-- figures:a -->1<!-- /figures:a --> b <!-- figures:b -->x\ny<!-- /figures:b --> "
            "<!-- figures:a -->2<!-- /figures:a --> <!-- figures:c -->keep<!-- /figures:c -->")
    assert figures_tool.regions(text) == {"a": ["1", "2"], "b": ["x\ny"], "c": ["keep"]}
    new = figures_tool.rewrite(text, {"a": "13", "b": "z"})
    assert new == ("a <!-- figures:a -->13<!-- /figures:a --> b <!-- figures:b -->z<!-- /figures:b --> "
                   "<!-- figures:a -->13<!-- /figures:a --> <!-- figures:c -->keep<!-- /figures:c -->")
    assert figures_tool.rewrite(new, {"a": "13", "b": "z"}) == new  # a second run changes nothing


def test_the_spread_of_identical_and_different_images():
    same = torch.full((3, 3, 4, 4), 7, dtype=torch.uint8)
    assert figures_tool.spread(same) == (0.0, 0.0, 0.0)
    apart = torch.stack([torch.zeros(3, 4, 4), torch.full((3, 4, 4), 10.0), torch.full((3, 4, 4), 30.0)]).byte()
    assert figures_tool.spread(apart) == (10.0, 20.0, 30.0)  # pairs 10, 30, 20 grey levels apart


def test_the_leaderboard_table_refuses_missing_rows(tmp_path, monkeypatch):
    from prodgen.evaluation import leaderboard

    monkeypatch.setattr(leaderboard, "cache_folder", lambda: tmp_path)
    with pytest.raises(ValueError, match="no cached row .n = 2000, seed 0. of dcgan, vae, .*run prodgen leaderboard"):
        figures_tool.leaderboard_table()


def test_timings_left_for_the_lead_are_marked_not_invented():
    for name in ("quick-timing", "ci-timing"):
        for body in _in_files(name):  # a placeholder, or a figure with its unit
            assert "[TIME:" in body or any(unit in body for unit in (" s", " min")), (name, body)


@pytest.mark.slow(seconds=40)
def test_the_quick_loop_test_count_is_current():
    expected = f"{figures_tool.quick_test_count():,}"
    found = _in_files("quick-tests")
    assert found and set(found) == {expected}, f"quick-tests: {found} vs {expected!r}; {FIX}"

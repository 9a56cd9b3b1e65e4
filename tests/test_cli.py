"""The `prodgen` command: bad input gives one clear line and a non-zero exit, never a traceback."""
from __future__ import annotations

import json

import pytest

from prodgen.cli import main
from prodgen.models import registry

from cli_helpers import in_a_subprocess, in_this_process


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRODGEN_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("args, message", [
    (["--split", "training", "--n", "5"], "unknown split 'training'; valid splits: train, val, test, unseen"),
    (["--split", "train", "--n", "0"], "n must be a positive"),
    (["--split", "train", "--n", "5", "--size", "48"], "unsupported image size 48; valid sizes: 32, 64, 128"),
])
def test_export_bad_input(tmp_path, args, message, monkeypatch, capsys):
    _check_export_bad_input(tmp_path, args, message, in_this_process(monkeypatch, capsys))


def test_export_bad_input_through_the_command(tmp_path):
    _check_export_bad_input(tmp_path, ["--split", "train", "--n", "0"], "n must be a positive", in_a_subprocess)


def _check_export_bad_input(tmp_path, args, message, run):
    out = tmp_path / "out"
    code, _, stderr = run(["data", "export", *args, "--out", out], env={"PRODGEN_CACHE": str(tmp_path / "cache")})
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_export_then_export_a_different_catalog_into_the_same_folder(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["data", "export", "--split", "val", "--n", "12", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 13 and "metadata.csv" in names
    assert main(["data", "export", "--split", "val", "--n", "12", "--out", str(out)]) == 0  # same: fine
    assert main(["data", "export", "--split", "test", "--n", "12", "--out", str(out)]) == 2
    assert "already holds a different export" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == names


def test_data_info_reads_an_export(tmp_path, capsys):
    out = tmp_path / "out"
    main(["data", "export", "--split", "val", "--n", "400", "--out", str(out)])  # >= 20 photos of every value
    assert main(["data", "info", str(out)]) == 0
    out = capsys.readouterr().out
    assert "400 images, 5 attribute(s)" in out and "category (8 values)" in out and "pattern (4 values)" in out


def test_doctor_reports_a_missing_cache_with_the_fix(capsys):
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FIX] catalog cache" in out and "prodgen data build" in out


@pytest.mark.slow  # renders and trains: the whole benchmark in its quick form
def test_bench_reports_the_figures(capsys):
    assert main(["bench", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["render_images_per_s"]) == {"32", "64", "128"}
    assert all(v > 0 for v in report["render_images_per_s"].values())
    assert report["first_build"]["seconds"] > 0 and report["cached_load"]["seconds"] > 0
    engine = report["engine"]
    assert {"engine_over_bare", "speedup_vs_examples", "default_precision", "default_layout",
            "images_per_s"} <= set(engine)
    assert engine["default_precision"] in ("fp32", "bf16") and engine["default_layout"] == "channels_last"
    assert set(engine["images_per_s"]) == {"engine", "bare", "examples_fp32_nchw",
                                           "engine_" + ("fp32" if engine["default_precision"] == "bf16" else "bf16")}
    assert all(v > 0 for v in engine["images_per_s"].values()) and engine["engine_over_bare"] > 0
    if registry.available("diffusion"):  # lesson 11's sampling speed, at the model's default steps and guidance
        figures = report["sampling"]["diffusion"]
        assert figures["16"]["images_per_s"] > 0 and {"steps", "guidance"} <= set(figures)


def test_unknown_lesson_is_a_clear_error(capsys):
    assert main(["course", "run", "99"]) == 2
    err = capsys.readouterr().err
    assert "99" in err and "Traceback" not in err

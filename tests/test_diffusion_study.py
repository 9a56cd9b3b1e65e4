"""`prodgen diffusion-study` (lesson 11's measurements): the parts on a tiny diffusion model registered in a private
checkpoints folder, the results file's structure, no re-measuring on the same checkpoint, a retrained checkpoint
measured again, the Markdown tables, and bad input (one line, exit 2, nothing written)."""
from __future__ import annotations

import json

import pytest
import torch

from prodgen.evaluation import leaderboard
from prodgen.models import diffusion, registry
from prodgen.models.protocol import Knob
from prodgen.studies import diffusion_study

from cli_helpers import in_this_process

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


def _tiny_diffusion(seed: int) -> diffusion.UNet:
    """A width-8 U-Net with random (not zero) output weights, so the request and the guidance change its images."""
    torch.manual_seed(seed)
    net = diffusion.UNet(width=8)
    torch.nn.init.normal_(net.head[-1].weight, std=0.05)
    for block in (net.down1, net.down2, net.down3, net.mid1, net.mid2, net.up3, net.up2, net.up1):
        torch.nn.init.normal_(block.conv2.weight, std=0.05)
    return net.eval()


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    """Private checkpoints (the shipped judge, cvae, cgan-projection, text-votes; a tiny ``diffusion`` and
    ``diffusion-text``), private leaderboard rows, and small grids."""
    from cli_helpers import shipped_subset

    shipped_subset(tmp_path / "checkpoints", ("judge", "ssl-encoder", "cvae", "cgan-projection", "text-votes"),
                   monkeypatch)
    net = _tiny_diffusion(0)
    registry.save("diffusion", net, {"width": 8, "schedule": "cosine"})
    registry.save("diffusion-text", net, {"width": 8, "schedule": "cosine", "reader": "text-votes"})
    monkeypatch.setattr(leaderboard, "cache_folder", lambda: tmp_path / "rows")  # the real photos' features: shared
    monkeypatch.setattr(diffusion_study, "GUIDANCE_SWEEP", (0.0, 3.0))
    monkeypatch.setattr(diffusion_study, "SAMPLER_STEPS", (2, 5))
    monkeypatch.setattr(diffusion_study, "LEADERBOARD_MODELS", ("diffusion", "cgan-projection"))
    monkeypatch.setattr(diffusion, "STEPS", Knob("steps", 4, 1, 1000))  # the model's default steps, read at call time
    monkeypatch.setattr(diffusion_study, "SPEED_BATCH", 8)  # speed batches of 8 instead of 64 (the study's and
    monkeypatch.setattr(leaderboard, "SPEED_BATCH", 8)      # the leaderboard's)
    return tmp_path


@pytest.mark.slow(seconds=30)
def test_the_study_measures_every_part_once_per_checkpoint(tiny_study, monkeypatch, capsys):
    out = tiny_study / "study.json"
    run = in_this_process(monkeypatch, capsys)
    code, stdout, _ = run(["diffusion-study", "--n", "16", "--n-edits", "8", "--out", out, "--estimate"])
    assert code == 0 and "edits: n = 8, expected about " in stdout and "nothing measured" in stdout
    assert not out.exists()
    code, stdout, err = run(["diffusion-study", "--n", "16", "--n-edits", "8", "--out", out])
    assert code == 0 and err == ""
    for part in diffusion_study.PARTS:  # the expected time is said before each part runs, the wall time after
        assert f"{part}: n = {8 if part == 'edits' else 16}, expected about " in stdout
    saved = json.loads(out.read_text(encoding="utf-8"))  # strict JSON: no Infinity or NaN in the file
    sha = registry.manifest()["diffusion"]["sha256"]
    assert saved["model"] == "diffusion" and saved["checkpoint_sha256"] == sha
    assert list(saved["parts"]) == list(diffusion_study.PARTS)
    for part, measured in saved["parts"].items():
        p = measured["provenance"]
        assert p["checkpoint_sha256"] == sha and p["n"] == (8 if part == "edits" else 16) and p["seed"] == 0
        assert p["threads"] == 1 and p["wall_seconds"] >= 0 and p["expected_seconds"] >= 0
        assert p["command"] == "prodgen diffusion-study --n 16 --n-edits 8" and p["measured_at"].endswith("Z")

    guidance = saved["parts"]["guidance"]
    assert [r["guidance"] for r in guidance["rows"]] == [0.0, 3.0] and guidance["knobs"] == {"steps": 4, "eta": 0.0}
    for r in guidance["rows"]:
        assert set(r["control"]) == {"category", "color", "size", "brand", "pattern", "mean"}
        assert 0 <= r["control_mean"] <= 1 and r["fid"] > 0 and r["fid_floor"] > 0
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and r["diversity"] > 0
        assert r["seconds_per_image"] > 0
    assert guidance["rows"][0]["fid_floor"] == pytest.approx(leaderboard.Reference(registry.load("judge")).floor(16),
                                                             abs=1e-3)
    assert guidance["rows"][0]["fid"] != guidance["rows"][1]["fid"]  # the guidance changes the images

    samplers = saved["parts"]["samplers"]["rows"]
    assert [(r["sampler"], r["eta"], r["steps"]) for r in samplers] == [("DDIM", 0.0, 2), ("DDIM", 0.0, 5),
                                                                       ("DDPM", 1.0, 2), ("DDPM", 1.0, 5)]
    assert all(r["fid"] > 0 and r["seconds_per_image"] > 0 for r in samplers)

    edits = saved["parts"]["edits"]
    assert edits["knobs"] == {**diffusion.EDIT_KNOBS, "grow": diffusion.EDIT_GROW}  # what edit_table used
    for model in ("diffusion", "cvae"):
        assert 0 <= edits[model]["mean"]["success"] <= 1 and 0 <= edits[model]["color"]["preservation"] <= 1
    assert edits["diffusion"]["psnr_outside"] == "inf"  # inpainting keeps the photo's pixels outside the mask
    assert diffusion_study.load_results(out)["parts"]["edits"]["diffusion"]["psnr_outside"] == float("inf")
    assert edits["cvae"]["mean"]["success"] > 0.8  # the shipped CVAE on real photos

    rows = saved["parts"]["leaderboard"]["rows"]
    assert [r["model"] for r in rows] == ["diffusion", "cgan-projection"]
    assert all("details" not in r and r["n"] == 16 and r["seconds_per_image"] > 0 for r in rows)
    assert rows[0]["sha256"] == sha

    # the same checkpoint again: nothing is measured, the file is not rewritten
    before = out.read_bytes()
    calibrate = diffusion_study._calibrate
    monkeypatch.setattr(diffusion_study, "_calibrate", lambda model: pytest.fail("measured again"))
    code, stdout, _ = run(["diffusion-study", "--n", "16", "--n-edits", "8", "--out", out, "--markdown"])
    assert code == 0 and out.read_bytes() == before
    assert "| w | control | category | color | size | brand | pattern | FID | floor |" in stdout
    assert "| DDPM (eta 1) | 5 |" in stdout and "| mean |" in stdout and "| model | FID |" in stdout
    assert "PSNR identical (∞ dB)" in stdout
    assert diffusion_study.format_markdown(diffusion_study.load_results(out)) == stdout

    # a retrained checkpoint: the requested part is measured again, the others stay as they were
    registry.save("diffusion", _tiny_diffusion(1), {"width": 8, "schedule": "cosine"})
    monkeypatch.setattr(diffusion_study, "_calibrate", calibrate)
    result = diffusion_study.run_study("guidance", n=16, out=out, log=lambda s: None)
    new_sha = registry.manifest()["diffusion"]["sha256"]
    assert new_sha != sha and result["parts"]["guidance"]["provenance"]["checkpoint_sha256"] == new_sha
    assert result["parts"]["samplers"] == saved["parts"]["samplers"]  # not asked for: kept


@pytest.mark.parametrize("args, message", [
    (["--parts", "guidance,speed"], "unknown part(s) speed; valid parts: guidance, samplers, edits, leaderboard"),
    (["--parts", " , "], "unknown part(s) (none given); valid parts: guidance,"),
    (["--n", "8"], "n must be a whole number >= 16, got 8"),
    (["--n", "many"], "--n must be a whole number >= 16, got 'many'"),
    (["--n-edits", "0"], "--n-edits must be a whole number >= 1, got 0"),
    (["--n-edits", "99999999"], "n_edits must be at most "),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path, monkeypatch, capsys):
    out = tmp_path / "study.json"
    code, _, err = in_this_process(monkeypatch, capsys)(["diffusion-study", *args, "--out", out])
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_missing_results_say_which_command_makes_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `prodgen diffusion-study`"):
        diffusion_study.load_results(tmp_path / "none.json")


def test_estimates_grow_with_the_work():
    per_step = {"single": 0.001, "guided": 0.002}
    est = lambda part, n, **kw: diffusion_study.estimate_seconds(part, n, per_step, 20, 2.0, **kw)  # noqa: E731
    assert est("guidance", 1000) > est("guidance", 100) > 0
    assert est("samplers", 300) == pytest.approx(sum(300 * (1 + s) * 0.002 for s in (10, 25, 50, 250)) * 2)
    knobs = {"steps": 10, "guidance": 3.0, "resample": 1, "eta": 1.0}
    assert est("edits", 2000, edit_knobs=knobs) == pytest.approx(5 * 2000 * 1 * 10 * 0.002)
    assert (est("edits", 2000, edit_knobs={**knobs, "guidance": 1.0, "resample": 2})
            == pytest.approx(5 * 2000 * 2 * 10 * 0.001))
    assert est("leaderboard", 2000, cached=("diffusion", "diffusion-text")) == 0
    assert est("leaderboard", 2000) > est("leaderboard", 2000, cached=("diffusion-text",)) > 0

"""prodgen/apps/restore.py and `prodgen restore`: classic baselines, the command's files, bad and hostile input."""
from __future__ import annotations

import csv

import pytest
import torch
from PIL import Image

from prodgen.apps import degrade, restore
from prodgen.cli import main


@pytest.fixture(scope="module")
def clean():
    from prodgen.catalog import load_catalog, normalize

    return normalize(load_catalog("test", n=8, progress=False).images)


def _psnr(a, b):
    return float(10 * torch.log10(4 / (a - b).pow(2).mean()))


@pytest.mark.parametrize("task", degrade.TASKS)
def test_each_classic_method_repairs_some_of_the_damage(task, clean):
    y, op = degrade.degrade(task, clean, seed=0)
    seen = op.enlarge(y) if task == "upscale" else y
    fixed = restore.classic(op, y)
    assert fixed.shape == clean.shape and fixed.min() >= -1 and fixed.max() <= 1
    if task == "deblock":  # the decoded JPEG is the centre of its rounding boxes, hard to beat in PSNR:
        # POCS smooths the blocks away while staying in the boxes
        assert float((op.project(fixed, y) - fixed).abs().mean()) < 2e-3 and not torch.allclose(fixed, y)
        assert _psnr(fixed, clean) > _psnr(seen.clamp(-1, 1), clean) - 0.5
    else:
        assert _psnr(fixed, clean) > _psnr(seen.clamp(-1, 1), clean) + 0.5, task
    if task == "inpaint":  # known pixels are kept
        keep = op.mask.expand_as(y) == 0
        assert torch.equal(fixed[keep], y[keep].clamp(-1, 1))


def _save(x, path):
    Image.fromarray(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()).save(path)


def test_the_command_writes_the_damaged_classic_and_restored_photos(clean, tmp_path, capsys):
    y, op = degrade.degrade("inpaint", clean[:1], seed=0)
    _save(y[0], tmp_path / "scratched.png")
    out = tmp_path / "out"
    assert main(["restore", "--image", str(tmp_path / "scratched.png"), "--task", "inpaint", "--n", "2",
                 "--seed", "5", "--out", str(out)]) == 0
    assert "wrote damaged.png, classic.png (harmonic filling), 2 restored image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["classic.png", "damaged.png", "metadata.csv", "restored-5.png",
                                                     "restored-6.png"]
    rows = list(csv.DictReader(open(out / "metadata.csv", encoding="utf-8")))
    assert [r["role"] for r in rows] == ["damaged", "classic", "restored", "restored"] and rows[3]["seed"] == "6"
    assert all(r["category"] for r in rows)
    again = tmp_path / "again"
    assert main(["restore", "--image", str(tmp_path / "scratched.png"), "--task", "inpaint", "--seed", "6",
                 "--out", str(again)]) == 0
    assert (again / "restored-6.png").read_bytes() == (out / "restored-6.png").read_bytes()  # same seed, same bytes


def test_bad_and_hostile_input_is_one_line_and_writes_nothing(clean, tmp_path, capsys):
    _save(clean[0], tmp_path / "photo.png")
    (tmp_path / "fake.png").write_text("not an image")
    (tmp_path / "link.png").symlink_to("/etc/passwd")
    Image.new("L", (16, 16), 255).save(tmp_path / "small-mask.png")
    Image.new("L", (32, 32), 0).save(tmp_path / "empty-mask.png")
    photo = str(tmp_path / "photo.png")
    cases = [
        (["--image", photo, "--task", "sharpen"], "invalid choice"),
        (["--image", photo, "--task", "deblock", "--sigma", "2"], "--sigma is a setting of --task denoise / deblur"),
        (["--image", photo, "--task", "upscale", "--factor", "3"], "factor must be 2, 4 or 8, got 3"),
        (["--image", photo, "--task", "deblock", "--quality", "0"], "--quality must be"),
        (["--image", photo, "--task", "inpaint", "--mask", str(tmp_path / "none.png")], "no mask at"),
        (["--image", photo, "--task", "inpaint", "--mask", str(tmp_path / "small-mask.png")], "it must be 32x32"),
        (["--image", photo, "--task", "inpaint", "--mask", str(tmp_path / "empty-mask.png")], "nothing to inpaint"),
        (["--image", photo, "--task", "inpaint", "--mask", str(tmp_path / "link.png")], "is not an image"),
        (["--image", photo, "--task", "denoise", "--mask", str(tmp_path / "small-mask.png")], "--mask is for"),
        (["--image", str(tmp_path / "fake.png"), "--task", "denoise"], "is not an image Pillow can read"),
        (["--image", str(tmp_path / "link.png"), "--task", "denoise"], "is not an image Pillow can read"),
        (["--image", photo, "--task", "denoise", "--model", "cgan-projection"], "cgan-projection cannot restore"),
        (["--image", photo, "--task", "denoise", "--model", "nope"], "'nope' is not an image generator"),
    ]
    for args, message in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) if "invalid choice" in message else _nothing():
            code = main(["restore", *args, "--out", str(tmp_path / "out")])
            assert code == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
        assert not (tmp_path / "out").exists(), args


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow(seconds=25)  # trains two tiny networks and restores with the flow in a subprocess
def test_the_benchmark_short_form_writes_every_method_of_each_case(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "restore.json"
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "restore.py"), "--short", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["task"] for r in result["rows"]] == ["denoise", "upscale"] and result["rows"][1]["factor"] == 2
    for row in result["rows"]:
        for method in ("damaged", "classic", "supervised", "flow"):
            scores = row[method]
            assert 0 < scores["ssim"] <= 1 and scores["psnr"] > 10 and 0 <= scores["agreement"]["mean"] <= 1
            assert scores["fid"] >= 0 and scores["cpu_s_per_image"] >= 0
    assert result["fid_floor"] > 0 and result["command"].startswith("python benchmarks/restore.py --short")

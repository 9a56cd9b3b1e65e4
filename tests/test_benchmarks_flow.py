"""benchmarks/diffusion_vs_flow.py --short (issue 24 §2): five objectives on one U-Net at equal CPU budget, then
their samplers; the JSON's structure and the two plots (the numbers of a 2-CPU-second run mean nothing)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("diffusion_vs_flow", ROOT / "benchmarks" / "diffusion_vs_flow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_karras_sigmas_and_bad_variant(capsys):
    bench = _bench()
    s = bench.karras_sigmas(4)
    assert s[0] == pytest.approx(bench.SIGMA_MAX) and s[-2] == pytest.approx(bench.SIGMA_MIN) and s[-1] == 0.0
    assert all(a > b for a, b in zip(s, s[1:])) and bench.karras_sigmas(1) == [bench.SIGMA_MAX, 0.0]
    with pytest.raises(SystemExit):
        bench.main(["--variants", "ddpm"])
    assert "unknown variant ddpm" in capsys.readouterr().err


@pytest.mark.slow(seconds=150)
def test_short_form_writes_the_comparison(tmp_path):
    bench = _bench()
    out = tmp_path / "dvf.json"
    assert bench.main(["--short", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    train, sampling = results["train"], results["sampling"]
    assert train["short"] and train["seeds"] == [0] and train["width"] == 8
    assert [(r["variant"], r["seed"]) for r in train["rows"]] == [(v, 0) for v in bench.VARIANTS]
    for row in train["rows"]:
        points = row["checkpoints"]
        assert len(points) == 4 and row["steps"] > 0
        assert all(a["cpu_minutes"] < b["cpu_minutes"] and a["images_seen"] <= b["images_seen"]
                   for a, b in zip(points, points[1:]))
        assert all(0 <= p["control_mean"] <= 1 and p["fid"] >= 0 and p["images_per_cpu_s"] > 0 for p in points)
    kinds = {(r["variant"], r["sampler"]) for r in sampling["rows"]}
    assert kinds >= {(v, "ddim") for v in ("v-cosine", "eps", "eps-min-snr")} | {("edm", "edm-euler")} | {
        ("flow", s) for s in ("euler", "heun", "ab2")}
    assert {r["evaluations"] for r in sampling["rows"]} == {1, 2, 4}
    assert not any(r["sampler"] == "heun" and r["evaluations"] % 2 for r in sampling["rows"])
    assert sampling["fid_floor"] > 0 and "command" in sampling
    for part in ("train", "sampling"):
        png = tmp_path / f"dvf-{part}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

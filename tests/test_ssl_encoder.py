"""The label-free encoder behind the leaderboard's second FID space (issue 24 §2): its views, loss, shapes and
determinism, that a tiny run learns, the shipped checkpoint through the registry, and the space on real photos
(its floor below clearly damaged photos' FID; the leaderboard row's FID (SSL) column)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from prodgen import metrics, paths
from prodgen.catalog import load_catalog
from prodgen.catalog.dataset import normalize
from prodgen.evaluation import leaderboard
from prodgen.models import registry
from prodgen.models import ssl_encoder as ssl

from cli_helpers import shipped_subset

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


def test_shapes_and_features_of_uint8_and_float_images():
    torch.manual_seed(0)
    enc = ssl.SSLEncoder(width=4, dim=16, proj_dim=8).eval()
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    assert enc(normalize(images)).shape == (6, 8)  # projections (training only)
    f = enc.features(images)
    assert f.shape == (6, 16) and f.dtype == torch.float32 and (f >= 0).all()  # after the ReLU
    assert torch.equal(f, enc.embed(normalize(images))) and torch.equal(f, enc.features(normalize(images)))
    assert torch.allclose(f[:2], enc.features(images[:2]), atol=1e-6)  # eval mode: no dependence on the batch
    assert enc.training is False and ssl.build({"width": 4, "dim": 16, "proj_dim": 8}).trunk[-3].out_features == 16


def test_views_only_shift_and_flip():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 12, 12)
    same = ssl.views(x, 0, gen)  # no shift: each view is the photo or its mirror image
    assert all(torch.equal(v, p) or torch.equal(v, p.flip(2)) for v, p in zip(same, x))
    assert torch.equal(ssl.views(torch.full((2, 3, 8, 8), 0.3), 3, gen), torch.full((2, 3, 8, 8), 0.3))
    shifted = ssl.views(x, 2, gen)
    padded = torch.nn.functional.pad(x, (2,) * 4, mode="replicate")
    for v, p in zip(shifted, padded):  # every view is a 12 x 12 window of the padded photo, maybe mirrored
        windows = [p[:, i:i + 12, j:j + 12] for i in range(5) for j in range(5)]
        assert any(torch.equal(v, w) or torch.equal(v, w.flip(2)) for w in windows)
    assert not torch.equal(shifted, x)  # colour, sharpness and noise untouched: values are only moved
    assert set(shifted.unique().tolist()) <= set(x.unique().tolist())


def test_nt_xent_is_low_when_each_view_finds_its_partner():
    z = torch.eye(8) * 5  # 8 photos, orthogonal projections
    matched = ssl.nt_xent(z, z, temperature=0.1)
    shuffled = ssl.nt_xent(z, z[torch.tensor([1, 2, 3, 4, 5, 6, 7, 0])], temperature=0.1)
    assert matched < 1e-3 and shuffled > 5
    random = ssl.nt_xent(torch.randn(64, 16), torch.randn(64, 16), temperature=1.0)
    assert abs(float(random) - math.log(127)) < 0.3  # chance: one partner among 2B - 1 = 127 views


def test_a_tiny_run_learns_and_the_same_seed_gives_the_same_weights(squares_catalog):
    kw = {"epochs": 4, "batch_size": 32, "width": 4, "dim": 16, "proj_dim": 8, "lr": 5e-3, "temperature": 0.2}
    _, losses = ssl.fit_encoder(squares_catalog.images, seed=0, **kw)
    assert len(losses) == 16 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses  # NT-Xent falls
    a, first = ssl.fit_encoder(squares_catalog.images, seed=0, max_steps=3, **kw)
    b, again = ssl.fit_encoder(squares_catalog.images, seed=0, max_steps=3, **kw)
    assert again == first and all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                                      b.state_dict().values()))
    c, _ = ssl.fit_encoder(squares_catalog.images, seed=1, max_steps=2, **kw)
    assert not torch.equal(a.trunk[0][0].weight, c.trunk[0][0].weight)
    with pytest.raises(ValueError, match="at least one batch of 256 photos, got 128"):
        ssl.fit_encoder(squares_catalog.images)


def test_the_shipped_encoder_loads_through_the_registry_and_is_checked(tmp_path, monkeypatch):
    found = registry.spec("ssl-encoder")
    assert found.train is ssl.train_checkpoint and not found.is_generator and "ssl-encoder" not in registry.generators()
    enc, info = registry.load_entry("ssl-encoder")  # sha256-verified, weights only
    assert isinstance(enc, ssl.SSLEncoder) and not enc.training
    assert (paths.checkpoints_dir() / info["file"]).stat().st_size < 2_000_000
    training = info["training"]
    assert {k: training[k] for k in ssl.CHECKPOINT_CONFIG} == ssl.CHECKPOINT_CONFIG  # prodgen train reproduces it
    assert training["threads"] == 1 and training["cpu_seconds"] <= 15 * 60 and training["fast"] is False
    found = info["metrics"]  # a linear probe reads the attributes off features learned without them
    assert found["probe_category"] > 0.95 and found["probe_color"] > 0.95 and found["probe_size"] > 0.85
    assert min(found["probe_brand"], found["probe_pattern"]) > 0.5 and found["floor_n"] == 2000  # chance: 0.25
    f = enc.features(load_catalog("test", progress=False).images[:8])
    assert f.shape == (8, info["config"]["dim"]) and torch.isfinite(f).all()

    folder = shipped_subset(tmp_path / "checkpoints", ("ssl-encoder",), monkeypatch)  # a damaged copy: refused
    with open(folder / info["file"], "r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 8)
    with pytest.raises(ValueError, match="checkpoint for 'ssl-encoder' is corrupt"):
        registry.load("ssl-encoder")


def test_the_recipe_refuses_unknown_settings_and_engine_options():
    with pytest.raises(ValueError, match="unknown training setting.s. colour_jitter"):
        ssl.train_checkpoint(fast=True, log=None, colour_jitter=0.4)
    with pytest.raises(ValueError, match="prodgen train ssl-encoder takes no --minutes"):
        registry.train("ssl-encoder", fast=True, log=None, minutes=1.0)


@pytest.fixture(scope="module")
def reference():
    return leaderboard.Reference(registry.load("judge"))  # the real photos in both spaces (cached on disk)


def test_the_floor_is_below_damaged_photos_fid(reference):
    n = 300
    real = reference.train["ssl_features"][:n]
    x = normalize(load_catalog("test", progress=False).images[:n])
    enc = reference.encoder
    floor = reference.floor(n, "ssl")
    assert floor == pytest.approx(metrics.fid(real, reference.test["ssl_features"][:n]))
    noisy = metrics.fid(real, enc.features((x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
                                           .clamp(-1, 1)))
    blurred = metrics.fid(real, enc.features(torch.nn.functional.avg_pool2d(x, 2).repeat_interleave(2, 2)
                                             .repeat_interleave(2, 3)))  # half the resolution
    assert 0 < floor and 2 * floor < noisy and 2 * floor < blurred, (floor, noisy, blurred)
    with pytest.raises(ValueError, match="unknown feature space 'pixels'; spaces: judge, ssl"):
        reference.floor(n, "pixels")


def test_a_leaderboard_row_holds_fid_in_both_spaces(reference, tmp_path, monkeypatch):
    monkeypatch.setattr(leaderboard, "cache_folder", lambda: tmp_path / "rows")
    row = leaderboard.measure(registry.load_generator("cgan-projection"), n=32, speed_seconds=0.01, _ref=reference)
    assert row["protocol"] == leaderboard.PROTOCOL_VERSION >= 2
    for key in ("fid_ssl", "fid_ssl_floor"):
        assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0
    assert row["fid_ssl_floor"] == round(reference.floor(32, "ssl"), 3) and row["fid_ssl"] != row["fid"]
    table = leaderboard.format_table([row]).splitlines()
    assert "FID (SSL)" in table[0] and "floor (SSL)" in table[0] and f"{row['fid_ssl']:.1f}" in table[2]
    md = leaderboard.format_markdown([row]).splitlines()
    assert md[0].startswith("| model | FID | floor | FID (SSL) | floor (SSL) | FID∞ |")
    assert f"FID (SSL) {row['fid_ssl']:.1f} (floor {row['fid_ssl_floor']:.1f})" in leaderboard.format_summary(row)
    assert leaderboard._depends_on("cgan-projection") == ["cgan-projection", "judge", "ssl-encoder"]
    assert json.loads(json.dumps(row))["fid_ssl"] == row["fid_ssl"]

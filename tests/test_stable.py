"""Lesson 10's machinery: DiffAugment, the GAN step's cures (augment, penalties, mode seeking, TTUR),
the named recipes, the experiment grid and its command, the cgan-stable generate path."""
from __future__ import annotations

import json

import pytest
import torch

from prodgen.cli import main
from prodgen.engine.augment import cutout, diff_augment, translate
from prodgen.engine.train import GANSettings, Progress, SampleGrid, gan_step, train_gan
from prodgen.models.cgan import ProjectionDiscriminator
from prodgen.models.cgan_stable import RECIPES, build_networks, recipe, train_recipe

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


@pytest.fixture(scope="module")
def catalog(squares_catalog):  # tests/conftest.py: 128 synthetic products
    return squares_catalog


# ----------------------------------------------------------------------------- DiffAugment
def test_translate_moves_whole_images_by_at_most_an_eighth_and_pads_with_zeros():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 15, 15] = 1.0  # one bright pixel
    y = translate(x)
    assert y.shape == x.shape
    where = torch.nonzero(y[:, 0] == 1.0)  # rows: (image, row, col)
    assert len(where) == 64  # 4 px at most: the pixel never leaves the image
    shifts = where[:, 1:] - 15
    assert int(shifts.abs().max()) == 4 and len({tuple(s) for s in shifts.tolist()}) > 10  # per-image shifts
    ones = translate(torch.ones(64, 1, 32, 32))
    assert set(ones.unique().tolist()) <= {0.0, 1.0} and float(ones.mean()) < 1.0  # uncovered pixels are 0


def test_cutout_zeroes_one_square_of_a_quarter_side_at_most():
    torch.manual_seed(0)
    y = cutout(torch.ones(200, 3, 32, 32))
    holes = (y[:, 0] == 0).sum(dim=(1, 2))
    assert int(holes.max()) == 64 and int(holes.min()) >= 16  # 8 x 8 inside, clipped at the border
    assert torch.equal(y[:, 0], y[:, 1])  # the same hole in every channel


def test_diff_augment_is_differentiable_and_refuses_unknown_policies():
    x = torch.randn(8, 3, 32, 32, requires_grad=True)
    diff_augment(x).square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert torch.all((x.grad == 0) | (x.grad.abs() > 0))
    with pytest.raises(ValueError, match="unknown augmentation policy 'color'; valid: translation"):
        diff_augment(x, "color")


# ----------------------------------------------------------------------------- the GAN step's options
def _pair(norm="spectral", seed=0):
    return build_networks({"norm": norm}, width=8, z_dim=8, seed=seed)


def _step(g, d, lr=1e-3, **options):
    opt_g = torch.optim.Adam(g.parameters(), lr)
    opt_d = torch.optim.Adam(d.parameters(), lr)
    torch.manual_seed(1)
    real, z = torch.rand(8, 3, 32, 32) * 2 - 1, torch.randn(8, 8)
    labels = torch.stack([torch.randint(0, k, (8,)) for k in (8, 10, 3, 4, 4)], dim=1)
    return gan_step(g, d, opt_g, opt_d, real, z, labels=labels, **options)


def test_gan_step_reports_each_cure_it_applies():
    g, d = _pair("none")
    out = _step(g, d, gp_weight=10.0, ms_weight=1.0, grad_norm=True)
    assert set(out) == {"loss_d", "loss_g", "d_real", "d_fake", "penalty", "mode_seeking", "d_grad"}
    assert all(torch.isfinite(v) for v in out.values()) and float(out["d_grad"]) > 0
    out = _step(*_pair("none"), r1_weight=0.5)
    assert float(out["penalty"]) > 0


def test_mode_seeking_pairs_share_their_request():
    seen = []

    class Spy(ProjectionDiscriminator):
        def forward(self, x, y):
            seen.append(y.clone())
            return super().forward(x, y)

    g, _ = _pair()
    torch.manual_seed(0)
    d = Spy(8)
    _step(g, d, ms_weight=1.0)
    assert torch.equal(seen[0][:4], seen[0][4:])  # rows i and i + n/2: the same request, other noise


def test_augment_is_applied_to_real_and_fake_alike():
    calls = []

    def spy(x):
        calls.append(x.shape[0])
        return x

    _step(*_pair(), augment=spy)
    assert calls == [8, 8, 8]  # D step: real and fake; G step: fake


def test_penalties_make_the_step_differ_and_penalty_zero_is_off():
    base = _step(*_pair("none"))
    again = _step(*_pair("none"), gp_weight=0.0)
    assert float(base["loss_d"]) == float(again["loss_d"])
    with_gp = _step(*_pair("none"), gp_weight=10.0)
    assert float(with_gp["loss_d"]) != float(base["loss_d"])


def test_train_gan_two_time_scales_and_bad_options(catalog):
    g, d = _pair()
    common = dict(epochs=1, batch_size=32, device="cpu", condition="labels",
                  callbacks=[Progress(False), SampleGrid(4)])
    settings = GANSettings(lr=1e-4, lr_d=4e-4, grad_norm=True, ms_weight=1.0, precision="fp32")
    h = train_gan(g, d, catalog, settings=settings, **common)
    assert set(h.steps) == {"loss_d", "loss_g", "d_real", "d_fake", "mode_seeking", "d_grad"}
    with pytest.raises(ValueError, match="gp_weight must be a number >= 0"):
        GANSettings(gp_weight=-1)
    with pytest.raises(ValueError, match="choose one gradient penalty"):
        GANSettings(gp_weight=1.0, r1_weight=1.0)
    with pytest.raises(ValueError, match="lr_d must be a number > 0"):
        GANSettings(lr_d=0)
    with pytest.raises(ValueError, match="augment must be a function"):
        GANSettings(augment="translation")


def test_projection_discriminator_norm_options():
    assert not any("parametrizations" in n for n, _ in ProjectionDiscriminator(8, norm="none").named_modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ProjectionDiscriminator(8, norm="batch").modules())
    with pytest.raises(ValueError, match="unknown normalisation 'layer'; valid: spectral, batch, none"):
        ProjectionDiscriminator(8, norm="layer")


# ----------------------------------------------------------------------------- recipes
@pytest.mark.slow
def test_every_recipe_trains_a_few_exact_steps(catalog):
    for name in RECIPES:
        run = train_recipe(name, catalog, steps=5, batch_size=16, width=8, z_dim=8, device="cpu", progress=False,
                           n_samples=4)
        assert run.history.images_seen == 5 * 16 and len(run.history.steps["loss_d"]) == 5, name
        assert "d_grad" in run.history.steps
        assert not run.ema.training
        assert run.ema(torch.randn(2, 8), torch.zeros(2, 5, dtype=torch.long)).shape == (2, 3, 32, 32)


def test_recipes_and_train_recipe_refuse_bad_input(catalog):
    with pytest.raises(ValueError, match="unknown recipe 'best'; valid recipes: dcgan, hinge"):
        recipe("best")
    with pytest.raises(ValueError, match="give either steps or epochs"):
        train_recipe("hinge-sn", catalog)
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        train_recipe("hinge-sn", catalog, steps=0)


def test_small_recipes_see_only_their_photos(catalog):
    small = {**recipe("small"), "photos": 32}
    run = train_recipe(small, catalog, steps=4, batch_size=16, width=8, z_dim=8, device="cpu", progress=False,
                       n_samples=4)
    assert run.history.images_seen == 64  # 2 epochs of the 32 photos


# ----------------------------------------------------------------------------- the grid
@pytest.mark.slow
def test_grid_runs_caches_and_summarises(tmp_path, monkeypatch):
    from prodgen.models import cgan_stable
    from prodgen.studies import recipe_grid

    monkeypatch.setattr(cgan_stable, "GRID", {"steps": 2, "batch_size": 16, "width": 8, "z_dim": 8, "ema_decay": 0.9,
                                         "hide_p": 0.1, "seeds": (0, 1), "n": 32})
    monkeypatch.setattr(recipe_grid, "_cache_file", lambda r, s, b: tmp_path / "cache" / f"{r}-{s}.json")
    out = tmp_path / "grid.json"
    result = recipe_grid.run_grid(["hinge-sn", "small-diffaug"], jobs=1, out=out, log=lambda s: None)
    saved = json.loads(out.read_text())
    assert saved["summary"] == result["summary"] and len(saved["runs"]) == 4
    run = saved["runs"][0]
    assert {"live", "ema", "d_calls_real_train", "d_calls_real_heldout", "curves", "samples_png"} <= set(run)
    # the sample images travel as one PNG strip per run and come back as uint8 images
    loaded = recipe_grid.load_results(out)["runs"][0]["samples"]
    assert torch.tensor(loaded).shape == (recipe_grid.SHIPPED_SAMPLES, 3, 32, 32)
    assert 0 <= run["ema"]["control_mean"] <= 1 and run["ema"]["fid"] > 0
    mean, std = saved["summary"]["hinge-sn"]["ema"]["fid"]
    fids = [r["ema"]["fid"] for r in saved["runs"] if r["recipe"] == "hinge-sn"]
    assert mean == pytest.approx(sum(fids) / 2, abs=1e-3)
    assert std == pytest.approx(abs(fids[0] - fids[1]) / 2 ** 0.5, abs=1e-3)
    # a second call trains nothing: every run is read from the cache
    logs = []
    recipe_grid.run_grid(["hinge-sn", "small-diffaug"], jobs=1, out=out, log=logs.append)
    assert "4 run(s) cached, 0 to train" in logs[0]


@pytest.mark.parametrize("args, message", [
    (["--recipes", "hinge-sn,best"], "unknown recipe(s) best; valid recipes: dcgan"),
    (["--seeds", "0,x"], "--seeds must be comma-separated whole numbers"),
    (["--jobs", "0"], "jobs must be a whole number >= 1"),
    (["--steps", "0"], "steps must be a whole number >= 1"),
])
def test_grid_command_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "grid.json"
    assert main(["stability-grid", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


# ----------------------------------------------------------------------------- cgan-stable
@pytest.mark.slow
def test_cgan_stable_trains_registers_and_generates(tmp_path, monkeypatch, capsys):
    import shutil

    from prodgen import paths
    from prodgen.models import cgan_stable, registry

    shipped = paths.checkpoints_dir()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    manifest = json.loads((shipped / "manifest.json").read_text(encoding="utf-8"))
    shutil.copy(shipped / manifest["judge"]["file"], folder)
    (folder / "manifest.json").write_text(json.dumps({"judge": manifest["judge"]}), encoding="utf-8")
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(folder))

    # the shipped recipe at a tiny size: what `prodgen train cgan-stable` runs, minus the hours
    metrics = cgan_stable.train_checkpoint("cgan-stable", fast=True, log=None, width=8, deep=False, batch_size=64)
    entry = registry.manifest()["cgan-stable"]
    assert entry["training"]["recipe"] == "stable" and entry["training"]["augment"] == "translation,cutout"
    assert entry["training"]["loss"] == "hinge" and entry["training"]["norm"] == "spectral"
    assert entry["metrics"] == json.loads(json.dumps(metrics)) and 0 <= metrics["control"]["mean"] <= 1
    model = registry.load_generator("cgan-stable")
    assert model.accepts == "attributes" and set(model.knobs) == {"truncation", "unspecified"}
    a = model.generate([{"color": "red", "category": "mug"}] * 3, seed=5)
    assert a.shape == (3, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, model.generate([{"color": "red", "category": "mug"}] * 3, seed=5))  # same seed, same bytes
    out = tmp_path / "generated"
    assert main(["generate", "--model", "cgan-stable", "--attrs", "color=red", "--n", "2", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 2 and (out / "metadata.csv").is_file()
    with pytest.raises(ValueError, match="unknown training setting"):
        cgan_stable.train_checkpoint("cgan-stable", fast=True, log=None, learning_rate=1.0)

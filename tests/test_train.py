"""The training engine: determinism, resume == uninterrupted, the time budget, precision/layout paths, bad input."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prodgen.engine.train import (
    Checkpoints,
    GANSettings,
    History,
    OnEpoch,
    Progress,
    SampleGrid,
    gan_step,
    resolve_precision,
    train_gan,
    train_vae,
)
from prodgen.models.dcgan import build_pair

FAST = dict(batch_size=32, progress=False, n_samples=8, device="cpu", precision="fp32")  # train_vae's; bf16: own test
FP32 = GANSettings(precision="fp32")


def _quiet(*more, n=8):
    """train_gan's callbacks for a test: no progress bar, an n-image sample grid, and ``more``."""
    return [Progress(False), SampleGrid(n), *more]


GFAST = dict(batch_size=32, device="cpu", settings=FP32, callbacks=_quiet())  # train_gan's


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


@pytest.fixture(scope="module")
def catalog(squares_catalog):  # tests/conftest.py: 128 products, 4 steps of 32 per epoch
    return squares_catalog


def _gan(seed=0):
    return build_pair(z_dim=16, width=8, seed=seed)


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_history_and_samples(catalog):
    g, d = _gan()
    h = train_gan(g, d, catalog, epochs=2, **GFAST)
    assert set(h.steps) == {"loss_d", "loss_g", "d_real", "d_fake"} and len(h.steps["loss_d"]) == 8
    assert all(len(v) == 2 for v in h.epochs.values()) and h.epochs_done == 2
    assert h.images_seen == 256 and h.seconds > 0 and not h.stopped_early
    assert [e for e, _ in h.samples] == [1, 2]
    assert h.samples[0][1].shape == (8, 3, 32, 32) and h.samples[0][1].dtype == torch.uint8
    assert all(0 < v < 1 for v in h.steps["d_real"] + h.steps["d_fake"])
    assert math.isclose(h.epochs["loss_d"][0], sum(h.steps["loss_d"][:4]) / 4, rel_tol=1e-9)
    assert not g.training and not d.training  # models end in eval mode
    assert "2 epochs" in repr(h)


def test_same_seed_same_result_and_another_seed_differs(catalog):
    (g1, d1), (g2, d2), (g3, d3) = _gan(), _gan(), _gan()
    h1 = train_gan(g1, d1, catalog, epochs=1, seed=3, **GFAST)
    h2 = train_gan(g2, d2, catalog, epochs=1, seed=3, **GFAST)
    h3 = train_gan(g3, d3, catalog, epochs=1, seed=4, **GFAST)
    assert _same(g1, g2) and _same(d1, d2) and h1.steps == h2.steps
    assert torch.equal(h1.samples[-1][1], h2.samples[-1][1])
    assert not _same(g1, g3) and h1.steps != h3.steps


def test_resume_equals_uninterrupted_training(catalog, tmp_path):
    g, d = _gan()
    whole = train_gan(g, d, catalog, epochs=2, **GFAST)
    path = tmp_path / "run.pt"
    g1, d1 = _gan()
    train_gan(g1, d1, catalog, epochs=1, **{**GFAST, "callbacks": _quiet(Checkpoints(path))})  # "interrupted" here
    assert path.is_file() and not list(tmp_path.glob(".*tmp"))  # written atomically: no temp file left
    g2, d2 = _gan(seed=7)  # a fresh process would build the models anew
    resumed = train_gan(g2, d2, catalog, epochs=2, **{**GFAST, "callbacks": _quiet(Checkpoints(path, resume=True))})
    assert _same(g, g2) and _same(d, d2)
    assert resumed.steps == whole.steps and resumed.epochs == whole.epochs and resumed.images_seen == 256
    resuming = {**GFAST, "callbacks": _quiet(Checkpoints(path, resume=True))}
    again = train_gan(g2, d2, catalog, epochs=2, **resuming)  # nothing left to do
    assert again.epochs_done == 2 and _same(g, g2)


def test_resume_without_a_file_starts_afresh_and_bad_files_are_clear_errors(catalog, tmp_path):
    g, d = _gan()
    h = train_gan(g, d, catalog, epochs=1, **{**GFAST, "callbacks": _quiet(Checkpoints(tmp_path / "new.pt", True))})
    assert h.epochs_done == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        train_gan(*_gan(), catalog, epochs=1, **{**GFAST, "callbacks": _quiet(Checkpoints(bad, resume=True))})
    with pytest.raises(ValueError, match="does not fit this model"):
        train_gan(*build_pair(z_dim=16, width=4), catalog, epochs=2,
                  **{**GFAST, "callbacks": _quiet(Checkpoints(tmp_path / "new.pt", resume=True))})


def test_max_minutes_stops_at_a_batch_boundary(catalog, tmp_path):
    g, d = _gan()
    h = train_gan(g, d, catalog, epochs=50, max_minutes=1e-5,
                  **{**GFAST, "callbacks": _quiet(Checkpoints(tmp_path / "c.pt"))})
    assert h.stopped_early and h.epochs_done == 1
    assert len(h.steps["loss_d"]) < 50 * 4 and h.images_seen == 32 * len(h.steps["loss_d"])
    assert len(h.samples) == 1 and (tmp_path / "c.pt").is_file()  # a picture and a checkpoint even so


def test_steps_budget_stops_mid_epoch_and_time_cap_says_so(catalog, capsys):
    g, d = _gan()  # 128 products of batch 32: 4 steps per epoch; 6 steps end inside the second epoch
    h = train_gan(g, d, catalog, epochs=50, steps=6, max_minutes=10, **GFAST)
    assert len(h.steps["loss_d"]) == 6 and h.images_seen == 6 * 32 and h.epochs_done == 2
    assert not h.stopped_early and len(h.samples) == 2  # the budget was met, not cut short
    g2, d2 = _gan()
    h2 = train_gan(g2, d2, catalog, epochs=2, **GFAST)
    assert h2.steps["loss_d"][:6] == h.steps["loss_d"]  # the same first six steps as an unbudgeted run
    assert "TIME CAP" not in capsys.readouterr().out
    h3 = train_gan(*_gan(), catalog, epochs=50, steps=100, max_minutes=1e-5, **GFAST)
    assert h3.stopped_early and len(h3.steps["loss_d"]) < 100
    out = capsys.readouterr().out
    assert f"STOPPED BY THE TIME CAP (1e-05 min) after {len(h3.steps['loss_d'])} of 100 steps" in out
    train_gan(*_gan(), catalog, epochs=50, max_minutes=1e-5, **GFAST)  # a time budget, not a cap: quiet
    assert "TIME CAP" not in capsys.readouterr().out
    hv = train_vae(_vae(), catalog, epochs=3, steps=5, loss_fn=_vae_loss, **FAST)
    assert len(hv.steps["loss"]) == 5 and hv.epochs_done == 2
    with pytest.raises(ValueError, match=r"steps=9 needs more than the 2 epoch\(s\) of 4 steps"):
        train_gan(*_gan(), catalog, epochs=2, steps=9, **GFAST)


def test_history_argument_continues_the_curves(catalog):
    g, d = _gan()
    h = train_gan(g, d, catalog, epochs=1, **GFAST)
    h2 = train_gan(g, d, catalog, epochs=1, **{**GFAST, "callbacks": _quiet(h)})
    assert h2 is h and h.epochs_done == 2 and [e for e, _ in h.samples] == [1, 2] and h.images_seen == 256


@pytest.mark.parametrize("precision, channels_last", [("bf16", True), ("fp32", False), ("bf16", False)])
def test_precision_and_layout_paths_run(catalog, precision, channels_last):
    g, d = _gan()
    h = train_gan(g, d, catalog, epochs=1, **{**GFAST, "settings": GANSettings(precision=precision,
                                                                            channels_last=channels_last)})
    assert all(math.isfinite(v) for v in h.steps["loss_d"] + h.steps["loss_g"])
    assert g.net[0].weight.dtype == torch.float32  # autocast leaves the weights in fp32
    g2, d2 = _gan()
    train_gan(g2, d2, catalog, epochs=1, **{**GFAST, "settings": GANSettings(precision=precision,
                                                                        channels_last=channels_last)})
    assert _same(g, g2)  # deterministic on every path


def test_hinge_and_custom_losses(catalog):
    h = train_gan(*_gan(), catalog, epochs=1, **{**GFAST, "settings": GANSettings(loss="hinge", precision="fp32")})
    assert all(math.isfinite(v) for v in h.steps["loss_d"])
    pair = (lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(), lambda f: F.softplus(-f).mean())
    (g1, d1), (g2, d2) = _gan(), _gan()
    train_gan(g1, d1, catalog, epochs=1, **{**GFAST, "settings": GANSettings(loss=pair, precision="fp32")})
    train_gan(g2, d2, catalog, epochs=1, **GFAST)
    assert _same(g1, g2)


def test_resolve_precision():
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp32"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="unknown precision 'fp16'; valid precisions: auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=1000), "fewer than one batch of 1000"),
    (dict(batch_size=0), "batch_size must be"),
    (dict(epochs=-1), "epochs must be"),
    (dict(max_minutes=0), "max_minutes must be"),
    (dict(steps=0), "steps must be a whole number >= 1"),
    (dict(steps=2.5), "steps must be a whole number >= 1"),
    (dict(settings=dict(lr=1e-3)), "settings must be a GANSettings, got dict"),
    (dict(callbacks=[print]), "callbacks must be prodgen.engine.callbacks.Callback objects"),
    (dict(condition=0.1), "condition must be None, 'labels' or a function"),
])
def test_bad_input_is_a_clear_error(catalog, kwargs, message):
    args = {**GFAST, "epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        train_gan(*_gan(), catalog, **args)


@pytest.mark.parametrize("kwargs, message", [
    (dict(loss="wgan"), "unknown GAN loss 'wgan'; valid losses: non-saturating"),
    (dict(precision="half"), "unknown precision"),
    (dict(lr=0), "lr must be a number > 0"),
    (dict(ema_decay=1.0), r"ema_decay must be in \[0, 1\)"),
])
def test_bad_settings_are_refused_when_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GANSettings(**kwargs)
    with pytest.raises(ValueError, match="n_samples must be a whole number >= 0"):
        SampleGrid(-1)


def test_on_epoch_runs_after_each_epoch_before_the_checkpoint(catalog, tmp_path):
    seen = []
    path = tmp_path / "c.pt"
    on_epoch = OnEpoch(lambda epoch, history: seen.append((epoch, history.epochs_done, path.is_file())))
    train_gan(*_gan(), catalog, epochs=2, **{**GFAST, "callbacks": _quiet(Checkpoints(path), on_epoch)})
    assert seen == [(1, 1, False), (2, 2, True)]  # the epoch is recorded; the first checkpoint comes after


def test_gan_step_returns_detached_scalars():
    g, d = _gan()
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    out = gan_step(g, d, opt_g, opt_d, torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 16))
    assert set(out) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert all(v.ndim == 0 and not v.requires_grad for v in out.values())


def test_progress_bar_and_summary_line(catalog, capsys):
    train_gan(*_gan(), catalog, epochs=1, **{**GFAST, "callbacks": [Progress()]})
    captured = capsys.readouterr()
    assert "trained 1 epoch(s)" in captured.out and "loss_d" in captured.out


def test_history_plot():
    import matplotlib

    matplotlib.use("Agg")
    h = History(steps={"loss_d": [1.0, 0.8, 0.7] * 20, "loss_g": [0.7] * 60})
    ax = h.plot()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss_d", "loss_g"]
    with pytest.raises(ValueError, match="unknown curve"):
        h.plot("nope")


# ----------------------------------------------------------------------------- conditional GANs
class _CondG(nn.Module):
    def __init__(self):
        super().__init__()
        self.z_dim = 8
        self.embed = nn.Embedding(3, 8)
        self.net = nn.Sequential(nn.Linear(8, 3 * 32 * 32), nn.Tanh())

    def forward(self, z, y):
        return self.net(z + self.embed(y[:, 0])).view(-1, 3, 32, 32)


class _CondD(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 4, 4)
        self.embed = nn.Embedding(3, 4 * 8 * 8)

    def forward(self, x, y):
        h = F.leaky_relu(self.conv(x), 0.2).flatten(1)
        return (h * self.embed(y[:, 0])).sum(1)


def test_conditional_models_get_the_labels(catalog):
    torch.manual_seed(0)
    g, d = _CondG(), _CondD()
    h = train_gan(g, d, catalog, epochs=1, condition="labels", **GFAST)
    assert h.samples[0][1].shape == (8, 3, 32, 32)


# ----------------------------------------------------------------------------- VAEs
class _TinyVAE(nn.Module):
    def __init__(self, z_dim=4):
        super().__init__()
        self.z_dim = z_dim
        self.enc = nn.Sequential(nn.Conv2d(3, 4, 4, 4), nn.Flatten(), nn.Linear(4 * 8 * 8, 2 * z_dim))
        self.dec = nn.Sequential(nn.Linear(z_dim, 3 * 32 * 32), nn.Tanh())

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.dec(z).view(-1, 3, 32, 32), mu, logvar

    def sample(self, n, generator=None):
        z = torch.randn(n, self.z_dim, generator=generator, device=self.dec[0].weight.device)
        return self.dec(z).view(-1, 3, 32, 32)


def _vae_loss(x, output, beta):
    x_hat, mu, logvar = output
    recon = F.mse_loss(x_hat, x, reduction="sum") / len(x)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def _vae():
    torch.manual_seed(0)
    return _TinyVAE()


def test_train_vae_history_determinism_and_resume(catalog, tmp_path):
    m1, m2 = _vae(), _vae()
    h1 = train_vae(m1, catalog, epochs=2, loss_fn=_vae_loss, **FAST)
    h2 = train_vae(m2, catalog, epochs=2, loss_fn=_vae_loss, **FAST)
    assert set(h1.steps) == {"loss", "recon", "kl"} and len(h1.steps["loss"]) == 8
    assert _same(m1, m2) and h1.steps == h2.steps
    assert h1.samples[-1][1].shape == (8, 3, 32, 32) and h1.samples[-1][1].dtype == torch.uint8
    assert h1.epochs["loss"][-1] < h1.epochs["loss"][0]
    m3 = _vae()
    train_vae(m3, catalog, epochs=1, loss_fn=_vae_loss, checkpoint=tmp_path / "v.pt", **FAST)
    m4 = _vae()
    h4 = train_vae(m4, catalog, epochs=2, loss_fn=_vae_loss, checkpoint=tmp_path / "v.pt", resume=True, **FAST)
    assert _same(m1, m4) and h4.steps == h1.steps
    with pytest.raises(ValueError, match="it is a 'vae' checkpoint, not a 'gan' one"):
        train_gan(*_gan(), catalog, epochs=2, **{**GFAST, "callbacks": _quiet(Checkpoints(tmp_path / "v.pt", True))})


def test_train_vae_bf16_and_beta(catalog):
    h = train_vae(_vae(), catalog, epochs=1, loss_fn=_vae_loss, beta=0.0, **{**FAST, "precision": "bf16"})
    assert all(math.isfinite(v) for v in h.steps["loss"])
    assert h.steps["loss"] == pytest.approx(h.steps["recon"])  # beta = 0: the KL term drops out


# ----------------------------------------------------------------------------- prodgen train's options
def _tiny_dcgan(monkeypatch, tmp_path):
    """The dcgan recipe with tiny networks, and an empty checkpoints folder standing in for the shipped one."""
    from prodgen.models import dcgan

    monkeypatch.setitem(dcgan.CHECKPOINT_CONFIG, "width", 8)
    monkeypatch.setitem(dcgan.CHECKPOINT_CONFIG, "z_dim", 16)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(shipped))
    return shipped


@pytest.mark.slow  # ~8 s on a busy 2-core machine
def test_train_out_epochs_seed_and_resume(monkeypatch, tmp_path, capsys):
    from prodgen import cli
    from prodgen.models import registry

    shipped = _tiny_dcgan(monkeypatch, tmp_path)
    out = tmp_path / "runs" / "mine.pt"
    argv = ["train", "dcgan", "--fast", "--out", str(out), "--device", "cpu", "--seed", "3", "--batch", "64"]
    assert cli.main([*argv, "--epochs", "2"]) == 0
    assert f"saved dcgan to {out}" in capsys.readouterr().out
    assert list(shipped.iterdir()) == []  # --out leaves the shipped checkpoint and the manifest alone
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine.pt", "mine.pt.sha256", "mine.state.pt"]
    model, info = registry.load_file(out)
    assert info["name"] == "dcgan" and info["config"]["width"] == 8 and not model.training
    assert info["training"]["seed"] == 3 and info["training"]["batch_size"] == 64
    assert info["training"]["epochs_done"] == 2
    assert info["training"]["images_seen"] == 2 * 1024 and info["training"]["processes"] == 1
    first = {k: v.clone() for k, v in model.state_dict().items()}
    assert cli.main([*argv, "--epochs", "3", "--resume"]) == 0  # the total to reach: one more epoch
    model, info = registry.load_file(out)
    assert info["training"]["epochs_done"] == 3 and info["training"]["images_seen"] == 3 * 1024
    assert any(not torch.equal(first[k], v) for k, v in model.state_dict().items())
    assert len(info["extra"]["sample_epochs"]) == 3  # the history came back from the training state


def test_train_without_out_replaces_the_shipped_checkpoint(monkeypatch, tmp_path):
    from prodgen import paths
    from prodgen.models import registry

    shipped = _tiny_dcgan(monkeypatch, tmp_path)
    assert registry.state_path("dcgan") == paths.cache_dir() / "train-state" / "dcgan.pt"
    monkeypatch.setattr(registry, "state_path", lambda name, out=None: tmp_path / "state" / f"{name}.pt")
    metrics = registry.train("dcgan", fast=True, log=None, device="cpu", minutes=0.5)
    assert metrics["epochs_done"] == 1 and (shipped / "dcgan.pt").is_file()
    assert registry.manifest()["dcgan"]["training"]["minutes"] == 0.5  # --minutes replaced the fast budget
    assert (tmp_path / "state" / "dcgan.pt").is_file()


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be a whole number >= 1, got 0"),
    (["--epochs", "two"], "--epochs must be a whole number >= 1, got 'two'"),
    (["--minutes", "-1"], "--minutes must be a positive number, got '-1'"),
    (["--minutes", "nan"], "--minutes must be a positive number"),
    (["--seed", "1.5"], "--seed must be a whole number >= 0, got '1.5'"),
    (["--batch", "1"], "--batch must be a whole number >= 2, got 1"),
    (["--out", "somewhere/"], "--out must be the path of a .pt file"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_train_bad_values_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    from prodgen import cli

    shipped = _tiny_dcgan(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "dcgan", "--fast", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(shipped.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]


def test_models_with_their_own_loop_refuse_engine_options_and_torchrun(monkeypatch, capsys):
    from prodgen import cli
    from prodgen.models import registry

    assert cli.main(["train", "text-gru", "--minutes", "3"]) == 2  # its recipe has epochs, not a time budget
    assert "prodgen train text-gru takes no --minutes" in capsys.readouterr().err
    assert cli.main(["train", "judge", "--minutes", "1", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "takes no --resume, --minutes" in err and "dcgan, vae, cgan-projection" in err
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    with pytest.raises(ValueError, match="judge trains in one process .* under torchrun train one of dcgan"):
        registry.train("judge", fast=True, log=None)


def test_python_dash_m_prodgen_is_the_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "prodgen", "train", "dcgan", "--epochs", "-3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr == "prodgen: error: --epochs must be a whole number >= 1, got -3\n"


# ----------------------------------------------------------------------------- one recipe for every trainer
def test_every_trainer_goes_through_the_one_recipe(monkeypatch):
    """Each trainable name's train_checkpoint hands its family's Recipe to prodgen.models.recipe.train (the one
    skeleton), and nothing else trains: a stand-in for recipe.train sees every name with its own family's recipe."""
    import importlib

    from prodgen.models import recipe, registry

    seen = {}

    def spy(rec, name, **kwargs):
        seen[name] = rec
        return {"spied": name}

    monkeypatch.setattr(recipe, "train", spy)
    trainable = [s for s in registry.specs() if s.train is not None]
    for spec in trainable:
        module = importlib.import_module(spec.train.__module__)
        assert spec.train(spec.name, fast=True, log=None) == {"spied": spec.name}, spec.name
        assert seen[spec.name] is module.RECIPE and isinstance(module.RECIPE, recipe.Recipe), spec.name
    assert set(seen) == {s.name for s in trainable}


def test_the_recipe_refuses_unknown_names_and_settings():
    from prodgen.models import cgan, dcgan, recipe

    with pytest.raises(ValueError, match="unknown model 'cgan-nope'; conditional GANs: cgan-concat, cgan-projection"):
        recipe.train(cgan.RECIPE, "cgan-nope", log=None)
    with pytest.raises(ValueError, match="unknown training setting.s. colour; valid: z_dim, width"):
        recipe.train(dcgan.RECIPE, "dcgan", log=None, overrides={"colour": 1})

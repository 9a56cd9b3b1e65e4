"""Latent flow (lesson 14; prodgen.models.latent): lesson 11/13's U-Net takes ``channels`` and ``size`` while the
shipped checkpoints load unchanged and give the same bytes, a latent network generates 64 px uint8 images through
the protocol with a tiny untrained autoencoder, deterministically per seed, EN/ZH through the text reader, the
latent cache is keyed by the autoencoder's sha256 (and rebuilt when it changes), the leaderboard keys latent-64's
rows on both checkpoints, and `prodgen train latent-64` without a shipped autoencoder says what to train first."""
from __future__ import annotations

import hashlib

import pytest
import torch

from prodgen.models import autoencoder as am
from prodgen.models import diffusion as dm
from prodgen.models import flow as fm
from prodgen.models import latent as lm

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _sha(x: torch.Tensor) -> str:
    return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def latent_net(tiny_ae):
    """A latent flow U-Net of width 8, its weights perturbed so the output depends on input, time and request."""
    torch.manual_seed(1)
    net = lm.latent_network(tiny_ae, width=8)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


# ----------------------------------------------------------------------------- the network takes a shape
# sha256 of the shipped models' images for fixed requests and seeds, recorded before UNet took channels / size
# (this machine, where the CPU computes bf16 natively: the samplers' default precision is then bf16)
BEFORE = {
    "flow": "de9dacde68959c74362dfa8d08b91dc74a1fffc105b8fe4db6942e5e93cfae85",
    "diffusion": "588d398cb17346c3efc29d05c2cb92b28851711538ec1c69d1d35aa97b5e8737",
    "flow-fast": "f3093273477ec87e95b45f59b21f53b0f42992057a897981f11e93f6cd3b2a31",
    "flow-text": "15d8c72f53ef0bfc9157c2b6a6881bad7b0dacc187409c5753876800f6a0a78d",
    "restore-deblur": "08f157ab29f2f7ac0b93f2af2f62058752651d9e6ff1a44acbbb90b2867121c9",
    "restore-denoise": "662fa6e73ef4867da62121361268dcb666d1814dbf80e4cef41f0a6db44839bd",
}


def test_shipped_checkpoints_load_unchanged_and_give_the_same_bytes():
    from prodgen.apps.degrade import degrade
    from prodgen.catalog import load_catalog, normalize
    from prodgen.engine.train import cpu_has_native_bf16
    from prodgen.models import registry

    if not cpu_has_native_bf16():
        pytest.skip("the recorded bytes are those of a CPU with native bf16")
    missing = [n for n in ("flow", "diffusion", "flow-fast", "flow-text") if n not in registry.manifest()]
    if missing:
        pytest.skip(f"not shipped here: {', '.join(missing)}")
    requests = [{"category": "mug", "color": "red"}, {"category": "t-shirt"}, {}, {"color": "teal"}]
    got = {}
    for name, knobs in (("flow", {"steps": 3}), ("diffusion", {"steps": 3, "eta": 1.0}), ("flow-fast", {"steps": 2}),
                        ("flow-text", {"steps": 2})):
        model = registry.load_generator(name)  # strict load_state_dict: the same keys and shapes as before
        assert model.network.shape == (3, 32, 32)
        asked = ["a red mug", "一件蓝色的T恤"] if model.reads_text else requests
        got[name] = _sha(model.generate(asked, seed=7, **knobs))
    flow = registry.load_generator("flow")
    photos = normalize(load_catalog("test", n=2000, progress=False).images[:3])
    for task in ("deblur", "denoise"):
        damaged, op = degrade(task, photos, seed=1)
        got[f"restore-{task}"] = _sha(flow.restore(damaged, op, seed=5, steps=3))
    assert got == BEFORE


def test_the_unet_takes_channels_and_size_with_the_same_weight_names():
    base, latent = fm.FlowUNet(8), fm.FlowUNet(8, channels=4, size=16)
    shapes = {k: tuple(v.shape) for k, v in base.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in fm.FlowUNet(8, channels=3, size=32).state_dict().items()}
    differ = {k for k, v in latent.state_dict().items() if tuple(v.shape) != shapes[k]}
    assert set(latent.state_dict()) == set(shapes) and differ == {"stem.weight", "head.2.weight", "head.2.bias"}
    assert base.shape == (3, 32, 32) and latent.shape == (4, 16, 16) and dm.sample_shape(latent) == (4, 16, 16)
    assert fm.build({"width": 8}).shape == (3, 32, 32) and dm.build({"width": 8}).shape == (3, 32, 32)
    assert fm.build({"width": 8, "channels": 4, "size": 16}).shape == (4, 16, 16)
    x = torch.randn(2, 4, 16, 16)
    assert latent(x, torch.rand(2), torch.full((2, 5), -1)).shape == (2, 4, 16, 16)
    assert fm.sample(latent, torch.full((3, 5), -1), steps=2, clip=False).shape == (3, 4, 16, 16)
    for bad in ({"channels": 0}, {"size": 18}, {"size": True}, {"channels": 2.5}):
        with pytest.raises(ValueError, match="must be a whole number"):
            dm.UNet(8, **bad)


# ----------------------------------------------------------------------------- the protocol at 64 px
def test_a_latent_model_generates_64px_images_deterministically(tiny_ae, latent_net):
    model = lm.LatentFlowModel(latent_net, "latent-64", {}, autoencoder=tiny_ae)
    assert model.image_size == 64 and not model.can_edit and not model.can_restore
    requests = [{"category": "mug", "color": "red"}, {}, {"pattern": "striped"}]
    a = model.generate(requests, seed=3, steps=3)
    assert a.shape == (3, 3, 64, 64) and a.dtype == torch.uint8
    assert torch.equal(a, model.generate(requests, seed=3, steps=3))  # same seed, same bytes
    assert not torch.equal(a, model.generate(requests, seed=4, steps=3))
    assert model.generate([], seed=0).shape == (0, 3, 64, 64)
    # the images are the autoencoder's decoding of the flow's latents, not clamped to [-1, 1] before it
    prepared = model.prepare(requests)
    draws = model._latents(prepared, torch.Generator().manual_seed(3), steps=3)
    assert draws["x_1"].shape == (3, 4, 16, 16)
    z = fm.sample(latent_net, draws["condition"], steps=3, x_1=draws["x_1"], clip=False)
    assert z.abs().max() > 1
    from prodgen.catalog import denormalize

    assert torch.equal(a, denormalize(tiny_ae.decode(z)))
    groups = model.generate_groups([(requests[:2], 3), (requests[2:], 9)], steps=3)
    alone = [model.generate(requests[:2], seed=3, steps=3), model.generate(requests[2:], seed=9, steps=3)]
    for got, want in zip(groups, alone):  # a group's images are its own, up to the batch size's rounding
        assert got.shape == want.shape and (got.int() - want.int()).abs().max() <= 2


def test_the_text_model_reads_english_and_chinese(tiny_ae, latent_net):
    from prodgen.models.protocol import Request

    model = lm.LatentFlowTextModel(latent_net, "latent-64-text", {}, autoencoder=tiny_ae)
    assert model.reads_text and model.image_size == 64
    images = model.generate(["a red mug", "一个红色的杯子"], seed=0, steps=2)
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.uint8
    heard = [{"category": "mug", "color": "red"}]
    assert model.understood(["a red mug"]) == model.understood(["一个红色的杯子"]) == heard
    assert model.generate([Request({"category": "mug"})], seed=0, steps=2).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="description"):
        model.generate([Request({"color": "red"})], seed=0)


def test_a_network_and_an_autoencoder_that_do_not_fit_are_refused(tiny_ae):
    with pytest.raises(ValueError, match="do not belong together"):
        lm.LatentFlowModel(fm.FlowUNet(8), "latent-64", {}, autoencoder=tiny_ae)


# ----------------------------------------------------------------------------- the latent cache
def test_the_latent_cache_is_keyed_by_the_autoencoders_sha(tiny_ae, tmp_path, monkeypatch):
    images = torch.randint(0, 256, (6, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    calls = []
    encode = tiny_ae.encode
    monkeypatch.setattr(tiny_ae, "encode", lambda x, **kw: calls.append(len(x)) or encode(x, **kw))
    first = lm.cached_latents(tiny_ae, images, "a" * 64, folder=tmp_path)
    assert first.shape == (6, 4, 16, 16) and torch.equal(first, encode(images)) and calls == [6]
    assert torch.equal(lm.cached_latents(tiny_ae, images, "a" * 64, folder=tmp_path), first) and calls == [6]
    files = sorted(tmp_path.glob("latents-*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))  # written atomically: no temporary left
    lm.cached_latents(tiny_ae, images, "b" * 64, folder=tmp_path)  # another autoencoder: encoded again
    assert calls == [6, 6] and len(list(tmp_path.glob("latents-*.pt"))) == 2
    lm.cached_latents(tiny_ae, images[:5], "a" * 64, folder=tmp_path)  # other photos: encoded again
    assert calls == [6, 6, 5]
    files[0].write_bytes(b"not a torch file")  # a damaged file is re-encoded, never trusted
    assert torch.equal(lm.cached_latents(tiny_ae, images, "a" * 64, folder=tmp_path), first) and calls == [6, 6, 5, 6]
    assert lm.cache_key("a" * 64, images) != lm.cache_key("b" * 64, images)


def test_latents_are_the_engines_data(tiny_ae, latent_net):
    import copy

    from prodgen.engine.train import train_flow

    gen = torch.Generator().manual_seed(0)
    data = lm.Latents(torch.randn(64, 4, 16, 16, generator=gen), torch.randint(0, 3, (64, 5), generator=gen))
    net = copy.deepcopy(latent_net).train()
    history = train_flow(net, data, epochs=1, batch_size=16, n_samples=0, progress=False, ema=copy.deepcopy(net))
    assert history.images_seen == 64 and len(history.steps["loss"]) == 4
    with pytest.raises(ValueError, match="differ in number"):
        lm.Latents(torch.zeros(3, 4, 16, 16), torch.zeros(2, 5, dtype=torch.long))


def test_under_torchrun_each_rank_gets_its_slice_of_the_latents_as_they_are(monkeypatch):
    """The engine's sharded batches (``_Loop._batches`` with several processes) normalise uint8 photos only: float
    latents reach the step unchanged, each rank its own half of every global batch."""
    from types import SimpleNamespace

    from prodgen.engine import train

    gen = torch.Generator().manual_seed(0)
    data = lm.Latents(3 * torch.randn(8, 4, 16, 16, generator=gen), torch.arange(40).view(8, 5))
    monkeypatch.setattr(train.distributed, "world_size", lambda: 2)
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(train.distributed, "rank", lambda rank=rank: rank)
        loop = SimpleNamespace(world=2, catalog=data, batch_size=4, data_gen=torch.Generator().manual_seed(0),
                               device=torch.device("cpu"))
        seen += [(x, y) for x, y in train._Loop._batches(loop)]
    assert len(seen) == 4 and all(x.shape == (2, 4, 16, 16) and x.dtype == torch.float32 for x, _ in seen)
    for x, y in seen:
        assert torch.equal(x, data.images[y[:, 0] // 5])  # the latents themselves, not rescaled as pixels
    assert sorted(torch.cat([y[:, 0] for _, y in seen]).tolist()) == list(range(0, 40, 5))


# ----------------------------------------------------------------------------- shipped: registry, leaderboard, CLI
@pytest.fixture
def private_checkpoints(tmp_path, monkeypatch, tiny_ae):
    """A private checkpoint folder with judge-64, the SSL encoder and the text reader, and a tiny ``ae-64``."""
    from prodgen.models import registry

    from cli_helpers import shipped_subset

    folder = shipped_subset(tmp_path / "checkpoints", ("judge-64", "ssl-encoder", "text-votes"), monkeypatch)
    registry.save("ae-64", tiny_ae, {"width": 8, "channels": 4, "norm": "group"})
    return folder


def test_without_a_shipped_autoencoder_train_says_what_to_run_first(monkeypatch, capsys, tmp_path):
    from cli_helpers import in_this_process, shipped_subset

    shipped_subset(tmp_path / "checkpoints", ("judge-64",), monkeypatch)
    run = in_this_process(monkeypatch, capsys)
    for name in ("latent-64", "latent-64-text"):
        code, _, err = run(["train", name, "--fast", "--out", tmp_path / "l.pt"])
        assert code == 2 and "prodgen train ae-64" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "l.pt").exists()
    with pytest.raises(ValueError, match=r"none is shipped: train it first \(prodgen train ae-64\)"):
        lm.LatentFlowModel(fm.FlowUNet(8, channels=4, size=16), "latent-64", {"config": {"autoencoder": "ae-64"}})


def test_shipped_latent_model_names_its_autoencoder(private_checkpoints, latent_net, tiny_ae):
    from prodgen.evaluation import leaderboard
    from prodgen.models import registry

    sha = registry.manifest()["ae-64"]["sha256"]
    config = {"width": 8, "channels": 4, "size": 16, "autoencoder": "ae-64", "autoencoder_sha256": sha}
    registry.save("latent-64", latent_net, config)
    model = registry.load_generator("latent-64")
    assert isinstance(model, lm.LatentFlowModel) and model.generate([{}], seed=0, steps=2).shape == (1, 3, 64, 64)
    assert leaderboard._depends_on("latent-64") == ["latent-64", "judge-64", "ssl-encoder", "ae-64"]
    before = leaderboard.cache_file("latent-64", 64)
    other = am.AutoEncoder(width=8)
    registry.save("ae-64", other, {"width": 8, "channels": 4, "norm": "group"})  # a retrained autoencoder
    assert leaderboard.cache_file("latent-64", 64) != before  # the row is keyed on it too
    with pytest.raises(ValueError, match="retrain it"):
        registry.load_generator("latent-64")


@pytest.mark.slow(seconds=20)
def test_train_latent_64_fast_end_to_end(private_checkpoints, tmp_path, monkeypatch):
    """The recipe on a tiny autoencoder: the 64 px split encoded once (cached), one epoch, measured with judge-64,
    saved; the file loads as a 64 px generator that names its autoencoder."""
    from prodgen.models import registry

    monkeypatch.setattr(lm, "latent_cache_path", lambda key, folder=None: tmp_path / "latents" / f"latents-{key}.pt")
    out = tmp_path / "latent.pt"
    metrics = lm.train_checkpoint("latent-64", fast=True, log=None, out=out, width=8)
    assert {"control", "fid", "fid_floor"} <= set(metrics) and len(list((tmp_path / "latents").glob("*.pt"))) == 1
    model = registry.load_generator_file(out)
    assert isinstance(model, lm.LatentFlowModel) and model.info["config"]["autoencoder"] == "ae-64"
    assert model.info["config"]["autoencoder_sha256"] == registry.manifest()["ae-64"]["sha256"]
    assert model.generate([{"color": "red"}], seed=0, steps=2).shape == (1, 3, 64, 64)

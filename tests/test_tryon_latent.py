"""The learned try-on model ``tryon-64`` (lesson 15; prodgen.models.tryon_latent): with a tiny untrained autoencoder
and network, every pixel outside the slot's mask is the scene's byte for byte, shapes and dtypes hold, a seed gives
the same bytes and another seed others, bad input is one ValueError line, the spec is a try-on model and never a
generator, the UNet's new ``in_channels`` leaves the default network's weights as they were, the pairs and the
loss do what they say, and ``prodgen train tryon-64`` without a shipped ae-64 says what to train first."""
from __future__ import annotations

import pytest
import torch

from prodgen.catalog.scenes import KINDS, scene_at
from prodgen.models import autoencoder as am
from prodgen.models import flow as fm
from prodgen.models import tryon_latent as tl

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def model(tiny_ae):
    """``LatentTryOn`` on a width-8 network whose weights are perturbed so its output depends on every input."""
    torch.manual_seed(1)
    net = tl.tryon_network(8)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return tl.LatentTryOn(net, "tryon-64", {}, autoencoder=tiny_ae)


@pytest.fixture(scope="module")
def inputs():
    """Every slot of a few test scenes (both kinds), with 64 px test catalog photos that fit."""
    from prodgen.catalog import load_catalog

    scenes = [scene_at("test", 0, i) for i in range(8)]
    assert {sc.params["kind"] for sc in scenes} == set(KINDS)
    catalog = load_catalog("test", 400, size=64, progress=False)
    rows = [(sc, slot) for sc in scenes for slot in sc.masks]
    products = tl._products(catalog)
    from prodgen.catalog.scenes import SLOTS

    photos = torch.stack([catalog.images[next(i for i, p in enumerate(products)
                                              if p["category"] in SLOTS[slot].categories)] for _, slot in rows])
    return [sc for sc, _ in rows], [slot for _, slot in rows], photos


def test_outside_the_mask_every_pixel_is_the_scenes(model, inputs):
    scenes, slots, photos = inputs
    out = model.try_on(scenes, slots, photos, seed=3, steps=2)
    assert out.shape == (len(scenes), 3, 64, 64) and out.dtype == torch.uint8
    for sc, slot, image in zip(scenes, slots, out):
        scene, mask = torch.from_numpy(sc.image), torch.from_numpy(sc.masks[slot])
        assert torch.equal(image[:, ~mask], scene[:, ~mask]), f"{slot}: a pixel outside the mask changed"
        assert (image[:, mask] != scene[:, mask]).any(), f"{slot}: nothing was regenerated inside the mask"
    one = model.try_on(scenes[0], slots[0], photos[0], seed=3, steps=2)
    assert one.shape == (3, 64, 64)


def test_a_seed_gives_the_same_bytes_and_another_seed_others(model, inputs):
    scenes, slots, photos = (x[:4] for x in inputs)
    a = model.try_on(scenes, slots, photos, seed=5, steps=3, sampler="euler")
    assert torch.equal(a, model.try_on(scenes, slots, photos, seed=5, steps=3, sampler="euler"))
    b = model.try_on(scenes, slots, photos, seed=6, steps=3, sampler="euler")
    assert not torch.equal(a, b)
    assert tl.LatentTryOn.try_on_draws


def test_the_product_photo_and_guidance_change_the_result(model, inputs):
    scenes, slots, photos = (x[:3] for x in inputs)
    a = model.try_on(scenes, slots, photos, seed=1, steps=2)
    assert not torch.equal(a, model.try_on(scenes, slots, photos.flip(0), seed=1, steps=2))
    assert not torch.equal(a, model.try_on(scenes, slots, photos, seed=1, steps=2, guidance=0.0))
    ignored = model.try_on(scenes, slots, photos, seed=1, steps=2, guidance=0.0)
    assert torch.equal(ignored, model.try_on(scenes, slots, photos.flip(0), seed=1, steps=2, guidance=0.0))


def test_bad_input_is_one_line(model, inputs, tiny_ae):
    scenes, slots, photos = inputs
    bad = [
        (lambda: model.try_on(scenes[:2], slots[:2], photos[:2, :, :32, :32]), "64 x 64"),
        (lambda: model.try_on(scenes[:2], ["table", "table"], photos[:2]), "unknown slot"),
        (lambda: model.try_on(scenes[:2], slots[:2], photos[:2], guidance=-1.0), "guidance"),
        (lambda: model.try_on(scenes[:2], slots[:2], photos[:2], sampler="rk4"), "sampler"),
        (lambda: model.generate([{}]), "not an image generator"),
        (lambda: tl.LatentTryOn(fm.FlowUNet(8, channels=4, size=16), "t", {}, autoencoder=tiny_ae), "13"),
    ]
    if scenes[0].params["kind"] == "tabletop":  # the scene lacks the slot either way
        bad[1] = (lambda: model.try_on(scenes[:1], ["top"], photos[:1]), "unknown slot")
    for call, words in bad:
        with pytest.raises(ValueError, match=words) as caught:
            call()
        assert len(str(caught.value).splitlines()) == 1


def test_the_spec_is_a_try_on_model_never_a_generator():
    from prodgen.models import registry

    found = registry.spec("tryon-64")
    assert found.is_tryon and not found.is_generator and found.lesson == 15 and found.resolution == 64
    assert "tryon-64" in registry.tryon_models() and "tryon-64" not in registry.generators()
    assert not tl.LatentTryOn.generates and tl.LatentTryOn.can_try_on
    assert found.build({"width": 8}).in_channels == 13


def test_in_channels_leaves_the_default_network_as_it_was():
    """Default ``in_channels`` (= ``channels``) builds the same weights, by name, shape and value, from the same seed:
    shipped checkpoints load as before (their bytes: tests/test_latent.py)."""
    torch.manual_seed(0)
    old = fm.FlowUNet(8, channels=4, size=16).state_dict()
    torch.manual_seed(0)
    same = fm.FlowUNet(8, channels=4, size=16, in_channels=4).state_dict()
    assert old.keys() == same.keys() and all(torch.equal(old[k], same[k]) for k in old)
    wide = tl.tryon_network(8).state_dict()
    differ = {k for k in old if wide[k].shape != old[k].shape}
    assert wide.keys() == old.keys() and differ == {"stem.weight"} and wide["stem.weight"].shape[1] == 13
    with pytest.raises(ValueError, match="in_channels must be a whole number"):
        fm.FlowUNet(8, in_channels=0)


def test_pairs_hold_the_truth_and_are_cached(tmp_path, monkeypatch):
    from prodgen.catalog import load_catalog

    catalog = load_catalog("train", 1024, size=64, progress=False)
    pairs = tl.load_pairs(6, catalog, folder=tmp_path)
    assert pairs.scenes.shape == pairs.truths.shape == pairs.photos.shape == (6, 3, 64, 64) and len(pairs.slots) == 6
    outside = ~pairs.masks[:, None].expand(-1, 3, -1, -1)
    assert torch.equal(pairs.truths[outside], pairs.scenes[outside])
    grey = tl.masked_scenes(pairs.scenes, pairs.masks)
    assert (grey[~outside] == tl.GREY).all() and torch.equal(grey[outside], pairs.scenes[outside])
    monkeypatch.setattr(tl, "render_pairs", lambda *a, **k: pytest.fail("rendered again instead of read"))
    again = tl.load_pairs(6, catalog, folder=tmp_path)
    assert torch.equal(again.truths, pairs.truths) and again.slots == pairs.slots
    assert torch.equal(again.labels, pairs.labels) and pairs.labels.shape == (6, 5)
    products = tl._products(catalog)
    for photo, label in zip(pairs.photos, pairs.labels):  # each photo is the catalog photo of its labels' product
        i = next(k for k in range(len(catalog)) if torch.equal(catalog.images[k], photo))
        assert torch.equal(catalog.labels[i], label) and products[i]["category"]
    mask = tl.latent_mask(pairs.masks)
    assert mask.shape == (6, 1, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}


def test_the_loss_drops_the_product_and_trains(tiny_ae, model):
    from prodgen.catalog import load_catalog

    pairs = tl.render_pairs(4, load_catalog("train", 1024, size=64, progress=False))
    data = tl.TryOnLatents(tiny_ae.encode(pairs.truths), tiny_ae.encode(tl.masked_scenes(pairs.scenes, pairs.masks)),
                           pairs.masks, tiny_ae.encode(pairs.photos))
    x, y = next(data.batches(4, shuffle=False))
    assert x.shape == (4, 13, 16, 16) and (y == -1).all()
    other = x.clone()
    other[:, -4:] = torch.randn_like(other[:, -4:])
    loss = lambda packed, p: tl.tryon_loss(model.network, packed, y, drop_p=p,  # noqa: E731
                                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(loss(x, 1.0), loss(other, 1.0))  # the product always dropped: it cannot matter
    assert not torch.equal(loss(x, 0.0), loss(other, 0.0))
    value = loss(x, 0.1)
    value.backward()
    assert torch.isfinite(value) and model.network.stem.weight.grad is not None
    model.network.zero_grad(set_to_none=True)


def test_without_a_shipped_autoencoder_train_says_what_to_run_first(monkeypatch, capsys, tmp_path):
    from cli_helpers import in_this_process, shipped_subset

    shipped_subset(tmp_path / "checkpoints", ("judge-64",), monkeypatch)
    run = in_this_process(monkeypatch, capsys)
    code, _, err = run(["train", "tryon-64", "--fast", "--out", tmp_path / "t.pt"])
    assert code == 2 and "prodgen train ae-64" in err and "tryon-64" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.pt").exists()
    with pytest.raises(ValueError, match=r"none is shipped: train it first \(prodgen train ae-64\)"):
        tl.LatentTryOn(tl.tryon_network(8), "tryon-64", {"config": {"autoencoder": "ae-64"}})


@pytest.mark.slow(seconds=40)
def test_train_tryon_64_fast_end_to_end(tmp_path, monkeypatch, tiny_ae):
    """The recipe on a tiny autoencoder: pairs rendered and encoded once (cached), one epoch, measured on held-back
    pairs with the scene judge, saved to a file that loads as a try-on model naming its autoencoder."""
    from prodgen.models import latent as lm
    from prodgen.models import registry

    from cli_helpers import shipped_subset

    shipped_subset(tmp_path / "checkpoints", ("scene-judge",), monkeypatch)
    registry.save("ae-64", tiny_ae, {"width": 8, "channels": 4, "norm": "group"})
    monkeypatch.setattr(lm, "latent_cache_path", lambda key, folder=None: tmp_path / "latents" / f"latents-{key}.pt")
    monkeypatch.setattr(tl, "pairs_cache_path", lambda key, folder=None: tmp_path / "pairs" / f"pairs-{key}.pt")
    out = tmp_path / "tryon.pt"
    metrics = tl.train_checkpoint("tryon-64", fast=True, log=None, out=out, width=8, pairs=16, batch_size=8)
    assert metrics["outside_kept"] == 1.0 and metrics["n"] == 40 and "psnr_slot_db" in metrics
    assert set(metrics["worn_accuracy"]) == {"category", "color", "size", "brand", "pattern"}
    assert len(list((tmp_path / "latents").glob("*.pt"))) == 3  # truths, masked scenes, photos
    assert len(list((tmp_path / "pairs").glob("*.pt"))) == 1
    network, info = registry.load_file(out)
    assert info["config"]["autoencoder_sha256"] == registry.manifest()["ae-64"]["sha256"]
    loaded = tl.LatentTryOn(network, "tryon-64", info)
    sc = scene_at("test", 0, 0)
    slot = next(iter(sc.masks))
    assert loaded.try_on(sc, slot, torch.from_numpy(sc.image), steps=2).shape == (3, 64, 64)


def test_the_side_by_side_layout_reads_the_product_beside_the_scene(tiny_ae, inputs):
    """CatVTON's layout: 2c + 1 channels at 16 x 32, the velocity read off the left half; the same guarantees."""
    torch.manual_seed(2)
    net = tl.tryon_network(8, layout="side")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert net.in_channels == 9 and tl.layout_of(net) == "side" and tl.layout_of(tl.tryon_network(8)) == "channels"
    assert tl.build({"width": 8, "layout": "side"}).in_channels == 9
    side = tl.LatentTryOn(net, "tryon-64", {}, autoencoder=tiny_ae)
    scenes, slots, photos = (x[:3] for x in inputs)
    out = side.try_on(scenes, slots, photos, seed=4, steps=2)
    for sc, slot, image in zip(scenes, slots, out):
        mask = torch.from_numpy(sc.masks[slot])
        assert torch.equal(image[:, ~mask], torch.from_numpy(sc.image)[:, ~mask])
    assert not torch.equal(out, side.try_on(scenes, slots, photos.flip(0), seed=4, steps=2))
    with pytest.raises(ValueError, match="unknown layout 'above'; valid: channels, side"):
        tl.tryon_network(8, layout="above")


def test_a_shipped_tryon_64_loads_through_the_registry_and_names_its_autoencoder(tmp_path, monkeypatch, tiny_ae,
                                                                                  inputs):
    from prodgen.models import registry

    from cli_helpers import shipped_subset

    shipped_subset(tmp_path / "checkpoints", (), monkeypatch)
    registry.save("ae-64", tiny_ae, {"width": 8, "channels": 4, "norm": "group"})
    sha = registry.manifest()["ae-64"]["sha256"]
    registry.save("tryon-64", tl.tryon_network(8), {"width": 8, "channels": 4, "layout": "channels",
                                                   "autoencoder": "ae-64", "autoencoder_sha256": sha})
    assert registry.tryon_models(shipped=True) == ["cut-paste", "tryon-64"]
    model = registry.load_tryon("tryon-64")
    scenes, slots, photos = (x[:2] for x in inputs)
    assert isinstance(model, tl.LatentTryOn) and model.try_on(scenes, slots, photos, steps=1).shape == (2, 3, 64, 64)
    registry.save("ae-64", am.AutoEncoder(width=8), {"width": 8, "channels": 4, "norm": "group"})  # retrained
    with pytest.raises(ValueError, match=r"retrain it \(prodgen train tryon-64\)"):
        registry.load_tryon("tryon-64")

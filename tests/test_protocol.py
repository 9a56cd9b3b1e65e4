"""The image-model protocol's optional latents: ``from_latents(latents(r, seed, **k))`` is ``generate(r, seed,
**k)`` byte for byte for every shipped generator that has them, and ``prodgen.apps.latent.interpolate`` blends two
images' latents with exact ends."""
import pytest
import torch

from prodgen.apps.latent import interpolate
from prodgen.models import registry

REQUESTS = {
    "nothing": 12,
    "attributes": [{"category": "mug"}, {}, {"color": "red", "size": "large"}, {"category": "cap", "brand": "acme",
                                                                                "pattern": "dotted"}] * 3,
    "text": ["a large red striped t-shirt by Acme", "黑色运动鞋", "a mug", "a blue dotted cap by Nova"] * 3,
}
BLENDING = ("dcgan", "cgan-projection", "cgan-concat", "cgan-acgan", "cgan-stable", "text2img", "text2img-embedding")


@pytest.fixture(scope="module")
def models():
    loaded = {}
    for name in registry.generators(shipped=True):
        model = registry.load_generator(name)
        # a warm-up call: in a fresh process the very first forward pass of a network has been seen (once) to
        # differ from every later one by a rounding (oneDNN's first call), whatever path calls it
        model.generate(REQUESTS[model.accepts], seed=0)
        loaded[name] = model
    return loaded


def _shipped(name):
    if not registry.available(name):
        pytest.skip(f"{name} is not shipped")


@pytest.mark.parametrize("name", BLENDING)
@pytest.mark.parametrize("knobs", [{}, {"truncation": 0.6}], ids=["plain", "truncated"])
def test_from_latents_is_generate_byte_for_byte(models, name, knobs):
    _shipped(name)
    model = models[name]
    requests = REQUESTS[model.accepts]
    for seed in (0, 11):
        latents = model.latents(requests, seed=seed, **knobs)
        assert latents["z"].shape == (len(requests) if model.accepts != "nothing" else requests, model.network.z_dim)
        assert set(latents) == ({"z"} if model.accepts == "nothing" else {"z", "condition"})
        assert torch.equal(model.from_latents(latents), model.generate(requests, seed=seed, **knobs))
    other = model.latents(requests, seed=1, **knobs)
    assert not torch.equal(other["z"], latents["z"])


@pytest.mark.parametrize("name", ["cgan-projection", "text2img"])
def test_learned_unspecified_round_trips_too(models, name):
    _shipped(name)
    model = models[name]
    requests = REQUESTS[model.accepts]
    latents = model.latents(requests, seed=3, unspecified="learned")
    assert torch.equal(model.from_latents(latents), model.generate(requests, seed=3, unspecified="learned"))
    assert not torch.equal(latents["condition"], model.latents(requests, seed=3)["condition"])


def test_cgan_protocol_images_are_the_module_generate(models):
    """The protocol's cGAN images (through one-hot conditions) are ``cgan.generate``'s (through labels)."""
    from prodgen.catalog import denormalize
    from prodgen.models import cgan

    _shipped("cgan-projection")
    model = models["cgan-projection"]
    labels = model.prepare(REQUESTS["attributes"])
    assert torch.equal(model.generate(labels, seed=5), denormalize(cgan.generate(model.network, labels, 5).float()))


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_models_without_latents_say_none(models, name):
    _shipped(name)
    model = models[name]
    assert model.latents(REQUESTS[model.accepts], seed=0) is None
    with pytest.raises(ValueError, match="has no latents"):
        model.from_latents({"z": torch.zeros(2, 8)})


def test_bad_latents_and_knobs(models):
    _shipped("cgan-projection")
    model = models["cgan-projection"]
    with pytest.raises(ValueError, match="one row per image"):
        model.from_latents({"z": torch.zeros(2, 64), "condition": torch.zeros(3, 34)})
    with pytest.raises(ValueError, match="dict of tensors"):
        model.from_latents({})
    with pytest.raises(ValueError, match="no knob"):
        model.latents([{}], seed=0, guidance=2.0)
    assert model.from_latents({k: v[:0] for k, v in model.latents([{}], 0).items()}).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("name", ["dcgan", "cgan-projection", "text2img"])
def test_interpolation_ends_are_the_two_images(models, name):
    _shipped(name)
    model = models[name]
    requests = REQUESTS[model.accepts]
    images = model.generate(requests, seed=2)
    latents = model.latents(requests, seed=2)
    a, b = ({k: v[i] for k, v in latents.items()} for i in (1, 2))
    path = interpolate(a, b, 7)
    assert all(torch.equal(path[k][0], a[k]) and torch.equal(path[k][-1], b[k]) for k in a)
    strip = model.from_latents(path)
    assert strip.shape == (7, 3, 32, 32)
    # the ends decode to the two images; in a batch of another size than generate's, the network's kernels may
    # round a few bytes one level differently (seen: 1 byte of 3 x 32 x 32, by 1); more = the wrong latents
    for end, image in ((strip[0], images[1]), (strip[-1], images[2])):
        diff = (end.int() - image.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01
    assert (strip[3].int() - images[1].int()).abs().float().mean() > 2
    assert (strip[3].int() - images[2].int()).abs().float().mean() > 2


def test_interpolate_rule():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    c = torch.rand(34, generator=g)
    c1 = c.clone()
    c1[3] += 0.5
    path = interpolate({"z": z0, "condition": c}, {"z": z1[None], "condition": c1}, 9)
    assert path["z"].shape == (9, 100) and path["condition"].shape == (9, 34)
    assert torch.equal(path["z"][0], z0) and torch.equal(path["z"][-1], z1)
    norms = path["z"].norm(dim=1)  # the arc keeps a Gaussian code's norm; the line would dip to ~0.7 of it
    assert float(norms.min()) > 0.95 * min(z0.norm(), z1.norm())
    shared = torch.arange(34) != 3  # the entries both conditions share stay exactly the same
    assert torch.equal(path["condition"][:, shared], c[shared].expand(9, -1))
    assert torch.allclose(path["condition"][4, 3], c[3] + 0.25)  # the rest: the straight line
    same = interpolate({"z": z0}, {"z": z0}, 5)["z"]
    assert torch.equal(same, z0.expand(5, -1))
    with pytest.raises(ValueError, match="different inputs"):
        interpolate({"z": z0}, {"z": z1, "condition": c}, 4)
    with pytest.raises(ValueError, match="steps must be"):
        interpolate({"z": z0}, {"z": z1}, 1)
    with pytest.raises(ValueError, match="sizes 100 and 34"):
        interpolate({"z": z0}, {"z": c}, 4)

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


# ----------------------------------------------------------------------------- one Request type
def test_a_request_is_attributes_and_or_text_frozen_and_hashable():
    from dataclasses import FrozenInstanceError

    from prodgen.models.protocol import Request

    r = Request({"color": "red", "size": "", "brand": None}, "  a red mug ")
    assert r.attributes == {"color": "red"} and r.text == "a red mug" and not r.unconditional
    assert Request().unconditional and Request({"size": ""}).unconditional
    assert r == Request({"color": "red"}, "a red mug") and len({r, Request({"color": "red"}, "a red mug")}) == 1
    with pytest.raises(FrozenInstanceError):
        r.text = "a blue mug"
    for bad, match in (((["color", "red"],), "attributes are a"), (({}, 3), "text is a string")):
        with pytest.raises(ValueError, match=match):
            Request(*bad)
    assert Request({"category": "mug", "color": "red"}).description() == Request({"color": "red", "category": "mug"}
                                                                                ).description()
    with pytest.raises(ValueError, match="include a category"):
        Request({"color": "red"}).description()


def test_each_kind_of_model_turns_requests_into_its_condition(models):
    from prodgen.catalog.describe import describe
    from prodgen.models.protocol import Request, as_labels

    for name in ("cgan-projection", "text2img", "vae"):
        _shipped(name)
    attrs = [{"category": "mug", "color": "red"}, {}, {"size": "large", "pattern": "dotted"}]
    cgan, text2img, vae = models["cgan-projection"], models["text2img"], models["vae"]
    both = Request({"category": "cap"}, "a blue dotted cap by Nova")  # each model reads its own part
    assert torch.equal(cgan.condition([Request(a) for a in attrs] + [both]), as_labels(attrs + [{"category": "cap"}]))
    assert text2img.condition([Request(attrs[0]), both]) == [describe(attrs[0], "en", template=0, rng=0),
                                                            "a blue dotted cap by Nova"]
    assert vae.condition([Request()] * 3) == 3
    assert (cgan.conditional, cgan.reads_attributes, cgan.reads_text) == (True, True, False)
    assert (text2img.conditional, text2img.reads_attributes, text2img.reads_text) == (True, False, True)
    assert (vae.conditional, vae.reads_attributes, vae.reads_text) == (False, False, False)
    assert text2img.described([Request(attrs[0])]) == text2img.condition([Request(attrs[0])])
    assert cgan.described([Request(attrs[0]), both]) == ["", "a blue dotted cap by Nova"]


@pytest.mark.parametrize("name, request_, message", [
    ("cgan-projection", {"text": "a red mug"}, "cgan-projection is controlled by attributes, not text: .*text2img"),
    ("cgan-projection", {"attributes": {"colour": "red"}}, "unknown attribute 'colour'"),
    ("text2img", {"attributes": {"color": "red"}}, "text2img needs a description, or attributes that include a cat"),
    ("text2img", {}, "text2img needs a description"),
    ("text2img", {"text": "something nice for my sister"}, "names no product attribute"),
    ("vae", {"attributes": {"color": "red"}}, "vae is unconditional: it takes no attributes or description"),
    ("dcgan", {"text": "a red mug"}, "dcgan is unconditional"),
])
def test_a_request_that_does_not_fit_is_refused_in_one_line(models, name, request_, message):
    from prodgen.models.protocol import Request

    _shipped(name)
    with pytest.raises(ValueError, match=message) as e:
        models[name].generate([Request(**request_)], seed=0)
    assert "\n" not in str(e.value)


def test_requests_and_raw_forms_give_the_same_bytes(models):
    """Every shipped generator: Requests give exactly the images of the raw forms lessons use (which the
    protocol's family code gives byte for byte as before the Request type: checked against saved images)."""
    from prodgen.models.protocol import Request

    for name, model in models.items():
        raw = REQUESTS[model.accepts]
        if model.reads_attributes:
            requests = [Request(r) for r in raw]
        elif model.reads_text:
            requests = [Request(text=t) for t in raw]
        else:
            requests = [Request()] * raw
        knobs = {"steps": 2} if "steps" in model.knobs else {}
        assert torch.equal(model.generate(requests, seed=4, **knobs), model.generate(raw, seed=4, **knobs)), name
    with pytest.raises(ValueError, match="not a mix"):
        next(iter(models.values())).generate([Request(), 3])


# ----------------------------------------------------------------------------- batches across requests
def _close(a, b):
    """Within one grey level everywhere (a network's kernels may round differently in a batch of another size)."""
    return a.shape == b.shape and int((a.int() - b.int()).abs().max()) <= 1


@pytest.mark.parametrize("name, knobs", [("cgan-projection", {"truncation": 0.8}), ("vae", {}), ("cvae", {}),
                                         ("text2img", {}), ("diffusion", {"steps": 2}),
                                         ("diffusion", {"steps": 2, "eta": 1.0})],
                         ids=["cgan", "vae", "cvae", "text2img", "diffusion", "diffusion-ancestral"])
def test_groups_batched_together_keep_their_own_noise(models, name, knobs):
    """``generate_groups``: the same bytes run to run, and each group as it comes alone (within one grey
    level); the groups differ from each other (each has its own seed)."""
    _shipped(name)
    model = models[name]
    raw = REQUESTS[model.accepts]
    groups = [((raw[i % len(raw):i % len(raw) + 1] if model.conditional else 1) * (1 + i % 3), 100 + i)
              for i in range(14)]
    first, second = model.generate_groups(groups, **knobs), model.generate_groups(groups, **knobs)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    for (requests, seed), images in zip(groups, first):
        assert _close(images, model.generate(requests, seed=seed, **knobs)), (requests, seed)
    assert not torch.equal(first[0][0], first[12][0])  # the same request (12 requests in REQUESTS), another seed


def test_a_group_of_nothing_and_groups_checked_first(models):
    _shipped("cgan-projection")
    model = models["cgan-projection"]
    out = model.generate_groups([([], 0), ([{"color": "red"}], 1)])
    assert out[0].shape == (0, 3, 32, 32) and torch.equal(out[1], model.generate([{"color": "red"}], seed=1))
    with pytest.raises(ValueError, match="unknown color"):
        model.generate_groups([([{"color": "red"}], 0), ([{"color": "bleu"}], 1)])
    with pytest.raises(ValueError, match="no knob"):
        model.generate_groups([([{"color": "red"}], 0)], steps=3)


def _catalog_rows(model, out):
    import csv

    from PIL import Image

    rows = list(csv.DictReader((out / "metadata.csv").open(encoding="utf-8")))
    pixels = [torch.from_numpy(__import__("numpy").array(Image.open(out / r["file"]))).permute(2, 0, 1) for r in rows]
    return rows, pixels


@pytest.mark.parametrize("name, knobs", [("cgan-projection", {}), ("vae", {}), ("diffusion", {"steps": 2})])
def test_a_sheet_of_single_images_is_batched_and_each_row_is_itself(models, name, knobs, tmp_path, monkeypatch):
    """``generate_catalog`` with 40 single-image rows (batches of 16 images here: rows cross batch boundaries):
    the same PNG bytes run to run, and row ``i``'s image is what the row gives alone (seed ``S + i``)."""
    from prodgen.apps import generate as app
    from prodgen.apps.generate import Row, generate_catalog
    from prodgen.models.protocol import Request

    _shipped(name)
    model = models[name]
    monkeypatch.setattr(app, "BATCH_IMAGES", 16)
    values = ["mug", "cap", "lamp", "sneaker", "backpack"]
    if model.conditional:
        rows = [Row(Request({"category": values[i % 5], **({"color": "red"} if i % 2 else {})})) for i in range(40)]
    else:
        rows = [Row(Request()) for _ in range(40)]
    runs = [generate_catalog(model, rows, tmp_path / f"run{k}", seed=7, knobs=knobs) for k in range(2)]
    assert [p.read_bytes() for p in sorted(runs[0].glob("*.png"))] == \
        [p.read_bytes() for p in sorted(runs[1].glob("*.png"))]
    meta, pixels = _catalog_rows(model, runs[0])
    assert [int(r["seed"]) for r in meta] == list(range(7, 47))
    for i, (row, image) in enumerate(zip(rows, pixels)):
        assert _close(image, model.generate([row.request], seed=7 + i, **knobs)[0]), i
        assert meta[i].get("category", "") == row.request.attributes.get("category", "")


def test_diffusion_edit_variants_are_each_seeds_edit(models):
    from prodgen.catalog import denormalize, load_catalog

    _shipped("diffusion")
    model = models["diffusion"]
    test = load_catalog("test", progress=False)
    photos, labels = test.images[:2], test.labels[:2]
    variants = model.edit_variants(photos, labels, {"color": "teal"}, [3, 4, 5], steps=2)
    assert len(variants) == 3 and not torch.equal(variants[0], variants[1])
    for seed, images in zip([3, 4, 5], variants):
        assert _close(denormalize(images), denormalize(model.edit(photos, labels, {"color": "teal"}, seed=seed,
                                                                   steps=2)))
    assert models["diffusion"].can_edit and models["diffusion"].edit_draws
    with pytest.raises(ValueError, match="cannot edit"):
        models["cgan-projection"].edit(photos, labels, {"color": "teal"})


def test_no_family_dispatch_outside_the_protocol():
    """Callers ask the protocol (conditional, reads_text, can_edit, ...), never ``accepts ==`` or
    ``hasattr(model, ...)``. Not scanned: the protocol itself and ``checks/`` (lesson checkers probe students'
    objects)."""
    import re
    from pathlib import Path

    import prodgen

    root = Path(prodgen.__file__).parent
    pattern = re.compile(r"accepts\s*[!=]=|hasattr\(\s*(model|generator|network|net|shown)\b|registry\.EDITORS|"
                         r"\bEDITORS\[")
    found = [f"{p.relative_to(root)}:{i}: {line.strip()}" for p in sorted(root.rglob("*.py"))
             if p.name != "protocol.py" and p.relative_to(root).parts[0] != "checks"
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_a_family_needs_only_latents_and_decode_or_only_images():
    """The smallest families: one that splits its work (batched across groups) and one that only has
    ``_images`` (its groups made one by one); both give each group what ``generate`` gives it."""
    from torch import nn

    from prodgen.models.protocol import ImageModel, Request

    class Split(ImageModel):
        accepts = "nothing"

        def _latents(self, n, generator):
            return {"z": torch.rand(n, 3, 1, 1, generator=generator)}

        def _decode(self, latents, noise=None):
            return latents["z"].expand(-1, -1, 32, 32) * 2 - 1

    class Whole(ImageModel):
        accepts = "nothing"

        def _images(self, n, seed):
            return torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(seed)).expand(-1, -1, 32, 32) * 2 - 1

    for cls in (Split, Whole):
        model = cls(nn.Identity(), "toy")
        groups = [([Request()] * 2, 5), (1, 6), (0, 7)]
        out = model.generate_groups(groups)
        assert [len(x) for x in out] == [2, 1, 0]
        assert all(torch.equal(x, model.generate(r, seed=s)) for (r, s), x in zip(groups, out))
        assert not torch.equal(out[0][0], out[1][0])
        assert model.latents(3) is None and not model.can_edit
        with pytest.raises(ValueError, match="toy cannot edit photos"):
            model.edit(torch.zeros(1, 3, 32, 32), torch.zeros(1, 5, dtype=torch.long), {"color": "red"})

"""Any catalog, any attributes (issue 13, lesson 12): the schema, conditions and models built from it,
checkpoints that remember it, and the clear errors when a request or a catalog does not fit it."""
import re

import pytest
import torch

from prodgen.catalog import Catalog
from prodgen.catalog.schema import BUILTIN, Schema, schema_of
from prodgen.models import cgan, condition, cvae, diffusion, judge, registry
from prodgen.models.protocol import as_labels

SHAPES = Schema({"shape": ["circle", "square", "star"], "colour": ["red", "green", "blue", "black", "white"]})


def test_builtin_schema_is_the_course_catalog():
    assert BUILTIN.names == ("category", "color", "size", "brand", "pattern")
    assert BUILTIN.num_classes == condition.NUM_CLASSES
    assert BUILTIN.condition_dim == condition.CONDITION_DIM == 34
    assert schema_of({}) == BUILTIN and schema_of({"schema": SHAPES.to_config()}) == SHAPES


def test_schema_round_trips_and_compares_by_order():
    again = Schema.from_config(SHAPES.to_config())
    assert again == SHAPES and hash(again) == hash(SHAPES)
    assert Schema({"colour": SHAPES.values["colour"], "shape": SHAPES.values["shape"]}) != SHAPES
    assert SHAPES.condition_dim == 4 + 6 and len(SHAPES) == 2


@pytest.mark.parametrize("attributes, message", [
    ({}, "at least one attribute"),
    ({"shape": ["circle"]}, "needs at least 2 values"),
    ({"shape": ["a", "a"]}, "lists a value twice"),
    ([("shape", ["a", "b"]), ("shape", ["c", "d"])], "appears twice"),
    ({"": ["a", "b"]}, "non-empty strings"),
])
def test_bad_schemas_say_what_is_wrong(attributes, message):
    with pytest.raises(ValueError, match=message):
        Schema(attributes)


def test_requests_follow_the_schema():
    row = condition.parse_request({"colour": "blue"}, SHAPES)
    assert row.tolist() == [[-1, 2]]
    assert condition.request_to_dict(row[0], SHAPES) == {"colour": "blue"}
    with pytest.raises(ValueError, match=re.escape("unknown attribute 'color'; valid attributes: shape, colour")):
        condition.parse_request({"color": "blue"}, SHAPES)
    with pytest.raises(ValueError, match="unknown shape 'mug'; valid values: circle, square, star"):
        as_labels([{"shape": "mug"}], SHAPES)
    with pytest.raises(ValueError, match="labels must be an integer tensor N x 2"):
        condition.check_labels(torch.zeros(3, 5, dtype=torch.long), SHAPES)


def test_one_hot_fill_and_balanced_requests_use_the_schema():
    labels = torch.tensor([[0, -1], [2, 4]])
    oh = condition.one_hot(labels, SHAPES)
    assert oh.shape == (2, 10) and oh.sum(1).tolist() == [2, 2]
    assert oh[0, 3 + 1 + 5] == 1  # colour unspecified: its last slot
    filled = condition.fill_unspecified(labels, torch.Generator().manual_seed(0), SHAPES)
    assert (filled >= 0).all() and filled[:, 1].max() < 5
    req = condition.balanced_requests(30, seed=1, schema=SHAPES)
    assert req.shape == (30, 2)
    assert torch.bincount(req[:, 0]).tolist() == [10, 10, 10] and torch.bincount(req[:, 1]).tolist() == [6] * 5
    with pytest.raises(ValueError, match="pairs of the course catalog"):
        condition.balanced_requests(8, only_pairs=[("mug", "red")], schema=SHAPES)


def test_networks_are_built_for_a_schema():
    y = torch.tensor([[0, 1], [2, -1], [-1, 4]])
    g, d = cgan.build_pair("projection", z_dim=8, width=8, schema=SHAPES)
    x = g(torch.randn(3, 8), y)
    assert x.shape == (3, 3, 32, 32) and d(x, y).shape == (3,)
    for kind in ("concat", "acgan"):
        g2, d2 = cgan.build_pair(kind, z_dim=8, width=8, schema=SHAPES)
        out = d2(g2(torch.randn(3, 8), y), y)
        assert (out[0] if isinstance(out, tuple) else out).shape == (3,)
    vae = cvae.CVAE(z_dim=4, width=8, schema=SHAPES)
    x_hat, mu, _ = vae(x, y)
    assert x_hat.shape == x.shape and mu.shape == (3, 4)
    unet = diffusion.UNet(width=8, schema=SHAPES)
    assert unet(x, torch.tensor([0, 10, 999]), y).shape == x.shape
    j = judge.Judge(schema=SHAPES, width=8)
    assert list(j(x)) == ["shape", "colour"] and j.predict(x).shape == (3, 2)


def test_a_checkpoint_remembers_its_schema(tmp_path):
    g, _ = cgan.build_pair("projection", z_dim=8, width=8, schema=SHAPES)
    path = tmp_path / "mine.pt"
    registry.save("cgan-projection", g, {"z_dim": 8, "width": 8, "schema": SHAPES.to_config()}, out=path)
    model = registry.load_generator_file(path)
    assert model.schema == SHAPES and model.name == "mine"
    images = model.generate([{"shape": "star", "colour": "red"}, {"colour": "blue"}], seed=3)
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images, model.generate([{"shape": "star", "colour": "red"}, {"colour": "blue"}], seed=3))
    assert model.understood([{"colour": "blue"}]) == [{"colour": "blue"}]
    with pytest.raises(ValueError, match="unknown attribute 'category'; valid attributes: shape, colour"):
        model.generate([{"category": "mug"}])


def test_a_judge_file_is_not_a_generator(tmp_path):
    path = tmp_path / "judge.pt"
    registry.save("judge", judge.Judge(schema=SHAPES, width=8),
                    {"num_classes": SHAPES.num_classes, "width": 8, "schema": SHAPES.to_config()}, out=path)
    with pytest.raises(ValueError, match="holds a 'judge' checkpoint, which is not an image generator"):
        registry.load_generator_file(path)
    loaded, info = registry.load_file(path)
    assert loaded.schema == SHAPES and info["name"] == "judge"


def test_a_catalog_of_another_schema_trains_a_judge():
    gen = torch.Generator().manual_seed(0)
    labels = torch.stack([torch.randint(3, (256,), generator=gen), torch.randint(5, (256,), generator=gen)], 1)
    images = (labels[:, 1, None, None, None] * 50).expand(256, 3, 32, 32).to(torch.uint8).contiguous()
    cat = Catalog(images, labels, [""] * 256, [""] * 256, values=SHAPES.values, name="shapes")
    assert cat.schema == SHAPES and cat.attributes(0).keys() == {"shape", "colour"}
    model = judge.fit_judge(cat, epochs=1, batch_size=64)
    assert model.schema == SHAPES
    acc = judge.judge_accuracy(model, cat)
    assert set(acc) == {"shape", "colour"}

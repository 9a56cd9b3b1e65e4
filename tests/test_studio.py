"""The Product Studio's widget logic without a browser: set widget values, press the buttons' handlers,
check the grid, the status line, the pins, the export folder and the messages for bad input."""
import csv
import datetime
import io

import pytest
import torch
from PIL import Image

from prodgen.models import registry

pytestmark = pytest.mark.skipif(not registry.available("dcgan"), reason="needs the shipped checkpoints")


@pytest.fixture(scope="module")
def studio():
    from prodgen.apps.studio import Studio

    return Studio()


def png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def click(button):
    button.click()  # runs the registered on_click handlers, as the front end does


def test_every_shipped_generator_is_offered_with_what_it_accepts(studio):
    assert studio.models == registry.generators(shipped=True)
    labels = dict((v, k) for k, v in studio.model.options)
    for name, kind in registry.generator_kinds().items():
        if name in studio.models:
            assert kind in labels[name]


def test_generate_a_grid_and_its_status(studio):
    studio.model.value = "dcgan"
    studio.count.value, studio.seed.value = 16, 3
    click(studio.generate_button)
    assert studio.status_text.startswith("generated 16 images with dcgan in ")
    grid = png(studio.grid.value)
    assert grid.size == (8 * 96 + 7 * 2, 2 * 96 + 2)  # 8 columns x 2 rows of 32 px x 3, 2 px gaps
    first = studio.images.clone()
    click(studio.generate_button)
    assert torch.equal(studio.images, first)  # same seed, same images
    studio.seed.value = 4
    click(studio.generate_button)
    assert not torch.equal(studio.images, first)


def test_knob_controls_follow_the_model_and_change_images(studio):
    studio.model.value = "cgan-projection"
    assert set(studio.knob_widgets) == set(studio.generator().knobs)
    assert studio.attribute_box.layout.display is None and studio.description.layout.display == "none"
    studio.attributes["category"].value, studio.attributes["color"].value = "mug", "red"
    studio.count.value, studio.seed.value = 4, 0
    click(studio.generate_button)
    plain = studio.images.clone()
    assert studio.meta[0]["category"] == "mug" and studio.meta[0]["color"] == "red"
    tick, slider = studio.knob_widgets["truncation"].children
    tick.value, slider.value = True, 0.5
    assert studio.knob_values()["truncation"] == 0.5
    click(studio.generate_button)
    assert studio.status_text.startswith("generated 4 images")
    assert not torch.equal(studio.images, plain)
    tick.value = False
    studio.attributes["category"].value = studio.attributes["color"].value = "any"


def test_text_model_messages(studio):
    studio.model.value = "text2img"
    assert studio.description.layout.display is None and studio.attribute_box.layout.display == "none"
    studio.description.value = "hello world, nice weather"
    before = studio.grid.value
    click(studio.generate_button)
    assert "names no product attribute" in studio.status_text
    assert "Traceback" not in studio.status.value and studio.grid.value == before
    studio.description.value = ""
    click(studio.generate_button)
    assert studio.status_text.startswith("type a description")
    studio.description.value, studio.count.value = "红色条纹马克杯", 2
    click(studio.generate_button)
    assert studio.status_text.startswith("generated 2 images with text2img")
    assert studio.meta[0]["category"] == "mug" and studio.meta[0]["color"] == "red"


def test_pin_and_export(studio, tmp_path):
    studio.on_clear()
    click(studio.export_button)
    assert studio.status_text.startswith("nothing pinned")
    studio.model.value = "dcgan"
    studio.count.value = 6
    click(studio.generate_button)
    studio.pick.value = ()
    click(studio.pin_button)
    assert studio.status_text.startswith("pick one or more")
    studio.pick.value = ("2", "5")
    click(studio.pin_button)
    assert len(studio.pinned) == 2 and studio.status_text == "2 pinned"
    assert torch.equal(studio.pinned[1][0], studio.images[4])
    out = tmp_path / "catalog"
    studio.export_dir.value = str(out)
    click(studio.export_button)
    assert studio.status_text == f"exported 2 images to {out}"
    rows = list(csv.DictReader(open(out / "metadata.csv", encoding="utf-8")))
    assert [r["file"] for r in rows] == ["000000.png", "000001.png"]
    assert rows[0]["model"] == "dcgan" and rows[0]["seed"] == str(studio.seed.value)
    saved = torch.from_numpy(__import__("numpy").array(Image.open(out / "000001.png"))).permute(2, 0, 1)
    assert torch.equal(saved, studio.images[4])
    click(studio.export_button)  # the folder is not empty now: refused, nothing changed
    assert "not empty" in studio.status_text and len(list(out.iterdir())) == 3
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_interpolate_between_two_pins(studio, tmp_path):
    studio.on_clear()
    click(studio.interpolate_button)
    assert studio.status_text == "interpolation needs two pins from the same GAN: 0 pinned"
    studio.model.value = "cgan-projection"
    studio.attributes["category"].value = "mug"
    studio.count.value, studio.seed.value = 6, 9
    tick, slider = studio.knob_widgets["truncation"].children
    tick.value, slider.value = True, 1.0
    click(studio.generate_button)
    tick.value = False
    grid = studio.images.clone()
    studio.pick.value = ("1",)
    click(studio.pin_button)
    click(studio.interpolate_button)
    assert studio.status_text == "interpolation needs two pins from the same GAN: 1 pinned"
    studio.pick.value = ("4",)
    click(studio.pin_button)
    assert (studio.blend_a.value, studio.blend_b.value) == (0, 1)
    studio.steps.value = 8
    click(studio.interpolate_button)
    assert studio.status_text.startswith("interpolated 8 images from pin 1 to pin 2 with cgan-projection in ")
    strip = studio.images
    assert strip.shape == (8, 3, 32, 32) and png(studio.grid.value).size == (8 * 96 + 7 * 2, 96)
    assert torch.equal(strip[0], grid[0]) and torch.equal(strip[-1], grid[3])  # the ends are the pins
    model = studio.generator("cgan-projection")  # and the latents the studio found are the pins' own
    for pin, image in ((studio.pinned[0], grid[0]), (studio.pinned[1], grid[3])):
        alone = model.from_latents({k: v[None] for k, v in studio._latent_row(pin[2]).items()})[0]
        assert (alone.int() - image.int()).abs().max() <= 1  # a batch of 1 vs 6: at most a rounding
    assert not torch.equal(strip[4], grid[0]) and not torch.equal(strip[4], grid[3])
    assert studio.meta[3] == {"category": "mug", "model": "cgan-projection"}  # no seed makes a blend
    studio.pick.value = ("4",)  # a blend can be pinned, exported and blended again
    click(studio.pin_button)
    studio.blend_a.value, studio.blend_b.value = 2, 0
    studio.steps.value = 3
    click(studio.interpolate_button)
    assert torch.equal(studio.images[0], strip[3]) and torch.equal(studio.images[-1], grid[0])
    studio.export_dir.value = str(tmp_path / "pins")
    click(studio.export_button)
    assert studio.status_text.startswith("exported 3 images")
    studio.blend_b.value = 2
    click(studio.interpolate_button)
    assert studio.status_text == "interpolation needs two pins from the same GAN: pick two different pins"
    studio.attributes["category"].value = "any"
    studio.model.value = "dcgan"
    studio.count.value = 2
    click(studio.generate_button)
    studio.pick.value = ("2",)
    click(studio.pin_button)
    studio.blend_a.value, studio.blend_b.value = 0, 3
    before = studio.images.clone()
    click(studio.interpolate_button)
    assert studio.status_text == ("interpolation needs two pins from the same GAN; pin 1 is from cgan-projection, "
                                  "pin 4 from dcgan")
    assert torch.equal(studio.images, before)


@pytest.mark.skipif(not registry.available("vae"), reason="needs the vae")
def test_a_model_without_latents_cannot_blend(studio):
    studio.on_clear()
    studio.model.value = "vae"
    studio.count.value = 3
    click(studio.generate_button)
    studio.pick.value = ("1", "3")
    click(studio.pin_button)
    click(studio.interpolate_button)
    assert studio.status_text == "interpolation needs two pins from the same GAN; vae cannot blend (it has no latents)"
    assert "Traceback" not in studio.status.value
    studio.on_clear()
    assert studio.blend_a.options == () and studio.blend_a.value is None
    studio.model.value = "dcgan"


def test_editors_are_the_generators_whose_protocol_can_edit():
    from prodgen.apps.edit import editors

    # shipped or not (flow is registered, not shipped); diffusion-text / flow-text share a network but do not edit
    assert editors() == ["cvae", "diffusion", "flow"]
    assert set(editors()) <= set(registry.generators())


@pytest.mark.skipif(not registry.available("cvae") or not registry.available("judge"), reason="needs cvae+judge")
def test_edit_catalog_photo_and_upload(studio):
    for w in studio.changes.values():
        w.value = "keep"
    studio.source.value = "catalog photo"
    click(studio.edit_button)
    assert studio.status_text.startswith("choose at least one attribute")
    studio.changes["color"].value = "red"
    studio.photo.value = 5
    click(studio.edit_button)
    assert studio.status_text.startswith("edited test photo 5 with cvae")
    assert png(studio.before_after.value).size == (2 * 192 + 2, 192)
    from prodgen.models.judge import Judge  # noqa: F401 - the judge reads the edited colour
    judge = registry.load("judge")
    from prodgen.catalog import index_of, normalize

    assert judge.predict(normalize(studio.edited))[0, 1] == index_of("color", "red")
    studio.source.value = "uploaded PNG"
    studio.upload.value = ()
    click(studio.edit_button)
    assert studio.status_text.startswith("upload a PNG first")
    for data, expect in ((b"not a picture", "is not a PNG image"), (None, "edited x.png")):
        if data is None:
            buf = io.BytesIO()
            Image.new("RGB", (64, 64), (30, 90, 200)).save(buf, format="PNG")
            data = buf.getvalue()
        studio.upload.value = ({"name": "x.png", "type": "image/png", "size": len(data), "content": memoryview(data),
                                "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
        click(studio.edit_button)
        assert expect in studio.status_text
    studio.source.value = "catalog photo"


def test_unexpected_errors_are_one_line(studio):
    studio.count.value = 2
    studio.model.value = "dcgan"
    studio.knob_widgets = {"no-such-knob": studio.knob_widgets["truncation"]}
    click(studio.generate_button)
    assert studio.status_text.startswith("dcgan has no knob no-such-knob")
    studio._model_changed()


def test_bad_construction():
    from prodgen.apps.studio import Studio

    with pytest.raises(ValueError, match="not image generators: judge"):
        Studio(models=["judge"])


def test_cli_without_voila_says_how_to_install(monkeypatch, capsys):
    from prodgen import cli
    from prodgen.apps import studio_server

    monkeypatch.setattr(studio_server, "voila_available", lambda: False)
    assert cli.main(["studio", "--no-browser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['prodgen: error: prodgen studio needs Voilà: pip install "prodgen[studio]"']


def test_cli_port_in_use(capsys):
    import socket

    from prodgen import cli
    from prodgen.apps import studio_server

    if not studio_server.voila_available():
        pytest.skip("voila is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert cli.main(["studio", "--no-browser", "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
    assert cli.main(["studio", "--no-browser", "--port", "70000"]) == 2

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


def tile_png(studio, css_class: str) -> bytes:
    """The raw RGB bytes of the picture the studio's CSS gives to buttons of ``css_class``."""
    import base64
    import re

    match = re.search(re.escape(css_class) + r' \{ background-image: url\("data:image/png;base64,([^"]+)"\)',
                      studio.image_style.value)
    assert match, f"no picture for {css_class}"
    return png(base64.b64decode(match.group(1))).convert("RGB").tobytes()


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
    assert studio.status_text.endswith("(click an image to pin it)")
    assert studio.grid.children == tuple(studio.tiles) and len(studio.tiles) == 16
    assert studio.grid.layout.display is None
    for i, tile in enumerate(studio.tiles):  # each tile is a button drawn with its own image
        css_class = next(c for c in tile._dom_classes if c.startswith("studio-img-"))
        assert tile_png(studio, css_class) == studio.images[i].permute(1, 2, 0).numpy().tobytes()
        assert (tile.description, tile.tooltip) == (f"image {i + 1}", f"image {i + 1}: click to pin")
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
    assert "studio-description" in studio.description._dom_classes
    assert studio.description.layout.display is None and studio.attribute_box.layout.display == "none"
    studio.description.value = "hello world, nice weather"
    before = studio.grid.children
    click(studio.generate_button)
    assert "names no product attribute" in studio.status_text
    assert "Traceback" not in studio.status.value and studio.grid.children == before
    assert not studio.generate_button.disabled
    studio.description.value = ""
    click(studio.generate_button)
    assert studio.status_text.startswith("type a description")
    studio.description.value, studio.count.value = "红色条纹马克杯", 2
    click(studio.generate_button)
    assert studio.status_text.startswith("generated 2 images with text2img")
    assert studio.meta[0]["category"] == "mug" and studio.meta[0]["color"] == "red"


def test_pin_by_clicking_tiles_and_unpin(studio):
    studio.on_clear()
    studio.model.value = "dcgan"
    studio.count.value = 6
    click(studio.generate_button)
    click(studio.tiles[1])
    click(studio.tiles[4])
    assert [p.tile[1] for p in studio.pinned] == [1, 4]
    assert studio.status_text.startswith("pinned image 5 (2 pinned;")
    assert "studio-pinned" in studio.tiles[4]._dom_classes and "studio-pinned" not in studio.tiles[0]._dom_classes
    assert studio.tiles[4].tooltip == "image 5, pinned: click to unpin"
    thumbs = studio.pinned_box.children
    assert len(thumbs) == 2 and all("studio-pin" in t._dom_classes for t in thumbs)
    assert tile_png(studio, studio.pinned[1].css_class) == studio.images[4].permute(1, 2, 0).numpy().tobytes()
    assert thumbs[0].layout.width == "70px"  # a 64 px thumbnail and its frame, not the page's width
    click(studio.tiles[1])  # a second click on a pinned tile unpins it
    assert [p.tile[1] for p in studio.pinned] == [4] and studio.status_text == "unpinned image 2 (1 pinned)"
    assert "studio-pinned" not in studio.tiles[1]._dom_classes
    click(studio.tiles[0])
    click(studio.pinned_box.children[0])  # the thumbnail's x unpins it: image 5's
    assert [p.tile[1] for p in studio.pinned] == [0] and studio.status_text == "unpinned image 5 (1 pinned)"
    assert "studio-pinned" not in studio.tiles[4]._dom_classes and len(studio.pinned_box.children) == 1
    click(studio.generate_button)  # a new grid: the pin stays, its tile is gone, the new tiles are unpinned
    assert len(studio.pinned) == 1 and studio.pinned[0].tile is None
    assert not any("studio-pinned" in t._dom_classes for t in studio.tiles)
    click(studio.tiles[0])
    assert len(studio.pinned) == 2  # the same place in a new grid is a new image
    click(studio.clear_button)
    assert studio.pinned == [] and studio.pinned_box.children == () and studio.status_text == "pins cleared"
    with pytest.raises(ValueError, match="no image 7 in the grid: it has 6"):
        studio.toggle_pin(6)


def test_generate_is_disabled_while_working_and_shows_progress(studio, monkeypatch):
    import time

    studio.model.value = "cgan-projection"
    studio.count.value = 4
    click(studio.generate_button)  # now the studio knows this model's rate: an estimate and a bar
    model = studio.generator()
    seen = []

    def slow(requests, seed=0, **knobs):
        time.sleep(0.7)  # the status line is updated twice a second meanwhile
        seen.append((studio.generate_button.disabled, studio.status_text, studio.progress.layout.display))
        raise RuntimeError("the model broke")

    monkeypatch.setattr(model, "generate", slow)
    click(studio.generate_button)
    disabled, status, bar = seen[0]
    assert disabled and bar is None
    assert status.startswith("generating 4 images with cgan-projection… ") and status.endswith(" s")
    assert studio.status_text == "RuntimeError: the model broke"  # the error, after the progress stopped
    assert not studio.generate_button.disabled and studio.progress.layout.display == "none"


def test_pin_and_export(studio, tmp_path):
    studio.on_clear()
    click(studio.export_button)
    assert studio.status_text.startswith("nothing pinned yet: generate, then click images")
    studio.model.value = "dcgan"
    studio.count.value = 6
    click(studio.generate_button)
    click(studio.tiles[1])
    click(studio.tiles[4])
    assert len(studio.pinned) == 2 and studio.status_text.startswith("pinned image 5 (2 pinned")
    assert torch.equal(studio.pinned[1].image, studio.images[4])
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
    click(studio.tiles[0])
    click(studio.interpolate_button)
    assert studio.status_text == "interpolation needs two pins from the same GAN: 1 pinned"
    click(studio.tiles[3])
    assert (studio.blend_a.value, studio.blend_b.value) == (0, 1)
    studio.steps.value = 8
    click(studio.interpolate_button)
    assert studio.status_text.startswith("interpolated 8 images from pin 1 to pin 2 with cgan-projection in ")
    strip = studio.images
    assert strip.shape == (8, 3, 32, 32) and len(studio.grid.children) == 8
    assert torch.equal(strip[0], grid[0]) and torch.equal(strip[-1], grid[3])  # the ends are the pins
    model = studio.generator("cgan-projection")  # and the latents the studio found are the pins' own
    for pin, image in ((studio.pinned[0], grid[0]), (studio.pinned[1], grid[3])):
        alone = model.from_latents({k: v[None] for k, v in studio._latent_row(pin.source).items()})[0]
        assert (alone.int() - image.int()).abs().max() <= 1  # a batch of 1 vs 6: at most a rounding
    assert not torch.equal(strip[4], grid[0]) and not torch.equal(strip[4], grid[3])
    assert studio.meta[3] == {"category": "mug", "model": "cgan-projection"}  # no seed makes a blend
    click(studio.tiles[3])  # a blend can be pinned, exported and blended again
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
    click(studio.tiles[1])
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
    click(studio.tiles[0])
    click(studio.tiles[2])
    click(studio.interpolate_button)
    assert studio.status_text == "interpolation needs two pins from the same GAN; vae cannot blend (it has no latents)"
    assert "Traceback" not in studio.status.value
    studio.on_clear()
    assert studio.blend_a.options == () and studio.blend_a.value is None
    studio.model.value = "dcgan"


def test_editors_are_the_generators_whose_protocol_can_edit():
    from prodgen.apps.edit import editors

    # shipped or not; diffusion-text / flow-text share a network
    # but do not edit
    assert editors() == ["cvae", "diffusion", "flow", "flow-fast"]
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
    with pytest.raises(ValueError, match="model 'vae' is not offered; offered: dcgan"):
        Studio(models=["dcgan"], model="vae")


def test_it_opens_on_the_most_controllable_quick_model():
    from prodgen.apps.studio import INTERACTIVE_SECONDS, Studio, control_means

    studio = Studio()  # a fresh one: what it timed to choose is in its rates
    means = control_means(studio.models)
    opened = studio.model.value
    assert opened in means, f"it opened on {opened}, a model without a measured control mean"
    timed = {name: rate * 16 for (name, _), rate in studio._rates.items()}
    assert timed[opened] <= INTERACTIVE_SECONDS
    better = [m for m in means if means[m] > means[opened]]
    assert all(timed[m] > INTERACTIVE_SECONDS for m in better)  # each more controllable one was timed: too slow
    assert not [m for m in means if means[m] < means[opened] and m in timed]  # and nothing below it was timed
    print(f"opened on {opened} (control {means[opened]:.3f}, a grid of 16 in {timed[opened]:.2f} s); "
          + ", ".join(f"{m}: {means[m]:.3f} in {timed[m]:.2f} s" for m in better))


def test_a_broken_model_does_not_keep_the_studio_from_opening(monkeypatch):
    from prodgen.apps.studio import Studio, control_means

    means = control_means(registry.generators(shipped=True))
    best = max(means, key=means.get)
    real = registry.load_generator

    def load(name, device="cpu"):
        if name == best:
            raise RuntimeError("checkpoint damaged")
        return real(name, device)

    monkeypatch.setattr(registry, "load_generator", load)
    studio = Studio()
    assert studio.model.value in means and studio.model.value != best
    studio.model.value = best
    assert studio.status_text == "RuntimeError: checkpoint damaged"


def test_opening_rule():
    from prodgen.apps.studio import opening_model

    means = {"slow-best": 0.99, "quick-good": 0.98, "quick-poor": 0.5}
    seconds = {"slow-best": 30.0, "quick-good": 0.05, "quick-poor": 0.01, "noise": 0.01}
    timed = []

    def grid_seconds(name):
        timed.append(name)
        return seconds[name]

    models = ["noise", "quick-poor", "quick-good", "slow-best"]
    assert opening_model(models, means, grid_seconds) == "quick-good" and timed == ["slow-best", "quick-good"]
    seconds.update({"quick-good": 5.0, "quick-poor": 5.0})
    assert opening_model(models, means, grid_seconds) == "slow-best"  # none quick: the most controllable
    assert opening_model(models, {}, grid_seconds) == "noise"  # none measured: the first
    assert opening_model(models, {"quick-poor": 0.9, "quick-good": 0.9}, lambda m: 0.1) == "quick-poor"  # a tie


def test_the_page_carries_the_shipped_font(studio):
    import base64

    from prodgen.fonts import FAMILY, FONT_FILE

    css = studio.style.value
    assert f'font-family: "{FAMILY}"' in css and base64.b64encode(FONT_FILE.read_bytes()).decode() in css
    assert f'"{FAMILY}", sans-serif !important' in css and ".prodgen-studio input" in css
    assert "prodgen-studio" in studio.app._dom_classes and studio.style in studio.app.children


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

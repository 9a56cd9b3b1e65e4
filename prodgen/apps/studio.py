"""The Product Studio: generate, pin, edit and export products with ipywidgets (lesson 09, ``prodgen studio``).

``Studio()`` builds the app in any notebook (display it, or ``studio.app``); ``prodgen studio`` serves it as a
web page with Voilà. It talks to image models only through the protocol (``prodgen.models.protocol``) and the
registry (``registry.generators``), so a model added to the registry appears here without code changes:

- **Generate**: a model picker (each entry says what the model accepts), one dropdown per attribute
  ("any" = unspecified) for attribute models, a description box (English or Chinese) for text models,
  seed, count, and one control per knob the model has; Generate -> a grid and a status line with the time.
- **Pin** images of the grid, and **export** the pinned ones as a catalog folder (PNGs + ``metadata.csv``,
  the ``prodgen generate`` format, written atomically by ``generate.write_catalog``).
- **Interpolate** between two pinned images of the same model, if the model has latents (the GANs: the
  protocol's ``latents`` is not ``None``): a strip from one to the other (``prodgen.apps.latent.interpolate``),
  shown as the grid, so its images can be pinned and exported too.
- **Edit**: a catalog photo or an uploaded PNG, re-drawn with some attributes changed by a model that can edit
  (the protocol's ``can_edit``: the CVAE encodes with the photo's labels and decodes with the new ones; diffusion
  regenerates the product region) -> before/after.

Every handler reports in the status line; bad input (an unknown word, a description with no product word, a
bad PNG) is a one-line message there, never a traceback.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import ipywidgets as widgets
import torch

from prodgen.catalog.attributes import ATTRIBUTE_NAMES, values_of
from prodgen.models import registry
from prodgen.models.protocol import Request

__all__ = ["Studio", "grid_png", "ANY"]

ANY = "any"
KEEP = "keep"
MAX_COUNT = 64

ACCEPTS_TEXT = {"attributes": "attributes (pick them below; 'any' = the model chooses)",
                "text": "a description in English or Chinese",
                "nothing": "nothing: unconditional, it draws products at random"}


def grid_png(images: torch.Tensor, columns: int = 8, scale: int = 3, gap: int = 2) -> bytes:
    """uint8 images N x 3 x H x W as one PNG grid (nearest-neighbour upscaled ``scale`` times)."""
    from PIL import Image

    n, _, h, w = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    hs, ws = h * scale, w * scale
    canvas = torch.full((3, rows * (hs + gap) - gap, columns * (ws + gap) - gap), 255, dtype=torch.uint8)
    big = images.repeat_interleave(scale, 2).repeat_interleave(scale, 3)  # N x 3 x hs x ws
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[:, r * (hs + gap):r * (hs + gap) + hs, c * (ws + gap):c * (ws + gap) + ws] = big[i]
    buf = io.BytesIO()
    Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class Studio:
    """The Product Studio app (``studio.app`` is the widget; a ``Studio`` displays itself in a notebook).

    ``models``: generator names (default: every shipped generator, in course order); ``editors``: names of
    models that can edit (default: the shipped ones, ``prodgen.apps.edit.editors``); ``export_dir``: the
    default export folder.
    """

    def __init__(self, models: list[str] | None = None, editors: list[str] | None = None,
                 export_dir="studio-export"):
        self.models = list(models) if models is not None else registry.generators(shipped=True)
        if not self.models:
            raise ValueError("no image generator is shipped; train one, e.g. `prodgen train dcgan`")
        unknown = [m for m in self.models if m not in registry.generators()]
        if unknown:
            raise ValueError(f"not image generators: {', '.join(unknown)}; "
                             f"generators: {', '.join(registry.generators())}")
        from prodgen.apps.edit import editors as can_edit

        shipped = registry.manifest()
        self.editors = list(editors) if editors is not None else [e for e in can_edit() if e in shipped]
        self._loaded: dict = {}
        self._editor_cache: dict = {}
        self.kinds = registry.generator_kinds()
        self.images = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)  # the current grid
        self.meta: list[dict] = []  # one metadata row per grid image
        self.sources: list[dict] = []  # what regenerates each grid image (see on_generate, on_interpolate)
        self.pinned: list[tuple[torch.Tensor, dict, dict]] = []  # (image 3 x H x W, metadata row, source)
        self.last_seconds = None
        self._catalog = None
        self._build(export_dir)

    # -- widgets -----------------------------------------------------------------------------------
    def _build(self, export_dir) -> None:
        W = widgets
        self.model = W.Dropdown(options=[(f"{m} ({self.kinds[m]})", m) for m in self.models],
                                value=self.models[0], description="model")
        self.accepts = W.HTML()
        self.attributes = {a: W.Dropdown(options=[ANY, *values_of(a)], value=ANY, description=a)
                           for a in ATTRIBUTE_NAMES}
        self.attribute_box = W.HBox(list(self.attributes.values()), layout=W.Layout(flex_flow="row wrap"))
        self.description = W.Text(placeholder="e.g. a large red striped t-shirt by Acme / 大号红色条纹T恤",
                                  description="description", layout=W.Layout(width="90%"))
        self.seed = W.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed")
        self.count = W.BoundedIntText(value=16, min=1, max=MAX_COUNT, description="count")
        self.knob_box = W.HBox()
        self.knob_widgets: dict = {}
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="magic")
        self.status = W.HTML(value="ready")
        self.grid = W.Image(format="png", layout=W.Layout(max_width="100%", display="none"))
        self.pick = W.SelectMultiple(options=[], description="pick", rows=4)
        self.pin_button = W.Button(description="Pin picked", icon="thumb-tack")
        self.clear_button = W.Button(description="Clear pins")
        self.pinned_view = W.Image(format="png", layout=W.Layout(display="none"))
        self.export_dir = W.Text(value=str(export_dir), description="folder")
        self.export_button = W.Button(description="Export pinned", icon="download")
        self.blend_a = W.Dropdown(options=[], description="from pin")
        self.blend_b = W.Dropdown(options=[], description="to pin")
        self.steps = W.IntSlider(value=8, min=2, max=32, description="steps")
        self.interpolate_button = W.Button(description="Interpolate", icon="arrows-h")
        generate_tab = W.VBox([
            W.HBox([self.model, self.accepts]), self.attribute_box, self.description,
            W.HBox([self.seed, self.count]), self.knob_box, self.generate_button, self.grid,
            W.HBox([self.pick, W.VBox([self.pin_button, self.clear_button])]),
            W.HTML("<b>Pinned</b>"), self.pinned_view, W.HBox([self.export_dir, self.export_button]),
            W.HBox([self.blend_a, self.blend_b, self.steps, self.interpolate_button]),
        ])
        # the edit tab
        self.editor = W.Dropdown(options=self.editors or ["(no editor shipped)"], description="editor")
        self.source = W.ToggleButtons(options=["catalog photo", "uploaded PNG"], value="catalog photo")
        self.photo = W.BoundedIntText(value=0, min=0, max=1999, description="photo #")
        self.upload = W.FileUpload(accept=".png", multiple=False, description="PNG")
        self.changes = {a: W.Dropdown(options=[KEEP, *values_of(a)], value=KEEP, description=a)
                        for a in ATTRIBUTE_NAMES}
        self.edit_button = W.Button(description="Edit", button_style="primary", icon="paint-brush")
        self.before_after = W.Image(format="png", layout=W.Layout(display="none"))
        edit_tab = W.VBox([self.editor, self.source, W.HBox([self.photo, self.upload]),
                           W.HBox(list(self.changes.values()), layout=W.Layout(flex_flow="row wrap")),
                           self.edit_button, self.before_after])
        self.tabs = W.Tab(children=[generate_tab, edit_tab])
        self.tabs.set_title(0, "Generate")
        self.tabs.set_title(1, "Edit")
        self.app = W.VBox([W.HTML("<h3>Product Studio</h3>"), self.tabs, self.status])
        self.app.add_class("prodgen-studio")  # CSS hooks for the browser tests
        self.attribute_box.add_class("studio-attributes")
        self.grid.add_class("studio-grid")
        self.model.observe(lambda change: self._safely(self._model_changed), names="value")
        self.generate_button.on_click(lambda _: self._safely(self.on_generate))
        self.pin_button.on_click(lambda _: self._safely(self.on_pin))
        self.clear_button.on_click(lambda _: self._safely(self.on_clear))
        self.export_button.on_click(lambda _: self._safely(self.on_export))
        self.interpolate_button.on_click(lambda _: self._safely(self.on_interpolate))
        self.edit_button.on_click(lambda _: self._safely(self.on_edit))
        self._model_changed()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.app)

    # -- helpers -----------------------------------------------------------------------------------
    def say(self, text: str, ok: bool = True) -> None:
        """Put ``text`` in the status line (red when not ``ok``)."""
        import html

        color = "#1a7f37" if ok else "#c62828"
        self.status.value = f'<span class="studio-status" style="color:{color}">{html.escape(text)}</span>'

    @property
    def status_text(self) -> str:
        """The status line without its markup."""
        import re

        return re.sub(r"<[^>]+>", "", self.status.value).replace("&#x27;", "'").replace("&quot;", '"') \
            .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _safely(self, handler) -> None:
        """Run a handler; any error becomes one line in the status line, never a traceback."""
        try:
            handler()
        except KeyError as e:
            self.say(f"unknown: {e.args[0]}", ok=False)
        except (ValueError, FileNotFoundError, FileExistsError) as e:
            self.say(str(e), ok=False)
        except Exception as e:  # noqa: BLE001 - the studio must never show a traceback
            self.say(f"{type(e).__name__}: {e}", ok=False)

    def generator(self, name: str | None = None):
        """The loaded ``ImageModel`` for ``name`` (default: the picked one); loaded once."""
        name = name or self.model.value
        if name not in self._loaded:
            self._loaded[name] = registry.load_generator(name)
        return self._loaded[name]

    def _model_changed(self) -> None:
        name = self.model.value
        model = self.generator(name)
        self.accepts.value = f"<i>accepts {ACCEPTS_TEXT[model.accepts]}</i>"
        self.attribute_box.layout.display = None if model.reads_attributes else "none"
        self.description.layout.display = None if model.reads_text else "none"
        self.knob_widgets = {}
        for k, knob in model.knobs.items():
            if knob.choices:
                w = widgets.Dropdown(options=list(knob.choices), value=knob.default, description=k)
            elif isinstance(knob.default, int) and not isinstance(knob.default, bool):  # a count, e.g. diffusion steps
                w = widgets.IntSlider(value=knob.default, min=int(knob.low), max=min(int(knob.high), 250),
                                      description=k)
            else:
                start = knob.default if knob.default is not None else knob.high
                w = widgets.FloatSlider(value=start, min=knob.low, max=knob.high, step=0.05, description=k)
            w.tooltip = knob.doc
            if knob.default is None:  # an optional knob: off unless ticked
                w = widgets.HBox([widgets.Checkbox(value=False, description=f"{k} on", indent=False), w])
            self.knob_widgets[k] = w
        self.knob_box.children = list(self.knob_widgets.values())
        self.say(f"{name} ready")

    def knob_values(self) -> dict:
        """The knob settings from the controls (an optional knob left unticked = off)."""
        values = {}
        for k, w in self.knob_widgets.items():
            if isinstance(w, widgets.HBox):
                tick, slider = w.children
                values[k] = float(slider.value) if tick.value else None
            else:
                values[k] = w.value
        return values

    def request(self) -> tuple[list[Request], dict]:
        """``(the grid's requests, protocol Requests; metadata shared by the grid)`` from the controls: the
        attribute dropdowns for attribute models, the description box for text models, nothing otherwise."""
        model = self.generator()
        n = int(self.count.value)
        if not 1 <= n <= MAX_COUNT:
            raise ValueError(f"count must be 1 to {MAX_COUNT}, got {n}")
        if model.reads_attributes:
            attrs = {a: w.value for a, w in self.attributes.items() if w.value != ANY}
            return [Request(attrs)] * n, dict(attrs)
        if model.reads_text:
            text = self.description.value.strip()
            if not text:
                raise ValueError("type a description, e.g. 'a red striped mug by Acme' or 'Acme品牌红色条纹马克杯'")
            request = Request(text=text)
            heard = model.understood([request])[0]  # no product word -> one-line ValueError
            return [request] * n, {**heard, "description": text}
        return [Request()] * n, {}

    # -- handlers ----------------------------------------------------------------------------------
    def on_generate(self) -> None:
        """Generate a grid from the controls (the Generate button)."""
        model = self.generator()
        requests, meta = self.request()
        knobs = self.knob_values()
        self.say(f"generating with {model.name}…")
        start = time.perf_counter()
        seed = int(self.seed.value)
        images = model.generate(requests, seed=seed, **knobs)
        self._show(images, [{**meta, "model": model.name, "seed": seed} for _ in range(len(images))],
                   [{"model": model.name, "requests": requests, "seed": seed, "index": i, "knobs": dict(knobs)}
                    for i in range(len(images))])
        self.last_seconds = time.perf_counter() - start
        heard = {k: v for k, v in meta.items() if k != "description"}
        read = f"; read as {heard}" if model.reads_text else ""
        self.say(f"generated {len(images)} images with {model.name} in {self.last_seconds:.2f} s{read}")

    def _show(self, images: torch.Tensor, meta: list[dict], sources: list[dict]) -> None:
        """Make ``images`` the grid (with a metadata row and a source per image), pickable by number."""
        self.images, self.meta, self.sources = images, meta, sources
        self.grid.value = grid_png(images)
        self.grid.layout.display = None
        self.pick.options = [str(i + 1) for i in range(len(images))]

    def _pins_changed(self) -> None:
        options = [(f"{i + 1} ({p[1]['model']})", i) for i, p in enumerate(self.pinned)]
        self.blend_a.options, self.blend_b.options = options, options
        if options:
            self.blend_a.value, self.blend_b.value = 0, len(options) - 1

    def on_pin(self) -> None:
        """Pin the picked grid images (with what regenerates each: model, requests, seed, index, knobs)."""
        if not self.pick.value:
            raise ValueError("pick one or more images of the grid first (their numbers, left to right)")
        for label in self.pick.value:
            i = int(label) - 1
            self.pinned.append((self.images[i].clone(), dict(self.meta[i]), self.sources[i]))
        self.pinned_view.value = grid_png(torch.stack([p[0] for p in self.pinned]), columns=12, scale=2)
        self.pinned_view.layout.display = None
        self._pins_changed()
        self.say(f"{len(self.pinned)} pinned")

    def on_clear(self) -> None:
        self.pinned = []
        self.pinned_view.value = b""
        self.pinned_view.layout.display = "none"  # an empty image would show as a broken one
        self._pins_changed()
        self.say("pins cleared")

    def _latent_row(self, source: dict):
        """The one-row latents of a pinned image (its model's ``latents``), or ``None`` if it has none."""
        if "latents" in source:  # an image of an interpolated strip
            return source["latents"]
        model = self.generator(source["model"])
        latents = model.latents(source["requests"], seed=source["seed"], **source["knobs"])
        return None if latents is None else {k: v[source["index"]] for k, v in latents.items()}

    def on_interpolate(self) -> None:
        """A strip of ``steps`` images from one pinned image to another (same model, one with latents),
        shown as the grid: its ends are the two pinned images."""
        from prodgen.apps.latent import interpolate

        need = "interpolation needs two pins from the same GAN"
        if len(self.pinned) < 2:
            raise ValueError(f"{need}: {len(self.pinned)} pinned")
        a, b = self.blend_a.value, self.blend_b.value
        if a == b:
            raise ValueError(f"{need}: pick two different pins")
        (image_a, meta_a, source_a), (image_b, meta_b, source_b) = self.pinned[a], self.pinned[b]
        name = source_a["model"]
        if source_b["model"] != name:
            raise ValueError(f"{need}; pin {a + 1} is from {name}, pin {b + 1} from {source_b['model']}")
        start = time.perf_counter()
        row_a, row_b = self._latent_row(source_a), self._latent_row(source_b)
        if row_a is None or row_b is None:
            raise ValueError(f"{need}; {name} cannot blend (it has no latents)")
        steps = int(self.steps.value)
        path = interpolate(row_a, row_b, steps)
        # the ends are the pins themselves: decoded again in a batch of another size, a network's rounding can
        # move a few pixels by one level (its kernels depend on the batch shape)
        inner = self.generator(name).from_latents({k: v[1:-1] for k, v in path.items()})
        images = torch.cat([image_a[None], inner, image_b[None]])
        shared = {k: v for k, v in meta_a.items() if k not in ("model", "seed") and meta_b.get(k) == v}
        self._show(images, [{**shared, "model": name} for _ in range(steps)],
                   [{"model": name, "latents": {k: v[i] for k, v in path.items()}} for i in range(steps)])
        self.last_seconds = time.perf_counter() - start
        self.say(f"interpolated {steps} images from pin {a + 1} to pin {b + 1} with {name} in "
                 f"{self.last_seconds:.2f} s (pick and pin them like a grid)")

    def on_export(self) -> Path:
        """Write the pinned images as a catalog folder (PNGs + metadata.csv), atomically."""
        from prodgen.apps.generate import write_catalog

        if not self.pinned:
            raise ValueError("nothing pinned yet: generate, pick images and press 'Pin picked'")
        text = self.export_dir.value.strip()
        if not text:
            raise ValueError("give a folder to export to")
        out = write_catalog(Path(text).expanduser(), torch.stack([p[0] for p in self.pinned]),
                            [p[1] for p in self.pinned])
        self.say(f"exported {len(self.pinned)} images to {out}")
        return out

    def _source_photo(self) -> tuple[torch.Tensor, torch.Tensor, str]:
        """``(image 1 x 3 x 32 x 32 uint8, labels 1 x 5, where it came from)``."""
        from prodgen.catalog import load_catalog, normalize

        if self.source.value == "catalog photo":
            if self._catalog is None:
                self._catalog = load_catalog("test", progress=False)
            i = int(self.photo.value)
            if not 0 <= i < len(self._catalog):
                raise ValueError(f"photo # must be 0 to {len(self._catalog) - 1}, got {i}")
            return self._catalog.images[i:i + 1], self._catalog.labels[i:i + 1], f"test photo {i}"
        if not self.upload.value:
            raise ValueError("upload a PNG first (or pick 'catalog photo')")
        item = self.upload.value[0]
        image = read_png(bytes(item["content"]), item.get("name", "upload"))
        judge = self._editor_cache.setdefault("judge", registry.load("judge"))
        labels = judge.predict(normalize(image))
        return image, labels, f"{item.get('name', 'upload')} (attributes read by the judge)"

    def on_edit(self) -> None:
        """Re-draw the chosen photo with the changed attributes (before | after)."""
        if not self.editors:
            raise ValueError("no attribute editor is shipped; train one, e.g. `prodgen train cvae`")
        changes = {a: w.value for a, w in self.changes.items() if w.value != KEEP}
        if not changes:
            raise ValueError("choose at least one attribute to change")
        image, labels, where = self._source_photo()
        name = self.editor.value
        from prodgen.catalog import denormalize

        model = self.generator(name)  # loaded once, shared with the Generate tab
        if not model.can_edit:
            raise ValueError(f"{name} cannot edit photos; models that can edit: {', '.join(self.editors)}")
        start = time.perf_counter()
        after = denormalize(model.edit(image, labels, changes).float())
        self.edited = after
        self.before_after.value = grid_png(torch.cat([image, after]), columns=2, scale=6)
        self.before_after.layout.display = None
        self.say(f"edited {where} with {name}: {changes} in {time.perf_counter() - start:.2f} s (before | after)")


def read_png(data: bytes, name: str = "upload", size: int = 32) -> torch.Tensor:
    """An uploaded image file as uint8 1 x 3 x size x size (RGB, resized); not an image -> ``ValueError``."""
    from PIL import Image, UnidentifiedImageError

    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
    except (UnidentifiedImageError, OSError):
        raise ValueError(f"{name} is not a PNG image the studio can read") from None
    picture = picture.convert("RGB").resize((size, size), Image.LANCZOS)
    return torch.from_numpy(__import__("numpy").asarray(picture).copy()).permute(2, 0, 1)[None]

"""One interface for every image model: what it reads, the knobs it has, ``generate``, and ``edit`` where it can.

Every image-model family implements :class:`ImageModel` next to its network (``dcgan.py``, ``vae.py``, ``cgan.py``,
``cvae.py``, ``text2img.py``, ``diffusion.py``, ``flow.py``); ``prodgen.models.registry.load_generator(name)`` gives
one for any shipped generator. ``prodgen generate``, ``evaluate``, ``edit``, the leaderboard and the studio talk
only to this protocol: they never ask a model which family it is (no ``accepts ==``, no ``hasattr``), they ask it
the protocol's questions (:attr:`ImageModel.conditional`, :attr:`ImageModel.reads_text`,
:attr:`ImageModel.can_edit`, :attr:`ImageModel.blends`) and hand it :class:`Request` objects. A new model is one
``ModelSpec`` beside its network (``prodgen.models.registry``).

- :class:`Request`: one image's request, the same type for every model: attributes ``{name: value}`` (missing =
  unspecified) and/or a description ``text`` (English or Chinese), or neither (unconditional). The model turns
  a list of them into its own condition (:meth:`ImageModel.condition`) and says in one line when one does not
  fit: attribute models refuse a description alone, text models describe attribute requests (they need a
  category), unconditional models refuse any condition. A request with both is read by each model in its own
  way (attributes by attribute models, the text by text models): the leaderboard asks every model that way.
- ``accepts``: ``"attributes"``, ``"text"`` or ``"nothing"`` (kept as data: the leaderboard row and the studio's
  label show it). Besides Requests, ``generate`` still takes the raw forms lessons use: a list of
  ``{name: value}`` dicts or a label tensor N x A (-1 = unspecified) for attribute models, a list of strings for
  text models, a number of images for unconditional ones; they give exactly the images they always gave.
- ``knobs``: ``{name: Knob}``, each with its default and valid range (truncation for GANs, temperature for
  VAEs, guidance/steps/eta for diffusion). The defaults give the model's plain behaviour.
- ``generate(requests, seed=0, **knobs)``: uint8 images N x 3 x H x W on the CPU, one per request. The noise
  comes from a CPU generator seeded with ``seed``: the same seed gives byte-identical images.
- ``generate_groups([(requests, seed), ...], **knobs)``: many requests, each group with its own seed, in one
  batch (``prodgen generate --batch``: one group per CSV row). Each group draws all its noise from its own
  generator, in the order ``generate`` draws it, so a group's images do not depend on its neighbours and match
  ``generate(requests, seed)`` up to the network's batch-size-dependent rounding (at most one grey level).
- ``latents(requests, seed=0, **knobs)``: for models that blend (:attr:`blends`, the GANs), the exact inputs
  ``generate`` feeds the network, one row per request (``{"z": N x z_dim}``, plus ``"condition"`` for
  conditional models); ``None`` for the others. ``from_latents(latents, **knobs)`` decodes such a dict, and
  ``from_latents(latents(r, seed, **k))`` is byte-identical to ``generate(r, seed, **k)``. The studio
  interpolates between two pinned images with it (``prodgen.apps.latent.interpolate``).
- ``edit(images, labels, changes, seed=0, **knobs)`` where :attr:`can_edit` (the CVAE, diffusion): real photos
  with some attributes changed, images in [-1, 1]; :meth:`edit_variants` makes several seeds' variants in one batch.
- ``restore(observed, operator, seed=0, **knobs)`` where :attr:`can_restore` (the flow): photos damaged by a known
  operator (``prodgen.apps.degrade``) restored with the model as the prior, images in [-1, 1] (lesson 16).
- ``try_on(scenes, slots, photos, seed=0, **knobs)`` where :attr:`can_try_on` (lesson 15: the cut-and-paste
  baseline, ``prodgen.models.tryon``): each scene (``prodgen.catalog.scenes.Scene``) wearing a catalog photo's
  product in one of its slots, uint8 images; the inputs are checked here, once for every model
  (:class:`TryOnInputs`), and the family implements ``_try_on(inputs, seed, **knobs)``. A try-on model is not an
  image generator (:attr:`ImageModel.generates` is ``False``): the registry lists it among the try-on models
  (``registry.tryon_models()``), never among the generators the leaderboard, the studio and ``prodgen generate``
  ask for images.

How a family implements it: ``_latents(prepared, generator, **knobs)`` makes every random draw of one group of
requests from that group's generator (a dict of tensors, one row per image), and ``_decode(latents, noise,
**knobs)`` turns a (possibly concatenated) dict into images in [-1, 1], batched and deterministic except for
draws it takes from ``noise`` (:class:`Noise`: diffusion's per-step noise, per group). A family may instead
implement only ``_images(prepared, seed, **knobs)``; its groups are then generated one by one.

Used by ``prodgen generate`` / ``evaluate`` / ``edit`` / ``leaderboard``, the studio and lessons 08, 09, 11 and 12.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

__all__ = ["ACCEPTS", "Knob", "ImageModel", "Noise", "Request", "TryOnInputs", "as_labels", "fill_open", "noise",
           "TRUNCATION",
           "TEMPERATURE", "UNSPECIFIED"]

ACCEPTS = ("attributes", "text", "nothing")
"""What a model can be asked for: attribute requests, descriptions, or nothing (a number of images)."""


@dataclass(frozen=True)
class Knob:
    """A setting of ``generate``: its default, and either a numeric range ``[low, high]`` or ``choices``.

    A default of ``None`` means "off"; ``None`` is then also a valid value. An ``int`` default makes the knob
    a whole number (e.g. sampling steps); a ``float`` default, a real number.
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    doc: str = ""

    def check(self, value):
        """``value`` if it is valid for this knob, else a ``ValueError`` saying the valid range."""
        if value is None and self.default is None:
            return None
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{self.name} must be a number in [{self.low}, {self.high}]"
                             f"{' or None (off)' if self.default is None else ''}, got {value!r}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"{self.name} must be in [{self.low}, {self.high}], got {value}")
        if isinstance(self.default, int):  # a count (e.g. diffusion steps): whole numbers only
            if value != int(value):
                raise ValueError(f"{self.name} must be a whole number in [{self.low}, {self.high}], got {value}")
            return int(value)
        return float(value)


TRUNCATION = Knob("truncation", None, 0.05, 4.0,
                  doc="the truncation trick (Brock et al., 2019): noise entries with |z| > t are re-drawn; "
                      "smaller t = more typical, less varied images; None = off")
TEMPERATURE = Knob("temperature", 1.0, 0.0, 3.0, doc="z ~ N(0, t^2 I): below 1 = more typical, less varied images")
UNSPECIFIED = Knob("unspecified", "random", choices=("random", "learned"),
                   doc="what happens to attributes a request leaves open: drawn at random (uniformly, as the "
                       "catalog draws them), or left to the generator's learned 'unspecified'")


def noise(n: int, dim: int, generator: torch.Generator, truncation: float | None = None) -> torch.Tensor:
    """``n x dim`` standard normal noise from ``generator``; with ``truncation`` t, entries with |z| > t are
    re-drawn (from the same generator) until none is left. ``truncation=None`` draws exactly
    ``torch.randn(n, dim, generator=generator)``."""
    z = torch.randn(n, dim, generator=generator)
    if truncation is not None:
        outside = z.abs() > truncation
        while outside.any():
            z[outside] = torch.randn(int(outside.sum()), generator=generator)
            outside = z.abs() > truncation
    return z


def as_labels(requests, schema=None) -> torch.Tensor:
    """Attribute requests as a label tensor N x A (-1 = unspecified; A attributes of ``schema``, the course
    catalog's five by default): from a list of ``{name: value}`` dicts (unknown names or values ->
    ``ValueError`` listing the valid ones) or from a label tensor (checked)."""
    from prodgen.catalog.schema import BUILTIN
    from prodgen.models.condition import check_labels, parse_request

    schema = schema or BUILTIN
    if isinstance(requests, torch.Tensor):
        return check_labels(requests, schema)
    if isinstance(requests, dict):
        requests = [requests]
    if isinstance(requests, (str, int)) or not all(isinstance(r, dict) for r in requests):
        example = ", ".join(f"{a!r}: {v[0]!r}" for a, v in list(schema.values.items())[:2])
        raise ValueError(f"attribute requests are a list of {{attribute: value}} dicts (e.g. [{{{example}}}]) "
                         f"or a label tensor N x {len(schema)}")
    rows = [parse_request(r, schema) for r in requests]
    return torch.cat(rows) if rows else torch.zeros(0, len(schema), dtype=torch.long)


@dataclass(frozen=True)
class Request:
    """One image's request, for any model: ``attributes`` ``{name: value}`` (left out or blank = unspecified)
    and/or a description ``text`` (English or Chinese), or neither (an unconditional request).

    ``Request({"color": "red"})``, ``Request(text="a red mug")``, ``Request()``. The names and values are
    checked by the model that reads them (its schema: the course catalog's, or your own catalog's in lesson 12),
    so a request can be made before a model is chosen. Frozen and hashable; the ``attributes`` dict is a copy
    (do not change it in place). Used by ``prodgen generate``, the leaderboard, the studio and ``prodgen edit``.
    """

    attributes: Mapping = field(default_factory=dict)
    text: str = ""

    def __post_init__(self):
        if not isinstance(self.attributes, Mapping):
            raise ValueError(f"a request's attributes are a {{name: value}} dict, got {self.attributes!r}")
        if not isinstance(self.text, str):
            raise ValueError(f"a request's text is a string (a description), got {self.text!r}")
        attrs = {str(k): v for k, v in self.attributes.items() if v not in (None, "")}
        object.__setattr__(self, "attributes", attrs)
        object.__setattr__(self, "text", self.text.strip())

    def __hash__(self):
        return hash((tuple(sorted(self.attributes.items())), self.text))

    @property
    def unconditional(self) -> bool:
        """Whether the request asks for nothing (no attribute, no text)."""
        return not self.attributes and not self.text

    def description(self) -> str:
        """The text a text model reads: :attr:`text` if given, else the attributes described in English with a
        fixed template and fixed synonyms, the attributes taken in the catalog's order whatever order they were
        given in (the same request, the same text); no text and no category -> ``ValueError`` (a description
        without a product word would be refused)."""
        from prodgen.catalog.describe import describe
        from prodgen.catalog.schema import BUILTIN

        if self.text:
            return self.text
        if "category" not in self.attributes:
            raise ValueError(f"a text model needs a description, or attributes that include a category "
                             f"(got {self.attributes or 'nothing'})")
        order = {a: i for i, a in enumerate(BUILTIN.names)}
        attrs = dict(sorted(self.attributes.items(), key=lambda kv: order.get(kv[0], len(order))))
        return describe(attrs, "en", template=0, rng=0)


@dataclass
class TryOnInputs:
    """Checked try-on inputs, one row per try-on: ``scenes`` (N x 3 x S x S uint8), the slot ``masks``
    (N x S x S bool), the product ``photos`` (N x 3 x S x S uint8), the ``slots``, each scene's ``anchors``
    (``prodgen.catalog.scenes.slot_anchors``: the slot's place, scale and tilt for its first category at medium
    size, like a pose) and its ``params`` (for a model that places other categories and sizes itself)."""

    scenes: torch.Tensor
    masks: torch.Tensor
    photos: torch.Tensor
    slots: list
    anchors: list
    params: list

    def __len__(self) -> int:
        return len(self.scenes)

    @classmethod
    def check(cls, scenes, slots, photos, size: int) -> TryOnInputs:
        """Inputs from a ``Scene`` or a list of them, a slot name or one per scene, and uint8 photos
        (3 x S x S or N x 3 x S x S); anything wrong -> one ``ValueError`` saying what is valid."""
        from prodgen.catalog.scenes import KINDS, Scene, slot_anchors

        scenes = [scenes] if isinstance(scenes, Scene) else list(scenes)
        if not all(isinstance(sc, Scene) for sc in scenes):
            raise ValueError("try_on takes scenes as prodgen.catalog.scenes.Scene objects (scene_at, make_scene, "
                             "Scenes.scene(i)), one or a list")
        slots = [slots] * len(scenes) if isinstance(slots, str) else list(slots)
        if len(slots) != len(scenes):
            raise ValueError(f"give one slot for every scene (or one for all): {len(slots)} slots, "
                             f"{len(scenes)} scenes")
        photos = torch.as_tensor(photos)
        photos = photos[None] if photos.ndim == 3 else photos
        if photos.dtype != torch.uint8 or tuple(photos.shape[1:]) != (3, size, size) or len(photos) != len(scenes):
            raise ValueError(f"product photos must be uint8 {size} x {size} RGB, 3 x {size} x {size} or "
                             f"N x 3 x {size} x {size} with one per scene ({len(scenes)}); got {photos.dtype} "
                             f"{tuple(photos.shape)} (catalog photos: load_catalog(split, size={size}))")
        images, masks = [], []
        for sc, slot in zip(scenes, slots):
            valid = KINDS.get(sc.params.get("kind"), ())
            if slot not in valid:
                raise ValueError(f"unknown slot {slot!r} for a {sc.params.get('kind')} scene; valid slots: "
                                 f"{', '.join(valid)}")
            image, mask = torch.as_tensor(sc.image), torch.as_tensor(sc.masks.get(slot))
            if image.dtype != torch.uint8 or tuple(image.shape) != (3, size, size):
                raise ValueError(f"scene images must be uint8 3 x {size} x {size}, got {image.dtype} "
                                 f"{tuple(image.shape)}")
            if mask.dtype != torch.bool or tuple(mask.shape) != (size, size) or not mask.any():
                raise ValueError(f"the {slot!r} mask must be a non-empty {size} x {size} bool array matching the "
                                 f"scene image, got {mask.dtype} {tuple(mask.shape)}")
            images.append(image)
            masks.append(mask)
        if not scenes:
            return cls(torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, size, size, dtype=torch.bool),
                       photos, [], [], [])
        anchors = [slot_anchors(sc.params, slot) for sc, slot in zip(scenes, slots)]
        return cls(torch.stack(images), torch.stack(masks), photos.contiguous(), slots, anchors,
                   [sc.params for sc in scenes])


class Noise:
    """Noise a family draws while decoding (diffusion's per-step noise when ``eta > 0``, inpainting's), for rows
    that come in groups: :meth:`randn` draws each group's rows from that group's own generator, so a group gets
    the numbers it would get alone. ``parts``: ``[(generator, rows), ...]`` in row order."""

    def __init__(self, parts):
        self.parts = [(g, int(n)) for g, n in parts]

    def randn(self, shape) -> torch.Tensor:
        """Standard normal noise of ``shape`` (its first entry: all rows), group by group."""
        shape = tuple(shape)
        if shape[0] != sum(n for _, n in self.parts):
            raise ValueError(f"noise for {shape[0]} rows asked of groups with {sum(n for _, n in self.parts)}")
        if len(self.parts) == 1:  # exactly torch.randn(shape, generator=...) for a single group
            return torch.randn(shape, generator=self.parts[0][0])
        return torch.cat([torch.randn((n, *shape[1:]), generator=g) for g, n in self.parts])


def _wrong_kind(model, requests) -> str:
    """The one-line complaint for raw requests of the wrong form (names the form the model takes)."""
    if model.accepts == "attributes":
        return (f"{model.name} is controlled by attributes: give a list of {{attribute: value}} dicts, Requests "
                f"or a label tensor N x {len(model.schema)}")
    if model.accepts == "text":
        return (f"{model.name} is controlled by text: give a list of descriptions, e.g. "
                "['a large red striped t-shirt by Acme'], or Requests")
    return f"{model.name} is unconditional: its request is a number of images, got {requests!r}"


def _text_models() -> str:
    from prodgen.models import registry

    return ", ".join(k for k, v in registry.generator_kinds().items() if v == "text")


def fill_open(labels: torch.Tensor, generator: torch.Generator, schema=None) -> torch.Tensor:
    """``condition.fill_unspecified`` for one group of requests, skipped (no draw, the same values) when hard labels
    leave nothing open: a sheet of fully specified rows then pays nothing per row for it."""
    from prodgen.models.condition import fill_unspecified

    if not labels.is_floating_point() and not bool((labels < 0).any()):
        return labels
    return fill_unspecified(labels, generator, schema) if schema is not None else fill_unspecified(labels, generator)


class ImageModel:
    """The protocol: subclasses set ``accepts`` and ``knobs`` and implement ``_latents`` + ``_decode`` (or only
    ``_images``); families that edit set ``can_edit`` and implement ``_edit``; families whose latents blend set
    ``blends``; families that try products on scenes set ``can_try_on`` and implement ``_try_on`` (and set
    ``generates = False`` unless they also generate images from requests).

    ``network`` is the trained ``nn.Module``; ``name`` the registry name (or any label); ``info`` its
    manifest entry (``registry.load_entry``), empty for a model that is not shipped.
    """

    accepts: ClassVar[str] = "nothing"
    blends: ClassVar[bool] = False
    """Whether :meth:`latents` gives blendable network inputs (the GANs; the studio's interpolation)."""
    can_edit: ClassVar[bool] = False
    """Whether :meth:`edit` re-draws real photos with attributes changed (``prodgen edit``, the studio's Edit tab)."""
    edit_draws: ClassVar[bool] = False
    """Whether an edit draws noise, so that seeds give different variants (diffusion: yes; the CVAE: no)."""
    can_restore: ClassVar[bool] = False
    """Whether :meth:`restore` repairs damaged photos with the model as the prior (``prodgen restore``)."""
    can_try_on: ClassVar[bool] = False
    """Whether :meth:`try_on` dresses scenes in product photos (lesson 15: the cut-and-paste baseline; ``tryon-64``)."""
    try_on_draws: ClassVar[bool] = False
    """Whether a try-on draws noise, so that seeds give different results (``prodgen tryon --n``)."""
    generates: ClassVar[bool] = True
    """Whether :meth:`generate` makes images from requests: the model is then an *image generator*
    (``registry.generators()``: the leaderboard, the studio, ``prodgen generate``). A model that only transforms
    inputs (the try-on models: ``registry.tryon_models()``) sets it to ``False``; its ``generate`` refuses."""
    image_size: int = 32

    def __init__(self, network, name: str = "model", info: dict | None = None):
        self.network, self.name, self.info = network.eval(), name, info or {}

    @property
    def schema(self):
        """The attributes this model's requests use (``prodgen.catalog.schema``): its network's, which a
        checkpoint trained on your own catalog records (lesson 12); the course catalog's otherwise."""
        from prodgen.catalog.schema import BUILTIN

        return getattr(self.network, "schema", BUILTIN)

    @property
    def conditional(self) -> bool:
        """Whether requests steer the model (attributes or text); ``False``: it draws products at random."""
        return self.accepts != "nothing"

    @property
    def reads_attributes(self) -> bool:
        """Whether the model reads attributes ``{name: value}`` of its :attr:`schema` (a label row per request)."""
        return self.accepts == "attributes"

    @property
    def reads_text(self) -> bool:
        """Whether the model reads descriptions (its attribute columns then say what its reader heard)."""
        return self.accepts == "text"

    @property
    def knobs(self) -> dict[str, Knob]:
        """``{name: Knob}``: the settings :meth:`generate` takes."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, accepts={self.accepts!r}, knobs={list(self.knobs)})"

    def check_knobs(self, knobs: dict) -> dict:
        """Every knob with its value (defaults filled in); unknown names or invalid values -> ``ValueError``."""
        known = self.knobs
        unknown = set(knobs) - set(known)
        if unknown:
            raise ValueError(f"{self.name} has no knob {', '.join(sorted(unknown))}; its knobs: "
                             f"{', '.join(known) or 'none'}")
        return {k: knob.check(knobs.get(k, knob.default)) for k, knob in known.items()}

    # -- requests -> condition -----------------------------------------------------------------------------
    def condition(self, requests) -> Any:
        """:class:`Request` objects in the form the family's ``_latents`` takes, or a one-line ``ValueError``
        when one does not fit: a label tensor N x A (attribute models; a description alone is refused), a list
        of descriptions (text models; attribute requests are described, :meth:`Request.description`, and
        every text must name a product word), or a count (unconditional models; any condition is refused)."""
        requests = [requests] if isinstance(requests, Request) else list(requests)
        if self.accepts == "attributes":
            for r in requests:
                if r.text and not r.attributes:
                    raise ValueError(f"{self.name} is controlled by attributes, not text: give attributes (e.g. "
                                     f"category=mug,color=red), or use a text model ({_text_models()})")
            return as_labels([r.attributes for r in requests], self.schema)
        if self.accepts == "text":
            from prodgen.models.text import validate_description

            for r in requests:
                if not r.text and "category" not in r.attributes:
                    raise ValueError(f"{self.name} needs a description, or attributes that include a category "
                                     f"(got {r.attributes})")
            texts = [r.description() for r in requests]
            for text in dict.fromkeys(texts):
                validate_description(text)  # no known product word -> ValueError with examples
            return texts
        if any(not r.unconditional for r in requests):
            raise ValueError(f"{self.name} is unconditional: it takes no attributes or description; ask only for "
                             "a number of images")
        return len(requests)

    def described(self, requests) -> list[str]:
        """The description each :class:`Request` is read as: for text models the text they read (generated
        from the attributes when the request has none), for the others the request's own text (may be "")."""
        requests = [requests] if isinstance(requests, Request) else list(requests)
        return self.condition(requests) if self.reads_text else [r.text for r in requests]

    def prepare(self, requests):
        """The requests in the form ``_latents`` / ``_images`` take (``ValueError`` if they are the wrong kind):
        from :class:`Request` objects (:meth:`condition`) or from the raw forms (label tensor or ``{name: value}``
        dicts, list of strings, or a count)."""
        if isinstance(requests, Request):
            return self.condition([requests])
        if isinstance(requests, (list, tuple)) and requests and all(isinstance(r, Request) for r in requests):
            return self.condition(requests)
        if isinstance(requests, (list, tuple)) and any(isinstance(r, Request) for r in requests):
            raise ValueError("give either Requests or raw requests, not a mix of both")
        if self.accepts == "attributes":
            if isinstance(requests, (str, int)) or (isinstance(requests, (list, tuple)) and requests
                                                    and isinstance(requests[0], str)):
                raise ValueError(_wrong_kind(self, requests))
            return as_labels(requests, self.schema)
        if self.accepts == "text":
            if isinstance(requests, str):
                requests = [requests]
            if isinstance(requests, (int, torch.Tensor)) or not all(isinstance(t, str) for t in requests):
                raise ValueError(_wrong_kind(self, requests))
            return list(requests)
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
            raise ValueError(_wrong_kind(self, requests))
        return requests

    @staticmethod
    def count(prepared) -> int:
        return prepared if isinstance(prepared, int) else len(prepared)

    # -- generating ----------------------------------------------------------------------------------------
    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, 3, self.image_size, self.image_size, dtype=torch.uint8)

    @torch.no_grad()
    def generate(self, requests, seed: int = 0, **knobs) -> torch.Tensor:
        """One uint8 image (3 x H x W) per request, N x 3 x H x W on the CPU; same seed, same bytes."""
        from prodgen.catalog import denormalize

        self._check_generates()
        values = self.check_knobs(knobs)
        prepared = self.prepare(requests)
        if self.count(prepared) == 0:
            return self._empty()
        return denormalize(self._images(prepared, int(seed), **values).float().cpu())

    def _check_generates(self) -> None:
        if not self.generates:
            what = "tries products on scenes (try_on)" if self.can_try_on else "transforms its inputs"
            raise ValueError(f"{self.name} is not an image generator: it {what} and does not generate images")

    def _images(self, prepared, seed: int, **knobs) -> torch.Tensor:
        """Images in [-1, 1] for prepared requests: the group's draws (``_latents``) decoded (``_decode``). A
        family may override this instead (its groups are then generated one at a time)."""
        gen = torch.Generator().manual_seed(seed)
        latents = self._latents(prepared, gen, **knobs)
        return self._decode(latents, Noise([(gen, self.count(prepared))]), **knobs)

    @property
    def _batches(self) -> bool:
        """Whether the family splits its work into ``_latents`` + ``_decode`` (so groups share a batch)."""
        return type(self)._latents is not ImageModel._latents

    def _latents(self, prepared, generator: torch.Generator, **knobs) -> dict[str, torch.Tensor]:
        """Every random draw for one group of prepared requests, from ``generator`` in the order the family
        has always drawn them, as tensors with one row per image; implemented by each family."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _latents/_decode nor _images")

    def _decode(self, latents: dict, noise: Noise | None = None, **knobs) -> torch.Tensor:
        """Images in [-1, 1] from (concatenated) latents; ``noise`` gives any draws made while decoding."""
        raise NotImplementedError(f"{type(self).__name__} implements _latents but not _decode")

    @torch.no_grad()
    def generate_groups(self, groups, **knobs) -> list[torch.Tensor]:
        """``[(requests, seed), ...]`` -> one uint8 tensor per group (as :meth:`generate` would give it, up to
        batch-size rounding), made in one batch: each group's draws from its own generator seeded with its seed,
        the latents concatenated, decoded together (the family batches the network internally), split back.
        Every group is checked (knobs, requests) before any work. Keep the total to what fits in memory:
        ``prodgen generate --batch`` sends a few hundred images at a time."""
        from prodgen.catalog import denormalize

        self._check_generates()
        values = self.check_knobs(knobs)
        prepared = self._prepare_groups(groups)
        counts = [self.count(p) for p, _ in prepared]
        if not self._batches:
            return [denormalize(self._images(p, s, **values).float().cpu()) if n else self._empty()
                    for (p, s), n in zip(prepared, counts)]
        latents, parts = [], []
        for (p, seed), n in zip(prepared, counts):
            if n:
                gen = torch.Generator().manual_seed(seed)
                latents.append(self._latents(p, gen, **values))
                parts.append((gen, n))
        if not latents:
            return [self._empty() for _ in counts]
        joined = {k: torch.cat([lat[k] for lat in latents]) for k in latents[0]}
        images = denormalize(self._decode(joined, Noise(parts), **values).float().cpu())
        return list(images.split(counts))

    def _prepare_groups(self, groups) -> list[tuple[Any, int]]:
        """``[(prepared requests, seed), ...]``; groups made of :class:`Request` lists are turned into the model's
        condition in one call and split back (a sheet of single-image rows: one call, not one per row)."""
        groups = [([r] if isinstance(r, Request) else r, int(seed)) for r, seed in groups]
        if not all(isinstance(r, (list, tuple)) and all(isinstance(q, Request) for q in r) for r, _ in groups):
            return [(self.prepare(r), seed) for r, seed in groups]
        counts = [len(r) for r, _ in groups]
        joined = self.condition([q for r, _ in groups for q in r])
        if isinstance(joined, int):  # unconditional: the condition is a count
            return [(n, seed) for n, (_, seed) in zip(counts, groups)]
        starts = [sum(counts[:i]) for i in range(len(counts))]
        return [(joined[a:a + n], seed) for a, n, (_, seed) in zip(starts, counts, groups)]

    def _for_blending(self, latents: dict) -> dict:
        """:meth:`latents` as the studio blends them; a family whose ``_latents`` keep a cheaper form (the cGAN's
        labels) turns them into blendable tensors here (its one-hot soft request)."""
        return latents

    def latents(self, requests, seed: int = 0, **knobs) -> dict[str, torch.Tensor] | None:
        """The exact network inputs :meth:`generate` uses for these requests, seed and knobs, one row per
        request (``{"z": N x z_dim, ...}``), or ``None`` if this model cannot blend its images."""
        if not self.blends:
            return None
        values = self.check_knobs(knobs)
        return self._for_blending(self._latents(self.prepare(requests), torch.Generator().manual_seed(int(seed)),
                                                **values))

    @torch.no_grad()
    def from_latents(self, latents: dict, **knobs) -> torch.Tensor:
        """uint8 images N x 3 x H x W decoded from a :meth:`latents` dict (or a blend of two,
        ``prodgen.apps.latent.interpolate``) with ``knobs``; a model without latents, or a dict of the wrong
        shape -> ``ValueError``."""
        from prodgen.catalog import denormalize

        if not self.blends:
            raise ValueError(f"{self.name} has no latents to decode (its latents() is None)")
        values = self.check_knobs(knobs)
        if not isinstance(latents, dict) or not latents:
            raise ValueError("from_latents needs a dict of tensors, as latents() returns")
        rows = {len(v) for v in latents.values()}
        if len(rows) != 1:
            raise ValueError(f"latents must all have one row per image, got {sorted(rows)} rows")
        if rows == {0}:
            return self._empty()
        return denormalize(self._decode(latents, None, **values).float().cpu())

    def understood(self, requests) -> list[dict]:
        """The attributes the model takes each request to ask for, ``{name: value}`` (open ones left out):
        the request itself for attribute models, nothing for unconditional ones; text models say what
        their description reader heard."""
        from prodgen.models.condition import request_to_dict

        prepared = self.prepare(requests)
        if self.accepts == "attributes":
            return [request_to_dict(row, self.schema) for row in prepared]
        if self.accepts == "nothing":
            return [{} for _ in range(prepared)]
        raise TypeError(f"{type(self).__name__} takes text but does not say what it reads (override understood)")

    # -- editing real photos ---------------------------------------------------------------------------------
    def edit(self, images: torch.Tensor, labels: torch.Tensor, changes: dict, seed: int = 0,
             **knobs) -> torch.Tensor:
        """Real photos (uint8 or [-1, 1], N x 3 x H x W) with their labels (N x A) re-drawn with ``changes``
        (``{"color": "teal"}``) applied: images in [-1, 1]. ``seed`` matters where :attr:`edit_draws`;
        ``knobs``: the family's edit settings. A model that cannot edit -> ``ValueError``."""
        if not self.can_edit:
            raise ValueError(f"{self.name} cannot edit photos")
        return self._edit(images, labels, changes, [int(seed)], **knobs)[0]

    def edit_variants(self, images: torch.Tensor, labels: torch.Tensor, changes: dict, seeds,
                      **knobs) -> list[torch.Tensor]:
        """:meth:`edit` for each seed of ``seeds`` (one [-1, 1] tensor per seed), in one batch where the family
        can: variant ``i`` equals ``edit(..., seed=seeds[i])`` up to batch-size rounding (``prodgen edit --n``)."""
        if not self.can_edit:
            raise ValueError(f"{self.name} cannot edit photos")
        return self._edit(images, labels, changes, [int(s) for s in seeds], **knobs)

    def _edit(self, images, labels, changes: dict, seeds: list[int], **knobs) -> list[torch.Tensor]:
        """One [-1, 1] tensor per seed; implemented by the families that set ``can_edit``."""
        raise NotImplementedError

    # -- restoring damaged photos ---------------------------------------------------------------------------
    def restore(self, observed: torch.Tensor, operator, seed: int = 0, **knobs) -> torch.Tensor:
        """Photos damaged by ``operator`` (``prodgen.apps.degrade``; ``observed`` = its output, [-1, 1])
        restored with this model as the prior: images in [-1, 1] at the model's size. Seeds give different
        restorations of the same damage. A model that cannot restore -> ``ValueError``."""
        if not self.can_restore:
            raise ValueError(f"{self.name} cannot restore photos")
        return self._restore(observed, operator, int(seed), **knobs)

    def _restore(self, observed, operator, seed: int, **knobs) -> torch.Tensor:
        raise NotImplementedError

    # -- trying products on scenes (lesson 15) ------------------------------------------------------------------
    @torch.no_grad()
    def try_on(self, scenes, slots, photos, seed: int = 0, **knobs) -> torch.Tensor:
        """Each scene wearing its photo's product in its slot: uint8 N x 3 x S x S (3 x S x S for one ``Scene``).

        ``scenes``: a ``prodgen.catalog.scenes.Scene`` or a list; ``slots``: a slot name or one per scene;
        ``photos``: uint8 catalog photos at the model's :attr:`image_size`, one per scene. Bad input (wrong size,
        a slot the scene lacks, a mask that does not match) -> ``ValueError``; a model that cannot try on too."""
        from prodgen.catalog.scenes import Scene

        if not self.can_try_on:
            raise ValueError(f"{self.name} cannot try products on scenes")
        values = self.check_knobs(knobs)
        inputs = TryOnInputs.check(scenes, slots, photos, self.image_size)
        out = self._try_on(inputs, int(seed), **values) if len(inputs) else inputs.scenes.clone()
        return out[0] if isinstance(scenes, Scene) else out

    def _try_on(self, inputs: TryOnInputs, seed: int, **knobs) -> torch.Tensor:
        """uint8 N x 3 x S x S; implemented by the families that set ``can_try_on``."""
        raise NotImplementedError

    def extra_evaluation(self, n: int, seed: int, judge) -> dict:
        """Measurements only this family can make (e.g. the CVAE's attribute edits) for ``prodgen evaluate``."""
        return {}

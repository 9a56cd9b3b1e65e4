"""One interface for every image model: what it accepts, the knobs it has, and ``generate``.

Every image-model family implements :class:`ImageModel` next to its network (``dcgan.py``, ``vae.py``,
``cgan.py``, ``cvae.py``, ``text2img.py``); ``prodgen.models.registry.load_generator(name)`` gives one for any
shipped generator. ``prodgen generate``, ``prodgen evaluate``, the leaderboard and the studio talk only to
this protocol, never to model names: a new model is one ``ModelSpec`` beside its network (``prodgen.models.registry``).

- ``accepts``: ``"attributes"`` (a list of ``{name: value}`` dicts, attributes left out = unspecified, or
  a label tensor N x 5 with -1 = unspecified), ``"text"`` (a list of descriptions, English or Chinese) or
  ``"nothing"`` (an unconditional model: the request is a number of images).
- ``knobs``: ``{name: Knob}``, each with its default and valid range (truncation for GANs, temperature for
  VAEs; guidance and steps for diffusion later). The defaults give the model's plain behaviour.
- ``generate(requests, seed=0, **knobs)``: uint8 images N x 3 x H x W on the CPU, one per request. The
  noise comes from a CPU generator seeded with ``seed``: the same seed gives byte-identical images.
- ``latents(requests, seed=0, **knobs)`` (optional): the exact inputs ``generate`` feeds the network, one
  row per request (``{"z": N x z_dim}``, plus ``"condition"`` for conditional models), or ``None`` for a
  model that cannot blend (the default); ``from_latents(latents)`` decodes such a dict, and
  ``from_latents(latents(r, seed, **k))`` is byte-identical to ``generate(r, seed, **k)``. The studio
  interpolates between two pinned images with it (``prodgen.apps.latent.interpolate``).

Used by ``prodgen generate`` / ``evaluate`` / ``leaderboard``, the studio and lessons 08, 09 and 11.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

__all__ = ["ACCEPTS", "Knob", "ImageModel", "as_labels", "noise", "TRUNCATION", "TEMPERATURE", "UNSPECIFIED"]

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


class ImageModel(ABC):
    """The protocol: subclasses set ``accepts`` and ``knobs`` and implement :meth:`_images`.

    ``network`` is the trained ``nn.Module``; ``name`` the registry name (or any label); ``info`` its
    manifest entry (``pretrained.load_entry``), empty for a model that is not shipped.
    """

    accepts: ClassVar[str] = "nothing"
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

    def prepare(self, requests):
        """The requests in the form :meth:`_images` takes (``ValueError`` if they are the wrong kind):
        a label tensor N x 5, a list of strings, or a count."""
        if self.accepts == "attributes":
            if isinstance(requests, (str, int)) or (isinstance(requests, (list, tuple)) and requests
                                                    and isinstance(requests[0], str)):
                raise ValueError(f"{self.name} is controlled by attributes: give a list of {{attribute: value}} "
                                 f"dicts or a label tensor N x {len(self.schema)}")
            return as_labels(requests, self.schema)
        if self.accepts == "text":
            if isinstance(requests, str):
                requests = [requests]
            if isinstance(requests, (int, torch.Tensor)) or not all(isinstance(t, str) for t in requests):
                raise ValueError(f"{self.name} is controlled by text: give a list of descriptions, "
                                 "e.g. ['a large red striped t-shirt by Acme']")
            return list(requests)
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
            raise ValueError(f"{self.name} is unconditional: its request is a number of images, got {requests!r}")
        return requests

    @staticmethod
    def count(prepared) -> int:
        return prepared if isinstance(prepared, int) else len(prepared)

    @torch.no_grad()
    def generate(self, requests, seed: int = 0, **knobs) -> torch.Tensor:
        """One uint8 image (3 x H x W) per request, N x 3 x H x W on the CPU; same seed, same bytes."""
        from prodgen.catalog import denormalize

        values = self.check_knobs(knobs)
        prepared = self.prepare(requests)
        if self.count(prepared) == 0:
            return torch.zeros(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return denormalize(self._images(prepared, int(seed), **values).float().cpu())

    @abstractmethod
    def _images(self, prepared, seed: int, **knobs) -> torch.Tensor:
        """Images in [-1, 1] for prepared requests (see :meth:`prepare`); implemented by each family."""

    def latents(self, requests, seed: int = 0, **knobs) -> dict[str, torch.Tensor] | None:
        """The exact network inputs :meth:`generate` uses for these requests, seed and knobs, one row per
        request (``{"z": N x z_dim, ...}``), or ``None`` if this model cannot blend its images."""
        values = self.check_knobs(knobs)
        return self._latents(self.prepare(requests), int(seed), **values)

    def _latents(self, prepared, seed: int, **knobs) -> dict[str, torch.Tensor] | None:
        """Implemented by families whose images are a function of a few input tensors (the GANs)."""
        return None

    @torch.no_grad()
    def from_latents(self, latents: dict) -> torch.Tensor:
        """uint8 images N x 3 x H x W decoded from a :meth:`latents` dict (or a blend of two,
        ``prodgen.apps.latent.interpolate``); a model without latents, or a dict of the wrong shape ->
        ``ValueError``."""
        from prodgen.catalog import denormalize

        if not isinstance(latents, dict) or not latents:
            raise ValueError("from_latents needs a dict of tensors, as latents() returns")
        rows = {len(v) for v in latents.values()}
        if len(rows) != 1:
            raise ValueError(f"latents must all have one row per image, got {sorted(rows)} rows")
        if rows == {0}:
            return torch.zeros(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return denormalize(self._decode(**latents).float().cpu())

    def _decode(self, **latents) -> torch.Tensor:
        """Images in [-1, 1] from latents; families that implement :meth:`_latents` implement this too."""
        raise ValueError(f"{self.name} has no latents to decode (its latents() is None)")

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

    def extra_evaluation(self, n: int, seed: int, judge) -> dict:
        """Measurements only this family can make (e.g. the CVAE's attribute edits) for ``prodgen evaluate``."""
        return {}

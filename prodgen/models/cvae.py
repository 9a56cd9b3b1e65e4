"""The conditional VAE (lesson 06): a VAE that is told the attributes, so the code keeps only the rest.

Both halves see the condition ``c = one_hot(y)`` (34 numbers, :func:`~prodgen.models.condition.one_hot`):

- encoder ``q(z | x, y)``: the photo with ``c`` stacked on as 34 constant planes (37 input channels);
- decoder ``p(x | z, y)``: lesson 05's conditional generator with ``z`` as its noise: ``c`` is
  concatenated with ``z`` at the input *and* sets the scale and shift of every batch norm, so the
  attributes reach every layer and the decoder has no reason to look for them in ``z``.

The ELBO is the VAE's (``prodgen.engine.losses.vae_loss``), now conditional:
``log p(x|y) >= E_q[log p(x|z,y)] - KL(q(z|x,y) || N(0, I))``. Because the decoder is *given* the
attributes, storing them in ``z`` again would only cost KL, so the code learns what the labels do not
say: position, pose, shading. That is what makes **attribute editing** work: encode a real photo with its
true labels, change one label, decode (:meth:`CVAE.edit`).

The condition follows the ``schema`` the CVAE is built for (the course catalog's by default; your own
catalog's in lesson 12: ``prodgen train cvae --data DIR``).

Used by lessons 06 and 12, ``prodgen generate --model cvae`` and the shipped ``cvae`` checkpoint.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from prodgen.catalog.schema import BUILTIN, Schema, schema_of
from prodgen.engine.losses import vae_loss
from prodgen.models.cgan import Generator
from prodgen.models.condition import OneHot, check_labels, fill_unspecified, one_hot
from prodgen.models.protocol import TEMPERATURE, ImageModel, fill_open, noise
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec
from prodgen.models.vae import Encoder, reparameterize

__all__ = ["condition_planes", "CVAE", "fill_unspecified", "build", "CVAEImageModel", "CHECKPOINT_CONFIG",
           "train_checkpoint", "edit_table", "evaluate"]


def condition_planes(x: torch.Tensor, labels: torch.Tensor, schema: Schema = BUILTIN) -> torch.Tensor:
    """The encoder's input: the photo plus one constant plane per entry of ``one_hot(labels)``, N x 37 x H x W."""
    n, _, h, w = x.shape
    c = schema.condition_dim
    planes = one_hot(labels, schema).to(x.dtype)[:, :, None, None].expand(n, c, h, w)  # N x 34 x H x W
    return torch.cat([x, planes], dim=1)


class CVAE(nn.Module):
    """``model(x, y) -> (x_hat, mu, logvar)`` for photos N x 3 x 32 x 32 and labels N x 5 (N x A: the
    attributes of ``schema``)."""

    def __init__(self, z_dim: int = 8, width: int = 64, schema: Schema = BUILTIN):
        super().__init__()
        self.z_dim, self.width, self.schema = z_dim, width, schema
        c = schema.condition_dim
        self.encoder = Encoder(z_dim, width, in_channels=3 + c)  # photo + 34 condition planes
        self.decoder = Generator(z_dim, width, embed=OneHot(schema), cond_dim=c, schema=schema)  # (z, y) -> photo

    def encode_condition(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z | x, y)``, each N x z_dim."""
        return self.encoder(condition_planes(x, y, self.schema))  # N x 37 x 32 x 32 -> N x z_dim (twice)

    def decode_condition(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The image mean of ``p(x | z, y)``: N x 3 x 32 x 32 in [-1, 1]."""
        return self.decoder(z, y)  # N x z_dim and N x 5 -> N x 3 x 32 x 32

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        mu, logvar = self.encode_condition(x, y)
        z = reparameterize(mu, logvar)  # N x z_dim
        return self.decode_condition(z, y), mu, logvar

    # -- using a trained model (eval mode, batched, on the model's device) -------------------------
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def _batched(self, fn, *tensors, batch_size: int = 500) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            dev = self._device()
            outs = [fn(*(t[s:s + batch_size].to(dev) for t in tensors)).float().cpu()
                    for s in range(0, len(tensors[0]), batch_size)]
        finally:
            self.train(was)
        return torch.cat(outs)

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Image means for codes ``z`` (N x z_dim) and label rows (N x 5): N x 3 x 32 x 32 in [-1, 1]
        (eval mode, in batches, on the CPU)."""
        return self._batched(self.decode_condition, z, check_labels(labels, self.schema))

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One new image per request row (-1 entries are filled at random): ``z ~ N(0, I)``, decoded."""
        cpu_gen = generator if generator is None or generator.device.type == "cpu" else None
        labels = fill_unspecified(labels.cpu(), cpu_gen, self.schema)
        device = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(len(labels), self.z_dim, generator=generator, device=device).cpu()
        return self.decode(z, labels)

    def codes(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Posterior means ``mu(x, y)`` (N x z_dim) of photos (uint8 or [-1, 1]) with their true labels."""
        from prodgen.catalog import normalize

        x = normalize(images) if images.dtype == torch.uint8 else images.float()
        return self._batched(lambda a, b: self.encode_condition(a, b)[0], x, check_labels(labels, self.schema))

    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean with the true labels."""
        return self.decode(self.codes(images, labels), labels)

    def edit(self, images: torch.Tensor, labels: torch.Tensor, changes: dict) -> torch.Tensor:
        """Re-draw real photos with some attributes changed, e.g. ``changes={"color": "red"}``.

        Encode each photo with its true labels, replace the changed labels, decode with the same code.
        """
        from prodgen.models.condition import parse_request

        labels = check_labels(labels, self.schema)
        new = labels.clone()
        request = parse_request(changes, self.schema)[0]
        for j in range(new.shape[1]):
            if request[j] >= 0:
                new[:, j] = request[j]
        return self.decode(self.codes(images, labels), new)

    def edit_labels(self, images: torch.Tensor, labels: torch.Tensor, new_labels: torch.Tensor) -> torch.Tensor:
        """Like :meth:`edit`, with the new label rows given directly (N x 5)."""
        return self.decode(self.codes(images, labels), check_labels(new_labels, self.schema))


def build(config: dict) -> CVAE:
    """Rebuild a shipped CVAE from its checkpoint config (``prodgen.models.registry``)."""
    return CVAE(config.get("z_dim", 8), config.get("width", 64), schema=schema_of(config))


class CVAEImageModel(ImageModel):
    """The image-model protocol (``prodgen.models.protocol``) for a CVAE: attribute requests (unspecified
    ones drawn at random, as :meth:`CVAE.sample` does), codes from ``N(0, t^2 I)`` with the knob
    ``temperature`` t. Registered as ``cvae`` (``SPECS`` below); ``prodgen evaluate`` adds the
    attribute-edit table (:func:`edit_table`). It edits photos (:meth:`CVAE.edit`: encode with the photo's labels,
    decode with the changed ones), deterministically: one result whatever the seed."""

    accepts = "attributes"
    can_edit = True

    @property
    def knobs(self) -> dict:
        return {"temperature": TEMPERATURE}

    def _latents(self, labels: torch.Tensor, generator: torch.Generator, temperature: float = 1.0) -> dict:
        labels = fill_open(labels, generator, self.schema)  # the same draws as CVAE.sample with this generator
        return {"z": noise(len(labels), self.network.z_dim, generator) * temperature, "labels": labels}

    def _decode(self, latents: dict, noise=None, **knobs) -> torch.Tensor:
        return self.network.decode(latents["z"], latents["labels"])

    def _edit(self, images: torch.Tensor, labels: torch.Tensor, changes: dict, seeds: list[int],
              **knobs) -> list[torch.Tensor]:
        if knobs:
            raise ValueError(f"{self.name}'s edit takes no settings (got {', '.join(knobs)})")
        edited = self.network.edit(images, labels, changes)
        return [edited for _ in seeds]

    def extra_evaluation(self, n: int, seed: int, judge) -> dict:
        from prodgen.catalog import load_catalog

        return {"edits": edit_table(self.network, load_catalog("test", progress=False), judge, n=min(n, 2000),
                                    seed=seed)}


# --------------------------------------------------------------------------- measuring edits
@torch.no_grad()
def edit_table(model: CVAE, catalog, judge, n: int = 1000, seed: int = 0) -> dict:
    """Attribute edits on the first ``n`` photos of ``catalog``, per attribute.

    For each attribute, every photo gets a different value of that attribute (chosen at random), is
    encoded with its true labels and decoded with the changed ones. ``success``: the judge sees the new
    value; ``preservation``: the judge still sees the photo's other attributes.
    """
    images, labels = catalog.images[:n], catalog.labels[:n]
    gen = torch.Generator().manual_seed(seed)
    codes = model.codes(images, labels)
    table = {}
    num_classes = model.schema.num_classes
    for j, (a, k) in enumerate(num_classes.items()):
        new = labels.clone()
        new[:, j] = (labels[:, j] + torch.randint(1, k, (len(labels),), generator=gen)) % k  # always a different value
        edited = model.decode(codes, new)
        pred = judge.predict(edited.contiguous(memory_format=torch.channels_last))
        others = [i for i in range(len(num_classes)) if i != j]
        table[a] = {"success": round(float((pred[:, j] == new[:, j]).double().mean()), 4),
                    "preservation": round(float((pred[:, others] == labels[:, others]).double().mean()), 4)}
    recon = judge.predict(model.reconstruct(images, labels).contiguous(memory_format=torch.channels_last))
    table["mean"] = {key: round(sum(table[a][key] for a in num_classes) / len(num_classes), 4)
                     for key in ("success", "preservation")}
    table["reconstruction_accuracy"] = round(float((recon == labels).double().mean()), 4)
    return table


def evaluate(model: CVAE, n: int = 2000, seed: int = 0, judge=None) -> dict:
    """What ``prodgen evaluate cvae`` reports: control accuracy of samples for ``n`` balanced requests,
    the edit table on test photos, FID (with floor), precision and recall of the samples."""
    from prodgen.catalog import load_catalog
    from prodgen.metrics import control_accuracy, image_quality
    from prodgen.models import registry
    from prodgen.models.condition import balanced_requests

    judge = judge if judge is not None else registry.load("judge")
    requests = balanced_requests(n, seed)
    images = model.sample(requests, generator=torch.Generator().manual_seed(seed))
    return {
        "n": n,
        "control": {k: round(v, 4) for k, v in control_accuracy(judge, images, requests).items()},
        "edits": edit_table(model, load_catalog("test", progress=False), judge, n=min(n, 2000), seed=seed),
        **image_quality(judge, images, n),
    }


# --------------------------------------------------------------------------- the shipped checkpoint
CHECKPOINT_CONFIG = {"z_dim": 8, "width": 64, "beta": 1.0, "sigma": 0.3, "epochs": 60, "minutes": None,
                     "batch_size": 128, "lr": 1e-3, "seed": 0, "train_split": "train"}
"""How ``prodgen train cvae`` trains: the whole training split, Adam, the likelihood ``N(x_hat, sigma^2 I)``."""


def train_checkpoint(name: str = "cvae", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, data=None, **overrides) -> dict:
    """Train the shipped CVAE (``prodgen train cvae``) and save it with :func:`evaluate`'s metrics.
    ``fast=True``: 1,024 products, one epoch (a smoke test; it still overwrites ``name`` unless ``out``
    is given). ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``. ``data``: a catalog folder
    of your own (lesson 12; ``prodgen.evaluation.own_catalog``). The shared steps: ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume, data=data)


def _fit(run) -> Trained:
    from prodgen.engine.train import train_vae

    cfg = run.cfg
    torch.manual_seed(cfg["seed"])
    model = CVAE(cfg["z_dim"], cfg["width"], schema=run.train.schema)
    history = train_vae(model, run.train, lr=cfg["lr"], beta=cfg["beta"], conditional=True,
                        loss_fn=functools.partial(vae_loss, sigma=cfg["sigma"]), **run.engine())
    config = {"z_dim": model.z_dim, "width": model.width, "sigma": cfg["sigma"],
              **({"schema": model.schema.to_config()} if model.schema != BUILTIN else {})}
    return Trained(model, config, history)


def _measure(run, trained) -> dict:
    return evaluate(trained.model, n=500 if run.fast else 2000)


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, _measure,
                report=lambda m: f"control {m['control']}, edits {m['edits']['mean']}, FID {m['fid']}")
"""What ``prodgen train cvae`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (ModelSpec("cvae", "cvae", build, train_checkpoint, CVAEImageModel, lesson=6, recipe=CHECKPOINT_CONFIG,
              summary="conditional VAE: attribute requests, and edits of a real photo"),)

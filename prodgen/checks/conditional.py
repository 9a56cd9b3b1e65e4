"""Checks for lessons 05-07: embedding a request, the projection score, the CVAE's input, editing, soft requests."""
from __future__ import annotations

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_embed_request", "check_projection_score", "check_condition_planes", "check_edit",
           "check_soft_request"]

_K = (8, 10, 3, 4, 4)  # values per attribute: category, color, size, brand, pattern


def _tables(dim: int, seed: int = 0):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(k + 1, dim, generator=gen) for k in _K]  # row k = "unspecified"


def _labels(n: int = 6, seed: int = 1, unspecified: bool = True):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    labels = torch.stack([torch.randint(k, (n,), generator=gen) for k in _K], dim=1)
    if unspecified:
        labels[0, 1] = -1  # colour unspecified
        labels[1, 3] = -1  # brand unspecified
        labels[2] = -1  # nothing specified
    return labels


# ------------------------------------------------------------------ lesson 05
@_check("embed a request",
        "for attribute j: rows = labels[:, j], with -1 replaced by len(tables[j]) - 1; "
        "parts.append(tables[j][rows]); return torch.cat(parts, dim=1)")
def check_embed_request(embed_request) -> None:
    """Lesson 05: ``embed_request(labels N x 5, tables) -> N x (5 * dim)``, -1 = the table's last row."""
    torch = _torch()
    tables, labels = _tables(4), _labels()
    out = embed_request(labels.clone(), tables)
    _expect(isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
    _expect(tuple(out.shape) == (6, 20), f"6 requests, 5 attributes x 4 numbers: expected shape (6, 20), got "
            f"{tuple(out.shape)} (concatenate the five vectors along dim=1)")
    expected = torch.cat([t[torch.where(labels[:, j] < 0, len(t) - 1, labels[:, j])] for j, t in enumerate(tables)], 1)
    wrong_unspec = torch.cat([t[labels[:, j].clamp(min=0)] for j, t in enumerate(tables)], 1)
    if torch.allclose(out, wrong_unspec) and not torch.allclose(out, expected):
        _expect(False, "requests with -1 got the vector of value 0: -1 means 'unspecified', the LAST row of "
                "each table (tables[j][-1] would be right too, but only after replacing -1)")
    _expect(bool(torch.allclose(out[3:], expected[3:])), "fully specified requests get the wrong vectors: row "
            "labels[i, j] of tables[j], for the attributes in order category, color, size, brand, pattern")
    _expect(bool(torch.allclose(out, expected)), "requests with unspecified attributes (-1) get the wrong vectors: "
            "use the last row of that attribute's table")


@_check("projection score",
        "score = psi + sum over attributes j of (tables[j][labels[:, j]] * h).sum(1), "
        "skipping (multiplying by 0) the rows where labels[:, j] == -1")
def check_projection_score(projection_score) -> None:
    """Lesson 05: ``projection_score(h N x C, psi N, tables, labels) -> N`` (unspecified adds nothing)."""
    torch = _torch()
    tables, labels = _tables(8, seed=2), _labels(seed=3)
    gen = torch.Generator().manual_seed(4)
    h, psi = torch.randn(6, 8, generator=gen), torch.randn(6, generator=gen)
    out = projection_score(h.clone(), psi.clone(), tables, labels.clone())
    _expect(isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
    _expect(tuple(out.shape) == (6,), f"one score per image: expected shape (6,), got {tuple(out.shape)}")
    expected = psi.clone()
    for j, t in enumerate(tables):
        asked = labels[:, j] >= 0
        e = t[labels[:, j].clamp(min=0)] * asked[:, None]
        expected = expected + (e * h).sum(1)
    _expect(bool(torch.allclose(out[3:], expected[3:], atol=1e-5)),
            "fully specified requests get the wrong score: psi(h) + sum_j <tables[j][y_j], h> "
            "(an inner product per attribute: multiply elementwise, sum over the features)")
    last_row = psi.clone()
    for j, t in enumerate(tables):
        last_row = last_row + (t[torch.where(labels[:, j] < 0, len(t) - 1, labels[:, j])] * h).sum(1)
    if torch.allclose(out, last_row, atol=1e-5):
        _expect(False, "unspecified attributes (-1) add the last row's term: an attribute nobody asked about "
                "should add nothing to the score")
    _expect(bool(torch.allclose(out, expected, atol=1e-5)),
            "requests with unspecified attributes (-1) get the wrong score: they should add nothing")


# ------------------------------------------------------------------ lesson 06
@_check("condition planes",
        "c = one_hot(labels) (N x 34); planes = c[:, :, None, None].expand(-1, -1, H, W); "
        "return torch.cat([x, planes], dim=1)")
def check_condition_planes(condition_planes) -> None:
    """Lesson 06: ``condition_planes(x N x 3 x H x W, labels) -> N x 37 x H x W``."""
    torch = _torch()
    from prodgen.models.condition import one_hot

    labels = _labels(4, seed=5)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    out = condition_planes(x.clone(), labels.clone())
    _expect(isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
    _expect(tuple(out.shape) == (4, 37, 8, 8), f"3 colour planes + 34 condition planes: expected (4, 37, 8, 8), "
            f"got {tuple(out.shape)}")
    _expect(bool(torch.equal(out[:, :3], x)), "the first three planes must be the photo itself (concatenate x first)")
    expected = one_hot(labels)[:, :, None, None].expand(-1, -1, 8, 8)
    _expect(bool(torch.allclose(out[:, 3:].float(), expected)),
            "the condition planes are wrong: plane k of image i is one_hot(labels)[i, k] everywhere "
            "(use prodgen.models.condition.one_hot, which puts -1 into the 'unspecified' slot)")


@_check("attribute editing",
        "mu = model.codes(images, labels); new = labels.clone(); new[:, index_of_attribute] = value index; "
        "return model.decode(mu, new)  (or model.edit)")
def check_edit(edit) -> None:
    """Lesson 06: ``edit(model, images, labels, attribute, value) -> images`` = decode(mu(x, y), y')."""
    torch = _torch()
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES, index_of
    from prodgen.models.cvae import CVAE

    with torch.random.fork_rng():  # a small model with large random weights: every input visibly matters
        torch.manual_seed(0)
        model = CVAE(z_dim=4, width=8).eval()
        for p in model.parameters():
            p.data.normal_(0.0, 0.3)
    gen = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (5, 3, 32, 32), generator=gen, dtype=torch.uint8)
    labels = _labels(5, seed=8, unspecified=False)
    out = edit(model, images, labels.clone(), "color", "blue")
    _expect(isinstance(out, torch.Tensor), f"expected a tensor of images, got {type(out).__name__}")
    _expect(tuple(out.shape) == (5, 3, 32, 32), f"one edited image per photo: expected (5, 3, 32, 32), got "
            f"{tuple(out.shape)}")
    new = labels.clone()
    new[:, ATTRIBUTE_NAMES.index("color")] = index_of("color", "blue")
    mu = model.codes(images, labels)
    expected = model.decode(mu, new)
    recon = model.decode(mu, labels)
    if torch.allclose(out.float(), expected, atol=1e-4):
        return
    _expect(not torch.allclose(out.float(), recon, atol=1e-4), "the images came back unchanged: decode with the "
            "NEW labels (colour set to blue)")
    wrong_code = model.decode(model.codes(images, new), new)
    _expect(not torch.allclose(out.float(), wrong_code, atol=1e-4), "you encoded the photos with the new labels: "
            "encode with their TRUE labels (the code must describe this photo as it is), then decode with the new ones")
    _expect(False, "the edited images differ from decode(mu(x, true labels), new labels): use the posterior "
            "mean (model.codes), not a random sample")


# ------------------------------------------------------------------ lesson 07
@_check("soft request",
        "torch.cat([logits[a].softmax(dim=1) for a in ATTRIBUTE_NAMES], dim=1)")
def check_soft_request(soft_request) -> None:
    """Lesson 07: ``soft_request({attribute: N x (K+1) logits}) -> N x 34`` probabilities."""
    torch = _torch()
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES

    gen = torch.Generator().manual_seed(9)
    logits = {a: 3 * torch.randn(4, k + 1, generator=gen) for a, k in zip(ATTRIBUTE_NAMES, _K)}
    out = soft_request({a: v.clone() for a, v in logits.items()})
    _expect(isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
    _expect(tuple(out.shape) == (4, 34), f"expected shape (4, 34) (9 + 11 + 4 + 5 + 5), got {tuple(out.shape)}")
    expected = torch.cat([logits[a].softmax(1) for a in ATTRIBUTE_NAMES], 1)
    if torch.allclose(out, torch.cat([logits[a] for a in ATTRIBUTE_NAMES], 1)):
        _expect(False, "these are the raw logits: turn each attribute's logits into probabilities (softmax)")
    if torch.allclose(out, torch.cat([logits[a] for a in ATTRIBUTE_NAMES], 1).softmax(1), atol=1e-5):
        _expect(False, "one softmax over all 34 numbers mixes the attributes: take a softmax per attribute")
    _expect(bool(torch.allclose(out.sum(1), torch.full((4,), 5.0), atol=1e-4)),
            "each attribute's probabilities should sum to 1 (so each row sums to 5); softmax over dim=1 per attribute")
    _expect(bool(torch.allclose(out, expected, atol=1e-5)), "right shape and sums, wrong order: concatenate the "
            "attributes in ATTRIBUTE_NAMES order (category, color, size, brand, pattern)")

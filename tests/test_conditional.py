"""Conditional models: attribute conditions, conditional GANs, the CVAE, text to image, the shipped checkpoints."""
from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from prodgen.catalog import HELD_OUT_PAIRS, denormalize, load_catalog
from prodgen.catalog.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, index_of, values_of
from prodgen.engine.train import GANSettings, Progress, SampleGrid, train_gan
from prodgen.models import cgan, cvae, registry, text2img
from prodgen.models.condition import (
    CONDITION_DIM,
    NUM_CLASSES,
    AttributeEmbedding,
    balanced_requests,
    check_labels,
    hide_attributes,
    one_hot,
    parse_request,
    request_to_dict,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py

K = [NUM_CLASSES[a] for a in ATTRIBUTE_NAMES]  # 8, 10, 3, 4, 4
STARTS = [sum(k + 1 for k in K[:j]) for j in range(len(K))]  # where each attribute's block begins
FAST = dict(batch_size=32, progress=False, n_samples=8, device="cpu", precision="fp32")  # train_vae's options
FP32 = GANSettings(precision="fp32")
GFAST = dict(batch_size=32, device="cpu", callbacks=[Progress(False), SampleGrid(8)])  # train_gan's


def _labels(n=12, seed=0, hide=0.3):
    """Random valid label rows, some entries -1."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.stack([torch.randint(k, (n,), generator=gen) for k in K], dim=1)
    return hide_attributes(labels, hide, gen)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def judge():
    return registry.load("judge")


@pytest.fixture(scope="module")
def tiny_catalog():
    return load_catalog("train", n=256, progress=False)


# ============================================================================ condition.py
def test_condition_dim_is_every_value_plus_one_unspecified_slot_per_attribute():
    assert K == [8, 10, 3, 4, 4]
    assert CONDITION_DIM == sum(k + 1 for k in K) == 34


def test_one_hot_has_exactly_one_one_per_attribute_block_and_minus_one_is_unspecified():
    labels = torch.tensor([[0, 0, 0, 0, 0], [7, 9, 2, 3, 3], [-1, -1, -1, -1, -1], [3, -1, 1, -1, 2]])
    oh = one_hot(labels)
    assert oh.shape == (4, CONDITION_DIM) and oh.dtype == torch.float32
    assert set(oh.unique().tolist()) == {0.0, 1.0}
    for j, k in enumerate(K):
        block = oh[:, STARTS[j]:STARTS[j] + k + 1]
        assert torch.equal(block.sum(1), torch.ones(4)), ATTRIBUTE_NAMES[j]
        for i in range(4):
            want = k if labels[i, j] < 0 else int(labels[i, j])  # -1 -> the last slot, "unspecified"
            assert int(block[i].argmax()) == want
    assert oh[2].nonzero().flatten().tolist() == [s + k for s, k in zip(STARTS, K)]


def test_one_hot_passes_soft_requests_through():
    soft = torch.rand(3, CONDITION_DIM)
    assert one_hot(soft) is soft


def test_attribute_embedding_hard_labels_equal_one_hot_probabilities():
    torch.manual_seed(0)
    labels = _labels(20)
    for unspecified in ("learned", "zero"):
        emb = AttributeEmbedding(6, unspecified=unspecified)
        hard, soft = emb(labels), emb(one_hot(labels))
        assert hard.shape == soft.shape == (20, 5, 6)
        assert torch.allclose(hard, soft, atol=1e-6)


def test_attribute_embedding_zero_unspecified_is_the_zero_vector():
    torch.manual_seed(0)
    labels = torch.tensor([[-1, 2, -1, 0, -1], [1, -1, 0, -1, 3]])
    zero, learned = AttributeEmbedding(5, unspecified="zero"), AttributeEmbedding(5, unspecified="learned")
    e = zero(labels)
    missing = labels < 0
    assert torch.equal(e[missing], torch.zeros(int(missing.sum()), 5))
    assert (e[~missing].abs().sum(1) > 0).all()
    assert (learned(labels)[missing].abs().sum(1) > 0).all()  # "learned": unspecified has its own vector
    with pytest.raises(ValueError, match="unspecified must be 'learned' or 'zero'"):
        AttributeEmbedding(5, unspecified="none")


def test_attribute_embedding_zero_unspecified_gets_no_gradient_from_hard_labels():
    torch.manual_seed(0)
    emb = AttributeEmbedding(4, unspecified="zero")
    emb(torch.tensor([[-1, 2, -1, 0, 1]])).sum().backward()
    assert all(float(t.weight.grad[t.padding_idx].abs().sum()) == 0 for t in emb.tables)


def test_attribute_embedding_zero_unspecified_stays_zero_when_trained_on_soft_requests():
    torch.manual_seed(0)
    emb = AttributeEmbedding(4, unspecified="zero")
    opt = torch.optim.SGD(emb.parameters(), lr=1.0)
    emb(one_hot(torch.tensor([[-1, 2, -1, 0, 1]]))).sum().backward()
    opt.step()
    with torch.no_grad():
        assert float(emb(torch.full((1, 5), -1)).abs().sum()) == 0


def test_hide_attributes():
    labels = _labels(50, hide=0.0)
    assert torch.equal(hide_attributes(labels, 0.0), labels)
    assert torch.equal(hide_attributes(labels, 1.0), torch.full_like(labels, -1))
    half = hide_attributes(labels, 0.5, torch.Generator().manual_seed(0))
    hidden = half < 0
    assert 0 < int(hidden.sum()) < labels.numel()
    assert torch.equal(half[~hidden], labels[~hidden]) and (labels >= 0).all()  # the input is not modified
    assert torch.equal(half, hide_attributes(labels, 0.5, torch.Generator().manual_seed(0)))


def test_parse_request_and_request_to_dict_round_trip():
    attrs = {"category": "mug", "color": "red", "pattern": "striped"}
    row = parse_request(attrs)
    assert row.shape == (1, 5) and row.dtype == torch.long
    assert row[0].tolist() == [index_of("category", "mug"), index_of("color", "red"), -1, -1,
                               index_of("pattern", "striped")]
    assert request_to_dict(row[0]) == attrs
    assert parse_request({}).tolist() == [[-1] * 5]
    assert parse_request({"color": "", "size": None}).tolist() == [[-1] * 5]  # blank = unspecified
    for values in itertools.islice(itertools.product(*(values_of(a) for a in ATTRIBUTE_NAMES)), 0, 3840, 97):
        full = dict(zip(ATTRIBUTE_NAMES, values))
        assert request_to_dict(parse_request(full)[0]) == full


def test_parse_request_errors_list_the_valid_names_and_values():
    with pytest.raises(ValueError, match="unknown attribute 'colour'; valid attributes: "
                                         "category, color, size, brand, pattern"):
        parse_request({"colour": "red"})
    with pytest.raises(ValueError, match="unknown color 'purpl'; valid values: red, orange, yellow, green, teal, "
                                         "blue, purple, pink, brown, black"):
        parse_request({"color": "purpl"})
    with pytest.raises(ValueError, match="unknown size 'XL'; valid values: small, medium, large"):
        parse_request({"category": "mug", "size": "XL"})


def test_balanced_requests_use_every_value_equally_often():
    n = 240  # a multiple of 8, 10, 3 and 4
    labels = balanced_requests(n, seed=1)
    assert labels.shape == (n, 5) and labels.dtype == torch.long
    for j, k in enumerate(K):
        assert torch.bincount(labels[:, j], minlength=k).tolist() == [n // k] * k, ATTRIBUTE_NAMES[j]
    assert torch.equal(labels, balanced_requests(n, seed=1))
    assert not torch.equal(labels, balanced_requests(n, seed=2))
    with pytest.raises(ValueError, match="n must be a positive"):
        balanced_requests(0)


def test_balanced_requests_only_pairs_and_exclude_pairs():
    held = {(index_of("category", c), index_of("color", v)) for c, v in HELD_OUT_PAIRS}
    labels = balanced_requests(160, seed=0, only_pairs=HELD_OUT_PAIRS)
    pairs = [tuple(p) for p in labels[:, :2].tolist()]
    assert set(pairs) == held  # only those pairs, and all of them
    assert all(pairs.count(p) == 160 // len(held) for p in held)
    assert torch.bincount(labels[:, 2], minlength=3).tolist() == [160 // 3 + (i < 160 % 3) for i in range(3)]
    avoided = balanced_requests(400, seed=0, exclude_pairs=HELD_OUT_PAIRS)
    assert not {tuple(p) for p in avoided[:, :2].tolist()} & held
    assert torch.bincount(avoided[:, 0], minlength=8).tolist() == [50] * 8  # categories stay balanced


@pytest.mark.parametrize("labels, message", [
    (torch.zeros(3, 4, dtype=torch.long), r"labels must be an integer tensor N x 5"),
    (torch.zeros(5, dtype=torch.long), r"labels must be an integer tensor N x 5"),
    (torch.zeros(3, 5), r"labels must be an integer tensor N x 5 .*float32"),
    (torch.tensor([[8, 0, 0, 0, 0]]), r"category labels must be -1 \(unspecified\) or 0..7, got \[8\]"),
    (torch.tensor([[0, -2, 0, 0, 0]]), r"color labels must be -1 \(unspecified\) or 0..9, got \[-2\]"),
    (torch.tensor([[0, 0, 0, 0, 4]]), r"pattern labels must be -1 \(unspecified\) or 0..3"),
])
def test_check_labels_errors(labels, message):
    with pytest.raises(ValueError, match=message):
        check_labels(labels)


def test_check_labels_accepts_valid_rows_as_int64():
    out = check_labels(torch.tensor([[7, 9, 2, 3, 3], [-1, -1, -1, -1, -1]], dtype=torch.int32))
    assert out.dtype == torch.long and out.tolist() == [[7, 9, 2, 3, 3], [-1] * 5]


# ============================================================================ cgan.py
def _pair(kind="projection", seed=0):
    return cgan.build_pair(kind, z_dim=16, width=8, seed=seed)


@pytest.mark.parametrize("request_kind", ["hard", "partial", "soft"])
def test_generator_output_shape_and_range(request_kind):
    g, _ = _pair()
    labels = _labels(6, hide=0.0 if request_kind == "hard" else 0.5)
    if request_kind == "partial":
        assert (labels < 0).any()
    y = labels
    if request_kind == "soft":
        y = torch.rand(6, CONDITION_DIM)
        y = torch.cat([b / b.sum(1, keepdim=True) for b in y.split([k + 1 for k in K], dim=1)], dim=1)
    g.eval()
    with torch.no_grad():
        x = g(torch.randn(6, g.z_dim), y)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0


def test_generator_soft_one_hot_equals_hard_labels():
    g, _ = _pair()
    g.eval()
    labels, z = _labels(6), torch.randn(6, 16)
    with torch.no_grad():
        assert torch.allclose(g(z, labels), g(z, one_hot(labels)), atol=1e-5)


@pytest.mark.parametrize("kind", list(cgan.DISCRIMINATORS))
def test_each_discriminator_returns_one_logit_per_image(kind):
    g, d = _pair(kind)
    assert isinstance(d, cgan.DISCRIMINATORS[kind]) and cgan.LOSSES[kind] == d.loss
    labels = _labels(5)
    x = g(torch.randn(5, 16), labels).detach()
    out = d(x, labels)
    if kind == "acgan":
        logits, classes = out
        assert set(classes) == set(ATTRIBUTE_NAMES)
        assert all(classes[a].shape == (5, NUM_CLASSES[a]) for a in ATTRIBUTE_NAMES)
    else:
        logits = out
    assert logits.shape == (5,) and torch.isfinite(logits).all()


def test_build_pair_unknown_kind():
    with pytest.raises(ValueError, match="unknown discriminator 'wgan'; valid kinds: concat, projection, acgan"):
        cgan.build_pair("wgan")


def test_projection_score_is_psi_plus_inner_product_with_the_requested_embeddings():
    torch.manual_seed(0)
    d = cgan.ProjectionDiscriminator(width=8).eval()  # eval: spectral norm does no power iteration
    for table in d.embed.tables:  # the zero-initialised tables would make the check trivial
        torch.nn.init.normal_(table.weight)
        with torch.no_grad():
            table.weight[table.padding_idx] = 0
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    labels = torch.tensor([[0, 1, 2, 3, 0], [7, 9, 0, 1, 3], [2, -1, 1, -1, -1], [-1, -1, -1, -1, -1]])
    with torch.no_grad():
        h = F.leaky_relu(d.features(x), 0.2).sum(dim=(2, 3))  # N x 4w
        psi = h @ d.psi.weight.T + d.psi.bias  # N x 1
        e = torch.zeros_like(h)
        for j, table in enumerate(d.embed.tables):
            for i in range(len(labels)):
                if labels[i, j] >= 0:  # an unspecified attribute adds nothing
                    e[i] += table.weight[labels[i, j]]
        by_hand = psi.flatten() + (e * h).sum(1)
        score = d(x, labels)
        assert torch.allclose(score, by_hand, atol=1e-4)
        assert torch.allclose(score[3], psi[3, 0], atol=1e-5)  # nothing requested: psi(h) alone
        # hiding one attribute removes exactly its term
        hidden = labels.clone()
        hidden[0, 1] = -1
        term = (d.embed.tables[1].weight[labels[0, 1]] * h[0]).sum()
        assert torch.allclose(d(x, hidden)[0], score[0] - term, atol=1e-4)
        assert torch.equal(d(x, hidden)[1:], score[1:])


def test_acgan_aux_loss_is_finite_and_ignores_unspecified_labels():
    torch.manual_seed(0)
    logits = {a: torch.randn(6, k) for a, k in NUM_CLASSES.items()}
    labels = _labels(6, hide=0.4)
    loss = cgan.ACGANDiscriminator.aux_loss(logits, labels)
    assert loss.ndim == 0 and math.isfinite(float(loss))
    want = 0.0
    for j, a in enumerate(ATTRIBUTE_NAMES):
        asked = labels[:, j] >= 0
        if asked.any():
            want += float(F.cross_entropy(logits[a][asked], labels[asked, j]))
    assert float(loss) == pytest.approx(want, rel=1e-5)
    changed = {a: v.clone() for a, v in logits.items()}
    for j, a in enumerate(ATTRIBUTE_NAMES):
        changed[a][labels[:, j] < 0] = 100.0 * torch.randn(int((labels[:, j] < 0).sum()), NUM_CLASSES[a])
    assert float(cgan.ACGANDiscriminator.aux_loss(changed, labels)) == pytest.approx(float(loss), rel=1e-6)
    nothing = cgan.ACGANDiscriminator.aux_loss(logits, torch.full((6, 5), -1))
    assert float(nothing) == 0.0  # nothing asked: no NaN


def test_generate_is_deterministic_for_a_seed():
    g, _ = _pair()
    labels = _labels(10)
    a, b = cgan.generate(g, labels, seed=3), cgan.generate(g, labels, seed=3)
    assert a.shape == (10, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, cgan.generate(g, labels, seed=4))
    assert torch.equal(a, cgan.generate(g, labels, seed=3, batch_size=3))  # batching does not matter
    assert not g.training
    assert cgan.generate(g, torch.zeros(0, 5, dtype=torch.long)).shape == (0, 3, 32, 32)
    with pytest.raises(ValueError, match="color labels must be"):
        cgan.generate(g, torch.tensor([[0, 10, 0, 0, 0]]))


def test_recalibrate_batch_norm_changes_the_statistics_and_ends_in_eval_mode():
    g, _ = _pair()
    g.train()
    norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 3
    before = [m.running_mean.clone() for m in norms]
    out = cgan.recalibrate_batch_norm(g, cgan.random_requests(0.1), batches=2, batch_size=16)
    assert out is g and not g.training
    assert all(not torch.equal(m.running_mean, b) for m, b in zip(norms, before))
    assert all(m.momentum == 0.1 for m in norms)  # the momentum is put back
    again = copy.deepcopy(g)
    cgan.recalibrate_batch_norm(again, cgan.random_requests(0.1), batches=2, batch_size=16)
    assert _same(g, again)  # seeded: the same statistics


# ============================================================================ train.py, conditional
def test_train_gan_conditional_with_hidden_attributes_and_ema(tiny_catalog):
    g, d = _pair("projection")
    ema = copy.deepcopy(g)
    start = copy.deepcopy(g)
    seen = []

    def condition(y):
        out = hide_attributes(y, 0.1)
        seen.append(out)
        return out

    h = train_gan(g, d, tiny_catalog, epochs=1, condition=condition, ema=ema, **GFAST,
                  settings=GANSettings(loss="hinge", betas=(0.0, 0.9), precision="fp32"))
    assert h.epochs_done == 1 and len(h.steps["loss_d"]) == 256 // 32 == len(seen)
    assert all(math.isfinite(v) for v in h.steps["loss_d"] + h.steps["loss_g"])
    assert any((y < 0).any() for y in seen)  # G and D were given partial requests
    assert not _same(g, start) and not _same(ema, start)
    assert any(not torch.equal(a, b) for a, b in zip(ema.parameters(), g.parameters()))  # the average lags behind
    # the sample grid shows the averaged generator on the catalog's first labels (not hidden)
    fixed_z = torch.randn(8, g.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = denormalize(ema.eval()(fixed_z, tiny_catalog.labels[:8]))
    assert torch.equal(h.samples[-1][1], want)


def test_train_gan_acgan_pair_trains_one_epoch(tiny_catalog):
    g, d = _pair("acgan")
    start_g, start_d = copy.deepcopy(g), copy.deepcopy(d)
    h = train_gan(g, d, tiny_catalog, epochs=1, condition=lambda y: hide_attributes(y, 0.1), **GFAST,
                  settings=FP32)
    assert len(h.steps["loss_d"]) == 8
    assert all(math.isfinite(v) for v in h.steps["loss_d"] + h.steps["loss_g"])
    assert all(0 < v < 1 for v in h.steps["d_real"] + h.steps["d_fake"])
    assert not _same(g, start_g) and not _same(d, start_d)
    assert not _same(d.heads, start_d.heads)  # the classifier heads learned from the auxiliary loss


def test_train_gan_conditional_bad_input(tiny_catalog):
    g, d = _pair()
    other, _ = cgan.build_pair("projection", z_dim=16, width=4)
    with pytest.raises(ValueError, match="ema must be a copy of the generator"):
        train_gan(g, d, tiny_catalog, epochs=1, condition="labels", ema=other, settings=FP32, **GFAST)
    with pytest.raises(ValueError, match="condition must be None, 'labels' or a function of the label batch"):
        train_gan(g, d, tiny_catalog, epochs=1, condition="attributes", settings=FP32, **GFAST)
    with pytest.raises(ValueError, match="condition must be None, 'labels' or a function"):
        train_gan(g, d, tiny_catalog, epochs=1, condition=0.1, settings=FP32, **GFAST)


# ============================================================================ cvae.py
def _cvae():
    torch.manual_seed(0)
    return cvae.CVAE(z_dim=4, width=8)


def test_cvae_forward_shapes():
    model = _cvae()
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    x_hat, mu, logvar = model(x, _labels(5))
    assert x_hat.shape == (5, 3, 32, 32) and mu.shape == logvar.shape == (5, 4)
    assert x_hat.min() >= -1 and x_hat.max() <= 1


def test_fill_unspecified():
    labels = _labels(40, hide=0.5)
    filled = cvae.fill_unspecified(labels, torch.Generator().manual_seed(0))
    assert (filled >= 0).all() and torch.equal(filled[labels >= 0], labels[labels >= 0])
    assert (labels < 0).any()  # not modified in place
    assert torch.equal(check_labels(filled), filled)
    assert torch.equal(filled, cvae.fill_unspecified(labels, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="size labels must be"):
        cvae.fill_unspecified(torch.tensor([[0, 0, 3, 0, 0]]))


def test_cvae_sample_with_unspecified_entries():
    model = _cvae()
    labels = torch.tensor([[1, -1, 2, -1, -1], [-1, -1, -1, -1, -1], [0, 3, 1, 2, 1]])
    kept = labels.clone()
    a = model.sample(labels, generator=torch.Generator().manual_seed(0))
    b = model.sample(labels, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 3, 32, 32) and torch.equal(a, b) and torch.equal(labels, kept)
    assert not torch.equal(a, model.sample(labels, generator=torch.Generator().manual_seed(1)))
    assert model.training  # the model's mode is left as it was


def test_cvae_edit_changes_only_through_the_labels(tiny_catalog):
    model = _cvae()
    images, labels = tiny_catalog.images[:6], tiny_catalog.labels[:6]
    recon = model.reconstruct(images, labels)
    assert recon.shape == (6, 3, 32, 32)
    assert torch.equal(model.edit(images, labels, {}), recon)  # no change: the reconstruction
    red = index_of("color", "red")
    edited = model.edit(images, labels, {"color": "red"})
    assert torch.equal(edited, model.edit(images, labels, {"color": "red"}))  # deterministic
    new = labels.clone()
    new[:, 1] = red
    assert torch.equal(edited, model.edit_labels(images, labels, new))
    assert torch.equal(model.codes(images, labels), model.codes(images, labels))
    not_red = labels[:, 1] != red
    assert not_red.any() and not torch.equal(edited[not_red], recon[not_red])
    assert torch.equal(edited[~not_red], recon[~not_red])  # already red: nothing changes
    assert torch.equal(labels, tiny_catalog.labels[:6])
    with pytest.raises(ValueError, match="unknown color 'reed'; valid values"):
        model.edit(images, labels, {"color": "reed"})


def test_edit_table_on_a_tiny_model(judge):
    test = load_catalog("test", n=32, progress=False)
    table = cvae.edit_table(_cvae(), test, judge, n=16)
    assert set(table) == {*ATTRIBUTE_NAMES, "mean", "reconstruction_accuracy"}
    for a in (*ATTRIBUTE_NAMES, "mean"):
        assert set(table[a]) == {"success", "preservation"}
        assert all(0.0 <= v <= 1.0 for v in table[a].values()), a
    assert 0.0 <= table["reconstruction_accuracy"] <= 1.0
    assert table["mean"]["success"] == pytest.approx(sum(table[a]["success"] for a in ATTRIBUTE_NAMES) / 5, abs=1e-4)


# ============================================================================ text2img.py
def test_combination_index_is_a_bijection_onto_0_3839():
    combos = torch.tensor(list(itertools.product(*(range(k) for k in K))))
    assert len(combos) == 3840
    index = text2img.combination_index(combos)
    assert sorted(index.tolist()) == list(range(3840))
    assert torch.equal(index, torch.arange(3840))  # itertools.product is in mixed-radix order


def _unique_tokens(attribute):
    from prodgen.models.text import tokenize

    owners = {}
    for v in ATTRIBUTES[attribute]:
        for phrase in v.en:
            for t in tokenize(phrase):
                owners.setdefault(t, set()).add(v.key)
    return {t: next(iter(o)) for t, o in owners.items() if len(o) == 1}


@pytest.fixture(scope="module")
def bank():
    from prodgen.models.text import load_encoder

    return text2img.DescriptionBank(load_encoder("text-votes"), per_combination=1)


def test_description_bank_never_serves_held_out_pairs(bank):
    from prodgen.models.text import tokenize

    held = {(index_of("category", c), index_of("color", v)) for c, v in HELD_OUT_PAIRS}
    combos = torch.tensor(list(itertools.product(*(range(k) for k in K))))
    banned = torch.tensor([(int(r[0]), int(r[1])) in held for r in combos])
    assert int(banned.sum()) == 8 * 3 * 4 * 4
    assert torch.equal(bank.allowed, ~banned)
    assert len(bank) == 2 * int((~banned).sum())  # one English and one Chinese description each
    assert (bank.embeddings[banned] == 0).all()
    # no English description names a held-out (category, colour) pair
    cat_words, col_words = _unique_tokens("category"), _unique_tokens("color")

    def pairs_named(text):
        tokens = tokenize(text)
        return {(cat_words[t], col_words[u]) for t in tokens if t in cat_words for u in tokens if u in col_words}

    assert all(pairs_named(f"a {v} {c}") == {(c, v)} for c, v in HELD_OUT_PAIRS)  # the check can see them
    assert not any(pairs_named(t) & set(HELD_OUT_PAIRS) for t in bank.texts[0::2])
    # asking for a held-out combination is an error, allowed ones give probability rows
    for c, v in HELD_OUT_PAIRS:
        row = parse_request({"category": c, "color": v, "size": "small", "brand": "acme", "pattern": "plain"})
        with pytest.raises(ValueError, match="held-out combination"):
            bank(row)
    allowed = balanced_requests(64, seed=0, exclude_pairs=HELD_OUT_PAIRS)
    out = bank(allowed)
    assert out.shape == (64, CONDITION_DIM)
    for block in out.split([k + 1 for k in K], dim=1):
        assert torch.allclose(block.sum(1), torch.ones(64), atol=1e-4)
    combo = text2img.combination_index(allowed)
    assert all(any(torch.equal(out[i], bank.embeddings[combo[i], p]) for p in range(bank.per)) for i in range(64))


@pytest.fixture(scope="module")
def t2i():
    return registry.load("text2img")


def test_text_to_image_is_deterministic_for_a_seed(t2i):
    texts = ["a large red striped t-shirt by Acme", "大号黑色马克杯"]
    a, b = t2i.generate(texts, seed=0), t2i.generate(texts, seed=0)
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, t2i.generate(texts, seed=1))
    assert torch.allclose(t2i.generate(texts[0], seed=0), a[:1], atol=1e-5)  # one string is one description


@pytest.mark.parametrize("text", ["hello there, how are you", "   "])
def test_text_to_image_refuses_descriptions_without_a_product_word(t2i, text):
    with pytest.raises(ValueError, match="empty|names no product attribute"):
        t2i.generate(["a red mug", text], seed=0)
    if text.strip():
        assert t2i.generate([text], seed=0, strict=False).shape == (1, 3, 32, 32)


# ============================================================================ shipped checkpoints
SHIPPED = ["cgan-projection", "cgan-concat", "cgan-acgan", "cgan-stable", "cvae", "text2img", "text2img-embedding",
           "text-votes"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads(name):
    assert registry.available(name), f"data/checkpoints/{name}.pt is missing or corrupt"
    model = registry.load(name)
    assert not model.training
    request = parse_request({"category": "mug", "color": "red"}).repeat(2, 1)
    if name.startswith("cgan-"):
        assert isinstance(model, cgan.Generator)
        assert cgan.generate(model, request, seed=0).shape == (2, 3, 32, 32)
    elif name == "cvae":
        assert model.sample(request, torch.Generator().manual_seed(0)).shape == (2, 3, 32, 32)
    elif name.startswith("text2img"):
        assert model.generate(["a red mug", "红色马克杯"], seed=0).shape == (2, 3, 32, 32)
    else:
        from prodgen.models.text import load_encoder

        heard = load_encoder(name).read(["a large red striped mug by Acme", "大号红色条纹马克杯，Acme品牌"])
        want = {"category": "mug", "color": "red", "size": "large", "brand": "acme", "pattern": "striped"}
        assert heard == [want, want]


def _metrics(name):
    return registry.manifest()[name]["metrics"]


def test_manifest_cgan_projection_meets_its_targets():
    m = _metrics("cgan-projection")
    assert m["control"]["mean"] >= 0.97
    assert all(m["control"][a] >= 0.93 for a in ATTRIBUTE_NAMES), m["control"]
    assert m["fid"] < _metrics("dcgan")["fid"]


def test_manifest_cvae_meets_its_targets():
    m = _metrics("cvae")
    assert m["control"]["mean"] >= 0.95
    for a in ATTRIBUTE_NAMES:
        assert m["edits"][a]["success"] >= 0.9 and m["edits"][a]["preservation"] >= 0.9, (a, m["edits"][a])


def test_manifest_text2img_meets_its_targets():
    m = _metrics("text2img")
    assert m["test_en"]["mean"] >= 0.95 and m["test_zh"]["mean"] >= 0.95
    assert m["unseen_en"]["mean"] >= 0.9 and m["unseen_zh"]["mean"] >= 0.9


def test_cgan_projection_control_re_measured(judge):
    metrics = cgan.evaluate(registry.load("cgan-projection"), n=400, judge=judge)
    assert metrics["n"] == 400
    assert metrics["control"]["mean"] >= 0.95, metrics["control"]

"""prodgen.models.text: tokenizer, vocabulary, padding, encoders, training, shipped checkpoints."""
from __future__ import annotations

import json

import pytest
import torch

from prodgen.catalog import ATTRIBUTE_NAMES, load_catalog
from prodgen.models import registry, text
from prodgen.models.text import BagOfEmbeddings, GRUEncoder, Vocabulary, tokenize

TEXTS = ["a large red striped t-shirt by Acme", "大号红色条纹T恤，Acme品牌", "Nova's mug, plain", "a mug"]


# ----------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("description, tokens", [
    ("A Large RED mug.", ["a", "large", "red", "mug", "."]),
    ("lamp in teal, checked, small - Nova", ["lamp", "in", "teal", ",", "checked", ",", "small", "-", "nova"]),
    ("Zenith's grass-green T-shirt!", ["zenith", "'", "s", "grass-green", "t-shirt", "!"]),
    ("大号红色条纹T恤", ["大", "号", "红", "色", "条", "纹", "t", "恤"]),
    ("Acme品牌", ["acme", "品", "牌"]),
    ("Nova出品：背包，中码", ["nova", "出", "品", "：", "背", "包", "，", "中", "码"]),
    ("  size   M\t", ["size", "m"]),
])
def test_tokenize(description, tokens):
    assert tokenize(description) == tokens


# ----------------------------------------------------------------------------- plurals
@pytest.mark.parametrize("plural, singular", [
    ("two red mugs", ["two", "red", "mug"]),
    ("Sneakers by Nova", ["sneaker", "by", "nova"]),
    ("three striped T-Shirts", ["three", "striped", "t-shirt"]),
    ("black running shoes", ["black", "running", "shoe"]),
    ("tees, purses and tote bags", ["tee", ",", "purse", "and", "tote", "bag"]),
    ("two desk lamps", ["two", "desk", "lamp"]),
])
def test_tokenize_makes_plural_category_words_singular(plural, singular):
    assert tokenize(plural) == singular


def test_every_category_word_has_its_plural_and_no_plural_is_a_catalog_word():
    from prodgen.catalog.attributes import ATTRIBUTES
    from prodgen.catalog.describe import TEMPLATES

    forms = text.singular_forms()
    for value in ATTRIBUTES["category"]:
        for name in value.en:
            assert tokenize(name + "s") == tokenize(name), name  # "sneaker" + "s", "running shoe" + "s", ...
    catalog_words = {t for values in ATTRIBUTES.values() for v in values for p in v.en + v.en_phrase
                     for t in tokenize(p)}
    catalog_words |= {t for template in TEMPLATES["en"] for t in text._TOKEN.findall(template.lower())}
    assert not set(forms) & catalog_words, "a plural form would rewrite a word the catalog's descriptions use"


PLURALS = [  # (description, what it asks for): English plurals, Chinese numbers and measure words
    ("two red caps", {"category": "cap", "color": "red"}),
    ("sneakers", {"category": "sneaker"}),
    ("three large striped t-shirts", {"category": "t-shirt", "size": "large", "pattern": "striped"}),
    ("some black running shoes", {"category": "sneaker", "color": "black"}),
    ("small dotted handbags from Orbit",
     {"category": "handbag", "size": "small", "pattern": "dotted", "brand": "orbit"}),
    ("checked water bottles", {"category": "bottle", "pattern": "checked"}),
    ("purple backpacks", {"category": "backpack", "color": "purple"}),
    ("two desk lamps", {"category": "lamp"}),
    ("yellow tote bags", {"category": "handbag", "color": "yellow"}),
    ("two teal coffee mugs by Nova", {"category": "mug", "color": "teal", "brand": "nova"}),
    ("两个红色杯子", {"category": "mug", "color": "red"}),
    ("两双黑色运动鞋", {"category": "sneaker", "color": "black"}),
    ("三顶蓝色帽子", {"category": "cap", "color": "blue"}),
    ("两件大号条纹T恤", {"category": "t-shirt", "size": "large", "pattern": "striped"}),
    ("两盏粉色台灯", {"category": "lamp", "color": "pink"}),
    ("一些绿色水瓶", {"category": "bottle", "color": "green"}),
    ("两只棕色手提包", {"category": "handbag", "color": "brown"}),
    ("三个紫色双肩包", {"category": "backpack", "color": "purple"}),
]


@pytest.mark.parametrize("name", ["text-gru", "text-votes"])
def test_shipped_readers_read_plurals_and_measure_words(name):
    """Lessons 02 and 07: the readers lessons 02 and 07 ship read exactly what each plural phrasing asks for."""
    encoder = text.load_encoder(name)
    readings = encoder.read([description for description, _ in PLURALS])
    for (description, wanted), heard in zip(PLURALS, readings):
        assert heard == {a: wanted.get(a) for a in ATTRIBUTE_NAMES}, (description, heard)


def test_plural_descriptions_read_like_their_singulars():
    encoder = text.load_encoder("text-bag")  # the weakest reader: plurals change nothing it sees
    for plural, singular in [("two red caps", "two red cap"), ("sneakers by Nova", "sneaker by Nova")]:
        assert torch.equal(encoder.encode(plural), encoder.encode(singular))


def test_new_phrasings_include_plurals():
    from prodgen.models.text2img import NEW_PHRASINGS

    phrasings = [t for t, _ in NEW_PHRASINGS]
    assert any(t in text.singular_forms() for p in phrasings for t in text._TOKEN.findall(p.lower()))
    assert "两个红色杯子" in phrasings


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_blank_description_is_a_clear_value_error(blank):
    with pytest.raises(ValueError, match="description is empty"):
        tokenize(blank)
    with pytest.raises(ValueError, match="description 1: the description is empty"):
        Vocabulary.build(TEXTS).encode_batch(["a mug", blank])


def test_non_string_description_is_a_value_error():
    with pytest.raises(ValueError, match="must be a string, got int"):
        tokenize(42)


# ----------------------------------------------------------------------------- vocabulary
def test_vocabulary_specials_order_and_min_count():
    vocab = Vocabulary.build(["a red mug", "a blue mug", "a mug"], min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "mug"]  # by count, then alphabetically
    assert vocab.pad_id == 0 and vocab.unk_id == 1 and len(vocab) == 4 and "mug" in vocab
    assert Vocabulary.build(["b a", "a b"]).tokens == Vocabulary.build(["a b", "b a"]).tokens  # deterministic


def test_encode_decode_round_trip_and_unknown_words():
    vocab = Vocabulary.build(TEXTS)
    for description in TEXTS:
        ids = vocab.encode(description)
        assert vocab.unk_id not in ids
        assert vocab.decode(ids) == " ".join(tokenize(description))
    ids = vocab.encode("a crimson mug")
    assert ids == [vocab.index["a"], vocab.unk_id, vocab.index["mug"]]
    assert vocab.decode(ids) == "a <unk> mug"
    assert vocab.unknown("a crimson mug") == ["crimson"]
    assert vocab.known_fraction("a crimson mug") == pytest.approx(2 / 3)


def test_vocabulary_list_round_trip_and_bad_lists():
    vocab = Vocabulary.build(TEXTS)
    again = Vocabulary.from_list(vocab.to_list())
    assert again.tokens == vocab.tokens and again.encode(TEXTS[1]) == vocab.encode(TEXTS[1])
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(["mug", "<pad>", "<unk>"])
    with pytest.raises(ValueError, match="twice"):
        Vocabulary(["<pad>", "<unk>", "mug", "mug"])


def test_encode_batch_pads_with_zeros():
    vocab = Vocabulary.build(TEXTS)
    ids, lengths = vocab.encode_batch(TEXTS)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert lengths.tolist() == [len(tokenize(t)) for t in TEXTS]
    assert ids.shape == (4, max(lengths.tolist()))
    for row, n, description in zip(ids, lengths.tolist(), TEXTS):
        assert row[:n].tolist() == vocab.encode(description) and row[n:].eq(0).all()
    with pytest.raises(ValueError, match="no descriptions"):
        vocab.encode_batch([])


# ----------------------------------------------------------------------------- product words
def test_product_words_and_validation():
    assert text.product_words("a large red mug by Acme") == ["large", "red", "mug", "acme"]
    assert text.product_words("Acme品牌红色马克杯") == ["acme", "红", "马", "克", "杯"]
    assert text.product_words("a nice thing, size M please") == ["m"]
    assert text.validate_description("a red mug") == ["a", "red", "mug"]
    with pytest.raises(ValueError, match="names no product attribute"):
        text.validate_description("hello world")
    with pytest.raises(ValueError, match="unknown words: hello"):
        text.validate_description("hello 品牌", Vocabulary.build(TEXTS))
    with pytest.raises(ValueError, match="empty"):
        text.validate_description(" ")


# ----------------------------------------------------------------------------- encoders
def test_masked_mean_ignores_padding():
    x = torch.randn(2, 4, 3)
    lengths = torch.tensor([2, 4])
    out = text.masked_mean(x, lengths)
    assert torch.allclose(out[0], x[0, :2].mean(0)) and torch.allclose(out[1], x[1].mean(0))
    x[0, 2:] = 1e6
    assert torch.allclose(text.masked_mean(x, lengths)[0], out[0])


@pytest.mark.parametrize("cls", [BagOfEmbeddings, GRUEncoder])
def test_encoders_shape_and_padding_invariance(cls):
    torch.manual_seed(0)
    encoder = cls(20, embed_dim=8, dim=6).eval()
    ids = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0], [8, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 1])
    with torch.no_grad():
        out = encoder(ids, lengths)
        assert out.shape == (3, 6) and out.abs().max() < 1
        padded = torch.cat([ids, torch.zeros(3, 5, dtype=torch.long)], 1)
        assert torch.allclose(encoder(padded, lengths), out, atol=1e-6)
        for i in range(3):  # each description alone, without padding
            n = int(lengths[i])
            assert torch.allclose(encoder(ids[i:i + 1, :n], lengths[i:i + 1]), out[i:i + 1], atol=1e-6)


def test_bag_ignores_order_gru_does_not():
    torch.manual_seed(0)
    ids, rev = torch.tensor([[2, 3, 4]]), torch.tensor([[4, 3, 2]])
    n = torch.tensor([3])
    with torch.no_grad():
        bag, gru = BagOfEmbeddings(10).eval(), GRUEncoder(10).eval()
        assert torch.allclose(bag(ids, n), bag(rev, n), atol=1e-6)
        assert not torch.allclose(gru(ids, n), gru(rev, n), atol=1e-4)


def test_reader_heads_have_an_unspecified_output():
    reader = text.make_reader("gru", 20, dim=6)
    ids, lengths = torch.tensor([[2, 3], [4, 0]]), torch.tensor([2, 1])
    logits = reader(ids, lengths)
    assert list(logits) == list(ATTRIBUTE_NAMES)
    assert {a: v.shape for a, v in logits.items()} == {a: (2, k + 1) for a, k in reader.num_classes.items()}
    with pytest.raises(ValueError, match="unknown encoder kind"):
        text.make_reader("lstm", 20)


def test_reader_targets():
    labels = torch.tensor([[1, 2, 0, 3, 1], [0, 0, 2, 1, 3]])
    mentioned = torch.tensor([[True, False, True, False, True], [True, True, True, True, True]])
    assert text.reader_targets(labels, mentioned).tolist() == [[1, 10, 0, 4, 1], [0, 0, 2, 1, 3]]


def test_build_rebuilds_the_same_architecture():
    for kind in ("bag", "gru"):
        reader = text.make_reader(kind, 30, dim=8)
        config = text._config(reader, 30)
        rebuilt = text.build(config)
        rebuilt.load_state_dict(reader.state_dict())  # same parameter names and shapes


def test_training_is_deterministic_and_restores_threads():
    catalog = load_catalog("test", n=200, progress=False)
    vocab = Vocabulary.build(catalog.descriptions_en + catalog.descriptions_zh)
    data = text.text_dataset(vocab, catalog)
    assert data["ids"].shape[0] == 400 and data["lang"].tolist() == [0] * 200 + [1] * 200
    threads = torch.get_num_threads()
    runs = []
    for _ in range(2):
        model = text.make_reader("gru", len(vocab), seed=3, hidden=8, dim=8)
        runs.append(text.fit_reader(model, data, epochs=1, batch_size=64, seed=3)["loss"])
    assert runs[0] == runs[1] and len(runs[0]) == 6
    assert torch.get_num_threads() == threads
    result = text.evaluate_reader(model, data)
    assert set(result) == {"en", "zh"} and set(result["en"]["mentioned"]) == set(ATTRIBUTE_NAMES)


# ----------------------------------------------------------------------------- shipped checkpoints
@pytest.fixture(scope="module")
def test_sample():
    return load_catalog("test", n=600, progress=False)


@pytest.mark.parametrize("name", ["text-bag", "text-gru"])
def test_shipped_checkpoint_loads_verified(name):
    assert registry.available(name), f"{name} missing or its sha256 does not match the manifest"
    encoder = text.load_encoder(name)
    assert encoder.vocab.tokens[:2] == ["<pad>", "<unk>"] and encoder.dim == 64
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (4, 64) and not vectors.requires_grad
    entry = registry.manifest()[name]
    assert entry["training"]["epochs"] == text.CHECKPOINTS[name]["epochs"] and not entry["training"]["fast"]


def test_shipped_gru_reads_attributes_in_both_languages(test_sample):
    encoder = text.load_encoder("text-gru")
    result = text.evaluate_reader(encoder.reader, text.text_dataset(encoder.vocab, test_sample))
    for lang in ("en", "zh"):
        for attribute, accuracy in result[lang]["mentioned"].items():
            assert accuracy >= 0.99, f"{lang} {attribute}: {accuracy:.3f}"
        assert min(v for v in result[lang]["unspecified"].values() if v == v) >= 0.97
    assert encoder.read(["大号蓝色格子背包，Orbit品牌"]) == [
        {"category": "backpack", "color": "blue", "size": "large", "brand": "orbit", "pattern": "checked"}]
    assert encoder.read(["a red mug"])[0] == {"category": "mug", "color": "red", "size": None, "brand": None,
                                              "pattern": None}


def test_english_and_chinese_descriptions_land_close(test_sample):
    encoder = text.load_encoder("text-gru")
    en, zh = encoder.encode(test_sample.descriptions_en[:200]), encoder.encode(test_sample.descriptions_zh[:200])
    same = (en - zh).norm(dim=1).mean()
    other = (en - zh.roll(1, 0)).norm(dim=1).mean()
    assert same < 0.5 * other


def test_encoder_strict_mode_and_unknown_names():
    encoder = text.load_encoder("text-gru")
    with pytest.raises(ValueError, match="description 1: .*names no product attribute"):
        encoder.encode(["a red mug", "hello world"], strict=True)
    assert encoder.encode("hello world").shape == (1, 64)  # not strict: <unk> tokens are fine
    with pytest.raises(ValueError, match="unknown text encoder"):
        text.load_encoder("text-lstm")


def test_train_checkpoint_fast_writes_a_loadable_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(tmp_path))
    metrics = text.train_checkpoint("text-bag", fast=True, log=None)
    assert 0 <= metrics["en_category"] <= 1 and "zh_pattern" in metrics
    entry = registry.manifest()["text-bag"]
    assert entry["training"]["fast"] and entry["metrics"] == metrics
    assert text.load_encoder("text-bag").encode(["a mug"]).shape == (1, 64)


def test_prodgen_train_text_reader_with_out_and_settings(tmp_path, monkeypatch):
    """`prodgen train text-bag --out PATH --epochs E --seed S`: the shipped checkpoint and manifest stay."""
    manifest_before = json.dumps(registry.manifest(), sort_keys=True)
    out = tmp_path / "bag.pt"
    metrics = registry.train("text-bag", fast=True, log=None, out=out, epochs=1, seed=3)
    assert out.is_file() and 0 <= metrics["en_category"] <= 1
    assert json.dumps(registry.manifest(), sort_keys=True) == manifest_before
    model, info = registry.load_file(out)
    assert info["training"]["seed"] == 3 and info["training"]["epochs"] == 1
    with pytest.raises(ValueError, match="takes no --minutes"):
        registry.train("text-bag", fast=True, log=None, out=out, minutes=1.0)

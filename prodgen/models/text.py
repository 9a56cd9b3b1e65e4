"""From a product description to a fixed-size condition vector.

The pieces, in the order lesson 02 builds them:

1. :func:`tokenize` splits a description into tokens: English words (lower-cased,
   hyphenated words kept whole, punctuation split off) and single Chinese characters.
   "Acme品牌，大号T恤" -> ``["acme", "品", "牌", "，", "大", "号", "t", "恤"]``. Plural product
   words are made singular ("sneakers" -> "sneaker"); Chinese nouns have no plural, and the number
   and measure word of "两个红色杯子" (两, 个) are words a reader may not know, which it learned to skip.
2. :class:`Vocabulary` numbers the tokens seen in training descriptions; ``<pad>`` is 0
   and ``<unk>`` (any word it never saw) is 1. :meth:`Vocabulary.encode_batch` pads a
   batch of descriptions into one ``N x T`` id tensor plus their lengths.
3. Two encoders turn ``(ids, lengths)`` into an ``N x D`` vector: :class:`BagOfEmbeddings`
   (the masked mean of word vectors: order is lost) and :class:`GRUEncoder` (a
   bidirectional GRU over packed sequences: order matters).
4. :class:`AttributeReader` puts one linear head per attribute on an encoder. Each head
   has one output per value plus one for "unspecified" (the description does not say).
   :func:`fit_reader` trains it, :func:`evaluate_reader` measures it per language.
5. Shipped checkpoints ``text-bag`` and ``text-gru`` (:func:`train_checkpoint`, wired to
   ``prodgen train``); :func:`load_encoder` returns a :class:`TextEncoder` whose
   ``encode(descriptions)`` gives the condition vectors and ``probabilities(descriptions)`` the
   soft requests (:func:`soft_request`) lesson 07 conditions a generator on.
6. Lesson 07: both readers learn that held-out combinations ("a red t-shirt") never occur and misread
   them; :class:`WordVotes` / :class:`VoteReader` (shipped as ``text-votes``) cannot, because no layer
   mixes the words.

:func:`product_words` and :func:`validate_description` say whether a description names
anything the catalog knows, so lesson 07 and ``prodgen generate --text`` can refuse
"hello world" with a clear message instead of drawing noise.

Used by lessons 02 (encoding descriptions) and 07 (text to image).
"""
from __future__ import annotations

import re
import time
from collections import Counter
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from prodgen.catalog.attributes import ATTRIBUTE_NAMES, ATTRIBUTES
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = [
    "PAD", "UNK", "LANGS", "tokenize", "singular_forms", "Vocabulary", "masked_mean", "BagOfEmbeddings", "GRUEncoder",
    "WordVotes",
    "VoteReader", "AttributeReader", "make_reader", "build", "reader_targets", "text_dataset", "insert_unknown",
    "fit_reader", "cpu_threads", "soft_request", "predict_attributes", "evaluate_reader", "product_words",
    "validate_description", "product_categories", "unknown_colours", "not_understood",
    "TextEncoder", "load_encoder", "CHECKPOINTS", "flat_metrics", "train_checkpoint",
]

PAD, UNK = "<pad>", "<unk>"
LANGS = ("en", "zh")

# A word: letters/digits, possibly joined by hyphens ("t-shirt", "grass-green").
# Anything else that is not a space is one token on its own: a Chinese character,
# a comma, a colon, an apostrophe.
_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*|\S")


# ----------------------------------------------------------------------------- tokens
def _require_text(text, what: str = "description") -> str:
    if not isinstance(text, str):
        raise ValueError(f"a {what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"the {what} is empty (got {text!r}); describe a product, e.g. 'a red mug' or '红色马克杯'")
    return text


def _plural(word: str) -> str:
    """The English plural of a singular noun: cup -> cups, dress -> dresses, party -> parties."""
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    return word + "s"


@lru_cache(maxsize=1)
def singular_forms() -> dict[str, str]:
    """``{plural: singular}`` for the last word of every category name ("sneakers" -> "sneaker",
    "shoes" -> "shoe", "t-shirts" -> "t-shirt"), built from the vocabulary in ``catalog.attributes``."""
    forms = {}
    for value in ATTRIBUTES["category"]:
        for name in value.en:
            last = _TOKEN.findall(name.lower())[-1]
            forms[_plural(last)] = last
    return forms


def tokenize(text: str) -> list[str]:
    """Split a description into tokens: lower-cased English words, single Chinese characters,
    punctuation as tokens of their own; plural product words become singular ("two red mugs" ->
    ``["two", "red", "mug"]``), so readers trained on catalog descriptions read plurals too.
    An empty or blank description is a ``ValueError``."""
    singular = singular_forms()
    return [singular.get(token, token) for token in _TOKEN.findall(_require_text(text).lower())]


class Vocabulary:
    """Numbers for tokens: ``<pad>`` = 0, ``<unk>`` = 1, then the training tokens by frequency.

    Build one with :meth:`build` from training descriptions; save it with :meth:`to_list`
    and restore it with :meth:`from_list` (that is what a checkpoint stores).
    """

    def __init__(self, tokens: list[str]):
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {tokens[:2]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not list a token twice")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    pad_id, unk_id = 0, 1

    @classmethod
    def build(cls, texts, min_count: int = 1) -> Vocabulary:
        """Every token that occurs at least ``min_count`` times in ``texts``, most frequent first."""
        counts = Counter(t for text in texts for t in tokenize(text))
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK] + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens: {', '.join(self.tokens[:8])}, ...)"

    def encode(self, text: str) -> list[int]:
        """Token ids of one description; words the vocabulary never saw become ``<unk>`` (1)."""
        return [self.index.get(t, self.unk_id) for t in tokenize(text)]

    def decode(self, ids) -> str:
        """The tokens of ``ids`` separated by spaces, padding left out (a tokenised text)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return " ".join(self.tokens[i] for i in ids if i != self.pad_id)

    def encode_batch(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, lengths)``: ids is an ``N x T`` LongTensor padded with 0 (T = the longest
        description), lengths the number of real tokens of each description."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("no descriptions given: pass a list of at least one description")
        seqs = []
        for i, text in enumerate(texts):
            try:
                seqs.append(self.encode(text))
            except ValueError as e:
                raise ValueError(f"description {i}: {e}") from None
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)  # 0 = <pad>
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        return ids, lengths

    def unknown(self, text: str) -> list[str]:
        """The tokens of ``text`` this vocabulary does not know."""
        return [t for t in tokenize(text) if t not in self.index]

    def known_fraction(self, text: str) -> float:
        """Fraction of the tokens of ``text`` the vocabulary knows (1.0: no ``<unk>``)."""
        tokens = tokenize(text)
        return sum(t in self.index for t in tokens) / len(tokens)

    def to_list(self) -> list[str]:
        return list(self.tokens)

    @classmethod
    def from_list(cls, tokens: list[str]) -> Vocabulary:
        return cls(tokens)


@lru_cache(maxsize=1)
def _product_words() -> frozenset:
    """Tokens that name an attribute value ("mug", "红", "stripes"), minus the template glue
    ("a", "by", "品牌", "颜色"), which says nothing about which product is meant."""
    from prodgen.catalog.describe import TEMPLATES

    words = set()
    for values in ATTRIBUTES.values():
        for v in values:
            for phrase in v.en + v.zh + v.en_phrase:
                words.update(tokenize(phrase))
    glue = set()
    for templates in TEMPLATES.values():
        for template in templates:
            glue.update(tokenize(re.sub(r"\{\w+\}", " ", template).replace("[", " ").replace("]", " ")))
    glue.update(["a", "an", "in", "with", "no", "print", "size", "pattern", "single"])  # glue of the phrase forms
    return frozenset(words - glue)


def product_words(text: str) -> list[str]:
    """The tokens of ``text`` that name a category, colour, size, brand or pattern."""
    words = _product_words()
    return [t for t in tokenize(text) if t in words]


# Colour names the catalog has no value for. A reader never saw them, so without this check "a white mug"
# became a mug of whatever colour the generator drew (blue, measured): refused, naming the catalog's colours.
_OTHER_COLOURS_EN = (
    "white", "grey", "gray", "silver", "gold", "golden", "beige", "cream", "ivory", "crimson", "maroon", "burgundy",
    "magenta", "fuchsia", "cyan", "aqua", "indigo", "lavender", "lilac", "mauve", "coral", "salmon", "peach",
    "mint", "lime", "olive", "khaki", "tan", "charcoal", "bronze", "copper", "amber", "ochre", "mustard", "cobalt",
    "azure", "emerald", "jade", "ruby", "plum", "taupe", "transparent", "multicoloured", "multicolored", "rainbow")
_OTHER_COLOURS_ZH = ("白", "灰", "金色", "银色", "米色", "卡其", "驼色", "杏色", "透明", "彩虹")


@lru_cache(maxsize=1)
def _catalog_words() -> frozenset:
    """Every token of every attribute phrase and description template: what a catalog-trained reader knows."""
    from prodgen.catalog.describe import TEMPLATES

    words = set()
    for values in ATTRIBUTES.values():
        for v in values:
            for phrase in v.en + v.zh + v.en_phrase:
                words.update(tokenize(phrase))
    for templates in TEMPLATES.values():
        for template in templates:
            words.update(tokenize(re.sub(r"\{\w+\}", " ", template).replace("[", " ").replace("]", " ")))
    return frozenset(words | {"a", "an", "the", "and"})


@lru_cache(maxsize=1)
def _category_names() -> tuple[frozenset, tuple[str, ...]]:
    """``(English head nouns, Chinese names)`` of the catalog's categories: "mug", "cup", "shirt", "马克杯", "灯"."""
    english = {_TOKEN.findall(name.lower())[-1] for v in ATTRIBUTES["category"] for name in v.en}
    chinese = tuple(name.lower() for v in ATTRIBUTES["category"] for name in v.zh)
    return frozenset(english), chinese


def product_categories(text: str) -> list[str]:
    """The words of ``text`` that name a product (category): English nouns ("mugs" -> "mug") and Chinese names."""
    english, chinese = _category_names()
    lowered = _require_text(text).lower()
    return [t for t in tokenize(text) if t in english] + [name for name in chinese if name in lowered]


def unknown_colours(text: str) -> list[str]:
    """Colour words in ``text`` that the catalog has no value for ("white", "crimson", "sky-blue", "白色")."""
    known, colours = _catalog_words(), {t for v in ATTRIBUTES["color"] for p in v.en for t in tokenize(p)}
    found = []
    for token in tokenize(text):
        if token in known:
            continue
        parts = token.split("-")
        if any(p in _OTHER_COLOURS_EN for p in parts) or (len(parts) > 1 and any(p in colours for p in parts)):
            found.append(token)
    lowered = text.lower()
    zh_known = "".join(p for v in ATTRIBUTES["color"] + ATTRIBUTES["pattern"] for p in v.zh)
    found += [w + "色" if w + "色" in lowered else w for w in _OTHER_COLOURS_ZH if w in lowered and w not in zh_known]
    return list(dict.fromkeys(found))


def not_understood(text: str) -> list[str]:
    """The words of ``text`` a reader trained on catalog descriptions never saw (punctuation left out): they
    are read as ``<unk>``, i.e. ignored, so a generator draws nothing for them."""
    known = _catalog_words()
    return list(dict.fromkeys(t for t in tokenize(text) if t not in known and (t.isalnum() or "-" in t)))


def validate_description(text: str, vocab: Vocabulary | None = None, require_category: bool = True) -> list[str]:
    """Tokens of ``text`` after checking it is a description a generator can draw.

    Raises ``ValueError`` (one line) for a blank description; one without a single word for a category,
    colour, size, brand or pattern the catalog (and ``vocab``, if given) knows; one naming a colour the
    catalog lacks ("a white mug": drawn it would silently get another colour); and, with ``require_category``,
    one that names no product ("a blue dress"). Used by ``prodgen generate --text``, the studio and the text
    models' ``strict=True`` (lessons 02, 07).
    """
    tokens = tokenize(text)
    known = [t for t in product_words(text) if vocab is None or t in vocab]
    if not known:
        unknown = [t for t in tokens if vocab is not None and t not in vocab]
        extra = f" (unknown words: {', '.join(unknown[:6])})" if unknown else ""
        raise ValueError(f"the description {text!r} names no product attribute the catalog knows{extra}; "
                         "name a category, colour, size, brand or pattern, e.g. 'a red striped mug by Acme' "
                         "or 'Acme品牌红色条纹马克杯'")
    odd = unknown_colours(text)
    if odd:
        colours = ", ".join(v.key for v in ATTRIBUTES["color"])
        raise ValueError(f"the description {text!r} asks for the colour {', '.join(map(repr, odd))}, which the "
                         f"catalog does not have, so no model can draw it; catalog colours: {colours} "
                         "(or leave the colour out)")
    if require_category and not product_categories(text):
        names = ", ".join(v.key for v in ATTRIBUTES["category"])
        raise ValueError(f"the description {text!r} names no product; say which one: {names} "
                         f"(or a synonym, e.g. tee, cup, trainer, rucksack; 马克杯, 背包)")
    return tokens


# ----------------------------------------------------------------------------- encoders
def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the first ``lengths[i]`` vectors of each row: ``N x T x E -> N x E``."""
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]  # N x T
    summed = (x * mask[..., None]).sum(1)  # N x E, padding contributes nothing
    return summed / lengths.to(x.device, x.dtype).clamp(min=1)[:, None]


class BagOfEmbeddings(nn.Module):
    """Average the token vectors, then project: word order is ignored."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, dim: int = 64):
        super().__init__()
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.proj = nn.Linear(embed_dim, dim)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # N x T -> N x T x E
        x = masked_mean(x, lengths)  # N x E
        return torch.tanh(self.proj(x))  # N x D, in (-1, 1)


class GRUEncoder(nn.Module):
    """A bidirectional GRU reads the tokens in order; its two final states make the vector."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 64, dim: int = 64):
        super().__init__()
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # N x T -> N x T x E
        # Packing tells the GRU where each sequence ends, so it never reads padding.
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h: 2 x N x H (forward after the last token, backward after the first)
        h = torch.cat([h[0], h[1]], dim=1)  # N x 2H
        return torch.tanh(self.proj(h))  # N x D, in (-1, 1)


class WordVotes(nn.Module):
    """Each token, and each pair of neighbouring tokens, *votes*: a score for every value of every
    attribute (34 numbers). The description's scores are a soft maximum (log-sum-exp) of the votes.

    No layer mixes the words, so the reader cannot learn that "t-shirt" makes "red" unlikely; a
    combination it never read ("a red t-shirt") is read word by word. The pairs tell "蓝绿色"
    (teal) from "蓝色" (blue). Lesson 07 uses it as the generator's front end.
    """

    PAIR_BUCKETS = 8192  # pairs are hashed into this many vote rows

    def __init__(self, vocab_size: int, num_classes: dict[str, int] | None = None):
        super().__init__()
        self.num_classes = dict(num_classes or {a: len(v) for a, v in ATTRIBUTES.items()})
        self.dim = sum(k + 1 for k in self.num_classes.values())  # 34
        self.vocab_size = vocab_size
        self.votes = nn.Embedding(vocab_size, self.dim, padding_idx=0)  # one vote per token
        self.pair_votes = nn.Embedding(self.PAIR_BUCKETS, self.dim)  # one vote per neighbouring pair

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to(ids.device)
        t = ids.shape[1]
        mask = torch.arange(t, device=ids.device)[None, :] < lengths[:, None]  # N x T
        votes = self.votes(ids).masked_fill(~mask[..., None], -1e4)  # N x T x 34
        if t > 1:
            pairs = (ids[:, :-1] * 1_000_003 + ids[:, 1:]) % self.PAIR_BUCKETS  # N x (T-1), hashed
            pair_mask = mask[:, 1:]  # both tokens of the pair are real
            pv = self.pair_votes(pairs).masked_fill(~pair_mask[..., None], -1e4)
            votes = torch.cat([votes, pv], dim=1)  # N x (2T-1) x 34
        return votes.logsumexp(dim=1)  # N x 34: a soft maximum over the votes


class VoteReader(nn.Module):
    """A :class:`WordVotes` encoder whose 34 scores *are* the five heads' logits (no head layer that could
    mix the attributes again). Same interface as :class:`AttributeReader`."""

    def __init__(self, encoder: WordVotes):
        super().__init__()
        self.encoder, self.num_classes = encoder, encoder.num_classes

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = self.encoder(ids, lengths).split([k + 1 for k in self.num_classes.values()], dim=1)
        return dict(zip(self.num_classes, scores))  # attribute -> N x (K + 1)


ENCODERS = {"bag": BagOfEmbeddings, "gru": GRUEncoder, "votes": WordVotes}


class AttributeReader(nn.Module):
    """An encoder plus one linear head per attribute, with ``K + 1`` outputs for an attribute
    with ``K`` values: the last output means "the description does not say"."""

    def __init__(self, encoder: nn.Module, num_classes: dict[str, int] | None = None):
        super().__init__()
        self.num_classes = dict(num_classes or {a: len(v) for a, v in ATTRIBUTES.items()})
        self.encoder = encoder
        self.heads = nn.ModuleDict({a: nn.Linear(encoder.dim, k + 1) for a, k in self.num_classes.items()})

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(ids, lengths)  # N x D: the condition vector
        return {a: head(z) for a, head in self.heads.items()}  # attribute -> N x (K + 1)


def make_reader(kind: str, vocab_size: int, seed: int = 0, **sizes) -> AttributeReader:
    """A freshly initialised reader (``kind`` "bag" or "gru"); the seed fixes the initial weights."""
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder kind {kind!r}; valid kinds: {', '.join(ENCODERS)}")
    torch.manual_seed(seed)
    if kind == "votes":
        return VoteReader(WordVotes(vocab_size))
    return AttributeReader(ENCODERS[kind](vocab_size, **sizes))


def build(config: dict) -> AttributeReader:
    """Rebuild a reader from its checkpoint config (``prodgen.models.registry``)."""
    if config["kind"] == "votes":
        return VoteReader(WordVotes(config["vocab_size"], config.get("num_classes")))
    sizes = {k: config[k] for k in ("embed_dim", "hidden", "dim") if k in config}
    if config["kind"] == "bag":
        sizes.pop("hidden", None)
    encoder = ENCODERS[config["kind"]](config["vocab_size"], **sizes)
    return AttributeReader(encoder, config.get("num_classes"))


def _config(model: AttributeReader, vocab_size: int) -> dict:
    enc = model.encoder
    if isinstance(enc, WordVotes):
        return {"kind": "votes", "vocab_size": vocab_size, "num_classes": model.num_classes}
    config = {"kind": "gru" if isinstance(enc, GRUEncoder) else "bag", "vocab_size": vocab_size,
              "embed_dim": enc.embed.embedding_dim, "dim": enc.dim, "num_classes": model.num_classes}
    if isinstance(enc, GRUEncoder):
        config["hidden"] = enc.gru.hidden_size
    return config


# ----------------------------------------------------------------------------- data
@contextmanager
def cpu_threads(threads: int | None = 1):
    """Run the block with ``threads`` PyTorch CPU threads (``None``: unchanged), then restore.

    The text networks are small and a GRU runs one tiny step per token: too little work
    to split between threads, which then mostly wait for each other. One thread is never
    slower here, and on a busy 2-core machine it is many times faster.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def reader_targets(labels: torch.Tensor, mentioned: torch.Tensor, num_classes: dict[str, int] | None = None):
    """Targets for the heads: the class index where the description names the attribute,
    ``K`` ("unspecified") where it does not. ``N x 5`` LongTensor."""
    num_classes = num_classes or {a: len(v) for a, v in ATTRIBUTES.items()}
    k = torch.tensor([num_classes[a] for a in ATTRIBUTE_NAMES], dtype=torch.long)
    return torch.where(mentioned.bool(), labels, k.expand_as(labels))


def text_dataset(vocab: Vocabulary, catalog, langs=LANGS) -> dict:
    """All descriptions of ``catalog`` in ``langs``, encoded: ``ids`` (M x T), ``lengths``,
    ``targets`` (M x 5, see :func:`reader_targets`), ``labels``, ``mentioned`` and ``lang``
    (M language indices into ``langs``), ``texts``."""
    texts, parts = [], []
    for j, lang in enumerate(langs):
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r}; valid languages: {', '.join(LANGS)}")
        texts += catalog.descriptions_en if lang == "en" else catalog.descriptions_zh
        parts.append(torch.full((len(catalog),), j, dtype=torch.long))
    ids, lengths = vocab.encode_batch(texts)
    labels = catalog.labels.repeat(len(langs), 1)
    mentioned = catalog.mentioned.repeat(len(langs), 1)
    return {"ids": ids, "lengths": lengths, "targets": reader_targets(labels, mentioned), "labels": labels,
            "mentioned": mentioned, "lang": torch.cat(parts), "langs": tuple(langs), "texts": texts}


def _loss(logits: dict, targets: torch.Tensor) -> torch.Tensor:
    return sum(F.cross_entropy(logits[a], targets[:, j]) for j, a in enumerate(ATTRIBUTE_NAMES))


def insert_unknown(ids: torch.Tensor, lengths: torch.Tensor, rate: float, generator=None):
    """Insert one ``<unk>`` at a random place into a fraction ``rate`` of the descriptions.

    Training data has no unknown words, so an untrained ``<unk>`` embedding would mean
    anything (a made-up colour, say). Sprinkling ``<unk>`` into descriptions whose
    targets stay the same teaches the encoder that an unknown word says nothing.
    Returns ``(ids N x (T + 1), lengths)``.
    """
    n, t = ids.shape
    hit = torch.rand(n, generator=generator) < rate
    pos = (torch.rand(n, generator=generator) * (lengths + 1)).long()  # 0 .. L: before, between or after tokens
    pos = torch.where(hit, pos, torch.full_like(pos, t + 1))  # t + 1: past the end, nothing inserted
    ext = torch.cat([ids, torch.zeros(n, 1, dtype=ids.dtype)], 1)  # N x (T + 1)
    col = torch.arange(t + 1)[None, :]
    out = ext.gather(1, torch.where(col < pos[:, None], col, col - 1).clamp(min=0))  # shift right after pos
    out[col == pos[:, None]] = Vocabulary.unk_id
    return out, lengths + hit.long()


def fit_reader(model: AttributeReader, data: dict, epochs: int = 3, batch_size: int = 128, lr: float = 3e-3,
               seed: int = 0, progress: bool = False, log=None, unk_rate: float = 0.1,
               threads: int | None = 1) -> dict:
    """Train ``model`` on ``data`` (from :func:`text_dataset`): Adam with a one-cycle schedule,
    cross-entropy summed over the five heads. Returns ``{"loss": [per step], "epoch_loss": [...]}``.

    ``unk_rate`` of the descriptions get an ``<unk>`` inserted (:func:`insert_unknown`).

    ``threads``: CPU threads while training (see :func:`cpu_threads`).
    """
    with cpu_threads(threads):
        return _fit(model, data, epochs, batch_size, lr, seed, progress, log, unk_rate)


def _fit(model, data, epochs, batch_size, lr, seed, progress, log, unk_rate) -> dict:
    n = len(data["ids"])
    steps_per_epoch = max(1, n // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    history = {"loss": [], "epoch_loss": []}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, desc=f"training ({type(model.encoder).__name__})", leave=False)
    device = next(model.parameters()).device  # batches move there; lengths stay on the CPU for packing
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * batch_size:(s + 1) * batch_size]
            lengths = data["lengths"][idx]
            ids = data["ids"][idx, :int(lengths.max())]  # trim padding no row of this batch needs
            if unk_rate:
                ids, lengths = insert_unknown(ids, lengths, unk_rate, gen)
            ids = ids.to(device)
            loss = _loss(model(ids, lengths), data["targets"][idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history["loss"].append(loss.item())
            total += history["loss"][-1]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
        history["epoch_loss"].append(total / steps_per_epoch)
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {history['epoch_loss'][-1]:.4f} ({time.perf_counter() - start:.0f} "
                f"s)")
    if bar is not None:
        bar.close()
    model.eval()
    return history


@torch.no_grad()
def predict_attributes(model: AttributeReader, ids: torch.Tensor, lengths: torch.Tensor,
                       batch_size: int = 1024) -> torch.Tensor:
    """Predicted class per attribute, ``N x 5``; ``K`` (the last class) means "unspecified"."""
    with cpu_threads(1):
        return _predict(model, ids, lengths, batch_size)


def _predict(model, ids, lengths, batch_size):
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(ids), batch_size):
        lens = lengths[s:s + batch_size].cpu()
        logits = model(ids[s:s + batch_size, :int(lens.max())].to(device), lens)
        out.append(torch.stack([logits[a].argmax(1) for a in ATTRIBUTE_NAMES], 1).cpu())
    model.train(was_training)
    return torch.cat(out)


def evaluate_reader(model: AttributeReader, data: dict) -> dict:
    """How well ``model`` reads attributes back, per language of ``data`` (:func:`text_dataset`).

    Returns ``{lang: {"mentioned": {attribute: accuracy on descriptions that name it},
    "unspecified": {attribute: how often "unspecified" is predicted where it is not named},
    "all_correct": fraction of descriptions with all five heads right}}``.
    """
    pred = predict_attributes(model, data["ids"], data["lengths"])
    right = pred == data["targets"]  # M x 5
    result = {}
    for j, lang in enumerate(data["langs"]):
        rows = data["lang"] == j
        said = data["mentioned"][rows]
        ok = right[rows]
        result[lang] = {
            "mentioned": {a: float(ok[said[:, k], k].float().mean()) for k, a in enumerate(ATTRIBUTE_NAMES)},
            "unspecified": {a: float(ok[~said[:, k], k].float().mean()) if (~said[:, k]).any() else float("nan")
                            for k, a in enumerate(ATTRIBUTE_NAMES)},
            "all_correct": float(ok.all(1).float().mean()),
        }
    return result


def soft_request(logits: dict) -> torch.Tensor:
    """A reader's ``{attribute: N x (K + 1) logits}`` as a soft request N x 34: each attribute's softmax,
    concatenated in ``ATTRIBUTE_NAMES`` order (lesson 07's exercise; ``prodgen.models.condition`` layout)."""
    return torch.cat([logits[a].float().softmax(dim=1) for a in ATTRIBUTE_NAMES], dim=1)


# ----------------------------------------------------------------------------- using a trained encoder
class TextEncoder:
    """A trained reader and its vocabulary: raw descriptions in, condition vectors out.

    ``encode(descriptions) -> N x D`` (the vector a generator is conditioned on in lesson 07),
    ``read(descriptions)`` -> the attributes the heads read back (``None`` = unspecified).
    """

    def __init__(self, reader: AttributeReader, vocab: Vocabulary, name: str | None = None):
        self.reader, self.vocab, self.name = reader.eval(), vocab, name

    @property
    def encoder(self) -> nn.Module:
        return self.reader.encoder

    @property
    def dim(self) -> int:
        return self.reader.encoder.dim

    def __repr__(self) -> str:
        return f"TextEncoder({self.name or type(self.encoder).__name__}, {len(self.vocab)} tokens, dim {self.dim})"

    def _batch(self, texts, strict: bool):
        texts = [texts] if isinstance(texts, str) else list(texts)
        if strict:
            for i, text in enumerate(texts):
                try:
                    validate_description(text, self.vocab)
                except ValueError as e:
                    raise ValueError(f"description {i}: {e}") from None
        device = next(self.reader.parameters()).device
        ids, lengths = self.vocab.encode_batch(texts)
        return ids.to(device), lengths

    @torch.no_grad()
    def encode(self, texts, strict: bool = False) -> torch.Tensor:
        """Condition vectors ``N x D`` for a description or a list of them. ``strict=True`` also
        refuses descriptions that name no known product word (:func:`validate_description`)."""
        ids, lengths = self._batch(texts, strict)
        with cpu_threads(1):
            return self.encoder(ids, lengths)

    @torch.no_grad()
    def probabilities(self, texts, strict: bool = False) -> torch.Tensor:
        """What the reader heard, as soft requests ``N x 34``: for each attribute (``ATTRIBUTE_NAMES``
        order) the softmax over its values and "unspecified" (the conditioning of lesson 07's text2img)."""
        ids, lengths = self._batch(texts, strict)
        with cpu_threads(1):
            return soft_request(self.reader(ids, lengths))

    def read(self, texts, strict: bool = False) -> list[dict]:
        """The attributes the reader hears in each description, ``{attribute: value or None}``."""
        ids, lengths = self._batch(texts, strict)
        pred = predict_attributes(self.reader, ids, lengths)
        values = {a: [v.key for v in ATTRIBUTES[a]] for a in ATTRIBUTE_NAMES}
        return [{a: (values[a][k] if k < len(values[a]) else None) for a, k in zip(ATTRIBUTE_NAMES, row)}
                for row in pred.tolist()]


def load_encoder(name: str = "text-gru", device="cpu") -> TextEncoder:
    """The shipped encoder ``name`` ("text-gru" or "text-bag"), sha256-verified, ready to encode."""
    from prodgen.models import registry

    if name not in CHECKPOINTS:
        raise ValueError(f"unknown text encoder {name!r}; valid names: {', '.join(CHECKPOINTS)}")
    reader, info = registry.load_entry(name, device)
    if "vocab" not in info["extra"]:
        raise ValueError(f"checkpoint for {name!r} holds no vocabulary; retrain it with `prodgen train {name}`")
    return TextEncoder(reader, Vocabulary.from_list(info["extra"]["vocab"]), name)


# ----------------------------------------------------------------------------- shipped checkpoints
CHECKPOINTS: dict[str, dict] = {
    "text-bag": {"kind": "bag", "embed_dim": 64, "dim": 64, "epochs": 4, "batch_size": 128, "lr": 3e-3,
                 "unk_rate": 0.1, "min_count": 2, "seed": 0, "train_split": "train", "eval_split": "test"},
    "text-gru": {"kind": "gru", "embed_dim": 64, "hidden": 64, "dim": 64, "epochs": 4, "batch_size": 128,
                 "lr": 3e-3, "unk_rate": 0.1, "min_count": 2, "seed": 0, "train_split": "train", "eval_split": "test"},
    "text-votes": {"kind": "votes", "epochs": 4, "batch_size": 128, "lr": 0.05, "unk_rate": 0.1, "min_count": 2,
                   "seed": 0, "train_split": "train", "eval_split": "test"},
}


def flat_metrics(result: dict) -> dict[str, float]:
    """``evaluate_reader``'s nested result as flat ``{"en_color": 0.998, ...}`` (rounded)."""
    flat = {}
    for lang, r in result.items():
        flat |= {f"{lang}_{a}": round(v, 4) for a, v in r["mentioned"].items()}
        flat |= {f"{lang}_unspecified_{a}": round(v, 4) for a, v in r["unspecified"].items() if v == v}
        flat[f"{lang}_all_correct"] = round(r["all_correct"], 4)
    return flat


def train_checkpoint(name: str = "text-gru", fast: bool = False, log=print, out=None, **overrides) -> dict:
    """Train the shipped reader ``name`` (``prodgen train text-gru``) on the EN + ZH training
    descriptions, evaluate it on the test split and save it with its vocabulary (to ``out`` if given,
    else over the shipped checkpoint). ``overrides`` replace entries of its :data:`CHECKPOINTS` recipe.
    The shared steps: ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, out=out)


def _fit_checkpoint(run) -> Trained:
    cfg, train = run.cfg, run.train
    vocab = Vocabulary.build(train.descriptions_en + train.descriptions_zh, min_count=cfg["min_count"])
    sizes = {k: cfg[k] for k in ("embed_dim", "hidden", "dim") if k in cfg}
    model = make_reader(cfg["kind"], len(vocab), seed=cfg["seed"], **sizes)
    start = time.perf_counter()
    fit_reader(model, text_dataset(vocab, train), epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
               seed=cfg["seed"], unk_rate=cfg["unk_rate"], log=run.log)
    training = {"seconds": round(time.perf_counter() - start, 1), "n_train": len(train)}
    return Trained(model, _config(model, len(vocab)), training=training, extra={"vocab": vocab.to_list()},
                   notes={"vocab": vocab})


def _measure_checkpoint(run, trained) -> dict:
    """Accuracy per attribute on the evaluation split (and, for ``text-votes``, the unseen combinations)."""
    from prodgen.catalog import load_catalog

    vocab, model = trained.notes["vocab"], trained.model
    test = load_catalog(run.cfg["eval_split"], progress=False)
    metrics = flat_metrics(evaluate_reader(model, text_dataset(vocab, test)))
    if run.name == "text-votes":  # the reader lesson 07 relies on for combinations never seen in training
        unseen = flat_metrics(evaluate_reader(model, text_dataset(vocab, load_catalog("unseen", progress=False))))
        metrics |= {f"unseen_{k}": v for k, v in unseen.items()}
    if run.log:
        run.log("test accuracy (mentioned attributes): " + ", ".join(
            f"{k} {v:.4f}" for k, v in metrics.items() if "unspecified" not in k))
    return metrics


RECIPE = Recipe(CHECKPOINTS.__getitem__, _fit_checkpoint, _measure_checkpoint, names=tuple(CHECKPOINTS),
                what="text encoders",                fast={"epochs": 1}, fast_products=2000)
"""What ``prodgen train text-*`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = tuple(
    ModelSpec(name, "text reader", build, train_checkpoint, lesson=2, recipe=CHECKPOINTS[name],
              summary=f"description reader ({CHECKPOINTS[name]['kind']}): a description (EN/ZH) -> attributes")
    for name in ("text-bag", "text-gru", "text-votes")
)

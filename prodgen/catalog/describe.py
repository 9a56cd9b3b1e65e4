"""Product descriptions in English and Chinese.

A template is a string with optional segments in square brackets. Each segment
holds exactly one placeholder; when a description leaves that attribute out, the
whole segment goes. So "a [{size} ][{color} ]{category}[ by {brand}]" becomes
"a red mug by Acme" when the size is left out. The category is always named.

Used by lesson 01 (an exercise writes a template) and by the text lessons 02 and 07.
"""
from __future__ import annotations

import re

import numpy as np

from prodgen.catalog.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, validate_attributes

__all__ = ["TEMPLATES", "MENTION_PROBABILITY", "describe", "fill_template", "random_description", "words_for"]

TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "a [{size} ][{color} ][{pattern} ]{category}[ by {brand}]",
        "[{brand} ]{category}[, {color}][, {pattern}][, {size}]",
        "[{color} ]{category}[ {pattern_phrase}][ from {brand}][, {size_phrase}]",
        "looking for a [{size} ][{pattern} ][{color} ]{category}[ made by {brand}]",
        "[{brand}'s ][{size} ][{color} ]{category}[ {pattern_phrase}]",
        "{category}[ in {color}][, {pattern}][, {size}][ - {brand}]",
        "product photo of a [{color} ][{pattern} ]{category}[, {size_phrase}][, brand: {brand}]",
        "the [{size} ][{pattern} ][{color} ]{category}[ from the {brand} range]",
        "a [{pattern} ]{category}[ in {color}][ by {brand}][, {size_phrase}]",
        "[{size} ][{brand} ]{category}[ {pattern_phrase}][, colour: {color}]",
    ),
    "zh": (
        "[{size}][{color}][{pattern}]{category}[，{brand}品牌]",
        "[{brand}的][{color}][{pattern}]{category}[，{size}]",
        "[{brand}出品：][{color}]{category}[，{pattern}][，{size}]",
        "一款[{color}][{pattern}的]{category}[（{size}）][，品牌{brand}]",
        "想要一个[{size}][{color}]{category}[，{pattern}款][，{brand}的]",
        "[{color}][{size}]{category}[，{pattern}图案][，来自{brand}]",
        "{category}[，颜色：{color}][，图案：{pattern}][，尺寸：{size}][，品牌：{brand}]",
        "[{brand}品牌][{pattern}][{color}]{category}[，{size}]",
        "这款[{size}]{category}[是{color}的][，{pattern}设计][，{brand}出品]",
    ),
}

# How often each attribute is named in a generated description (the category always is).
MENTION_PROBABILITY = {"category": 1.0, "color": 0.85, "size": 0.75, "brand": 0.75, "pattern": 0.8}

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill_template(template: str, words: dict[str, str]) -> str:
    """Fill ``template`` with ``words`` (placeholder -> word); drop segments whose word is missing."""

    def segment(match):
        text = match.group(1)
        names = _PLACEHOLDER.findall(text)
        return text.format(**words) if names and all(n in words for n in names) else ""

    text = _SEGMENT.sub(segment, template).format(**words)
    return _tidy(text)


def _tidy(text: str) -> str:
    text = re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)  # a orange -> an orange
    return re.sub(r"\s+", " ", text).strip(" ,")


def words_for(attrs: dict, lang: str = "en", rng=None) -> dict[str, str]:
    """Placeholder -> word for ``attrs``: one random synonym each, plus the English phrase forms."""
    rng = np.random.default_rng(rng)
    words = {}
    for name, key in attrs.items():
        value = next(v for v in ATTRIBUTES[name] if v.key == key)
        choices = value.en if lang == "en" else value.zh
        words[name] = choices[rng.integers(len(choices))]
        if lang == "en" and value.en_phrase:
            words[name + "_phrase"] = value.en_phrase[rng.integers(len(value.en_phrase))]
    return words


def describe(attrs: dict, lang: str = "en", template: int | None = None, rng=None) -> str:
    """Describe the attributes in ``attrs`` (only those given are mentioned).

    ``template`` picks a template by index (random if None); ``rng`` is a NumPy
    Generator or a seed and picks synonyms and the template.
    """
    if lang not in TEMPLATES:
        raise ValueError(f"unknown language {lang!r}; valid languages: {', '.join(TEMPLATES)}")
    if "category" not in attrs:
        given = ", ".join(attrs) or "none"
        raise ValueError(f"a description must name the category; got attributes: {given}")
    validate_attributes(attrs)
    rng = np.random.default_rng(rng)
    templates = TEMPLATES[lang]
    if template is None:
        template = int(rng.integers(len(templates)))
    elif not 0 <= template < len(templates):
        raise ValueError(f"template index {template} out of range; "
                         f"{lang} has {len(templates)} templates (0-{len(templates) - 1})")
    return fill_template(templates[template], words_for(attrs, lang, rng))


def random_description(attrs: dict, rng: np.random.Generator) -> tuple[dict, str, str]:
    """Pick which attributes to mention, then describe them in both languages.

    Returns ``(mentioned attributes, English, Chinese)``.
    """
    mentioned = {n: attrs[n] for n in ATTRIBUTE_NAMES if rng.random() < MENTION_PROBABILITY[n]}
    return mentioned, describe(mentioned, "en", rng=rng), describe(mentioned, "zh", rng=rng)

"""The catalog's attributes, their values and their words in English and Chinese.

This module is the single place that says what a product can be. Everything else
(rendering, descriptions, datasets, checkers, text encoders) reads it from here.
Used from lesson 01 onwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "Value",
    "COLOR_RGB",
    "BRAND_LOGOS",
    "BRAND_RGB",
    "HELD_OUT_PAIRS",
    "index_of",
    "validate_attributes",
    "values_of",
]


@dataclass(frozen=True)
class Value:
    """One attribute value and the words that name it.

    ``en`` and ``zh`` are synonyms, the first one is the canonical word.
    ``en_phrase`` holds phrases that follow the product word ("with stripes").
    """

    key: str
    en: tuple[str, ...]
    zh: tuple[str, ...]
    en_phrase: tuple[str, ...] = field(default_factory=tuple)


def _v(key, en, zh, en_phrase=()):
    return Value(key, tuple(en), tuple(zh), tuple(en_phrase))


# Order matters: a value's position is its class index everywhere in the course.
ATTRIBUTES: dict[str, tuple[Value, ...]] = {
    "category": (
        _v("t-shirt", ["t-shirt", "tee", "tshirt", "tee shirt"], ["T恤", "短袖衫", "T恤衫"]),
        _v("mug", ["mug", "coffee mug", "cup"], ["马克杯", "杯子", "咖啡杯"]),
        _v("sneaker", ["sneaker", "trainer", "running shoe"], ["运动鞋", "球鞋", "跑鞋"]),
        _v("handbag", ["handbag", "purse", "tote bag"], ["手提包", "手袋", "女包"]),
        _v("cap", ["cap", "baseball cap", "hat"], ["棒球帽", "帽子", "鸭舌帽"]),
        _v("bottle", ["bottle", "water bottle", "flask"], ["水瓶", "水壶", "保温瓶"]),
        _v("backpack", ["backpack", "rucksack", "school bag"], ["双肩包", "背包", "书包"]),
        _v("lamp", ["lamp", "desk lamp", "table lamp"], ["台灯", "灯", "桌灯"]),
    ),
    "color": (
        _v("red", ["red", "scarlet"], ["红色", "大红色"]),
        _v("orange", ["orange", "tangerine"], ["橙色", "橘色"]),
        _v("yellow", ["yellow", "lemon"], ["黄色", "柠檬黄"]),
        _v("green", ["green", "grass-green"], ["绿色", "草绿色"]),
        _v("teal", ["teal", "turquoise"], ["青色", "蓝绿色"]),
        _v("blue", ["blue", "navy"], ["蓝色", "藏蓝色"]),
        _v("purple", ["purple", "violet"], ["紫色", "紫罗兰色"]),
        _v("pink", ["pink", "rose"], ["粉色", "粉红色"]),
        _v("brown", ["brown", "chocolate"], ["棕色", "咖啡色"]),
        _v("black", ["black", "jet-black"], ["黑色", "纯黑色"]),
    ),
    "size": (
        _v("small", ["small", "little", "compact"], ["小号", "小码", "小尺寸"], ["in size S", "in a small size"]),
        _v("medium", ["medium", "mid-size", "regular"], ["中号", "中码", "中等尺寸"],
           ["in size M", "in a medium size"]),
        _v("large", ["large", "big", "oversized"], ["大号", "大码", "大尺寸"], ["in size L", "in a large size"]),
    ),
    "brand": (
        _v("acme", ["Acme"], ["Acme"]),
        _v("nova", ["Nova"], ["Nova"]),
        _v("orbit", ["Orbit"], ["Orbit"]),
        _v("zenith", ["Zenith"], ["Zenith"]),
    ),
    "pattern": (
        _v("plain", ["plain", "solid", "solid-colour"], ["纯色", "素色"],
           ["in a single solid colour", "with no print"]),
        _v("striped", ["striped", "stripy"], ["条纹", "横条纹"], ["with stripes", "with a striped print"]),
        _v("dotted", ["polka-dot", "dotted", "spotted"], ["波点", "圆点"], ["with polka dots", "with a dotted print"]),
        _v("checked", ["checked", "plaid", "checkered"], ["格子", "格纹"],
           ["with a check pattern", "with a plaid print"]),
    ),
}

ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

# What the logo of each brand looks like (drawn by render.py).
BRAND_LOGOS = {"acme": "triangle", "nova": "disc", "orbit": "ring", "zenith": "bars"}

# Each brand's own colour (its banners' band and button, prodgen ads; lesson 16): dark enough for white text
# on it (contrast ratio >= 4.5, WCAG AA), and far apart in hue so that two brands' banners never look alike.
BRAND_RGB = {"acme": (196, 30, 58), "nova": (29, 78, 160), "orbit": (0, 118, 96), "zenith": (102, 51, 153)}

# Product colours in sRGB. Chosen far apart in hue and lightness so that they stay
# distinguishable after shading at 32x32.
COLOR_RGB = {
    "red": (214, 39, 40),
    "orange": (245, 133, 24),
    "yellow": (240, 205, 40),
    "green": (52, 160, 72),
    "teal": (24, 170, 170),
    "blue": (35, 80, 190),
    "purple": (128, 60, 170),
    "pink": (245, 140, 190),
    "brown": (120, 72, 40),
    "black": (38, 38, 42),
}

# (category, color) pairs that never appear in train/val/test, only in the `unseen`
# split: a "green mug" the models never saw. One colour per category, each colour at
# most once, so every category and every colour is still seen in training.
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (cat.key, ATTRIBUTES["color"][(3 * i) % 10].key) for i, cat in enumerate(ATTRIBUTES["category"])
)


def values_of(attribute: str) -> list[str]:
    """The value keys of ``attribute`` in class-index order."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; valid attributes: {', '.join(ATTRIBUTE_NAMES)}")
    return [v.key for v in ATTRIBUTES[attribute]]


def index_of(attribute: str, value: str) -> int:
    """Class index of ``value``; a clear ``ValueError`` if it is not a valid value."""
    keys = values_of(attribute)
    if value not in keys:
        raise ValueError(f"unknown {attribute} {value!r}; valid values: {', '.join(keys)}")
    return keys.index(value)


def validate_attributes(attrs: dict) -> dict:
    """Check a ``{attribute: value}`` dict (a subset of attributes is fine) and return it."""
    for name, value in attrs.items():
        index_of(name, value)  # raises for an unknown attribute or value
    return dict(attrs)

"""The product catalog: attributes, rendering, descriptions, datasets, export/import.

Used by every lesson from 01 on. ``from prodgen.catalog import load_catalog``.
"""
from prodgen.catalog.attributes import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    BRAND_LOGOS,
    COLOR_RGB,
    HELD_OUT_PAIRS,
    index_of,
    values_of,
)
from prodgen.catalog.dataset import (
    DEFAULT_N,
    SPLITS,
    Catalog,
    denormalize,
    load_catalog,
    normalize,
    render_catalog,
    sample_attributes,
)
from prodgen.catalog.describe import TEMPLATES, describe, fill_template, words_for
from prodgen.catalog.folder import export_catalog, load_folder
from prodgen.catalog.looks import LOOK_SHOWN, LOOKS
from prodgen.catalog.render import SUPPORTED_SIZES, render_product

__all__ = [
    "ATTRIBUTES", "ATTRIBUTE_NAMES", "BRAND_LOGOS", "COLOR_RGB", "HELD_OUT_PAIRS", "index_of", "values_of",
    "SPLITS", "DEFAULT_N", "Catalog", "load_catalog", "render_catalog", "sample_attributes", "normalize",
    "denormalize", "TEMPLATES", "describe", "fill_template", "words_for", "export_catalog", "load_folder",
    "SUPPORTED_SIZES", "render_product", "LOOKS", "LOOK_SHOWN",
]

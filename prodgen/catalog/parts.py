"""The part map's vocabulary: one id per kind of part, and the colours of the parts whose colour is fixed.

A product is drawn as a map of these ids (``prodgen.catalog.render.draw_part_map``); the photo
(``render``), the other looks (``prodgen.catalog.looks``) and the scenes (``prodgen.catalog.scenes``) colour
the same map each in their own way. Used by lessons 01 (how a product shot is drawn), 15 and 16.
"""
from __future__ import annotations

__all__ = ["BG", "BODY", "ACCENT", "LIGHT", "DARK", "METAL", "LOGO_EDGE", "LOGO_INK", "FIXED_PART_RGB"]

BG, BODY, ACCENT, LIGHT, DARK, METAL, LOGO_EDGE, LOGO_INK = range(8)
FIXED_PART_RGB = {LIGHT: (238, 236, 230), DARK: (52, 52, 58), METAL: (176, 178, 184)}

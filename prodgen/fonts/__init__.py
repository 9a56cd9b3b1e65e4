"""The font the course's figures fall back to for Chinese: a subset of Noto Sans CJK SC.

``FONT_FILE`` is registered with matplotlib by :func:`prodgen.viz.setup_fonts` (every lesson);
``python -m prodgen.fonts.build`` remakes it (tooling). Licence: ``OFL.txt`` beside it.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["FONT_FILE", "FAMILY", "LICENSE_FILE"]

FONT_FILE = Path(__file__).resolve().parent / "ProdgenSansSC-Regular.otf"
LICENSE_FILE = FONT_FILE.with_name("OFL.txt")
FAMILY = "Prodgen Sans SC"

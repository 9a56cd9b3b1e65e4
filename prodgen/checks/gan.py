"""Checks for lesson 03 (GANs)."""
from __future__ import annotations

__all__: list[str] = []

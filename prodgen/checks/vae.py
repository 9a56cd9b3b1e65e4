"""Checks for lesson 04 (VAEs)."""
from __future__ import annotations

__all__: list[str] = []

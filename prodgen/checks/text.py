"""Checks for lesson 02 (encoding descriptions)."""
from __future__ import annotations

__all__: list[str] = []

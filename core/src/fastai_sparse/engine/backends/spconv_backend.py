"""Adapter for spconv 2.x (placeholder; filled in below)."""

from __future__ import annotations

from . import Backend

__all__ = ["SpconvBackend"]


class SpconvBackend(Backend):
    name = "spconv"

    def available(self) -> bool:
        return False

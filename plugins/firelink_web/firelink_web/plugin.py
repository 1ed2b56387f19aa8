"""Hook implementations of firelink-web (being built)."""

from __future__ import annotations

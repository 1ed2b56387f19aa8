"""The engine's one exception, importable without loading the engine."""

from __future__ import annotations

__all__ = ["EngineError"]


class EngineError(Exception):
    """The engine cannot start with this config and these plugins (a missing component type)."""

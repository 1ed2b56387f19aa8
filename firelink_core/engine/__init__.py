"""The engine (``Engine``) and the parts it coordinates; imported lazily so ``EngineError`` costs nothing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine
    from .errors import EngineError
    from .reload import ReloadResult
    from .status import JobStatus

__all__ = ["Engine", "EngineError", "JobStatus", "ReloadResult"]

_HOMES = {"Engine": ".engine", "EngineError": ".errors", "JobStatus": ".status", "ReloadResult": ".reload"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)

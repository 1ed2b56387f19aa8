"""firelink: a plugin-based job scheduler daemon. This package exports the application API.

Plugin authors import from ``firelink_core.plugin_api`` (components, specs, records,
events, ``hookimpl``) and test with ``firelink_core.testing``; each name has one path.
"""

from __future__ import annotations

from ._version import __version__
from .model import Config
from .plugins import Plugins, make_plugins

__all__ = [
    "Config",
    "ConfigError",
    "ConfigInvalid",
    "Engine",
    "JobStatus",
    "Plugins",
    "__version__",
    "load_config",
    "make_plugins",
    "parse_config",
    "validate_files",
    "validate_text",
]

_LAZY = {
    "ConfigError": "config",
    "ConfigInvalid": "config",
    "load_config": "config",
    "parse_config": "config",
    "validate_files": "config",
    "validate_text": "config",
}


def __getattr__(name: str) -> object:
    # The engine is imported on first use, so `firelink validate` never loads it.
    if name in ("Engine", "JobStatus"):
        from . import engine as _engine

        return getattr(_engine, name)
    # Likewise the config loader, so that importing a plugin module stays cheap.
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

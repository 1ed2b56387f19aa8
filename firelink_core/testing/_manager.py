"""A fresh plugin manager for tests: the built-ins plus the plugin modules under test."""

from __future__ import annotations

from types import ModuleType

from ..plugins import BUILTIN_PLUGINS, PluginInfo, Plugins, make_plugins

__all__ = ["fresh_plugins"]


def fresh_plugins(*plugins: ModuleType | object | str, entry_points: bool = False, builtins: bool = True) -> Plugins:
    """A new ``Plugins`` with the built-in components and ``plugins`` registered.

    Each item is a module (or any object with ``@hookimpl`` functions) or an import path.
    Installed distributions are left out unless ``entry_points`` is true, and
    ``FIRELINK_PLUGINS`` is ignored, so a test sees exactly what it asked for.
    """
    paths = [p for p in plugins if isinstance(p, str)]
    result = make_plugins(
        extra=paths, entry_points=entry_points, env=False, builtins=BUILTIN_PLUGINS if builtins else ()
    )
    for obj in plugins:
        if isinstance(obj, str):
            continue
        name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{id(obj):x}"
        result.register_module(
            obj, PluginInfo(name=name, distribution=None, version=None, source="test", module=name)
        )
    if any(not isinstance(p, str) for p in plugins):
        result.check_pending()
        _ = result.registry
    return result

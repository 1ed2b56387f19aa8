"""The core outside ``builtin/`` never names a built-in component: it asks the registry."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from firelink_core import make_plugins

CORE = Path(__file__).resolve().parents[1] / "firelink_core"


def _builtin_type_names() -> set[str]:
    plugins = make_plugins(entry_points=False, env=False)
    names = set()
    for kind in ("trigger", "executor", "storage", "notifier"):
        for key, cls in plugins.components(kind).items():
            if cls.__module__.startswith("firelink_core.builtin."):
                names.add(key)
    return names


def _core_config_keys() -> set[str]:
    """Words that are also keys of the core's own config schema (``log:``, ``command:``)."""
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    keys.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads((CORE / "schema" / "core.schema.json").read_text()))
    return keys


def test_the_builtin_names_are_known() -> None:
    names = _builtin_type_names()
    assert {"cron", "interval", "manual", "subprocess", "sqlite", "memory"} <= names


def test_no_core_module_outside_builtin_names_a_builtin_component() -> None:
    names = _builtin_type_names() - _core_config_keys()
    assert "manual" in names and "sqlite" in names
    found = []
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE)
        if rel.parts[0] == "builtin":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.append(f"firelink_core/{rel}:{node.lineno}: {node.value!r}")
    assert not found, "built-in component names in the core:\n" + "\n".join(found)

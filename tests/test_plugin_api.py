"""The plugin author's surface: every public name resolves, and first-party plugins use nothing else."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import firelink_core
from firelink_core import plugin_api, testing

ROOT = Path(__file__).parent.parent
PUBLIC = "firelink_core.plugin_api"
TEST_PATHS = ("firelink_core", PUBLIC, "firelink_core.testing")
"""A plugin's tests may also drive the application (``firelink_core``) and use the test helpers."""


def _plugin_files() -> Iterator[tuple[Path, str, bool]]:
    """Every first-party plugin module: (file, its package, whether it is a test)."""
    for path in sorted((ROOT / "firelink_core" / "builtin").glob("*.py")):
        yield path, "firelink_core.builtin", False
    for plugin in sorted((ROOT / "plugins").glob("firelink_*")):
        for path in sorted(plugin.glob("firelink_*/**/*.py")):
            package = ".".join(path.relative_to(plugin).parent.parts)
            yield path, package, False
        for path in sorted((plugin / "tests").glob("**/*.py")):
            yield path, "tests", True


def _imported(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """The absolute name of every ``firelink_core`` module or name the file imports."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "firelink_core":
                # ``from firelink_core import x``: x may be a submodule.
                for alias in node.names:
                    sub = f"firelink_core.{alias.name}"
                    yield node.lineno, sub if sub in (PUBLIC, "firelink_core.testing") else module
            else:
                yield node.lineno, module


def _allowed(module: str, package: str, is_test: bool) -> bool:
    if not (module == "firelink_core" or module.startswith("firelink_core.")):
        return True
    if module.startswith(package + ".") or module == package:
        return True  # a built-in's own sibling modules (``._cron``, ``._notify_common``)
    if is_test:
        return module in TEST_PATHS or module.startswith("firelink_core.testing.")
    return module == PUBLIC


def test_every_public_name_resolves() -> None:
    missing = [name for name in plugin_api.__all__ if not hasattr(plugin_api, name)]
    missing += [f"testing.{name}" for name in testing.__all__ if getattr(testing, name, None) is None]
    missing += [f"firelink_core.{name}" for name in firelink_core.__all__ if getattr(firelink_core, name, None) is None]
    assert missing == []


def test_one_path_per_name() -> None:
    """The application API does not re-export the plugin author's names."""
    both = sorted(set(firelink_core.__all__) & set(plugin_api.__all__))
    assert both == []


@pytest.mark.parametrize(
    ("path", "package", "is_test"),
    [pytest.param(p, pkg, t, id=str(p.relative_to(ROOT))) for p, pkg, t in _plugin_files()],
)
def test_first_party_plugins_import_only_the_public_paths(path: Path, package: str, is_test: bool) -> None:
    wrong = [f"line {line}: {module}" for line, module in _imported(path, package) if not _allowed(module, package, is_test)]
    assert wrong == [], f"{path.relative_to(ROOT)} reaches past {PUBLIC}: {wrong}"

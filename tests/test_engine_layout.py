"""The engine's parts are called by ``engine.py``, never the reverse (docs/architecture.md):
no module of ``firelink_core/engine/`` other than the coordinator imports it or names
``Engine``, so a part can be read, tested and changed on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "firelink_core" / "engine"
PARTS = sorted(p for p in ENGINE.glob("*.py") if p.name not in ("engine.py", "__init__.py"))


def _imports_engine(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if node.level == 1 and (
            module == "engine" or (not module and any(a.name == "engine" for a in node.names))
        ):
            return True
        if node.level == 0 and module in ("firelink_core.engine.engine", "firelink_core.engine"):
            return True
        if node.level == 2 and module == "engine" and any(a.name == "Engine" for a in node.names):
            return True
    if isinstance(node, ast.Import):
        return any(a.name.startswith("firelink_core.engine.engine") for a in node.names)
    return False


def test_the_parts_are_there() -> None:
    names = {p.stem for p in PARTS}
    assert {"pause_control", "decision_log", "attempt_runner", "downstream", "cancels"} <= names


@pytest.mark.parametrize("path", PARTS, ids=lambda p: p.name)
def test_a_part_never_imports_the_engine_or_names_it(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    found = [
        f"{path.name}:{node.lineno}"
        for node in ast.walk(tree)
        if _imports_engine(node) or (isinstance(node, ast.Name) and node.id == "Engine")
    ]
    assert not found, "a part of the engine reaches back into engine.py: " + ", ".join(found)

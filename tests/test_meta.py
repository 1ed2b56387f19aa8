"""Meta-tests: every hook documented and used, every component schema valid and described,
the published schema fresh."""

from __future__ import annotations

import inspect
import json
import logging
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from firelink_core import hookspecs
from firelink_core._config_schema import core_schema
from firelink_core.config import merged_schema
from firelink_core.plugin_api import hookimpl
from firelink_core.plugins import BUILTIN_PLUGINS, KINDS, Plugins
from firelink_core.testing import fresh_plugins

ROOT = Path(__file__).parent.parent
PUBLISHED = ROOT / "schema" / "firelink.schema.json"
FIRST_PARTY = (
    "firelink_s3.plugin", "firelink_fs.plugin", "firelink_docker.plugin", "firelink_celery.plugin",
    "firelink_postgres.plugin", "firelink_web.plugin",
)
REGENERATE = "firelink schema > schema/firelink.schema.json"


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    """The built-ins and the first-party plugins, and nothing else installed."""
    return fresh_plugins(*FIRST_PARTY)


def _hookspecs() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("firelink_") and hasattr(fn, "firelink_spec")
    ]


def test_first_party_plugins_load_cleanly(plugins: Plugins) -> None:
    assert [str(e) for e in plugins.errors] == []


def test_every_hookspec_is_documented() -> None:
    names = _hookspecs()
    assert names, "no hook specifications found"
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc.split()) >= 10, f"hookspec {name} needs a docstring saying when it is called"


def test_every_hookspec_is_implemented_by_a_builtin_or_first_party_plugin(plugins: Plugins) -> None:
    ours = {f"firelink.{p.rsplit('.', 1)[-1]}" for p in BUILTIN_PLUGINS} | set(FIRST_PARTY)
    for name in _hookspecs():
        if name == "firelink_run_event":
            continue  # observers are the users' business; exercised below by a test plugin
        implementers = {impl.plugin_name for impl in getattr(plugins.pm.hook, name).get_hookimpls()}
        assert implementers & ours, f"no built-in or first-party plugin implements {name}"


def test_run_event_reaches_every_plugin_and_a_failing_one_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []
    observer = types.ModuleType("observer")
    observer.firelink_run_event = hookimpl(lambda event: seen.append(event))  # type: ignore[attr-defined]
    broken = types.ModuleType("broken_observer")

    def explode(event: Any) -> None:
        raise RuntimeError("observer bug")

    broken.firelink_run_event = hookimpl(explode)  # type: ignore[attr-defined]
    plugins = fresh_plugins(observer, broken, builtins=False)
    marker = object()
    with caplog.at_level(logging.ERROR, logger="firelink.plugins"):
        plugins.run_event(marker)
    assert seen == [marker]
    assert "broken_observer failed in firelink_run_event" in caplog.text


def _properties(schema: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ``properties`` entry of a schema, however deep, with a readable path."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _properties(item, f"{where}[{i}]")
    elif isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            yield f"{where}.{name}", sub
        for key, sub in schema.items():
            if key != "properties":
                yield from _properties(sub, f"{where}/{key}")
            else:
                for name, prop in sub.items():
                    yield from _properties(prop, f"{where}.{name}")


def _components(plugins: Plugins) -> list[tuple[str, Any]]:
    return [(f"{kind} {key}", cls) for kind in KINDS for key, cls in sorted(plugins.components(kind).items())]


def test_every_component_schema_is_valid_2020_12_and_described(plugins: Plugins) -> None:
    components = _components(plugins)
    assert components
    problems = []
    for label, cls in components:
        schema = dict(cls.config_schema)
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            problems.append(f"{label} ({cls.__module__}): invalid schema: {exc.message}")
            continue
        if schema.get("type") != "object":
            problems.append(f"{label} ({cls.__module__}): config_schema must be of type object")
        for path, prop in _properties(schema, label):
            if isinstance(prop, dict) and not prop.get("description"):
                problems.append(f"{path} ({cls.__module__}): property without a description")
    assert problems == []


def test_core_schema_is_valid_and_described() -> None:
    schema = core_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    missing = [path for path, prop in _properties(schema, "core") if not prop.get("description")]
    assert missing == []


def test_merged_schema_is_valid_2020_12(plugins: Plugins) -> None:
    jsonschema.Draft202012Validator.check_schema(merged_schema(plugins))


def test_published_schema_is_fresh(plugins: Plugins) -> None:
    expected = json.dumps(merged_schema(plugins), indent=2, ensure_ascii=False) + "\n"
    assert PUBLISHED.exists(), f"schema/firelink.schema.json is missing: run `{REGENERATE}`"
    assert PUBLISHED.read_text(encoding="utf-8") == expected, (
        f"schema/firelink.schema.json is stale: run `{REGENERATE}` (in the dev venv, where only the "
        "first-party plugins are installed) and commit it"
    )


def test_configuration_reference_names_every_key(plugins: Plugins) -> None:
    """docs/configuration.md mentions (as `key`) every key of the core and of every built-in."""
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    keys: set[str] = set()
    schemas: list[Any] = [core_schema()]
    builtin_modules = {f"firelink.{p.rsplit('.', 1)[-1]}" for p in BUILTIN_PLUGINS}
    for kind in KINDS:
        for key, cls in plugins.components(kind).items():
            info = plugins.provider(kind, key)
            if info is not None and info.name in builtin_modules:
                keys.add(key)
                schemas.append(dict(cls.config_schema))
    for schema in schemas:
        keys.update(path.rsplit(".", 1)[1] for path, _prop in _properties(schema, "x"))
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert missing == [], f"docs/configuration.md does not document: {missing}"

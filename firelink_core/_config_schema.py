"""The core's JSON Schema part and its merge with every registered component's options."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .plugins import SCHEME_PREFIX, Plugins
from .services import service_classes

__all__ = ["core_schema", "merged_schema", "options_schema", "JOB_KEYS", "JOB_SETTINGS", "TOP_KEYS"]

# A ``source:`` naming a URL scheme; the ``file`` scheme also claims plain paths (see ``source_scheme``).
_OTHER_SCHEME = SCHEME_PREFIX.pattern.lstrip("^")


@functools.lru_cache(maxsize=1)
def _core_text() -> str:
    return resources.files("firelink_core").joinpath("schema/core.schema.json").read_text("utf-8")


def core_schema() -> dict[str, Any]:
    """A fresh copy of the core's schema part (package data ``schema/core.schema.json``)."""
    return json.loads(_core_text())


_CORE = core_schema()
TOP_KEYS: tuple[str, ...] = tuple(_CORE["properties"])
JOB_KEYS: tuple[str, ...] = tuple(_CORE["$defs"]["job_keys"]["properties"])
JOB_SETTINGS: tuple[str, ...] = tuple(_CORE["$defs"]["defaults"]["properties"])


def options_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A component's ``config_schema`` without its closing keywords.

    Trigger options share the job's mapping and executor options share ``{type: ...}``,
    so the merged schema closes those mappings once, with ``unevaluatedProperties``.
    """
    out = copy.deepcopy(dict(schema))
    out.pop("additionalProperties", None)
    out.pop("unevaluatedProperties", None)
    out.pop("$schema", None)
    return out


def _def_name(kind: str, key: str) -> str:
    return f"{kind}.{key.replace(':', '.')}"


def _source_pattern(scheme: str) -> str:
    """The ``source:`` values of one scheme, as ``source_scheme`` reads them."""
    if scheme == "file":
        return rf"^(file://|(?!{_OTHER_SCHEME}))"
    return rf"^{re.escape(scheme)}://"


def _trigger_dispatch(plugins: Plugins, defs: dict[str, Any]) -> list[dict[str, Any]]:
    branches: list[dict[str, Any]] = []
    for key, cls in sorted(plugins.triggers().items()):
        name = _def_name("trigger", key)
        defs[name] = options_schema(cls.config_schema)
        if cls.description:
            defs[name].setdefault("description", cls.description)
        if key != cls.type_name:  # routed by scheme: the key is ``scheme_key(type_name, scheme)``
            scheme = key[len(cls.type_name) + 1:]
            source = {"type": "string", "pattern": _source_pattern(scheme)}
            cond = {
                "properties": {"trigger": {"const": cls.type_name}, "source": source},
                "required": ["trigger", "source"],
            }
        else:
            cond = {"properties": {"trigger": {"const": key}}, "required": ["trigger"]}
        branches.append({"if": cond, "then": {"$ref": f"#/$defs/{name}"}})
    return branches


def _typed_dispatch(kind: str, components: Mapping[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    branches = []
    for key, cls in sorted(components.items()):
        name = _def_name(kind, key)
        defs[name] = options_schema(cls.config_schema)
        if cls.description:
            defs[name].setdefault("description", cls.description)
        branches.append(
            {
                "if": {"properties": {"type": {"const": key}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/{name}"},
            }
        )
    return branches


def merged_schema(plugins: Plugins) -> dict[str, Any]:
    """The core schema with every registered trigger, executor, storage and notifier merged in.

    Draft 2020-12, for editors (yaml-language-server) and ``firelink schema``: trigger
    options are selected by ``trigger:`` (and, for a type whose classes declare
    ``schemes``, by the ``source:`` scheme) with ``if``/``then``, every mapping is closed
    with ``unevaluatedProperties: false`` so a misspelt key is flagged, and the default
    executor and storage are the plugins' (``firelink_default_type``).
    """
    schema = core_schema()
    defs = schema["$defs"]
    defs["trigger_type"] = {"type": "string", "enum": plugins.trigger_types()}
    trigger_branches = _trigger_dispatch(plugins, defs)
    defs["job"] = {
        "type": "object",
        "allOf": [{"$ref": "#/$defs/job_keys"}, *trigger_branches],
        "required": ["name"],
        "not": {"required": ["trigger", "triggers"]},
        "unevaluatedProperties": False,
    }
    defs["trigger_item"] = {
        "type": "object",
        "properties": {"trigger": {"$ref": "#/$defs/trigger_type", "description": "The trigger type."}},
        "required": ["trigger"],
        "allOf": trigger_branches,
        "unevaluatedProperties": False,
    }
    for kind, components, base in (
        ("executor", plugins.executors(), "executor"),
        ("storage", plugins.storages(), "storage"),
        ("notifier", plugins.notifiers(), "notifier"),
    ):
        names = sorted(components)
        typed = {
            "type": "object",
            "properties": {"type": {"enum": names, "description": f"The {kind} type."}},
            "required": ["type"],
            "allOf": _typed_dispatch(kind, components, defs),
            "unevaluatedProperties": False,
        }
        if base == "notifier":
            defs[base] = typed
        else:
            # ``executor: docker`` and ``storage: memory`` are shorthands of ``{type: ...}``.
            defs[base] = {"anyOf": [{"enum": names}, typed]}
    for key, service in sorted(service_classes(plugins).items()):
        section = {k: v for k, v in copy.deepcopy(service.config_schema).items() if k != "$schema"}
        if service.description:
            section.setdefault("description", service.description)
        schema["properties"][key] = section
    _set_default_types(schema, plugins)
    return schema


def _set_default_types(schema: dict[str, Any], plugins: Plugins) -> None:
    """The ``default`` annotations of ``executor`` and ``storage``: whatever the plugins declare."""
    executor = plugins.default_type("executor")
    if executor is not None:
        for owner in ("job_keys", "defaults"):
            schema["$defs"][owner]["properties"]["executor"]["default"] = executor
    storage = plugins.default_type("storage")
    if storage is not None:
        schema["properties"]["storage"]["default"] = {"type": storage}

"""Checks of one component's mapping: its type is installed, its options fit its schema and ``check()``."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .._config_schema import options_schema
from ..abc import Component, Problem
from ..plugins import FIRST_PARTY_HINTS, Plugins, scheme_key, source_scheme
from .issues import Checks, PathT
from .messages import is_placeholder, schema_issues, suggest
from .validators import Validator, validator

__all__ = ["check_options", "check_trigger", "check_typed", "unknown_type"]


def _install_hint(plugins: Plugins, hint: str) -> str:
    """``pip install X``, or, when X is installed but failed to load, say so instead."""
    if any(e.distribution == hint for e in plugins.errors):
        return f"the {hint} plugin, which is installed but failed to load (see its error)"
    return f"the {hint} plugin: pip install {hint}"


def unknown_type(plugins: Plugins, kind: str, key: str, known: Iterable[str], label: str | None = None) -> str:
    """The message for a component type no plugin provides: what to install, or what is known."""
    hint = FIRST_PARTY_HINTS.get((kind, key))
    what = label or f"{kind} type {key!r}"
    if hint:
        return f"{what} needs {_install_hint(plugins, hint)}"
    known = sorted(known)
    listing = f" (known: {', '.join(known)})" if known else ""
    suggestion = suggest(key, known)
    return f"unknown {what}{suggestion or listing}"


def _run_check(
    checks: Checks, cls: type[Component], options: Mapping[str, Any], base: PathT, *, job: str | None
) -> None:
    try:
        # check() is pure (no side effects, same answer for the same options): generated
        # configs repeat options thousands of times.
        memo_key = (cls, json.dumps(options, sort_keys=True, default=str))
        problems: list[Problem] | None = checks.check_memo.get(memo_key)
        if problems is None:
            problems = checks.check_memo[memo_key] = list(cls.check(options, config_dir=checks.config_dir) or ())
    except Exception as exc:  # noqa: BLE001 - a plugin bug is reported, not a traceback
        kind_key = _kind_key_of(checks.plugins, cls)
        info = checks.plugins.provider(*kind_key) if kind_key else None
        origin = f" of plugin {info.name!r} (distribution {info.distribution})" if info else ""
        checks.add(base, f"{cls.__name__}.check(){origin} failed: {type(exc).__name__}: {exc}", "plugin", job=job)
        return
    for problem in problems or ():
        path = tuple(problem.path)
        if not checks.interpolated and path and is_placeholder(options.get(path[0])):
            continue  # a ``${VAR}`` value is only known when the daemon loads the config
        checks.add(base + path, problem.message, "check", job=job)


def _kind_key_of(plugins: Plugins, cls: type[Component]) -> tuple[str, str] | None:
    for kind, entries in plugins.registry.items():
        for key, (other, _info) in entries.items():
            if other is cls:
                return (kind, key)
    return None


@functools.lru_cache(maxsize=512)
def _component_validator(cls: type[Component]) -> tuple[frozenset[str], Validator]:
    schema = options_schema(cls.config_schema)
    return frozenset(schema.get("properties", {})), validator(schema)


def check_options(
    checks: Checks,
    cls: type[Component],
    options: dict[str, Any],
    base: PathT,
    *,
    job: str | None,
    where: str,
    extra_allowed: Iterable[str] = (),
) -> None:
    """Unknown keys (with suggestions), the component's schema, then its ``check()``."""
    allowed, options_validator = _component_validator(cls)
    known_options = {}
    meant: set[str] = set()
    for name, value in options.items():
        if name in allowed:
            known_options[name] = value
            continue
        close = difflib.get_close_matches(str(name), sorted(allowed | set(extra_allowed)), n=1, cutoff=0.6)
        meant.update(close)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        checks.add(base + (name,), f"unknown key {name!r} in {where}{hint}", "unknown-key", job=job, key=True)
    before = len(checks.issues)
    schema_issues(checks, options_validator, known_options, base, job=job, where=where)
    schema_ok = len(checks.issues) == before
    # A misspelt required key is one problem, not two: drop "missing 'schedule'" after "unknown 'schedul'".
    checks.issues[before:] = [
        i for i in checks.issues[before:]
        if not (i.path == base and any(i.message.startswith(f"missing required key {m!r}") for m in meant))
    ]
    if schema_ok:
        _run_check(checks, cls, known_options, base, job=job)


def check_typed(
    checks: Checks, kind: str, value: Any, path: PathT, components: Mapping[str, type[Component]], *, job: str | None, where: str
) -> None:
    """A ``{type: ..., ...options}`` mapping (storage, notifier, executor), or its ``type`` alone."""
    if isinstance(value, str):
        value = {"type": value}
        type_path: PathT = path
    else:
        type_path = path + ("type",)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return  # the core schema reported the shape
    key = value["type"]
    cls = components.get(key)
    if cls is None:
        checks.add(type_path, unknown_type(checks.plugins, kind, key, components), "unknown-type", job=job)
        return
    options = {k: v for k, v in value.items() if k != "type"}
    check_options(checks, cls, options, path, job=job, where=where, extra_allowed=("type",))


def check_trigger(
    checks: Checks, spec: dict[str, Any], base: PathT, job: str | None, *, type_path: PathT, extra_allowed: Iterable[str], where: str
) -> None:
    """One trigger (a job's own ``trigger:`` or an item of ``triggers:``): its class, then its options."""
    ttype = spec.get("trigger")
    if not isinstance(ttype, str):
        return  # reported by the schema
    options = {k: v for k, v in spec.items() if k not in extra_allowed and k != "trigger"}
    plugins = checks.plugins
    if plugins.routed_by_scheme(ttype):
        cls = _scheme_trigger(checks, ttype, spec.get("source"), base, job)
    else:
        cls = plugins.trigger_class(ttype)
        if cls is None:
            message = unknown_type(plugins, "trigger", ttype, plugins.trigger_types(), f"trigger type {ttype!r}")
            checks.add(type_path, message, "unknown-type", job=job)
    if cls is not None:
        check_options(checks, cls, options, base, job=job, where=where, extra_allowed=extra_allowed)


def _scheme_trigger(checks: Checks, ttype: str, source: Any, base: PathT, job: str | None) -> type[Component] | None:
    """The class serving a trigger type routed by ``source:`` scheme, or ``None`` with the issue added."""
    if not isinstance(source, str):
        checks.add(base, f"missing required key 'source' for trigger {ttype!r}", "schema", job=job)
        return None
    if not checks.interpolated and is_placeholder(source):
        return None
    plugins = checks.plugins
    cls = plugins.trigger_class(ttype, source)
    if cls is not None:
        return cls
    scheme = source_scheme(source)
    hint = FIRST_PARTY_HINTS.get(("trigger", scheme_key(ttype, scheme)))
    if hint:
        article = "an" if scheme[:1] in tuple("aeiohsx") else "a"
        message = f"trigger {ttype!r} with {article} {scheme}:// source needs {_install_hint(plugins, hint)}"
    else:
        listing = ", ".join(f"{s}://" for s in plugins.trigger_schemes(ttype)) or "none installed"
        message = f"no installed plugin {_third_person(ttype)} {scheme}:// sources (known: {listing})"
    checks.add(base + ("source",), message, "unknown-type", job=job)
    return None


def _third_person(verb: str) -> str:
    """``watch`` -> ``watches``: a trigger type routed by scheme is named by what it does."""
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in ("a", "e", "i", "o", "u"):
        return verb[:-1] + "ies"
    return verb + "s"

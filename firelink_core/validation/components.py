"""Checks of one component's mapping: its type is installed, its options fit its schema and ``check()``."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .._config_schema import options_schema
from ..abc import Component, Problem
from ..plugins import (
    BASE_OF_KIND,
    FIRST_PARTY_HINTS,
    Plugins,
    scheme_key,
    source_scheme,
    source_url_problem,
)
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
    broken = [f"{e.plugin!r}" + (f" ({e.distribution})" if e.distribution else "") for e in plugins.errors if e.optional]
    if broken:  # a plugin that failed to import provides nothing: it may be the one meant
        return f"unknown {what}{suggestion or listing}; installed but failed to load: {', '.join(broken)}"
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


def _kind_of(cls: type[Component]) -> str:
    return next(kind for kind, base in BASE_OF_KIND.items() if issubclass(cls, base))


@functools.lru_cache(maxsize=8)
def _option_owners(plugins: Plugins, kind: str) -> dict[str, list[str]]:
    """Every option key an installed component of ``kind`` accepts, and which components:
    a key misspelt on one type is often meant for another (``schedule`` on a manual job)."""
    owners: dict[str, list[str]] = {}
    for key, cls in sorted(plugins.components(kind).items()):
        type_name, _, scheme = key.partition(":")
        label = f"{kind}: {type_name}" + (f" with {_article(scheme)} {scheme}:// source" if scheme else "")
        for option in cls.config_schema.get("properties", {}):
            owners.setdefault(option, []).append(label)
    return owners


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
        own = allowed | set(extra_allowed)
        others = _option_owners(checks.plugins, _kind_of(cls))
        close = difflib.get_close_matches(str(name), sorted(own | set(others)), n=1, cutoff=0.6)
        hint = ""
        if close and close[0] in own:
            meant.add(close[0])
            hint = f" (did you mean {close[0]!r}?)"
        elif close:
            owner = f"{close[0]!r} is an option of {' or '.join(others[close[0]])}"
            hint = f" ({owner})" if close[0] == name else f" (did you mean {close[0]!r}? {owner})"
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
    scheme = source_scheme(source)
    hint = FIRST_PARTY_HINTS.get(("trigger", scheme_key(ttype, scheme)))
    served = plugins.trigger_schemes(ttype)
    if scheme not in served and not hint:
        checks.add(base + ("source",), _unserved_scheme(plugins, ttype, source, scheme), "source", job=job)
        return None
    problem = source_url_problem(source)
    if problem is not None:
        why, meant = problem
        checks.add(base + ("source",), f"malformed source {source!r}: {why} (did you mean {meant!r}?)", "source", job=job)
        return None
    cls = plugins.trigger_class(ttype, source)
    if cls is not None:
        return cls
    if hint:
        message = f"trigger {ttype!r} with {_article(scheme)} {scheme}:// source needs {_install_hint(plugins, hint)}"
    else:
        listing = ", ".join(f"{s}://" for s in plugins.trigger_schemes(ttype)) or "none installed"
        message = f"no installed plugin {_third_person(ttype)} {scheme}:// sources (known: {listing})"
    checks.add(base + ("source",), message, "unknown-type", job=job)
    return None


def _served(plugins: Plugins, ttype: str) -> list[str]:
    """The ``source:`` forms ``trigger: ttype`` accepts, in words, with the first-party ones."""
    schemes = set(plugins.trigger_schemes(ttype))
    schemes.update(key.split(":", 1)[1] for kind, key in FIRST_PARTY_HINTS if kind == "trigger" and key.startswith(f"{ttype}:"))
    return [f"{s}:// (or a path)" if s == "file" else f"{s}://" for s in sorted(schemes)]


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one typo (a character changed, added or dropped):
    schemes are too short for ratios (``gs`` is not a near miss of ``s3``, ``s4`` is)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def _unserved_scheme(plugins: Plugins, ttype: str, source: str, scheme: str) -> str:
    """A ``source:`` naming a scheme (``gs:``, ``s4://``) that no plugin serves for ``ttype``."""
    served = _served(plugins, ttype)
    listing = ", ".join(served) or "none installed"
    url = source[len(scheme) + 1:].startswith("//")
    message = f"no installed plugin {_third_person(ttype)} {scheme}:{'//' if url else ''} sources (known: {listing})"
    close = [s.split(":", 1)[0] for s in served if _one_edit(scheme, s.split(":", 1)[0])]
    if close:
        rest = source[len(scheme) + 1:].lstrip("/")
        meant = f"{close[0]}:///{rest}" if close[0] == "file" else f"{close[0]}://{rest}"
        return f"{message}; did you mean {meant!r}?"
    if "file" in (s.split(":", 1)[0] for s in served) and not url:
        message += f"; a local folder of that name is written ./{source}"
    return message


def _article(scheme: str) -> str:
    """The article of a scheme read letter by letter: an s3, an ftp, an http, a file."""
    return "an" if scheme[:1] in tuple("aefhilmnorsx") else "a"


def _third_person(verb: str) -> str:
    """``watch`` -> ``watches``: a trigger type routed by scheme is named by what it does."""
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in ("a", "e", "i", "o", "u"):
        return verb[:-1] + "ies"
    return verb + "s"

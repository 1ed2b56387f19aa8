"""Validation of a loaded config: every problem, located, one clear message each."""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
import yaml

from ._config_schema import JOB_KEYS, JOB_SETTINGS, TOP_KEYS, core_schema, options_schema
from ._yaml import Located, _plain_scalar_tag
from .abc import Component, Problem
from .durations import DURATION_PATTERN, SIZE_PATTERN
from .plugins import FIRST_PARTY_HINTS, Plugins, source_scheme

if TYPE_CHECKING:
    import jsonschema

__all__ = ["Issue", "validate_data", "interpolate", "INTERPOLATION"]

PathT = tuple[str | int, ...]

INTERPOLATION = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
"""``${VAR}``, ``${VAR:-default}``; ``$$`` is a literal ``$``."""



@dataclass
class Issue:
    """One problem before it gets its file name: a path into the data and a message."""

    path: PathT
    message: str
    code: str = "schema"
    job: str | None = None
    key: bool = False
    """Locate the mapping key at ``path`` rather than its value."""


@dataclass
class _State:
    located: Located
    plugins: Plugins
    config_dir: Path | None
    interpolated: bool
    issues: list[Issue] = field(default_factory=list)
    check_memo: dict[tuple[type[Component], str], list[Problem]] = field(default_factory=dict)

    def add(self, path: PathT, message: str, code: str = "schema", *, job: str | None = None, key: bool = False) -> None:
        self.issues.append(Issue(tuple(path), message, code, job, key))


# --------------------------------------------------------------------------- helpers


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _expected(types: Iterable[str]) -> str:
    words = [_TYPE_WORDS.get(t, t) for t in dict.fromkeys(types)]
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


# Keywords meaning the same in draft-07 (fastjsonschema) and draft 2020-12 (jsonschema).
_FAST_SAFE = frozenset(
    """type properties required additionalProperties items enum const pattern minimum maximum
    exclusiveMinimum exclusiveMaximum minLength maxLength minItems maxItems uniqueItems anyOf
    oneOf allOf not description default title examples propertyNames minProperties
    maxProperties""".split()
)


_ANNOTATIONS = frozenset({"description", "default", "title", "examples"})


def _deref(schema: Any, defs: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline ``#/$defs/..`` references, so draft-07 (which ignores a ``$ref``'s siblings)
    checks everything; a recursive reference stays a ``$ref`` (and the schema takes the slow path)."""
    if isinstance(schema, list):
        return [_deref(s, defs, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _deref(v, defs, seen) for k, v in schema.items() if k not in ("$ref", "$defs")}
    ref = schema.get("$ref")
    name = ref[8:] if isinstance(ref, str) and ref.startswith("#/$defs/") else None
    if name is not None and name in defs and name not in seen:
        target = _deref(defs[name], defs, seen + (name,))
        constraints = {k: v for k, v in out.items() if k not in _ANNOTATIONS}
        if constraints:
            out = {"allOf": [target, constraints], **{k: v for k, v in out.items() if k in _ANNOTATIONS}}
        else:
            out = {**target, **out}
    elif ref is not None:
        out["$ref"] = ref
    return out


def _fast_safe(schema: Any, in_properties: bool = False) -> bool:
    if isinstance(schema, list):
        return all(_fast_safe(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    for key, value in schema.items():
        if in_properties:
            if not _fast_safe(value):
                return False
        elif key not in _FAST_SAFE or (key == "items" and not isinstance(value, dict)):
            return False
        elif key in ("enum", "const", "default", "examples", "required", "description", "title"):
            continue
        elif not _fast_safe(value, in_properties=key == "properties"):
            return False
    return True


class _Validator:
    """jsonschema's complete, located errors, behind a compiled fastjsonschema check.

    Almost every value of a real config is valid, and fastjsonschema decides that an order
    of magnitude faster (``firelink validate`` on 10,000 jobs stays well under a second);
    only an invalid value pays for jsonschema's full error report.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        self._full: jsonschema.Draft202012Validator | None = None
        flat = _deref(schema, schema.get("$defs", {}))
        self.fast: Callable[[Any], Any] | None = None
        if _fast_safe(flat):
            try:
                self.fast = fastjsonschema.compile(flat, use_formats=False, use_default=False, detailed_exceptions=False)
            except Exception:  # noqa: BLE001 - anything it cannot compile goes the slow way
                self.fast = None

    def iter_errors(self, instance: Any) -> Iterable[jsonschema.ValidationError]:
        if self.fast is not None:
            try:
                self.fast(instance)
                return ()
            except fastjsonschema.JsonSchemaValueException:
                pass
        return self.full.iter_errors(instance)

    @property
    def full(self) -> jsonschema.Draft202012Validator:
        if self._full is None:
            # Imported on the first invalid value: jsonschema (with referencing and rpds)
            # costs about 9 MB and 30 ms that a valid config never needs.
            import jsonschema

            self._full = jsonschema.Draft202012Validator(self._schema)
        return self._full


@functools.lru_cache(maxsize=256)
def _validator_for(schema_json: str) -> _Validator:
    return _Validator(json.loads(schema_json))


def _validator(schema: Mapping[str, Any]) -> _Validator:
    return _validator_for(json.dumps(schema, sort_keys=True, default=str))


_CORE = core_schema()
_DEFS = _CORE["$defs"]
# Trigger items are checked one by one against their component (unknown keys computed here),
# so the job's own validator only needs their shape.
_DEFS["trigger_item"] = {"type": "object", "properties": {"trigger": {"type": "string"}}, "required": ["trigger"]}


def _core_def_validator(name: str) -> _Validator:
    return _validator({"$defs": _DEFS, "$ref": f"#/$defs/{name}"})


def _core_prop_validator(props: Mapping[str, Any], required: tuple[str, ...] = ()) -> _Validator:
    return _validator({"$defs": _DEFS, "type": "object", "properties": dict(props), "required": list(required)})


# --------------------------------------------------------------------------- jsonschema errors


def _schema_issues(
    st: _State, validator: _Validator, instance: Any, base: PathT, *, job: str | None, where: str
) -> None:
    for error in validator.iter_errors(instance):
        _map_error(st, error, base, job=job, where=where)


def _map_error(st: _State, error: jsonschema.ValidationError, base: PathT, *, job: str | None, where: str) -> None:
    path = base + tuple(error.absolute_path)
    inst = error.instance
    kind = error.validator
    value = error.validator_value
    if not st.interpolated and _is_placeholder(inst) and kind not in ("required", "additionalProperties"):
        return  # ``${VAR}`` is only known when the daemon loads the config
    if kind in ("anyOf", "oneOf"):
        _map_any_of(st, error, base, job=job, where=where)
        return
    names = [p for p in path if isinstance(p, str)]
    if kind == "required":
        for name in value:
            if isinstance(inst, dict) and name not in inst:
                owner = f" in {where}" if not error.absolute_path else f" in {names[-1]!r}"
                st.add(path, f"missing required key {name!r}{owner}", "schema", job=job)
        return
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = set(error.schema.get("properties", {}))
        owner = names[-1] if names else where
        for name in inst:
            if name not in allowed:
                st.add(
                    path + (name,),
                    f"unknown key {name!r} in {owner!r}{_suggest(str(name), allowed)}",
                    "unknown-key",
                    job=job,
                    key=True,
                )
        return
    if kind == "type":
        types = [value] if isinstance(value, str) else list(value)
        message = f"expected {_expected(types)}, got {_type_name(inst)}"
        if isinstance(inst, bool) and "string" in types:
            message += " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the value)"
    elif kind == "enum":
        options = ", ".join(repr(v) for v in value)
        message = f"expected one of {options}, got {inst!r}{_suggest(str(inst), [str(v) for v in value])}"
    elif kind == "const":
        message = f"expected {value!r}, got {inst!r}"
    elif kind == "pattern":
        if value == DURATION_PATTERN:
            message = f"expected a duration like 30s, 5m or 1h30m, got {inst!r}"
        elif value == SIZE_PATTERN:
            message = f"expected a size like 10MB or 512KiB, got {inst!r}"
        elif value == _DEFS["job_name"]["pattern"]:
            message = (
                f"invalid job name {inst!r}: use letters, digits, '_', '.' and '-', "
                "starting with a letter or digit"
            )
        else:
            message = f"{inst!r} does not match the pattern {value!r}"
    elif kind in ("minimum", "exclusiveMinimum"):
        message = f"expected at least {value}, got {inst!r}" if kind == "minimum" else f"expected more than {value}, got {inst!r}"
    elif kind in ("maximum", "exclusiveMaximum"):
        message = f"expected at most {value}, got {inst!r}" if kind == "maximum" else f"expected less than {value}, got {inst!r}"
    elif kind in ("minItems", "minLength") and value == 1:
        message = "must not be empty"
    else:
        message = error.message
    st.add(path, message, "schema", job=job)


def _map_any_of(st: _State, error: jsonschema.ValidationError, base: PathT, *, job: str | None, where: str) -> None:
    """One message for a failed ``anyOf``: the errors of the branch of the right type, else the types expected."""
    by_branch: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(sub.schema_path[0], []).append(sub)  # type: ignore[arg-type]
    wrong_type: set[int] = set()
    types: list[str] = []
    for index, subs in by_branch.items():
        for sub in subs:
            if sub.validator in ("type", "enum") and not sub.relative_path:
                wrong_type.add(index)
                if sub.validator == "type":
                    v = sub.validator_value
                    types.extend([v] if isinstance(v, str) else v)
                else:
                    types.append("one of " + ", ".join(repr(x) for x in sub.validator_value))
    fitting = [i for i in by_branch if i not in wrong_type]
    if len(fitting) == 1:
        for sub in by_branch[fitting[0]]:
            _map_error(st, sub, base, job=job, where=where)
        return
    path = base + tuple(error.absolute_path)
    st.add(path, f"expected {_expected(types)}, got {_type_name(error.instance)}", "schema", job=job)


# --------------------------------------------------------------------------- components


def _install_hint(plugins: Plugins, hint: str) -> str:
    """``pip install X``, or, when X is installed but failed to load, say so instead."""
    if any(e.distribution == hint for e in plugins.errors):
        return f"the {hint} plugin, which is installed but failed to load (see its error)"
    return f"the {hint} plugin: pip install {hint}"


def _unknown_type(
    plugins: Plugins, kind: str, key: str, known: Iterable[str], label: str | None = None
) -> str:
    hint = FIRST_PARTY_HINTS.get((kind, key))
    what = label or f"{kind} type {key!r}"
    if hint:
        return f"{what} needs {_install_hint(plugins, hint)}"
    known = sorted(known)
    listing = f" (known: {', '.join(known)})" if known else ""
    suggestion = _suggest(key, known)
    return f"unknown {what}{suggestion or listing}"


def _run_check(
    st: _State, cls: type[Component], options: Mapping[str, Any], base: PathT, *, job: str | None
) -> None:
    try:
        # check() is pure (no side effects, same answer for the same options): generated
        # configs repeat options thousands of times.
        memo_key = (cls, json.dumps(options, sort_keys=True, default=str))
        problems: list[Problem] | None = st.check_memo.get(memo_key)
        if problems is None:
            problems = st.check_memo[memo_key] = list(cls.check(options, config_dir=st.config_dir) or ())
    except Exception as exc:  # noqa: BLE001 - a plugin bug is reported, not a traceback
        kind_key = _kind_key_of(st.plugins, cls)
        info = st.plugins.provider(*kind_key) if kind_key else None
        origin = f" of plugin {info.name!r} (distribution {info.distribution})" if info else ""
        st.add(base, f"{cls.__name__}.check(){origin} failed: {type(exc).__name__}: {exc}", "plugin", job=job)
        return
    for problem in problems or ():
        path = tuple(problem.path)
        if not st.interpolated and path and _is_placeholder(options.get(path[0])):
            continue  # a ``${VAR}`` value is only known when the daemon loads the config
        st.add(base + path, problem.message, "check", job=job)


def _kind_key_of(plugins: Plugins, cls: type[Component]) -> tuple[str, str] | None:
    for kind, entries in plugins.registry.items():
        for key, (other, _info) in entries.items():
            if other is cls:
                return (kind, key)
    return None


@functools.lru_cache(maxsize=512)
def _component_validator(cls: type[Component]) -> tuple[frozenset[str], _Validator]:
    schema = options_schema(cls.config_schema)
    return frozenset(schema.get("properties", {})), _validator(schema)


def _check_options(
    st: _State,
    cls: type[Component],
    options: dict[str, Any],
    base: PathT,
    *,
    job: str | None,
    where: str,
    extra_allowed: Iterable[str] = (),
) -> None:
    """Unknown keys (with suggestions), the component's schema, then its ``check()``."""
    allowed, validator = _component_validator(cls)
    known_options = {}
    meant: set[str] = set()
    for name, value in options.items():
        if name in allowed:
            known_options[name] = value
            continue
        close = difflib.get_close_matches(str(name), sorted(allowed | set(extra_allowed)), n=1, cutoff=0.6)
        meant.update(close)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        st.add(base + (name,), f"unknown key {name!r} in {where}{hint}", "unknown-key", job=job, key=True)
    before = len(st.issues)
    _schema_issues(st, validator, known_options, base, job=job, where=where)
    schema_ok = len(st.issues) == before
    # A misspelt required key is one problem, not two: drop "missing 'schedule'" after "unknown 'schedul'".
    st.issues[before:] = [
        i for i in st.issues[before:] if not (i.path == base and any(i.message.startswith(f"missing required key {m!r}") for m in meant))
    ]
    if schema_ok:
        _run_check(st, cls, known_options, base, job=job)


# --------------------------------------------------------------------------- sections


def _check_timezone(st: _State, value: Any, path: PathT, job: str | None) -> None:
    if not isinstance(value, str) or (not st.interpolated and _is_placeholder(value)):
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        st.add(path, f"unknown timezone {value!r}{_suggest(value, _zones())}", "timezone", job=job)


@functools.lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_values(st: _State, mapping: Mapping[str, Any], base: PathT, job: str | None) -> None:
    """What the schema cannot say: that a timezone exists (durations and sizes are patterns)."""
    if "timezone" in mapping:
        _check_timezone(st, mapping["timezone"], base + ("timezone",), job)


def _check_typed(
    st: _State, kind: str, value: Any, path: PathT, components: Mapping[str, type[Component]], *, job: str | None, where: str
) -> None:
    """A ``{type: ..., ...options}`` mapping (storage, notifier, executor)."""
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
        st.add(type_path, _unknown_type(st.plugins, kind, key, components), "unknown-type", job=job)
        return
    options = {k: v for k, v in value.items() if k != "type"}
    _check_options(st, cls, options, path, job=job, where=where, extra_allowed=("type",))


def _check_top(st: _State, data: dict[str, Any]) -> None:
    for name in data:
        if name not in TOP_KEYS:
            st.add((name,), f"unknown top-level key {name!r}{_suggest(str(name), TOP_KEYS)}", "unknown-key", key=True)
    simple = {k: v for k, v in data.items() if k in ("state_dir", "plugins", "timezone", "max_parallel")}
    props = {k: _CORE["properties"][k] for k in simple}
    _schema_issues(st, _core_prop_validator(props), simple, (), job=None, where="the config")
    _check_values(st, simple, (), None)


def _check_storage(st: _State, data: dict[str, Any]) -> None:
    if "storage" not in data:
        return
    value = data["storage"]
    before = len(st.issues)
    _schema_issues(st, _core_def_validator("storage"), value, ("storage",), job=None, where="storage")
    if len(st.issues) == before:
        _check_typed(st, "storage", value, ("storage",), st.plugins.storages(), job=None, where="storage")


def _check_notifiers(st: _State, data: dict[str, Any]) -> None:
    value = data.get("notifiers")
    if value is None:
        return
    if not isinstance(value, dict):
        st.add(("notifiers",), f"expected a mapping of notifier names, got {_type_name(value)}")
        return
    pattern = re.compile(_DEFS["job_name"]["pattern"])
    for name, spec in value.items():
        path = ("notifiers", name)
        if not pattern.match(str(name)):
            st.add(
                path,
                f"invalid notifier name {name!r}: use letters, digits, '_', '.' and '-', "
                "starting with a letter or digit",
                key=True,
            )
        before = len(st.issues)
        _schema_issues(st, _core_def_validator("notifier"), spec, path, job=None, where=f"notifier {name!r}")
        if len(st.issues) == before:
            _check_typed(st, "notifier", spec, path, st.plugins.notifiers(), job=None, where=f"notifier {name!r}")


def _check_job_settings(st: _State, mapping: dict[str, Any], base: PathT, job: str | None, notifiers: Mapping[str, Any]) -> None:
    """The settings shared by jobs and ``defaults:``: executor, values, notify names."""
    if "executor" in mapping:
        _check_typed(
            st, "executor", mapping["executor"], base + ("executor",), st.plugins.executors(), job=job, where="executor"
        )
    _check_values(st, mapping, base, job)
    notify = mapping.get("notify")
    if isinstance(notify, list):
        for i, rule in enumerate(notify):
            name, path = rule, base + ("notify", i)
            if isinstance(rule, dict):
                name, path = rule.get("notifier"), path + ("notifier",)
            if isinstance(name, str) and name not in notifiers:
                known = f" (defined: {', '.join(sorted(notifiers))})" if notifiers and not _suggest(name, notifiers) else ""
                st.add(path, f"unknown notifier {name!r}{_suggest(name, notifiers)}{known}", "unknown-notifier", job=job)


def _check_defaults(st: _State, data: dict[str, Any]) -> None:
    value = data.get("defaults")
    if value is None:
        return
    if not isinstance(value, dict):
        st.add(("defaults",), f"expected a mapping, got {_type_name(value)}")
        return
    for name in value:
        if name not in JOB_SETTINGS:
            why = (
                f"{name!r} cannot be a default (it belongs to each job)"
                if name in JOB_KEYS
                else f"unknown key {name!r} in defaults{_suggest(str(name), JOB_SETTINGS)}"
            )
            st.add(("defaults", name), why, "unknown-key", key=True)
    settings = {k: v for k, v in value.items() if k in JOB_SETTINGS}
    props = {k: _DEFS["defaults"]["properties"][k] for k in settings}
    _schema_issues(st, _core_prop_validator(props), settings, ("defaults",), job=None, where="defaults")
    _check_job_settings(st, settings, ("defaults",), None, data.get("notifiers") or {})


def _check_trigger(
    st: _State, spec: dict[str, Any], base: PathT, job: str | None, *, type_path: PathT, extra_allowed: Iterable[str], where: str
) -> None:
    ttype = spec.get("trigger")
    if not isinstance(ttype, str):
        return  # reported by the schema
    options = {k: v for k, v in spec.items() if k not in extra_allowed and k != "trigger"}
    plugins = st.plugins
    if ttype == "watch":
        source = spec.get("source")
        if not isinstance(source, str):
            st.add(base, "missing required key 'source' for trigger 'watch'", "schema", job=job)
            return
        if not st.interpolated and _is_placeholder(source):
            return
        scheme = source_scheme(source)
        cls = plugins.trigger_class("watch", source)
        if cls is None:
            known = [k.split(":", 1)[1] for k in plugins.triggers() if k.startswith("watch:")]
            hint = FIRST_PARTY_HINTS.get(("trigger", f"watch:{scheme}"))
            if hint:
                article = "an" if scheme[:1] in tuple("aeiohsx") else "a"
                message = f"trigger 'watch' with {article} {scheme}:// source needs {_install_hint(plugins, hint)}"
            else:
                listing = ", ".join(f"{s}://" for s in sorted(known)) or "none installed"
                message = f"no installed plugin watches {scheme}:// sources (known: {listing})"
            st.add(base + ("source",), message, "unknown-type", job=job)
            return
    else:
        cls = plugins.trigger_class(ttype)
        if cls is None:
            names = {k.split(":", 1)[0] for k in plugins.triggers()}
            st.add(type_path, _unknown_type(plugins, "trigger", ttype, names, f"trigger type {ttype!r}"), "unknown-type", job=job)
            return
    _check_options(st, cls, options, base, job=job, where=where, extra_allowed=extra_allowed)


def _check_job(st: _State, index: int, job: Any, notifiers: Mapping[str, Any]) -> None:
    base: PathT = ("jobs", index)
    if not isinstance(job, dict):
        st.add(base, f"expected a job mapping (name, trigger, command ...), got {_type_name(job)}")
        return
    name = job.get("name") if isinstance(job.get("name"), str) else None
    label = f"job {name!r}" if name else f"job #{index + 1}"
    core = {k: v for k, v in job.items() if k in JOB_KEYS}
    _schema_issues(st, _JOB_VALIDATOR, core, base, job=name, where=label)
    if "trigger" in job and "triggers" in job:
        st.add(base + ("triggers",), "use either 'trigger' or 'triggers', not both", "schema", job=name, key=True)
    if "trigger" in job:
        _check_trigger(
            st, job, base, name, type_path=base + ("trigger",), extra_allowed=JOB_KEYS, where=label
        )
    else:
        for key in job:
            if key not in JOB_KEYS:
                hint = _suggest(str(key), JOB_KEYS)
                st.add(base + (key,), f"unknown key {key!r} in {label}{hint}", "unknown-key", job=name, key=True)
    triggers = job.get("triggers")
    if isinstance(triggers, list):
        for j, item in enumerate(triggers):
            if isinstance(item, dict) and isinstance(item.get("trigger"), str):
                path = base + ("triggers", j)
                _check_trigger(
                    st, item, path, name, type_path=path + ("trigger",), extra_allowed=("trigger",),
                    where=f"trigger {item['trigger']!r} of {label}",
                )
    _check_job_settings(st, core, base, name, notifiers)


_JOB_VALIDATOR = _core_prop_validator(_DEFS["job_keys"]["properties"], ("name",))


# --------------------------------------------------------------------------- the job graph


def _dependencies(job: dict[str, Any]) -> tuple[list[str], PathT]:
    dep = job.get("depends_on")
    if isinstance(dep, list):
        return [d for d in dep if isinstance(d, str)], ("depends_on",)
    if isinstance(dep, dict) and isinstance(dep.get("jobs"), list):
        return [d for d in dep["jobs"] if isinstance(d, str)], ("depends_on", "jobs")
    return [], ()


def _check_graph(st: _State, jobs: list[Any]) -> None:
    first: dict[str, int] = {}
    for index, job in enumerate(jobs):
        if not isinstance(job, dict) or not isinstance(job.get("name"), str):
            continue
        name = job["name"]
        if name in first:
            line = st.located.where(("jobs", first[name], "name"))[0]
            st.add(("jobs", index, "name"), f"duplicate job name {name!r} (first defined on line {line})", "duplicate-job", job=name)
        else:
            first[name] = index
    edges: dict[str, list[str]] = {}
    for name, index in first.items():
        job = jobs[index]
        deps, sub = _dependencies(job)
        edges[name] = []
        for i, dep in enumerate(deps):
            if dep in first:
                edges[name].append(dep)
            else:
                st.add(
                    ("jobs", index) + sub + (i,),
                    f"depends on unknown job {dep!r}{_suggest(dep, first)}",
                    "unknown-job",
                    job=name,
                )
    for cycle in _cycles(edges, list(first)):
        head = cycle[0]
        _deps, sub = _dependencies(jobs[first[head]])
        st.add(("jobs", first[head]) + sub, "dependency cycle: " + " -> ".join(cycle + [head]), "cycle", job=head)


def _cycles(edges: Mapping[str, list[str]], order: list[str]) -> list[list[str]]:
    """One cycle per strongly connected component (Tarjan, iterative), in file order."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in order:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index_of:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index_of[nxt])
                continue
            if low[node] == index_of[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1 or node in edges.get(node, []):
                    components.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    position = {name: i for i, name in enumerate(order)}
    cycles = []
    for comp in sorted(components, key=lambda c: min(position[n] for n in c)):
        members = set(comp)
        start = min(comp, key=position.__getitem__)
        path, seen, node = [start], {start}, start
        while True:  # walk inside the component until the path closes on itself
            nxt = next((n for n in edges[node] if n in members and n == start), None) or next(
                (n for n in edges[node] if n in members and n not in seen), None
            )
            if nxt is None or nxt == start:
                break
            path.append(nxt)
            seen.add(nxt)
            node = nxt
        cycles.append(path)
    return cycles


# --------------------------------------------------------------------------- entry points


_SCALAR_TAGS = {
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
    "tag:yaml.org,2002:bool": bool,
}


def _typed_scalar(text: str) -> Any:
    tag = _plain_scalar_tag(text) if len(text) <= 64 else "tag:yaml.org,2002:str"
    if tag in _SCALAR_TAGS:
        return yaml.safe_load(text)
    return text


def interpolate(located: Located, environ: Mapping[str, str] | None = None) -> list[Issue]:
    """Replace ``${VAR}`` in every string value in place; a missing variable is an issue."""
    env = os.environ if environ is None else environ
    issues: list[Issue] = []

    def sub(value: str, path: PathT) -> str:
        def repl(match: re.Match[str]) -> str:
            if match.group(1) == "$":
                return "$"
            var, default = match.group(2), match.group(3)
            if var in env:
                return env[var]
            if default is not None:
                return default
            issues.append(Issue(path, f"environment variable {var!r} is not set", "env"))
            return match.group(0)

        return INTERPOLATION.sub(repl, value)

    def walk(value: Any, path: PathT) -> Any:
        if isinstance(value, str):
            if "$" not in value:
                return value
            result = sub(value, path)
            if path in located.plain_templates and INTERPOLATION.fullmatch(value):
                # ``max_instances: ${N}`` unquoted reads like ``max_instances: 3``: typed as YAML
                # would type it. Quoted (``"${N}"``) stays a string.
                return _typed_scalar(result)
            return result
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        return value

    located.data = walk(located.data, ())
    return issues


def validate_data(
    located: Located, plugins: Plugins, *, config_dir: Path | None, interpolated: bool
) -> list[Issue]:
    """Every problem of the loaded data (after YAML problems, which the caller reports)."""
    st = _State(located, plugins, config_dir, interpolated)
    data = located.data
    if data is None:
        st.add((), "the config is empty: expected a mapping with a 'jobs:' list", "schema")
        return st.issues
    if not isinstance(data, dict):
        st.add((), f"expected a mapping with a 'jobs:' list at the top level, got {_type_name(data)}", "schema")
        return st.issues
    _check_top(st, data)
    _check_storage(st, data)
    _check_notifiers(st, data)
    _check_defaults(st, data)
    jobs = data.get("jobs")
    if jobs is None:
        jobs = []  # ``jobs:`` with nothing under it: a config without jobs yet
    if not isinstance(jobs, list):
        st.add(("jobs",), f"expected a list of jobs, got {_type_name(jobs)}")
        return st.issues
    notifiers = data.get("notifiers") if isinstance(data.get("notifiers"), dict) else {}
    for index, job in enumerate(jobs):
        _check_job(st, index, job, notifiers)
    _check_graph(st, jobs)
    return st.issues

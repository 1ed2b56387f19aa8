"""Checks of the config's sections: top-level keys, ``storage``, ``notifiers``, ``defaults`` and each job."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from .._config_schema import JOB_KEYS, JOB_SETTINGS, TOP_KEYS
from ..services import KNOWN_SECTIONS, missing_section_message, service_classes
from .components import check_trigger, check_typed
from .issues import Checks, PathT
from .messages import is_placeholder, schema_issues, suggest, type_name
from .validators import CORE, CORE_DEFS, core_def_validator, core_prop_validator, validator

__all__ = ["check_default_types", "check_defaults", "check_job", "check_notifiers", "check_storage", "check_top"]


def _check_timezone(checks: Checks, value: Any, path: PathT, job: str | None) -> None:
    if not isinstance(value, str) or (not checks.interpolated and is_placeholder(value)):
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        checks.add(path, f"unknown timezone {value!r}{suggest(value, _zones())}", "timezone", job=job)


@functools.lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_values(checks: Checks, mapping: Mapping[str, Any], base: PathT, job: str | None) -> None:
    """What the schema cannot say: that a timezone exists (durations and sizes are patterns)."""
    if "timezone" in mapping:
        _check_timezone(checks, mapping["timezone"], base + ("timezone",), job)


def check_top(checks: Checks, data: dict[str, Any]) -> None:
    """Top-level keys, and the simple top-level settings."""
    services = service_classes(checks.plugins)
    for name in data:
        if name in services:
            where = f"{name!r}"
            schema_issues(checks, validator(services[name].config_schema), data[name], (name,), job=None, where=where)
        elif name in KNOWN_SECTIONS:
            checks.add((name,), missing_section_message(str(name)), "missing-plugin", key=True)
        elif name not in TOP_KEYS:
            known = (*TOP_KEYS, *services)
            checks.add((name,), f"unknown top-level key {name!r}{suggest(str(name), known)}", "unknown-key", key=True)
    simple = {k: v for k, v in data.items() if k in ("state_dir", "plugins", "timezone", "max_parallel")}
    props = {k: CORE["properties"][k] for k in simple}
    schema_issues(checks, core_prop_validator(props), simple, (), job=None, where="the config")
    _check_values(checks, simple, (), None)


def check_storage(checks: Checks, data: dict[str, Any]) -> None:
    """``storage:``, when the config sets it."""
    if "storage" not in data:
        return
    value = data["storage"]
    before = len(checks.issues)
    schema_issues(checks, core_def_validator("storage"), value, ("storage",), job=None, where="storage")
    if len(checks.issues) == before:
        check_typed(checks, "storage", value, ("storage",), checks.plugins.storages(), job=None, where="storage")


def check_notifiers(checks: Checks, data: dict[str, Any]) -> None:
    """Each named notifier under ``notifiers:``."""
    value = data.get("notifiers")
    if value is None:
        return
    if not isinstance(value, dict):
        checks.add(("notifiers",), f"expected a mapping of notifier names, got {type_name(value)}")
        return
    pattern = re.compile(CORE_DEFS["job_name"]["pattern"])
    for name, spec in value.items():
        path = ("notifiers", name)
        if not pattern.match(str(name)) or str(name).endswith("\n"):
            checks.add(
                path,
                f"invalid notifier name {name!r}: use letters, digits, '_', '.' and '-', "
                "starting with a letter or digit",
                key=True,
            )
        before = len(checks.issues)
        schema_issues(checks, core_def_validator("notifier"), spec, path, job=None, where=f"notifier {name!r}")
        if len(checks.issues) == before:
            check_typed(checks, "notifier", spec, path, checks.plugins.notifiers(), job=None, where=f"notifier {name!r}")


def _check_job_settings(
    checks: Checks, mapping: dict[str, Any], base: PathT, job: str | None, notifiers: Mapping[str, Any]
) -> None:
    """The settings shared by jobs and ``defaults:``: executor, values, notify names."""
    if "executor" in mapping:
        check_typed(
            checks, "executor", mapping["executor"], base + ("executor",), checks.plugins.executors(),
            job=job, where="executor",
        )
    _check_values(checks, mapping, base, job)
    if isinstance(mapping.get("env"), dict):
        _check_env(checks, mapping["env"], base + ("env",), job)
    notify = mapping.get("notify")
    if isinstance(notify, list):
        for i, rule in enumerate(notify):
            name, path = rule, base + ("notify", i)
            if isinstance(rule, dict):
                name, path = rule.get("notifier"), path + ("notifier",)
            if isinstance(name, str) and name not in notifiers:
                known = f" (defined: {', '.join(sorted(notifiers))})" if notifiers and not suggest(name, notifiers) else ""
                checks.add(path, f"unknown notifier {name!r}{suggest(name, notifiers)}{known}", "unknown-notifier", job=job)


def _check_env(checks: Checks, env: dict[str, Any], base: PathT, job: str | None) -> None:
    """What no process environment can hold: a name with ``=`` or NUL, a value with NUL.
    Values are never quoted back (they are often secrets)."""
    for key, value in env.items():
        name = str(key)
        if not name or "=" in name or "\0" in name:
            checks.add(
                base + (key,),
                f"invalid environment variable name {name!r}: a name is not empty and holds no '=' or NUL",
                "env",
                job=job,
                key=True,
            )
        elif isinstance(value, str) and "\0" in value:
            checks.add(base + (key,), f"the value of {name!r} holds a NUL character, which no environment can pass", "env", job=job)


def _check_name_ends(checks: Checks, name: Any, path: PathT, what: str, job: str | None) -> None:
    """A name the pattern lets through with a trailing newline (``$`` matches before it):
    a YAML block scalar (``name: |``) keeps one."""
    if isinstance(name, str) and name.endswith("\n"):
        checks.add(
            path,
            f"invalid {what} name {name!r}: it ends in a newline (write it on the key's line, or use '|-')",
            job=job,
        )


def check_defaults(checks: Checks, data: dict[str, Any]) -> None:
    """``defaults:``: only job settings, each valid as it would be in a job."""
    value = data.get("defaults")
    if value is None:
        return
    if not isinstance(value, dict):
        checks.add(("defaults",), f"expected a mapping, got {type_name(value)}")
        return
    for name in value:
        if name not in JOB_SETTINGS:
            why = (
                f"{name!r} cannot be a default (it belongs to each job)"
                if name in JOB_KEYS
                else f"unknown key {name!r} in defaults{suggest(str(name), JOB_SETTINGS)}"
            )
            checks.add(("defaults", name), why, "unknown-key", key=True)
    settings = {k: v for k, v in value.items() if k in JOB_SETTINGS}
    props = {k: CORE_DEFS["defaults"]["properties"][k] for k in settings}
    schema_issues(checks, core_prop_validator(props), settings, ("defaults",), job=None, where="defaults")
    _check_job_settings(checks, settings, ("defaults",), None, data.get("notifiers") or {})


_JOB_VALIDATOR = core_prop_validator(CORE_DEFS["job_keys"]["properties"], ("name",))


def check_job(checks: Checks, index: int, job: Any, notifiers: Mapping[str, Any]) -> None:
    """One item of ``jobs:``: its own keys, its triggers and its settings."""
    base: PathT = ("jobs", index)
    if not isinstance(job, dict):
        checks.add(base, f"expected a job mapping (name, trigger, command ...), got {type_name(job)}")
        return
    name = job.get("name") if isinstance(job.get("name"), str) else None
    label = f"job {name!r}" if name else f"job #{index + 1}"
    core = {k: v for k, v in job.items() if k in JOB_KEYS}
    schema_issues(checks, _JOB_VALIDATOR, core, base, job=name, where=label)
    _check_name_ends(checks, name, base + ("name",), "job", name)
    if "trigger" in job and "triggers" in job:
        checks.add(base + ("triggers",), "use either 'trigger' or 'triggers', not both", "schema", job=name, key=True)
    if "trigger" in job:
        check_trigger(checks, job, base, name, type_path=base + ("trigger",), extra_allowed=JOB_KEYS, where=label)
    else:
        for key in job:
            if key not in JOB_KEYS:
                hint = suggest(str(key), JOB_KEYS)
                checks.add(base + (key,), f"unknown key {key!r} in {label}{hint}", "unknown-key", job=name, key=True)
    triggers = job.get("triggers")
    if isinstance(triggers, list):
        for j, item in enumerate(triggers):
            if isinstance(item, dict) and isinstance(item.get("trigger"), str):
                path = base + ("triggers", j)
                check_trigger(
                    checks, item, path, name, type_path=path + ("trigger",), extra_allowed=("trigger",),
                    where=f"trigger {item['trigger']!r} of {label}",
                )
    _check_job_settings(checks, core, base, name, notifiers)


def _missing_default(checks: Checks, kind: str) -> str | None:
    """Why a config naming no ``kind`` type is invalid, or ``None`` when the plugins' default serves."""
    default = checks.plugins.default_type(kind)
    if default is None:
        return f"no {kind} configured, and no installed plugin declares a default {kind} type"
    if default not in checks.plugins.components(kind):
        return f"no {kind} configured, and the default {kind} type {default!r} is not installed"
    return None


def check_default_types(checks: Checks, data: dict[str, Any], jobs: list[Any]) -> None:
    """A config that names no storage, or a job that names no executor, needs a plugin's default."""
    if "storage" not in data:
        problem = _missing_default(checks, "storage")
        if problem:
            checks.add((), f"{problem}: set 'storage:'", "unknown-type")
    defaults = data.get("defaults")
    if isinstance(defaults, dict) and "executor" in defaults:
        return
    problem = _missing_default(checks, "executor")
    if problem is None:
        return
    for index, job in enumerate(jobs):
        if isinstance(job, dict) and "executor" not in job:
            name = job.get("name") if isinstance(job.get("name"), str) else None
            checks.add(("jobs", index), f"{problem}: set 'executor:' in the job or in defaults", "unknown-type", job=name)

"""YAML loading with locations, the merged JSON Schema, validation, and building ``Config``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._config_schema import JOB_KEYS, merged_schema
from ._interpolation import interpolate
from ._state_dir import resolve_state_dir
from ._yaml import Located, load_located
from .durations import parse_duration, parse_size
from .model import (
    Config,
    Dependency,
    ExecutorSpec,
    JobSpec,
    LogPolicy,
    NotifierSpec,
    NotifyRule,
    ParamSpec,
    Retries,
    StorageSpec,
    TriggerSpec,
)
from .plugins import Plugins, make_plugins
from .services import service_classes
from .validation import Issue, validate_data
from .validation.messages import shortened

__all__ = [
    "ConfigError",
    "ConfigInvalid",
    "load_config",
    "parse_config",
    "validate_files",
    "validate_text",
    "merged_schema",
]


@dataclass(frozen=True)
class ConfigError:
    """One located problem in a config file."""

    file: str
    line: int | None
    column: int | None
    message: str
    job: str | None = None
    code: str = "invalid"
    """A short kind: ``yaml``, ``schema``, ``unknown-key``, ``duplicate-job``, ``cycle`` ..."""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        job = f" job {shortened(self.job)}:" if self.job else ""
        return f"{where}:{job} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "job": self.job,
            "code": self.code,
            "message": self.message,
        }


class ConfigInvalid(Exception):
    """Raised by ``load_config`` with every problem found."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


# --------------------------------------------------------------------------- checking


def _config_plugins(data: Any) -> list[str]:
    """The ``plugins:`` import paths, read before the plugin manager is built."""
    if isinstance(data, dict) and isinstance(data.get("plugins"), list):
        return [p for p in data["plugins"] if isinstance(p, str)]
    return []


def _plugin_errors(plugins: Plugins, located: Located, filename: str) -> list[ConfigError]:
    errors = []
    listed = _config_plugins(located.data)
    for err in plugins.errors:
        if err.optional:
            continue  # a warning for the CLI to print; a type the config needs from it is unknown-type
        line = column = None
        if err.plugin in listed:
            line, column = located.where(("plugins", listed.index(err.plugin)))
        errors.append(ConfigError(filename, line, column, str(err), code="plugin"))
    return errors


def _to_errors(issues: Sequence[Issue], located: Located, filename: str) -> list[ConfigError]:
    out = []
    for issue in issues:
        line, column = located.where(issue.path, key=issue.key)
        out.append(ConfigError(filename, line, column, issue.message, issue.job, issue.code))
    return out


def _check_text(
    text: str,
    filename: str,
    *,
    plugins: Plugins | None,
    extra_plugins: Sequence[str],
    config_dir: Path | None,
    interpolated: bool,
    environ: Mapping[str, str] | None = None,
    located: Located | None = None,
) -> tuple[Located, Plugins | None, list[ConfigError]]:
    located = located if located is not None else load_located(text)
    errors = [ConfigError(filename, p.line, p.column, p.message, code="yaml") for p in located.problems]
    if located.data is None and located.problems:
        return located, plugins, errors
    if plugins is None:
        plugins = make_plugins(config_plugins=_config_plugins(located.data), extra=extra_plugins)
    errors.extend(_plugin_errors(plugins, located, filename))
    if interpolated:
        unset = [
            Issue(path, f"environment variable {var!r} is not set", "env")
            for path, var in interpolate(located, environ)
        ]
        errors.extend(_to_errors(unset, located, filename))
    issues = validate_data(located, plugins, config_dir=config_dir, interpolated=interpolated)
    errors.extend(_to_errors(issues, located, filename))
    errors.sort(key=lambda e: (e.line or 0, e.column or 0))
    return located, plugins, errors


# --------------------------------------------------------------------------- building


def _merge(default: Any, value: Any) -> Any:
    """A job's mapping setting is merged one level over the default's (job keys win)."""
    if isinstance(default, dict) and isinstance(value, dict):
        return {**default, **value}
    return value


def _duration(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def _retries(value: Any) -> Retries:
    if value is None:
        return Retries()
    if isinstance(value, int):
        return Retries(count=value)
    codes = value.get("on_exit_codes")
    return Retries(
        count=value.get("count", 0),
        delay=parse_duration(value.get("delay", 10)),
        backoff=value.get("backoff", "fixed"),
        max_delay=parse_duration(value.get("max_delay", 3600)),
        jitter=parse_duration(value.get("jitter", 0)),
        on_exit_codes=tuple(codes) if codes is not None else None,
        on_timeout=value.get("on_timeout", True),
    )


def _retries_value(value: Any, default: Any) -> Any:
    """``retries: 3`` over a default mapping keeps the default's delay and backoff."""
    if value is None:
        return default
    if isinstance(value, int) and isinstance(default, dict):
        return {**default, "count": value}
    return _merge(default, value)


def _executor(value: Any, default: Any, default_type: str | None) -> ExecutorSpec:
    if isinstance(value, str):
        value = {"type": value}
    if isinstance(default, str):
        default = {"type": default}
    if value is None:
        value = default or {"type": default_type}
    elif isinstance(default, dict) and default.get("type") == value.get("type"):
        value = {**default, **value}
    return ExecutorSpec(type=value["type"], options={k: v for k, v in value.items() if k != "type"})


def _dependency(value: Any) -> Dependency | None:
    if value is None:
        return None
    if isinstance(value, list):
        return Dependency(jobs=tuple(value))
    return Dependency(jobs=tuple(value["jobs"]), condition=value.get("condition", "all_success"))


def _notify(value: Any) -> tuple[NotifyRule, ...]:
    rules = []
    for rule in value or ():
        if isinstance(rule, str):
            rules.append(NotifyRule(notifier=rule))
        else:
            rules.append(NotifyRule(notifier=rule["notifier"], events=tuple(rule.get("on", ("failure",)))))
    return tuple(rules)


def _log(value: Any) -> LogPolicy:
    value = value or {}
    return LogPolicy(
        max_bytes=parse_size(value.get("max_size", "10MB")),
        keep_runs=value.get("keep_runs", 100),
        keep_days=value.get("keep_days"),
    )


def _params(value: Any) -> dict[str, ParamSpec]:
    """A job's ``params:`` (validated) as specs by name."""
    out = {}
    for name, spec in (value or {}).items():
        spec = spec or {}
        enum = spec.get("enum")
        out[name] = ParamSpec(
            name=name,
            type=spec.get("type", "string"),
            default=spec.get("default"),
            enum=tuple(enum) if enum is not None else None,
            pattern=spec.get("pattern"),
            description=spec.get("description"),
            secret=bool(spec.get("secret", False)),
        )
    return out


def _env(value: Any) -> dict[str, str]:
    out = {}
    for key, val in (value or {}).items():
        out[str(key)] = ("true" if val else "false") if isinstance(val, bool) else str(val)
    return out


def _triggers(job: dict[str, Any], name: str) -> tuple[TriggerSpec, ...]:
    if "trigger" in job:
        options = {k: v for k, v in job.items() if k not in JOB_KEYS}
        return (TriggerSpec(type=job["trigger"], options=options, job=name, index=0),)
    specs = []
    for index, item in enumerate(job.get("triggers") or ()):
        options = {k: v for k, v in item.items() if k != "trigger"}
        specs.append(TriggerSpec(type=item["trigger"], options=options, job=name, index=index))
    return tuple(specs)


def _build(
    data: dict[str, Any], located: Located, plugins: Plugins, *, config_dir: Path, path: Path | None, state_dir: Path
) -> Config:
    """The model of validated data; a type the config leaves out is the plugins' default."""
    defaults = data.get("defaults") or {}
    default_executor = plugins.default_type("executor")
    top_tz = data.get("timezone", "UTC")
    jobs = []
    for index, job in enumerate(data.get("jobs") or ()):
        def get(key: str, fallback: Any = None, job: dict[str, Any] = job) -> Any:
            if key in job:
                return _merge(defaults.get(key), job[key])
            return defaults.get(key, fallback)

        name = job["name"]
        cwd = get("cwd")
        command = get("command")
        jobs.append(
            JobSpec(
                name=name,
                command=tuple(command) if isinstance(command, list) else command,
                shell=get("shell", False),
                env=_env(get("env")),
                cwd=str((config_dir / os.path.expanduser(cwd)).resolve()) if cwd is not None else None,
                executor=_executor(job.get("executor"), defaults.get("executor"), default_executor),
                triggers=_triggers(job, name),
                timeout=_duration(get("timeout")),
                kill_grace=parse_duration(get("kill_grace", 10)),
                retries=_retries(_retries_value(job.get("retries"), defaults.get("retries"))),
                timezone=get("timezone", top_tz),
                depends_on=_dependency(job.get("depends_on")),
                params=_params(job.get("params")),
                wait_timeout=_duration(get("wait_timeout")),
                max_instances=get("max_instances", 1),
                overlap=get("overlap"),
                catchup=get("catchup", "latest"),
                misfire_grace=_duration(get("misfire_grace")),
                recovery=get("recovery", "retry"),
                pause_after_failures=get("pause_after_failures"),
                notify=_notify(get("notify")),
                log=_log(get("log")),
                enabled=get("enabled", True),
                description=get("description"),
                source_line=located.where(("jobs", index))[0],
            )
        )
    notifiers = {
        name: NotifierSpec(name=name, type=spec["type"], options={k: v for k, v in spec.items() if k != "type"})
        for name, spec in (data.get("notifiers") or {}).items()
    }
    storage = data.get("storage") or {"type": plugins.default_type("storage")}
    if isinstance(storage, str):
        storage = {"type": storage}
    return Config(
        jobs=tuple(jobs),
        notifiers=notifiers,
        storage=StorageSpec(type=storage["type"], options={k: v for k, v in storage.items() if k != "type"}),
        state_dir=state_dir,
        plugins=tuple(data.get("plugins") or ()),
        max_parallel=data.get("max_parallel", 64),
        timezone=top_tz,
        path=path,
        services={key: dict(data[key] or {}) for key in service_classes(plugins) if key in data},
    )


def _state_dir(data: dict[str, Any], config_dir: Path, explicit: str | Path | None) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    return resolve_state_dir(data.get("state_dir"), config_dir)


def _load(
    text: str,
    filename: str,
    *,
    path: Path | None,
    plugins: Plugins | None,
    extra_plugins: Sequence[str],
    state_dir: str | Path | None,
    interpolate: bool,
    environ: Mapping[str, str] | None = None,
) -> tuple[Config, Plugins]:
    config_dir = path.parent.resolve() if path is not None else Path.cwd()
    located, plugins, errors = _check_text(
        text, filename, plugins=plugins, extra_plugins=extra_plugins, config_dir=config_dir,
        interpolated=interpolate, environ=environ,
    )
    if errors:
        raise ConfigInvalid(errors)
    assert plugins is not None  # only None after YAML errors, which raised above
    data = located.data
    config = _build(
        data, located, plugins, config_dir=config_dir, path=path, state_dir=_state_dir(data, config_dir, state_dir)
    )
    return config, plugins


# --------------------------------------------------------------------------- API


def load_config(
    path: str | Path,
    *,
    plugins: Plugins | None = None,
    extra_plugins: Sequence[str] = (),
    state_dir: str | Path | None = None,
    interpolate: bool = True,
    environ: Mapping[str, str] | None = None,
) -> tuple[Config, Plugins]:
    """Read, validate and build a config file; raise ``ConfigInvalid`` listing every problem.

    ``${VAR}`` in string values is replaced from ``environ`` (default ``os.environ``) when
    ``interpolate``; a missing variable is a located error. Without ``plugins``, a fresh
    manager is made with the config's ``plugins:`` and ``extra_plugins`` (``--plugin``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid([ConfigError(str(path), None, None, f"cannot read the config: {exc}", code="io")]) from None
    return _load(
        text, str(path), path=path, plugins=plugins, extra_plugins=extra_plugins,
        state_dir=state_dir, interpolate=interpolate, environ=environ,
    )


def parse_config(
    text: str,
    filename: str = "<string>",
    *,
    plugins: Plugins | None = None,
    state_dir: str | Path | None = None,
    interpolate: bool = False,
    environ: Mapping[str, str] | None = None,
    extra_plugins: Sequence[str] = (),
) -> tuple[Config, Plugins]:
    """Like ``load_config`` for YAML text (tests and reload); relative paths resolve from the cwd
    unless ``filename`` names a real path."""
    path = Path(filename) if not filename.startswith("<") else None
    return _load(
        text, filename, path=path, plugins=plugins, extra_plugins=extra_plugins,
        state_dir=state_dir, interpolate=interpolate, environ=environ,
    )


def validate_text(
    text: str, filename: str = "<string>", *, plugins: Plugins | None = None, extra_plugins: Sequence[str] = ()
) -> list[ConfigError]:
    """Every problem in YAML text, without interpolating ``${VAR}`` (as ``firelink validate``)."""
    config_dir = Path(filename).parent.resolve() if not filename.startswith("<") else None
    _located, _plugins, errors = _check_text(
        text, filename, plugins=plugins, extra_plugins=extra_plugins, config_dir=config_dir, interpolated=False
    )
    return errors


def validate_files(
    paths: Sequence[str | Path], *, extra_plugins: Sequence[str] = (), plugins: Plugins | None = None
) -> list[ConfigError]:
    """Every problem in every file (empty when all are valid). Never interpolates ``${VAR}``."""
    errors: list[ConfigError] = []
    managers: dict[tuple[str, ...], Plugins] = {}
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(ConfigError(str(path), None, None, f"cannot read the config: {exc}", code="io"))
            continue
        located = load_located(text)
        manager = plugins
        if manager is None and located.data is not None:
            # Files listing the same ``plugins:`` share one manager (CI validates many files).
            key = tuple(_config_plugins(located.data))
            if key not in managers:
                managers[key] = make_plugins(config_plugins=key, extra=extra_plugins)
            manager = managers[key]
        _located, _plugins, file_errors = _check_text(
            text, str(path), plugins=manager, extra_plugins=extra_plugins,
            config_dir=Path(path).parent.resolve(), interpolated=False, located=located,
        )
        errors.extend(file_errors)
    return errors

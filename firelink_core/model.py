"""The validated configuration, as the engine consumes it (built by ``config.load_config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._state_dir import default_state_dir

__all__ = [
    "Retries",
    "TriggerSpec",
    "ExecutorSpec",
    "Dependency",
    "LogPolicy",
    "NotifyRule",
    "ParamSpec",
    "JobSpec",
    "NotifierSpec",
    "StorageSpec",
    "Config",
]

Backoff = Literal["fixed", "exponential"]
Condition = Literal["all_success", "all_done", "one_failed"]
Overlap = Literal["skip", "queue", "allow"]
Catchup = Literal["skip", "latest", "all"]
Recovery = Literal["retry", "fail", "reattach"]


@dataclass(frozen=True)
class Retries:
    """How failed attempts are retried. ``count`` is the number of retries after the first attempt."""

    count: int = 0
    delay: float = 10.0
    backoff: Backoff = "fixed"
    max_delay: float = 3600.0
    jitter: float = 0.0
    on_exit_codes: tuple[int, ...] | None = None
    """Retry only these exit codes; ``None`` retries any failure (non-zero exit, signal, timeout)."""
    on_timeout: bool = True


@dataclass(frozen=True)
class TriggerSpec:
    """One trigger of one job: its type name and its own options."""

    type: str
    options: Mapping[str, Any]
    job: str
    index: int
    """Position among the job's triggers (0 for the job-level ``trigger:``)."""

    @property
    def key(self) -> str:
        """Stable identity used for schedule state and checkpoints: ``"<job>#<index>"``."""
        return f"{self.job}#{self.index}"

    def describe(self) -> str:
        """A short readable form: ``cron 0 18 * * *``, ``interval 90s``, ``watch s3://b/p``, ``manual``."""
        for name in ("schedule", "every", "source"):
            if name in self.options:
                value = self.options[name]
                if name == "every" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    from .durations import format_duration

                    value = format_duration(value)
                return f"{self.type} {value}"
        return self.type


@dataclass(frozen=True)
class ExecutorSpec:
    """How a job's command runs: an executor type and its options."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dependency:
    """``depends_on``: the upstream jobs and the condition over their latest runs."""

    jobs: tuple[str, ...]
    condition: Condition = "all_success"


@dataclass(frozen=True)
class LogPolicy:
    max_bytes: int = 10 * 1024 * 1024
    """Each attempt's log keeps at most this many bytes: the tail."""
    keep_runs: int | None = 100
    """Keep the last N finished runs per job (records and logs); ``None`` keeps all."""
    keep_days: float | None = None
    """Also drop finished runs older than this many days."""


ParamType = Literal["string", "integer", "number", "boolean"]


@dataclass(frozen=True)
class ParamSpec:
    """One declared run parameter of a job (``params:``)."""

    name: str
    type: ParamType = "string"
    default: Any = None
    """``None``: required (no default)."""
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    description: str | None = None
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def env_name(self) -> str:
        """The variable the command gets: ``FIRELINK_PARAM_<NAME>`` (upper case)."""
        return f"FIRELINK_PARAM_{self.name.upper()}"


@dataclass(frozen=True)
class NotifyRule:
    """A job's reference to a named notifier, with the run events it wants."""

    notifier: str
    events: tuple[str, ...] = ("failure",)


@dataclass(frozen=True)
class JobSpec:
    """One job, with ``defaults:`` already applied."""

    name: str
    command: tuple[str, ...] | str | None = None
    """An argv list (no shell) or a string (split with shlex unless ``shell``)."""
    shell: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    executor: ExecutorSpec | None = None
    """Always set by config building (the job's, the defaults' or the plugins' default type);
    ``None`` only in specs built by hand that are never run."""
    triggers: tuple[TriggerSpec, ...] = ()
    timeout: float | None = None
    kill_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when a timeout or shutdown terminates a run."""
    retries: Retries = field(default_factory=Retries)
    timezone: str = "UTC"
    depends_on: Dependency | None = None
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    """Declared run parameters by name (``firelink trigger --param``)."""
    wait_timeout: float | None = None
    """A triggered run waiting on ``depends_on`` longer than this is marked ``skipped``."""
    max_instances: int = 1
    overlap: Overlap | None = None
    """``None``: schedule fires skip, other triggers' runs wait for a slot (see docs/engine.md)."""
    catchup: Catchup = "latest"
    misfire_grace: float | None = None
    """Missed schedule fires older than this many seconds are not caught up; ``None``: no limit."""
    recovery: Recovery = "retry"
    """What happens to a run the daemon crashed during."""
    pause_after_failures: int | None = None
    """The circuit breaker: after this many consecutive failed runs the job is paused; ``None``: never."""
    notify: tuple[NotifyRule, ...] = ()
    log: LogPolicy = field(default_factory=LogPolicy)
    enabled: bool = True
    description: str | None = None
    source_line: int | None = field(default=None, compare=False)
    """The line of the job in its config file, for messages (not part of what the job means:
    a reload compares jobs without it)."""

    def trigger_texts(self) -> list[str]:
        """Each trigger described (``TriggerSpec.describe``), a schedule with the job's time
        zone beside it: ``cron 30 2 * * * Europe/Berlin``."""
        return [
            f"{spec.describe()} {self.timezone}" if "schedule" in spec.options else spec.describe()
            for spec in self.triggers
        ]


@dataclass(frozen=True)
class NotifierSpec:
    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageSpec:
    """Where runs and events are kept: a storage type and its options."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """A whole validated config file."""

    jobs: tuple[JobSpec, ...] = ()
    notifiers: Mapping[str, NotifierSpec] = field(default_factory=dict)
    storage: StorageSpec | None = None
    """Always set by config building (the config's or the plugins' default type); ``None``
    only in configs built by hand, which then give the engine no storage to open."""
    state_dir: Path = field(default_factory=default_state_dir)
    plugins: tuple[str, ...] = ()
    max_parallel: int | None = None
    timezone: str = "UTC"
    path: Path | None = None
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The top-level sections owned by plugin services (``http:``), by key, as written."""

    def job(self, name: str) -> JobSpec:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    @property
    def job_names(self) -> tuple[str, ...]:
        return tuple(job.name for job in self.jobs)

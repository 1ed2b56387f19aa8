"""The celery executor's options: JSON Schema, offline checks and parsing (no celery import here)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from firelink_core.plugin_api import Problem, duration_schema, parse_duration

__all__ = ["CONFIG_SCHEMA", "CeleryOptions", "check_options", "parse_options", "redact"]

_DEFAULT_LEASE = "30s"
_REDIS_SCHEMES = ("redis", "rediss", "unix")

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "queue": {
            "type": "string",
            "minLength": 1,
            "default": "firelink",
            "description": "The Celery queue the attempt is sent to; workers started with "
            "`celery -A firelink_celery.worker worker -Q <queue>` run it.",
        },
        "broker": {
            "type": "string",
            "description": "The Celery broker URL, e.g. redis://:password@redis.internal:6379/0 "
            "(usually ${FIRELINK_BROKER}). Default: the daemon's FIRELINK_BROKER variable. Redis is "
            "the supported broker; other Celery brokers are untested and need `redis:`.",
        },
        "redis": {
            "type": "string",
            "description": "The Redis URL carrying the attempts' output, leases and cancellations. "
            "Default: the broker URL (a Redis broker). Workers read theirs from FIRELINK_REDIS, "
            "else FIRELINK_BROKER: both sides must name the same Redis database.",
        },
        "lease": duration_schema(
            "How long a worker may go without renewing its lease on a running attempt before the "
            "daemon, connected to Redis all that time, records the attempt as failed (worker lost).",
            _DEFAULT_LEASE,
        ),
        "inherit_env": {
            "type": "boolean",
            "default": True,
            "description": "Start from the worker's environment and add the job's variables on top; "
            "false gives the job only its own env and the FIRELINK_* variables (plus a default PATH).",
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class CeleryOptions:
    """The options of one attempt, parsed."""

    queue: str
    broker: str
    redis: str
    lease: float
    inherit_env: bool = True


def _broker(options: Mapping[str, Any]) -> str | None:
    return options.get("broker") or os.environ.get("FIRELINK_BROKER") or None


def _redis(options: Mapping[str, Any], broker: str | None) -> str | None:
    if options.get("redis"):
        return str(options["redis"])
    if broker and urlsplit(broker).scheme in _REDIS_SCHEMES:
        return broker
    return None


def check_options(options: Mapping[str, Any]) -> list[Problem]:
    """What the schema cannot say: a broker must be known, and a Redis for the attempts' output."""
    problems = []
    broker = options.get("broker")
    if broker is not None and not re.match(r"^[a-z][a-z0-9+.-]*://", str(broker)):
        problems.append(Problem(("broker",), f"not a broker URL: {redact(str(broker))!r}"))
    elif broker is not None and _redis(options, str(broker)) is None:
        problems.append(Problem(("redis",), "the broker is not Redis: give `redis:` (a redis:// URL) for the attempts' output"))
    redis = options.get("redis")
    if redis is not None and urlsplit(str(redis)).scheme not in _REDIS_SCHEMES:
        problems.append(Problem(("redis",), f"not a redis://, rediss:// or unix:// URL: {redact(str(redis))!r}"))
    if "lease" in options:
        try:
            if parse_duration(options["lease"]) < 1:
                problems.append(Problem(("lease",), "a lease shorter than 1s would fail healthy attempts"))
        except ValueError as exc:
            problems.append(Problem(("lease",), str(exc)))
    return problems


def parse_options(options: Mapping[str, Any]) -> CeleryOptions:
    """The options of an attempt; ``ValueError`` says what is missing."""
    broker = _broker(options)
    if broker is None:
        raise ValueError("no Celery broker: set the executor's `broker:` or the daemon's FIRELINK_BROKER")
    redis = _redis(options, broker)
    if redis is None:
        raise ValueError(f"the broker {redact(broker)} is not Redis: set the executor's `redis:`")
    return CeleryOptions(
        queue=str(options.get("queue") or "firelink"),
        broker=broker,
        redis=redis,
        lease=parse_duration(options.get("lease", _DEFAULT_LEASE)),
        inherit_env=bool(options.get("inherit_env", True)),
    )


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and messages."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)

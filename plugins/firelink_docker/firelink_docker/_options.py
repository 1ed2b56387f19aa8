"""The docker executor's options: JSON Schema, offline checks and parsing (no docker import here)."""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firelink_core.plugin_api import Problem, parse_size

__all__ = [
    "CONFIG_SCHEMA", "PULL_POLICIES", "DockerOptions", "check_options", "parse_memory", "parse_options",
    "parse_volume",
]

PULL_POLICIES = ("missing", "always", "never")
# Docker refuses memory limits below 6 MiB; saying so at validation beats a failed run.
_MIN_MEMORY = 6 * 1024 * 1024
_HOST_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://", "http://", "https://")

_STRING_MAP = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "image": {
            "type": "string",
            "minLength": 1,
            "description": "The image to run, e.g. python:3.12-slim or registry.example.com/etl:1.4.",
        },
        "command": {
            "type": ["string", "array"],
            "items": {"type": "string"},
            "description": "The container's command, instead of the job's command. An argv list, or a "
            "string split like a shell would (run by /bin/sh -c with the job's shell: true). "
            "Without it and without a job command, the image's CMD runs.",
        },
        "entrypoint": {
            "type": ["string", "array"],
            "items": {"type": "string"},
            "description": "Replaces the image's ENTRYPOINT.",
        },
        "env": {
            **_STRING_MAP,
            "default": {},
            "description": "Extra environment variables of the container; the job's env and the FIRELINK_* "
            "variables take precedence. The daemon's own environment is never passed.",
        },
        "volumes": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "object",
                        "properties": {
                            "source": {"type": "string", "description": "Host path or volume name."},
                            "target": {"type": "string", "description": "Absolute path in the container."},
                            "read_only": {"type": "boolean", "default": False, "description": "Mount read-only."},
                        },
                        "required": ["source", "target"],
                        "additionalProperties": False,
                    },
                ]
            },
            "default": [],
            "description": "Mounts: host:container[:ro] strings or {source, target, read_only}. Sources "
            "starting with /, . or ~ are host paths (relative to the config file's folder); other "
            "sources are named Docker volumes.",
        },
        "working_dir": {
            "type": "string",
            "description": "The working directory in the container (absolute). The job's cwd is a host path "
            "and is not used by this executor.",
        },
        "user": {
            "type": ["string", "integer"],
            "description": "User (name or uid, optionally :group) the command runs as.",
        },
        "network": {
            "type": "string",
            "default": "default",
            "description": "Network mode: default, bridge, host, none, container:<name> or a network name.",
        },
        "cpus": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "CPU limit, in CPUs (0.5 = half a CPU). No limit by default.",
        },
        # Not size_schema(): its pattern would fail the schema on a bad size, and the validator
        # skips check() after a schema error, hiding every other problem of the executor block.
        # check_options() reports a bad size with the same message instead.
        "memory": {
            "type": ["string", "integer"],
            "description": "Memory limit: 256m, 1g, 512MiB or bytes. A container over it is killed and the "
            "attempt records that it ran out of memory. No limit by default.",
        },
        "pull": {
            "enum": list(PULL_POLICIES),
            "default": "missing",
            "description": "When to pull the image: missing (only when not on the engine), always "
            "(before every attempt), never (fail the attempt when the image is missing).",
        },
        "labels": {
            **_STRING_MAP,
            "default": {},
            "description": "Extra container labels; firelink.* labels are set by firelink.",
        },
        "remove": {
            "type": "boolean",
            "default": True,
            "description": "Remove the container (and its anonymous volumes) when the attempt ends.",
        },
        "docker_host": {
            "type": "string",
            "description": "The engine to use (unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host). "
            "Default: the usual Docker environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).",
        },
        "stop_signal": {
            "type": "string",
            "description": "The signal that asks the container to stop on timeout and shutdown (default: "
            "the image's STOPSIGNAL, else SIGTERM); SIGKILL follows after kill_grace.",
        },
    },
    "required": ["image"],
}


@dataclass(frozen=True)
class DockerOptions:
    """The executor's options for one attempt, parsed: what its container is made of."""

    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    working_dir: str | None = None
    user: str | int | None = None
    network: str = "default"
    nano_cpus: int | None = None
    memory: str | int | None = None
    """The memory limit as written (for messages); ``memory_bytes`` is what Docker gets."""
    memory_bytes: int | None = None
    pull: str = "missing"
    remove: bool = True
    docker_host: str | None = None
    stop_signal: str | None = None


def parse_memory(value: str | int) -> int:
    """Bytes in a memory limit: ``256m``, ``1g``, ``512MiB`` (binary units, as Docker reads them)."""
    size = parse_size(value)
    if size <= 0:
        raise ValueError(f"expected a positive size like 256m or 1g, got {value!r}")
    return size


def parse_volume(spec: str | Mapping[str, Any], config_dir: Path | None = None) -> str:
    """A bind mount as Docker's ``source:target:mode`` string; raises ``ValueError`` with a reason.

    ``spec`` is ``host:container[:ro|rw]`` or ``{source, target, read_only}``. A source
    starting with ``/``, ``.`` or ``~`` is a host path (relative ones are relative to
    ``config_dir``); any other source names a Docker volume, as in docker compose.
    """
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"expected host:container or host:container:ro, got {spec!r}")
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise ValueError(f"the mode of {spec!r} must be ro or rw, got {mode!r}")
    elif isinstance(spec, Mapping):
        source, target = spec.get("source"), spec.get("target")
        if not isinstance(source, str) or not source or not isinstance(target, str) or not target:
            raise ValueError("a volume mapping needs source and target strings")
        read_only = spec.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ValueError(f"read_only must be true or false, got {read_only!r}")
        mode = "ro" if read_only else "rw"
    else:
        raise ValueError(f"expected a string or a mapping, got {spec!r}")
    if not target.startswith("/"):
        raise ValueError(f"the container path must be absolute, got {target!r}")
    if source.startswith("~"):
        source = os.path.expanduser(source)
    elif source.startswith("."):
        source = str(((config_dir or Path.cwd()) / source).resolve())
    return f"{source}:{target}:{mode}"


def parse_options(
    options: Mapping[str, Any],
    config_dir: Path | None = None,
    *,
    command: str | list[str] | None = None,
    shell: bool = False,
) -> DockerOptions:
    """Options (already schema-valid) to :class:`DockerOptions`; ``command`` and ``shell`` are the job's.

    Raises ``ValueError`` with the message the attempt records, naming the option at fault.
    """
    option = "command"
    try:
        argv = _argv(options.get("command", command), shell)
        option = "entrypoint"
        entrypoint = options.get("entrypoint")
        if isinstance(entrypoint, str):
            entrypoint = _split(entrypoint)
        option = "volumes"
        volumes = [parse_volume(spec, config_dir) for spec in options.get("volumes") or []]
        option = "memory"
        memory = options.get("memory")
        memory_bytes = parse_memory(memory) if memory is not None else None
    except ValueError as exc:
        raise ValueError(f"invalid docker executor option {option}: {exc}") from None
    image = options.get("image")
    if not isinstance(image, str) or not image:
        raise ValueError("invalid docker executor options: image is required")
    return DockerOptions(
        image=image,
        command=argv,
        entrypoint=entrypoint,
        env={str(k): _text(v) for k, v in (options.get("env") or {}).items()},
        labels={str(k): _text(v) for k, v in (options.get("labels") or {}).items()},
        volumes=volumes,
        working_dir=options.get("working_dir"),
        user=options.get("user"),
        network=options.get("network", "default"),
        nano_cpus=int(float(options["cpus"]) * 1e9) if options.get("cpus") else None,
        memory=memory,
        memory_bytes=memory_bytes,
        pull=options.get("pull", "missing"),
        remove=options.get("remove", True),
        docker_host=options.get("docker_host"),
        stop_signal=options.get("stop_signal"),
    )


def check_options(options: Mapping[str, Any], config_dir: Path | None = None) -> list[Problem]:
    """What the schema cannot say; offline, without asking any Docker engine."""
    problems: list[Problem] = []

    def deferred(value: Any) -> bool:
        # ${VAR} is interpolated when the daemon loads the config, after validation.
        return isinstance(value, str) and "${" in value

    image = options.get("image")
    if isinstance(image, str) and not deferred(image) and (not image.strip() or any(c.isspace() for c in image)):
        problems.append(Problem(("image",), f"not an image reference: {image!r}"))
    for key in ("command", "entrypoint"):
        value = options.get(key)
        if isinstance(value, str) and not deferred(value):
            try:
                _split(value)
            except ValueError as exc:
                problems.append(Problem((key,), str(exc)))
    memory = options.get("memory")
    if memory is not None and not deferred(memory):
        try:
            if parse_memory(memory) < _MIN_MEMORY:
                problems.append(Problem(("memory",), f"Docker needs a memory limit of at least 6m, got {memory!r}"))
        except ValueError as exc:
            problems.append(Problem(("memory",), str(exc)))
    volumes = options.get("volumes") or []
    if isinstance(volumes, list):
        for index, spec in enumerate(volumes):
            if deferred(spec):
                continue
            try:
                parse_volume(spec, config_dir)
            except ValueError as exc:
                problems.append(Problem(("volumes", index), str(exc)))
    working_dir = options.get("working_dir")
    if isinstance(working_dir, str) and not deferred(working_dir) and not working_dir.startswith("/"):
        problems.append(Problem(("working_dir",), f"must be an absolute path in the container, got {working_dir!r}"))
    host = options.get("docker_host")
    if isinstance(host, str) and not deferred(host) and not host.startswith(_HOST_SCHEMES):
        problems.append(Problem(("docker_host",), f"expected a URL like unix:///var/run/docker.sock or tcp://host:2376, got {host!r}"))
    stop_signal = options.get("stop_signal")
    if isinstance(stop_signal, str) and not deferred(stop_signal) and not _valid_signal(stop_signal):
        problems.append(Problem(("stop_signal",), f"not a signal name or number: {stop_signal!r}"))
    labels = options.get("labels") or {}
    if isinstance(labels, Mapping):
        for key in labels:
            if str(key).startswith("firelink."):
                problems.append(Problem(("labels", key), "firelink.* labels are reserved for firelink"))
    return problems


def _argv(command: str | list[Any] | None, shell: bool) -> list[str] | None:
    if command is None:
        return None
    if isinstance(command, str):
        return ["/bin/sh", "-c", command] if shell else _split(command)
    return [str(part) for part in command]


def _split(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split {value!r}: {exc}") from None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _valid_signal(name: str) -> bool:
    if name.isdigit():
        return 0 < int(name) < 65
    upper = name.upper()
    return hasattr(signal.Signals, upper if upper.startswith("SIG") else "SIG" + upper)

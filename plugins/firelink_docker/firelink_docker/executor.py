"""The ``docker`` executor: each attempt runs in a new container of a Docker engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import shlex
import signal as signal_module
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from firelink_core.abc import (
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    Executor,
    ExecutorContext,
    Problem,
)
from firelink_core.durations import format_duration, parse_size
from firelink_core.logs import CappedLogWriter
from firelink_core.records import AttemptRecord

if TYPE_CHECKING:
    import docker

__all__ = [
    "DockerExecutor",
    "LABEL_JOB",
    "LABEL_RUN_ID",
    "LABEL_ATTEMPT",
    "LABEL_SCOPE",
    "LABEL_KEEP",
    "parse_memory",
    "parse_volume",
]

log = logging.getLogger("firelink.docker")

T = TypeVar("T")

LABEL_JOB = "firelink.job"
LABEL_RUN_ID = "firelink.run_id"
LABEL_ATTEMPT = "firelink.attempt"
LABEL_SCOPE = "firelink.scope"
"""The daemon's state directory: a daemon only ever cleans up containers it started."""
LABEL_KEEP = "firelink.keep"
"""Set on containers of jobs with ``remove: false``, which the orphan sweep leaves alone."""

_PULL_POLICIES = ("missing", "always", "never")
# Docker refuses memory limits below 6 MiB; saying so at validation beats a failed run.
_MIN_MEMORY = 6 * 1024 * 1024
_HOST_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://", "http://", "https://")
# Docker container names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*, which job names already follow.
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
_POOL_SIZE = 128  # every running attempt holds two connections (logs and wait)

_STRING_MAP = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}


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


def _split(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split {value!r}: {exc}") from None


def _describe(exc: BaseException) -> str:
    """A one-line reason from a docker SDK or connection error."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class _Failure(Exception):
    """A failure of the attempt (not of the daemon): recorded as the attempt's ``error``."""


class _LogSink:
    """The attempt's capped log, written from the log-streaming thread and the event loop."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._writer = CappedLogWriter(path, max_bytes)
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._writer.write(data)

    def note(self, message: str) -> None:
        """A line from firelink itself, marked so it is not mistaken for the job's output."""
        with self._lock:
            self._writer.note(message)

    def close(self) -> None:
        with self._lock:
            self._writer.close()


def _in_thread(fn: Callable[..., T], *args: Any, name: str = "firelink-docker", **kwargs: Any) -> asyncio.Future[T]:
    """Run a blocking call in its own thread.

    Calls that last as long as a container (log streaming, waiting) would each hold one of
    the loop's few default worker threads for hours and starve every other ``to_thread``.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result, error = fn(*args, **kwargs), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop closed while the call ran: nobody is waiting any more

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


class DockerExecutor(Executor):
    """Runs each attempt in a new container, labelled with its job, run and attempt.

    The container gets only the attempt's environment (``AttemptRequest.env`` over the
    executor's ``env``), never the daemon's. Output of both streams is streamed into the
    attempt's capped log as it comes. A timeout or a daemon shutdown stops the container
    (its stop signal, ``kill_grace``, then SIGKILL).
    """

    type_name = "docker"
    description = "Runs each attempt in a new container of a Docker engine"
    config_schema: Mapping[str, Any] = {
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
            "memory": {
                "type": ["string", "integer"],
                "description": "Memory limit: 256m, 1g, 512MiB or bytes. A container over it is killed and the "
                "attempt records that it ran out of memory. No limit by default.",
            },
            "pull": {
                "enum": list(_PULL_POLICIES),
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

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
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

    def __init__(self, context: ExecutorContext) -> None:
        super().__init__(context)
        self.scope = str(Path(context.state_dir).expanduser().resolve())
        self._clients: dict[str | None, docker.DockerClient] = {}
        self._swept: set[str | None] = set()
        self._active: set[str] = set()
        self._recovering: set[str] = set()
        self._locks: dict[str | None, asyncio.Lock] = {}

    # lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to do yet: each engine is connected on first use.

        Jobs may name their own ``docker_host``, so the executor cannot tell at start which
        engines matter; an unreachable one is reported on each attempt that needs it.
        """

    async def stop(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await asyncio.to_thread(client.close)

    async def _client(self, host: str | None) -> docker.DockerClient:
        # One lock per engine: an unreachable engine (a long connect timeout) delays only its jobs.
        async with self._locks.setdefault(host, asyncio.Lock()):
            client = self._clients.get(host)
            if client is None:
                client = await _in_thread(self._connect, host, name="firelink-docker-connect")
                self._clients[host] = client
        return client

    @staticmethod
    def _connect(host: str | None) -> docker.DockerClient:
        # The SDK is imported on first use, so validating a config never needs it.
        import docker

        where = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            if host:
                client = docker.DockerClient(base_url=host, max_pool_size=_POOL_SIZE)
            else:
                client = docker.from_env(max_pool_size=_POOL_SIZE)
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure to connect is reported the same way
            reason = _describe(exc).removeprefix("Error while fetching server API version: ")
            raise _Failure(f"cannot reach the Docker engine at {where}: {reason}") from None
        return client

    # orphans ----------------------------------------------------------------
    async def remove_orphans(self, docker_host: str | None = None, *, keep_runs: Collection[str] | None = None) -> list[str]:
        """Remove this daemon's containers that no attempt will ever look at again; return their ids.

        Considered are containers labelled with this daemon's state directory
        (``firelink.scope``), except those of attempts running now and those of jobs with
        ``remove: false``. Stopped ones are removed. Running ones are killed and removed only
        when ``keep_runs`` is given and does not list their run.

        The executor calls this once per engine, before its first new attempt there, which
        the engine starts only after crash recovery: so ``recover(reattach=True)`` still
        finds a container that finished while the daemon was down and records its result.
        """
        import docker.errors

        client = await self._client(docker_host)

        def sweep() -> list[str]:
            removed = []
            # Sparse: a full listing inspects each container and fails on one removed meanwhile.
            found = client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL_SCOPE}={self.scope}"})
            for container in found:
                labels = container.attrs.get("Labels") or {}
                if (
                    container.id in self._active
                    or labels.get(LABEL_RUN_ID) in self._recovering
                    or labels.get(LABEL_KEEP) == "true"
                ):
                    continue
                if container.status == "running" and (keep_runs is None or labels.get(LABEL_RUN_ID) in keep_runs):
                    continue
                try:
                    container.remove(force=True, v=True)
                except docker.errors.NotFound:
                    continue
                log.info(
                    "removed leftover container %s of job %s run %s",
                    container.short_id, labels.get(LABEL_JOB), labels.get(LABEL_RUN_ID),
                )
                removed.append(container.id)
            return removed

        return await asyncio.to_thread(sweep)

    async def _sweep_once(self, host: str | None) -> None:
        if host in self._swept:
            return
        self._swept.add(host)
        try:
            await self.remove_orphans(host)
        except Exception as exc:  # noqa: BLE001 - cleanup must never fail an attempt
            self.context.logger.warning("docker executor: could not remove leftover containers: %s", _describe(exc))

    # running ----------------------------------------------------------------
    async def run(self, request: AttemptRequest, reporter: AttemptReporter) -> AttemptResult:
        options = request.options
        host = options.get("docker_host")
        sink = _LogSink(request.log_path, request.log_max_bytes)
        try:
            try:
                create = self._create_args(request)
                client = await self._client(host)
                await self._sweep_once(host)
                await self._ensure_image(client, create["image"], options.get("pull", "missing"), sink)
                container = await self._create(client, create)
            except _Failure as exc:
                return _failed(sink, str(exc))
            self._active.add(container.id)
            try:
                try:
                    # The handle is stored before the container starts, so a crash from here on leaves
                    # nothing that recovery cannot find.
                    await reporter.started(
                        {
                            "container_id": container.id,
                            "container_name": container.name,
                            "image": create["image"],
                            "docker_host": host,
                        }
                    )
                    await asyncio.to_thread(container.start)
                except asyncio.CancelledError:
                    await self._discard(container, stop_grace=request.kill_grace, remove=True)
                    raise
                except Exception as exc:  # noqa: BLE001
                    await self._discard(container, stop_grace=None, remove=True)
                    return _failed(sink, f"cannot start the container: {_describe(exc)}")
                return await self._follow(container, request, sink, request.timeout, options.get("remove", True))
            finally:
                self._active.discard(container.id)
        finally:
            sink.close()

    def _create_args(self, request: AttemptRequest) -> dict[str, Any]:
        options = request.options
        config_dir = self.context.config_dir
        option = "command"
        try:
            command = self._command(request)
            option = "entrypoint"
            entrypoint = options.get("entrypoint")
            if isinstance(entrypoint, str):
                entrypoint = _split(entrypoint)
            option = "volumes"
            volumes = [parse_volume(spec, config_dir) for spec in options.get("volumes") or []]
            option = "memory"
            memory = options.get("memory")
            mem_limit = parse_memory(memory) if memory is not None else None
        except ValueError as exc:
            raise _Failure(f"invalid docker executor option {option}: {exc}") from None
        env = {str(k): _text(v) for k, v in (options.get("env") or {}).items()}
        env.update(request.env)
        labels = {str(k): _text(v) for k, v in (options.get("labels") or {}).items()}
        labels.update(
            {
                LABEL_JOB: request.job,
                LABEL_RUN_ID: request.run_id,
                LABEL_ATTEMPT: str(request.attempt),
                LABEL_SCOPE: self.scope,
            }
        )
        labels.update(request.labels)
        if not options.get("remove", True):
            labels[LABEL_KEEP] = "true"
        args: dict[str, Any] = {
            "image": options.get("image"),
            "command": command,
            "environment": env,
            "labels": labels,
            "name": _NAME_UNSAFE.sub("_", f"firelink-{request.job}-{request.run_id}-{request.attempt}"),
            "detach": True,
        }
        if not isinstance(args["image"], str) or not args["image"]:
            raise _Failure("invalid docker executor options: image is required")
        optional = {
            "entrypoint": entrypoint,
            "volumes": volumes or None,
            "working_dir": options.get("working_dir"),
            "user": options.get("user"),
            "mem_limit": mem_limit,
            "nano_cpus": int(float(options["cpus"]) * 1e9) if options.get("cpus") else None,
            "stop_signal": options.get("stop_signal"),
        }
        network = options.get("network", "default")
        if network and network != "default":
            optional["network_mode"] = network
        args.update({k: v for k, v in optional.items() if v is not None})
        return args

    @staticmethod
    def _command(request: AttemptRequest) -> list[str] | None:
        command = request.options.get("command", request.command)
        if command is None:
            return None
        if isinstance(command, str):
            return ["/bin/sh", "-c", command] if request.shell else _split(command)
        return [str(part) for part in command]

    async def _ensure_image(self, client: docker.DockerClient, image: str, pull: str, sink: _LogSink) -> None:
        import docker.errors
        import docker.utils

        if pull != "always":
            try:
                await asyncio.to_thread(client.images.get, image)
                return
            except docker.errors.ImageNotFound:
                if pull == "never":
                    raise _Failure(f"image {image!r} is not on the Docker engine, and pull: never forbids pulling it") from None
            except Exception as exc:  # noqa: BLE001
                raise _Failure(f"cannot inspect image {image!r}: {_describe(exc)}") from None
        repository, tag = docker.utils.parse_repository_tag(image)
        sink.note(f"pulling image {image}")
        try:
            await _in_thread(client.images.pull, repository, tag=tag or "latest", name="firelink-docker-pull")
        except Exception as exc:  # noqa: BLE001
            raise _Failure(f"cannot pull image {image!r}: {_describe(exc)}") from None

    async def _create(self, client: docker.DockerClient, args: dict[str, Any]) -> Any:
        import docker.errors

        try:
            return await _create_container(client, args)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise _Failure(f"cannot create the container: {_describe(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - the engine went away
            raise _Failure(f"cannot create the container: {_describe(exc)}") from None
        # A container of that name survives from an earlier daemon: let Docker pick a name.
        args = {k: v for k, v in args.items() if k != "name"}
        try:
            return await _create_container(client, args)
        except Exception as exc:  # noqa: BLE001
            raise _Failure(f"cannot create the container: {_describe(exc)}") from None

    async def _follow(
        self,
        container: Any,
        request: AttemptRequest,
        sink: _LogSink,
        timeout: float | None,
        remove: bool,
        *,
        since: float | None = None,
    ) -> AttemptResult:
        """Stream the container's logs and wait for its end, enforcing ``timeout``."""
        streams: list[Any] = []
        pumped = _in_thread(self._pump_logs, container, sink, streams, since, name="firelink-docker-logs")
        waited = _in_thread(container.wait, name="firelink-docker-wait")
        timed_out = False
        try:
            if timeout is not None:
                done, _pending = await asyncio.wait({waited}, timeout=max(timeout, 0.0))
                if not done:
                    timed_out = True
                    sink.note(f"timed out after {format_duration(request.timeout or 0)}: stopping the container")
                    await asyncio.to_thread(self._stop, container, request.kill_grace)
            status = await waited
        except asyncio.CancelledError:
            sink.note("the attempt was cancelled (daemon shutdown): stopping the container")
            await self._discard(container, stop_grace=request.kill_grace, remove=remove)
            _close_streams(streams)
            raise
        except Exception as exc:  # noqa: BLE001 - the engine went away while waiting
            _close_streams(streams)
            return _failed(sink, f"lost the Docker engine while waiting for the container: {_describe(exc)}")
        try:
            await self._finish_pump(pumped, streams)
            exit_code = status.get("StatusCode")
            error = (status.get("Error") or {}).get("Message") or None
            try:
                await asyncio.to_thread(container.reload)
                oom_killed = container.attrs.get("State", {}).get("OOMKilled")
            except Exception:  # noqa: BLE001 - the result stands without the detail
                oom_killed = False
            memory = request.options.get("memory")
            if oom_killed:
                error = f"the container ran out of memory (memory: {memory}) and was killed"
            elif exit_code == 137 and memory is not None and not timed_out:
                # Docker (cgroup v1) sometimes misses the OOM event: say what is likely.
                sink.note(f"killed by SIGKILL (exit 137) with a memory limit of {memory}: it may have run out of memory")
            if error:
                sink.note(error)
        except asyncio.CancelledError:
            await self._discard(container, stop_grace=None, remove=remove)
            _close_streams(streams)
            raise
        if remove:
            await self._discard(container, stop_grace=None, remove=True)
        return AttemptResult(exit_code=exit_code, timed_out=timed_out, error=error)

    @staticmethod
    def _pump_logs(container: Any, sink: _LogSink, streams: list[Any], since: float | None) -> None:
        kwargs: dict[str, Any] = {"stream": True, "follow": True, "stdout": True, "stderr": True}
        if since:
            kwargs["since"] = since
        stream = container.logs(**kwargs)
        streams.append(stream)
        try:
            for chunk in stream:
                sink.write(chunk)
        except Exception:  # noqa: BLE001 - the stream was closed from the event loop, or the engine went away
            return

    @staticmethod
    async def _finish_pump(pumped: asyncio.Future[None], streams: list[Any]) -> None:
        # The stream ends by itself when the container exits; a stuck engine must not hang the attempt.
        done, _pending = await asyncio.wait({pumped}, timeout=10.0)
        if not done:
            _close_streams(streams)

    @staticmethod
    def _stop(container: Any, grace: float) -> None:
        import docker.errors

        try:
            container.stop(timeout=math.ceil(max(grace, 0.0)))
        except docker.errors.NotFound:
            pass

    async def _discard(self, container: Any, *, stop_grace: float | None, remove: bool) -> None:
        """Stop (when ``stop_grace`` is given) and remove a container; log, never raise."""
        import docker.errors

        def discard() -> None:
            if stop_grace is not None:
                self._stop(container, stop_grace)
            if remove:
                container.remove(force=True, v=True)

        try:
            await asyncio.shield(asyncio.to_thread(discard))
        except docker.errors.NotFound:
            pass
        except Exception as exc:  # noqa: BLE001
            self.context.logger.warning("docker executor: could not remove container %s: %s", container.short_id, _describe(exc))

    # recovery ---------------------------------------------------------------
    async def recover(
        self, request: AttemptRequest, attempt: AttemptRecord, reporter: AttemptReporter, *, reattach: bool
    ) -> AttemptResult | None:
        """Find the attempt's container by its stored id (else by its labels).

        With ``reattach``, a container still running is followed to its end (its output
        appended to the attempt's log from where the log stopped), and one that ended while
        the daemon was down gives its exit code: either way the result is returned.
        Otherwise the container is stopped and removed, and ``None`` returned.
        """
        # Registered before the first await, so a sweep started by a new attempt spares it.
        self._recovering.add(request.run_id)
        try:
            return await self._recover(request, attempt, reattach)
        finally:
            self._recovering.discard(request.run_id)

    async def _recover(self, request: AttemptRequest, attempt: AttemptRecord, reattach: bool) -> AttemptResult | None:
        host = request.options.get("docker_host")
        try:
            client = await self._client(host)
        except _Failure as exc:
            self.context.logger.warning("docker executor: cannot recover run %s: %s", request.run_id, exc)
            return None
        container = await asyncio.to_thread(self._find, client, request, attempt)
        if container is None:
            return None
        self._active.add(container.id)
        try:
            remove = request.options.get("remove", True)
            if not reattach or container.status not in ("running", "exited"):
                await self._discard(container, stop_grace=request.kill_grace, remove=remove)
                return None
            since = attempt.started_at
            if request.log_path.exists():
                since = max(since, request.log_path.stat().st_mtime)
            timeout = None if request.timeout is None else request.timeout - (time.time() - attempt.started_at)
            sink = _LogSink(request.log_path, request.log_max_bytes)
            try:
                sink.note(f"re-attached to container {container.short_id} after a daemon restart")
                return await self._follow(container, request, sink, timeout, remove, since=since)
            finally:
                sink.close()
        finally:
            self._active.discard(container.id)

    def _find(self, client: docker.DockerClient, request: AttemptRequest, attempt: AttemptRecord) -> Any | None:
        import docker.errors

        container_id = (attempt.handle or {}).get("container_id")
        if container_id:
            try:
                return client.containers.get(container_id)
            except docker.errors.NotFound:
                return None
        found = client.containers.list(
            all=True,
            filters={
                "label": [
                    f"{LABEL_RUN_ID}={request.run_id}",
                    f"{LABEL_ATTEMPT}={attempt.number}",
                    f"{LABEL_SCOPE}={self.scope}",
                ]
            },
        )
        return found[0] if found else None


async def _create_container(client: docker.DockerClient, args: dict[str, Any]) -> Any:
    """Create a container; if the attempt is cancelled meanwhile, remove it once Docker made it."""
    created = _in_thread(lambda: client.containers.create(**args), name="firelink-docker-create")
    try:
        return await asyncio.shield(created)
    except asyncio.CancelledError:
        # The engine call goes on in its thread: whatever it creates must not outlive us.
        try:
            container = await created
        except asyncio.CancelledError:
            created.add_done_callback(_remove_in_background)
            raise
        except Exception:  # noqa: BLE001 - nothing was created
            raise asyncio.CancelledError from None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(container.remove, force=True, v=True)
        raise


def _remove_in_background(created: asyncio.Future[Any]) -> None:
    if created.cancelled() or created.exception() is not None:
        return
    container = created.result()

    def remove() -> None:
        try:
            container.remove(force=True, v=True)
        except Exception as exc:  # noqa: BLE001 - the orphan sweep gets it next time
            log.warning("could not remove container %s: %s", container.short_id, _describe(exc))

    threading.Thread(target=remove, name="firelink-docker-remove", daemon=True).start()


def _failed(sink: _LogSink, message: str) -> AttemptResult:
    sink.note(f"error: {message}")
    return AttemptResult(error=message)


def _close_streams(streams: list[Any]) -> None:
    for stream in streams:
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - closing a broken stream is best effort
            pass


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _valid_signal(name: str) -> bool:
    if name.isdigit():
        return 0 < int(name) < 65
    upper = name.upper()
    return hasattr(signal_module.Signals, upper if upper.startswith("SIG") else "SIG" + upper)

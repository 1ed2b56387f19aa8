"""The ``docker`` executor: each attempt runs in a new container of a Docker engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firelink_core.plugin_api import (
    AttemptRecord,
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    CappedLogWriter,
    Executor,
    ExecutorContext,
    Problem,
    format_duration,
)

from ._errors import AttemptFailure, describe
from ._labels import LABEL_KEEP, attempt_filter, attempt_labels
from ._options import CONFIG_SCHEMA, DockerOptions, check_options, parse_options
from ._orphans import OrphanSweep

if TYPE_CHECKING:  # the bridge imports the docker SDK: the first attempt loads it, validation never does
    from ._client import Container, DockerEngine

__all__ = ["DockerExecutor"]


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


class DockerExecutor(Executor):
    """Runs each attempt in a new container, labelled with its job, run and attempt.

    The container gets only the attempt's environment (``AttemptRequest.env`` over the
    executor's ``env``), never the daemon's. Output of both streams is streamed into the
    attempt's capped log as it comes. A timeout or a daemon shutdown stops the container
    (its stop signal, ``kill_grace``, then SIGKILL).
    """

    type_name = "docker"
    description = "Runs each attempt in a new container of a Docker engine"
    config_schema: Mapping[str, Any] = CONFIG_SCHEMA

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        return check_options(options, config_dir)

    def __init__(self, context: ExecutorContext) -> None:
        super().__init__(context)
        self.scope = str(Path(context.state_dir).expanduser().resolve())
        self._engines: dict[str | None, DockerEngine] = {}
        self._locks: dict[str | None, asyncio.Lock] = {}
        self._orphans = OrphanSweep(self.scope)

    # lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to do yet: each engine is connected on first use.

        Jobs may name their own ``docker_host``, so the executor cannot tell at start which
        engines matter; an unreachable one is reported on each attempt that needs it.
        """

    async def stop(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.close()

    async def _engine(self, host: str | None) -> DockerEngine:
        # One lock per engine: an unreachable engine (a long connect timeout) delays only its jobs.
        async with self._locks.setdefault(host, asyncio.Lock()):
            engine = self._engines.get(host)
            if engine is None:
                # The SDK is imported on first use, so validating a config never needs it.
                from ._client import DockerEngine

                engine = self._engines[host] = await DockerEngine.connect(host)
        return engine

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
        return await self._orphans.remove(await self._engine(docker_host), keep_runs=keep_runs)

    # running ----------------------------------------------------------------
    async def run(self, request: AttemptRequest, reporter: AttemptReporter) -> AttemptResult:
        sink = _LogSink(request.log_path, request.log_max_bytes)
        try:
            try:
                options = parse_options(
                    request.options, self.context.config_dir, command=request.command, shell=request.shell
                )
            except ValueError as exc:
                return _failed(sink, str(exc))
            try:
                engine = await self._engine(options.docker_host)
                await self._orphans.once(options.docker_host, engine, self.context.logger)
                await engine.ensure_image(options.image, options.pull, sink.note)
                container = await engine.create(
                    options,
                    env={**options.env, **request.env},
                    labels=self._labels(request, options),
                    name=f"firelink-{request.job}-{request.run_id}-{request.attempt}",
                )
            except AttemptFailure as exc:
                return _failed(sink, str(exc))
            with self._orphans.spare_container(container.id):
                try:
                    # The handle is stored before the container starts, so a crash from here on leaves
                    # nothing that recovery cannot find.
                    await reporter.started(
                        {
                            "container_id": container.id,
                            "container_name": container.name,
                            "image": options.image,
                            "docker_host": options.docker_host,
                        }
                    )
                    await container.start()
                except asyncio.CancelledError:
                    await self._discard(container, stop_grace=request.kill_grace, remove=True)
                    raise
                except Exception as exc:  # noqa: BLE001
                    await self._discard(container, stop_grace=None, remove=True)
                    return _failed(sink, f"cannot start the container: {describe(exc)}")
                return await self._follow(container, request, sink, request.timeout, options.remove)
        finally:
            sink.close()

    def _labels(self, request: AttemptRequest, options: DockerOptions) -> dict[str, str]:
        labels = {
            **options.labels,
            **attempt_labels(job=request.job, run_id=request.run_id, attempt=request.attempt, scope=self.scope),
            **request.labels,
        }
        if not options.remove:
            labels[LABEL_KEEP] = "true"
        return labels

    async def _follow(
        self,
        container: Container,
        request: AttemptRequest,
        sink: _LogSink,
        timeout: float | None,
        remove: bool,
        *,
        since: float | None = None,
    ) -> AttemptResult:
        """Stream the container's logs and wait for its end, enforcing ``timeout``."""
        logs = container.follow_logs(sink.write, since=since)
        waited = container.wait()
        timed_out = False
        try:
            if timeout is not None:
                done, _pending = await asyncio.wait({waited}, timeout=max(timeout, 0.0))
                if not done:
                    timed_out = True
                    sink.note(f"timed out after {format_duration(request.timeout or 0)}: stopping the container")
                    await container.stop(request.kill_grace)
            status = await waited
        except asyncio.CancelledError:
            sink.note("the attempt was cancelled (daemon shutdown): stopping the container")
            await self._discard(container, stop_grace=request.kill_grace, remove=remove)
            logs.close()
            raise
        except Exception as exc:  # noqa: BLE001 - the engine went away while waiting
            logs.close()
            return _failed(sink, f"lost the Docker engine while waiting for the container: {describe(exc)}")
        error = status.error
        try:
            await logs.finish()
            memory = request.options.get("memory")
            if await container.oom_killed():
                error = f"the container ran out of memory (memory: {memory}) and was killed"
            elif status.exit_code == 137 and memory is not None and not timed_out:
                # Docker (cgroup v1) sometimes misses the OOM event: say what is likely.
                sink.note(f"killed by SIGKILL (exit 137) with a memory limit of {memory}: it may have run out of memory")
            if error:
                sink.note(error)
        except asyncio.CancelledError:
            await self._discard(container, stop_grace=None, remove=remove)
            logs.close()
            raise
        if remove:
            await self._discard(container, stop_grace=None, remove=True)
        return AttemptResult(exit_code=status.exit_code, timed_out=timed_out, error=error)

    async def _discard(self, container: Container, *, stop_grace: float | None, remove: bool) -> None:
        """Stop (when ``stop_grace`` is given) and remove a container; log, never raise."""
        try:
            await container.discard(stop_grace=stop_grace, remove=remove)
        except Exception as exc:  # noqa: BLE001
            self.context.logger.warning("docker executor: could not remove container %s: %s", container.short_id, describe(exc))

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
        # Entered before the first await, so a sweep started by a new attempt spares the run.
        with self._orphans.spare_run(request.run_id):
            return await self._recover(request, attempt, reattach)

    async def _recover(self, request: AttemptRequest, attempt: AttemptRecord, reattach: bool) -> AttemptResult | None:
        # The options are not parsed again: they were valid when the attempt started.
        try:
            engine = await self._engine(request.options.get("docker_host"))
        except AttemptFailure as exc:
            self.context.logger.warning("docker executor: cannot recover run %s: %s", request.run_id, exc)
            return None
        container = await engine.find(
            (attempt.handle or {}).get("container_id"), attempt_filter(request.run_id, attempt.number, self.scope)
        )
        if container is None:
            return None
        with self._orphans.spare_container(container.id):
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


def _failed(sink: _LogSink, message: str) -> AttemptResult:
    sink.note(f"error: {message}")
    return AttemptResult(error=message)

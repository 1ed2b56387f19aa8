"""The bridge to the Docker SDK: the only module that imports ``docker``.

The executor imports it when an attempt first needs an engine, so ``firelink validate`` and
``firelink plugins`` never load the SDK. Every blocking SDK call runs off the event loop, and
SDK errors leave this module as :class:`AttemptFailure` messages or tolerated ``NotFound``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils

from ._errors import AttemptFailure, describe
from ._options import DockerOptions

__all__ = ["Container", "DockerEngine", "ExitStatus", "LogPump", "in_thread"]

log = logging.getLogger("firelink.docker")

T = TypeVar("T")

_POOL_SIZE = 128  # every running attempt holds two connections (logs and wait)
# Docker container names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*, which job names already follow.
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
_LOG_DRAIN = 10.0


def in_thread(fn: Callable[..., T], *args: Any, name: str = "firelink-docker", **kwargs: Any) -> asyncio.Future[T]:
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


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended, as its engine tells it."""

    exit_code: int | None
    error: str | None


class DockerEngine:
    """One Docker engine, connected and answering: images, creating and finding containers."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client

    @classmethod
    async def connect(cls, host: str | None) -> DockerEngine:
        """The engine at ``host``, else the one of the usual Docker environment (``DOCKER_HOST``...)."""
        return await in_thread(cls._connect, host, name="firelink-docker-connect")

    @classmethod
    def _connect(cls, host: str | None) -> DockerEngine:
        where = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            if host:
                client = docker.DockerClient(base_url=host, max_pool_size=_POOL_SIZE)
            else:
                client = docker.from_env(max_pool_size=_POOL_SIZE)
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure to connect is reported the same way
            reason = describe(exc).removeprefix("Error while fetching server API version: ")
            raise AttemptFailure(f"cannot reach the Docker engine at {where}: {reason}") from None
        return cls(client)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def ensure_image(self, image: str, pull: str, note: Callable[[str], None]) -> None:
        """Have ``image`` on the engine as the ``pull`` policy says; ``note`` tells the attempt's log."""
        if pull != "always":
            try:
                await asyncio.to_thread(self._client.images.get, image)
                return
            except docker.errors.ImageNotFound:
                if pull == "never":
                    raise AttemptFailure(
                        f"image {image!r} is not on the Docker engine, and pull: never forbids pulling it"
                    ) from None
            except Exception as exc:  # noqa: BLE001
                raise AttemptFailure(f"cannot inspect image {image!r}: {describe(exc)}") from None
        repository, tag = docker.utils.parse_repository_tag(image)
        note(f"pulling image {image}")
        try:
            await in_thread(self._client.images.pull, repository, tag=tag or "latest", name="firelink-docker-pull")
        except Exception as exc:  # noqa: BLE001
            raise AttemptFailure(f"cannot pull image {image!r}: {describe(exc)}") from None

    async def create(
        self, options: DockerOptions, *, env: Mapping[str, str], labels: Mapping[str, str], name: str
    ) -> Container:
        """A new container (not started) of ``options.image``, named ``name`` when that name is free."""
        args = _create_args(options, env, labels, _NAME_UNSAFE.sub("_", name))
        try:
            return Container(await _create_container(self._client, args))
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise AttemptFailure(f"cannot create the container: {describe(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - the engine went away
            raise AttemptFailure(f"cannot create the container: {describe(exc)}") from None
        # A container of that name survives from an earlier daemon: let Docker pick a name.
        del args["name"]
        try:
            return Container(await _create_container(self._client, args))
        except Exception as exc:  # noqa: BLE001
            raise AttemptFailure(f"cannot create the container: {describe(exc)}") from None

    async def find(self, container_id: str | None, label_filter: list[str]) -> Container | None:
        """The container of that id if given (``None`` when gone), else the first matching every label."""

        def find() -> Container | None:
            if container_id:
                try:
                    return Container(self._client.containers.get(container_id))
                except docker.errors.NotFound:
                    return None
            found = self._client.containers.list(all=True, filters={"label": label_filter})
            return Container(found[0]) if found else None

        return await asyncio.to_thread(find)

    async def remove_labelled(self, label_filter: str, spare: Callable[[Container], bool]) -> list[Container]:
        """Remove (killing if running) every container with that label that ``spare`` does not keep.

        ``spare`` runs in a worker thread. Returns the containers removed.
        """

        def sweep() -> list[Container]:
            removed = []
            # Sparse: a full listing inspects each container and fails on one removed meanwhile.
            for found in self._client.containers.list(all=True, sparse=True, filters={"label": label_filter}):
                container = Container(found)
                if spare(container):
                    continue
                try:
                    found.remove(force=True, v=True)
                except docker.errors.NotFound:
                    continue
                removed.append(container)
            return removed

        return await asyncio.to_thread(sweep)


class Container:
    """One container of an engine, as the executor drives it."""

    def __init__(self, sdk: Any) -> None:
        self._sdk = sdk

    @property
    def id(self) -> str:
        return self._sdk.id

    @property
    def short_id(self) -> str:
        return self._sdk.short_id

    @property
    def name(self) -> str:
        return self._sdk.name

    @property
    def status(self) -> str:
        return self._sdk.status

    @property
    def labels(self) -> Mapping[str, str]:
        # A sparse listing has the labels at the top; an inspected container under Config.
        attrs = self._sdk.attrs
        return attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}

    async def start(self) -> None:
        await asyncio.to_thread(self._sdk.start)

    def wait(self) -> asyncio.Future[ExitStatus]:
        """The container's end, awaited in a thread of its own (it may take hours)."""

        def wait() -> ExitStatus:
            status = self._sdk.wait()
            return ExitStatus(status.get("StatusCode"), (status.get("Error") or {}).get("Message") or None)

        return in_thread(wait, name="firelink-docker-wait")

    def follow_logs(self, write: Callable[[bytes], None], *, since: float | None = None) -> LogPump:
        """Both output streams handed to ``write`` as they come, from ``since`` (a timestamp) on."""
        return LogPump(self._sdk, write, since)

    async def oom_killed(self) -> bool:
        """Whether the engine killed the container for passing its memory limit (``False`` if unknown)."""
        try:
            await asyncio.to_thread(self._sdk.reload)
        except Exception:  # noqa: BLE001 - the result stands without the detail
            return False
        return bool(self._sdk.attrs.get("State", {}).get("OOMKilled"))

    async def stop(self, grace: float) -> None:
        """The container's stop signal, then SIGKILL after ``grace`` seconds; a gone container is fine."""
        await asyncio.to_thread(self._stop, grace)

    async def discard(self, *, stop_grace: float | None, remove: bool) -> None:
        """Stop (when ``stop_grace`` is given) and remove, even if the caller is cancelled meanwhile."""

        def discard() -> None:
            if stop_grace is not None:
                self._stop(stop_grace)
            if remove:
                self._sdk.remove(force=True, v=True)

        with contextlib.suppress(docker.errors.NotFound):
            await asyncio.shield(asyncio.to_thread(discard))

    def _stop(self, grace: float) -> None:
        try:
            self._sdk.stop(timeout=math.ceil(max(grace, 0.0)))
        except docker.errors.NotFound:
            pass


class LogPump:
    """A container's output streamed by a thread of its own, until the container ends or ``close()``."""

    def __init__(self, sdk: Any, write: Callable[[bytes], None], since: float | None) -> None:
        self._streams: list[Any] = []
        self._pumped = in_thread(self._pump, sdk, write, since, name="firelink-docker-logs")

    def _pump(self, sdk: Any, write: Callable[[bytes], None], since: float | None) -> None:
        kwargs: dict[str, Any] = {"stream": True, "follow": True, "stdout": True, "stderr": True}
        if since:
            kwargs["since"] = since
        stream = sdk.logs(**kwargs)
        self._streams.append(stream)
        try:
            for chunk in stream:
                write(chunk)
        except Exception:  # noqa: BLE001 - the stream was closed from the event loop, or the engine went away
            return

    async def finish(self) -> None:
        """Wait for the last output of an ended container."""
        # The stream ends by itself when the container exits; a stuck engine must not hang the attempt.
        done, _pending = await asyncio.wait({self._pumped}, timeout=_LOG_DRAIN)
        if not done:
            self.close()

    def close(self) -> None:
        for stream in self._streams:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a broken stream is best effort
                pass


def _create_args(
    options: DockerOptions, env: Mapping[str, str], labels: Mapping[str, str], name: str
) -> dict[str, Any]:
    """The SDK's ``containers.create`` arguments."""
    args: dict[str, Any] = {
        "image": options.image,
        "command": options.command,
        "environment": dict(env),
        "labels": dict(labels),
        "name": name,
        "detach": True,
    }
    optional = {
        "entrypoint": options.entrypoint,
        "volumes": options.volumes or None,
        "working_dir": options.working_dir,
        "user": options.user,
        "mem_limit": options.memory_bytes,
        "nano_cpus": options.nano_cpus,
        "stop_signal": options.stop_signal,
    }
    if options.network and options.network != "default":
        optional["network_mode"] = options.network
    args.update({k: v for k, v in optional.items() if v is not None})
    return args


async def _create_container(client: docker.DockerClient, args: dict[str, Any]) -> Any:
    """Create a container; if the attempt is cancelled meanwhile, remove it once Docker made it."""
    created = in_thread(lambda: client.containers.create(**args), name="firelink-docker-create")
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
            log.warning("could not remove container %s: %s", container.short_id, describe(exc))

    threading.Thread(target=remove, name="firelink-docker-remove", daemon=True).start()

"""The orphan sweep: removing the containers a daemon left behind, sparing every one still wanted."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

from ._errors import describe
from ._labels import LABEL_JOB, LABEL_KEEP, LABEL_RUN_ID, scope_filter

if TYPE_CHECKING:
    from ._client import Container, DockerEngine

__all__ = ["OrphanSweep"]

log = logging.getLogger("firelink.docker")


class OrphanSweep:
    """One daemon's sweep: knows which of its containers are wanted, removes the others.

    Considered are containers labelled with the daemon's state directory (``scope``),
    except those of attempts running now (:meth:`spare_container`), of runs being recovered
    (:meth:`spare_run`) and of jobs with ``remove: false``.
    """

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self._containers: set[str] = set()
        self._runs: set[str] = set()
        self._swept: set[str | None] = set()

    @contextlib.contextmanager
    def spare_container(self, container_id: str) -> Iterator[None]:
        """Spare the container of a running attempt while the block runs."""
        self._containers.add(container_id)
        try:
            yield
        finally:
            self._containers.discard(container_id)

    @contextlib.contextmanager
    def spare_run(self, run_id: str) -> Iterator[None]:
        """Spare every container of a run while the block runs (recovery looks for them)."""
        self._runs.add(run_id)
        try:
            yield
        finally:
            self._runs.discard(run_id)

    async def remove(self, engine: DockerEngine, *, keep_runs: Collection[str] | None = None) -> list[str]:
        """Remove the unwanted containers of this daemon on ``engine``; return their ids.

        Stopped ones are removed. Running ones are killed and removed only when
        ``keep_runs`` is given and does not list their run.
        """

        def spare(container: Container) -> bool:
            labels = container.labels
            if (
                container.id in self._containers
                or labels.get(LABEL_RUN_ID) in self._runs
                or labels.get(LABEL_KEEP) == "true"
            ):
                return True
            return container.status == "running" and (keep_runs is None or labels.get(LABEL_RUN_ID) in keep_runs)

        removed = await engine.remove_labelled(scope_filter(self.scope), spare)
        for container in removed:
            labels = container.labels
            log.info(
                "removed leftover container %s of job %s run %s",
                container.short_id, labels.get(LABEL_JOB), labels.get(LABEL_RUN_ID),
            )
        return [container.id for container in removed]

    async def once(self, host: str | None, engine: DockerEngine, logger: logging.Logger) -> None:
        """Sweep ``engine`` (``host``) the first time it is asked; report a failure, never raise it."""
        if host in self._swept:
            return
        self._swept.add(host)
        try:
            await self.remove(engine)
        except Exception as exc:  # noqa: BLE001 - cleanup must never fail an attempt
            logger.warning("docker executor: could not remove leftover containers: %s", describe(exc))

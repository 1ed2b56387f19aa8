"""The daemon's side of plugin services: make one per configured section, start them after
the engine, stop them (once, in reverse order) before it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .services import Service, ServiceError, ServiceHost, service_classes

if TYPE_CHECKING:
    from ._control import ControlServer

__all__ = ["DaemonServices"]

log = logging.getLogger("firelink.daemon")


class DaemonServices:
    """The running services of one daemon."""

    def __init__(self) -> None:
        self._running: list[Service] = []

    async def start(self, daemon: Any, server: ControlServer) -> None:
        """Start a service for each section of the config a registered service owns.

        Raises ``ServiceError`` (after stopping those already started) when one cannot start.
        """
        config = daemon.config
        classes = service_classes(daemon.plugins)
        host = ServiceHost(
            engine=daemon.engine,
            config=config,
            plugins=daemon.plugins,
            state_dir=daemon.state_dir,
            info=daemon.info,
            call=server.call,
        )
        for key, options in config.services.items():
            cls = classes.get(key)
            if cls is None:  # validated away already; a config built by hand may still hold one
                raise ServiceError(f"no installed plugin serves the {key!r} section")
            service = cls(options, host)
            try:
                await service.start()
            except ServiceError:
                await self.stop()
                raise
            except Exception as exc:
                log.exception("the %r service could not start", key)
                await self.stop()
                raise ServiceError(f"the {key!r} service could not start: {exc}") from exc
            self._running.append(service)
            described = service.describe()
            if described:
                log.info("%s", described)

    async def stop(self) -> None:
        """Stop every running service, the last started first; a failure is logged."""
        while self._running:
            service = self._running.pop()
            try:
                await service.stop()
            except Exception:
                log.exception("stopping the %r service failed", service.config_key)

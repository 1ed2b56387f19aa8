"""Long-lived services run inside the daemon (``firelink_register_services``).

A service is a plugin's server or worker that lives as long as the daemon: an HTTP server,
a message-queue listener. It owns one top-level section of the config (``config_key``,
described by ``config_schema``); the daemon makes one instance when the config has that
section, starts it after the engine and the control socket, and stops it before the engine.
It runs in the daemon's event loop and reaches the engine through a :class:`ServiceHost`,
whose ``call`` serves control requests in-process (every operation, one implementation).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .model import Config
    from .plugins import Plugins

__all__ = [
    "KNOWN_SECTIONS",
    "Service",
    "ServiceError",
    "ServiceHost",
    "missing_section_message",
    "service_classes",
    "with_section",
]

KNOWN_SECTIONS: Mapping[str, str] = {"http": "firelink-web"}
"""Top-level sections served by first-party plugin distributions: a config (or ``--http``)
using one without the distribution installed is told which package to install."""


class ServiceError(Exception):
    """A service cannot start (its address is taken, its options are refused): the message says why."""


class ServiceHost:
    """What the daemon gives a service: the engine, the config, the state directory, the
    plugin manager, the daemon's info, and in-process control requests."""

    def __init__(
        self,
        *,
        engine: Any,
        config: Config,
        plugins: Plugins,
        state_dir: Path,
        info: Callable[[], dict[str, Any]],
        call: Callable[[Mapping[str, Any]], AsyncIterator[dict[str, Any]]],
    ) -> None:
        self.engine = engine
        self.config = config
        self.plugins = plugins
        self.state_dir = state_dir
        self.info = info
        self._call = call

    def stream(self, cmd: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
        """Every message answered to the control request ``cmd`` (as ``firelink`` sends it over
        the socket), the first being ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ...}``."""
        return self._call({"cmd": cmd, **args})

    async def request(self, cmd: str, **args: Any) -> Any:
        """The result of the control request ``cmd``; an error answer raises ``ControlError``."""
        from ._control import ControlError

        stream = self.stream(cmd, **args)
        try:
            async for message in stream:
                if not message.get("ok"):
                    error = dict(message.get("error") or {})
                    code = error.pop("code", "error")
                    text = error.pop("message", "error")
                    raise ControlError(code, text, **error)
                return message.get("result")
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        raise ControlError("closed", "no answer")


class Service:
    """A long-lived service of a plugin, run inside the daemon.

    Subclasses set ``config_key`` (the top-level config section they own, ``http``) and
    ``config_schema`` (a JSON Schema of that section's value, validated like every other
    section), and implement ``start`` and ``stop``. Neither may block the event loop; a
    start failure raises :class:`ServiceError` with a message for people.
    """

    config_key: ClassVar[str] = ""
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    description: ClassVar[str] = ""

    def __init__(self, options: Mapping[str, Any], host: ServiceHost) -> None:
        self.options = options
        self.host = host

    async def start(self) -> None:
        """Begin serving (bind sockets, start tasks). Called once, after the engine started."""

    async def stop(self) -> None:
        """Stop serving and release everything. Called once, before the engine stops."""

    def describe(self) -> str | None:
        """A short line for the daemon's log once started (``web on http://127.0.0.1:8080``)."""
        return None


def service_classes(plugins: Plugins) -> dict[str, type[Service]]:
    """The registered services by ``config_key`` (a later registration of a key is refused)."""
    found: dict[str, type[Service]] = {}
    for result in plugins.pm.hook.firelink_register_services():
        for cls in result or ():
            if not (isinstance(cls, type) and issubclass(cls, Service) and cls.config_key):
                raise TypeError(f"{cls!r} is not a Service subclass with a config_key")
            if cls.config_key in found and found[cls.config_key] is not cls:
                raise TypeError(
                    f"two services claim the config section {cls.config_key!r}:"
                    f" {found[cls.config_key].__qualname__} and {cls.__qualname__}"
                )
            found[cls.config_key] = cls
    return found


def missing_section_message(key: str) -> str:
    """Why a config section (or its command-line option) cannot be used: no service serves it."""
    package = KNOWN_SECTIONS.get(key)
    if package:
        return f"the {key!r} section needs the {package} package: pip install {package}"
    return f"no installed plugin serves the {key!r} section"


def with_section(config: Config, key: str, values: Mapping[str, Any]) -> Config:
    """``config`` with ``values`` merged into its service section ``key`` (``--http`` overrides)."""
    sections = {name: dict(value) for name, value in config.services.items()}
    sections.setdefault(key, {}).update(copy.deepcopy(dict(values)))
    return dataclasses.replace(config, services=sections)

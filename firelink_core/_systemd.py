"""sd_notify for ``Type=notify`` units: READY, RELOADING and STOPPING datagrams to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator

__all__ = ["SystemdNotifier"]

log = logging.getLogger("firelink.daemon")


class SystemdNotifier:
    """Sends state changes to the service manager; does nothing when not started by one.

    A notification that cannot be sent (the socket is gone, the manager restarted) is logged
    and dropped: the daemon's work never depends on it.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._stopping_sent = False

    @classmethod
    def from_environment(cls) -> SystemdNotifier:
        """The notifier for ``$NOTIFY_SOCKET``, removed from the environment.

        Jobs must not inherit it: a job that speaks sd_notify itself would otherwise report
        its own readiness as the daemon's (as ``sd_notify(unset_environment=1)`` prevents).
        """
        return cls(os.environ.pop("NOTIFY_SOCKET", None) or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; ``True`` if it was sent."""
        if self.address is None:
            return False
        # "@name" is Linux's abstract namespace, spelt with a leading NUL byte on the wire.
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, target)
        except OSError as exc:
            log.warning("cannot notify systemd at %s (%s): %s", self.address, assignments[0], exc)
            return False
        return True

    def ready(self) -> None:
        """The daemon answers on its control socket."""
        self.notify("READY=1")

    @contextlib.asynccontextmanager
    async def reloading(self) -> AsyncIterator[None]:
        """RELOADING=1 for the duration of a reload, READY=1 after it, applied or rejected.

        Asynchronous only so that it composes with the reload lock in one ``async with``.
        """
        # systemd >= 253 wants the CLOCK_MONOTONIC time of the reload request with RELOADING=1
        # (Type=notify-reload); older versions ignore the extra field.
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        try:
            yield
        finally:
            self.notify("READY=1")

    def stopping(self) -> None:
        """The daemon began to stop (sent once, however many stop requests follow)."""
        if not self._stopping_sent:
            self._stopping_sent = True
            self.notify("STOPPING=1")

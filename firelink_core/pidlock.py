"""An exclusive ``flock`` on a file that holds its owner's pid: one daemon per state directory,
one writer per database file. The kernel drops the lock when the process dies (even by
``kill -9``), so a stale lock never blocks a restart."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

__all__ = ["LockHeld", "PidFileLock", "read_pid"]


class LockHeld(Exception):
    """Another process holds the lock; ``pid`` is its pid when the file says so."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(f"held by pid {pid}" if pid else "held by another process")


def read_pid(fd: int) -> int | None:
    """The pid written in an open lock file, if any."""
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


class PidFileLock:
    """Take with ``acquire(fd, retry)`` on a file the caller opened (its own way: ``O_NOFOLLOW``,
    owner checks); ``release()`` when done. Blocking ``sleep`` between tries: call it from a
    thread when an event loop must not wait."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def acquire(self, fd: int, retry: float) -> None:
        """Lock ``fd`` (trying for ``retry`` seconds) and write our pid in it. On failure the
        descriptor is closed and ``LockHeld`` raised with the holder's pid."""
        deadline = time.monotonic() + retry
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = read_pid(fd)
                    os.close(fd)
                    raise LockHeld(holder) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None

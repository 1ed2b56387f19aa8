"""The writer's lock of a SQLite database: ``<db>.lock`` beside it, one writing daemon per file."""

from __future__ import annotations

import os
from pathlib import Path

from ..plugin_api import LockHeld, PidFileLock, StorageError

__all__ = ["DatabaseLock", "lock_path"]

LOCK_RETRY = 1.0
"""Seconds a start keeps trying the lock: a job process forked by a daemon killed that instant
holds the lock until its ``exec`` closes it."""


def lock_path(db: Path) -> Path:
    """The lock file of database ``db``: ``<db>.lock``."""
    return db.with_name(db.name + ".lock")


class DatabaseLock:
    """An exclusive ``flock`` on ``<db>.lock`` holding the writer's pid, kept while the storage is open.

    Two daemons recovering the same runs would each take the other's live runs for crashed
    ones, so a second writer is refused rather than queued. Readers (the CLI's history) never
    take it. The kernel drops it when the process dies, even by ``kill -9``.
    """

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = lock_path(db)
        self._pidlock = PidFileLock()

    def acquire(self) -> None:
        try:
            # O_NOFOLLOW: a planted symlink must not make us truncate someone else's file.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open the database lock {self.path}: {exc.strerror or exc}") from None
        if os.fstat(fd).st_uid != os.geteuid():
            os.close(fd)
            raise StorageError(f"the database lock {self.path} belongs to another user: refusing to use it")
        try:
            self._pidlock.acquire(fd, LOCK_RETRY)
        except LockHeld as held:
            who = f"pid {held.pid}" if held.pid else "another process"
            raise StorageError(
                f"the database {self.db} is in use by another firelink daemon ({who}): two"
                " daemons cannot share one database file. Stop the other daemon, or give this"
                " one its own storage path (storage: {type: sqlite, path: ...})."
            ) from None

    def release(self) -> None:
        self._pidlock.release()

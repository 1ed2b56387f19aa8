"""The bodies of accepted webhook requests, as files the job reads (``FIRELINK_WEBHOOK_BODY``).

A body is written and synced (file and folder) before its event is stored, so a run made
after a crash finds it. Files are owner-only: a body may hold what the sender considers
private. Bodies older than the trigger's ``keep_bodies`` are deleted when a later request
arrives (never on a timer: an idle daemon stays idle).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

__all__ = ["BodyStore"]

_SUFFIX = ".body"


class BodyStore:
    """One job's folder of request bodies (blocking calls: run them in a thread)."""

    def __init__(self, folder: Path, keep: float) -> None:
        self.folder = folder
        self.keep = keep
        self._last_prune = 0.0

    def write(self, body: bytes) -> Path:
        """Write ``body`` to a new owner-only file, synced to disk with its folder entry."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / f"{int(time.time())}-{uuid.uuid4().hex}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return path

    def remove(self, path: Path) -> None:
        """Delete a body whose event was not stored (refused parameters, a duplicate)."""
        path.unlink(missing_ok=True)

    def prune(self, now: float | None = None) -> int:
        """Delete bodies older than ``keep`` (at most once an hour); returns how many."""
        now = time.time() if now is None else now
        if now - self._last_prune < min(3600.0, self.keep):
            return 0
        self._last_prune = now
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.endswith(_SUFFIX):
                continue
            try:
                if now - entry.stat().st_mtime > self.keep:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

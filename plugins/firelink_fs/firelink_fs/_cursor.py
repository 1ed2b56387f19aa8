"""What the folder watch has handled, kept compact across restarts: a mark of change times plus recent keys."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._options import FsOptions

__all__ = ["Cursor", "FileInfo", "list_files", "RESCAN_MARGIN"]

RESCAN_MARGIN = 30.0
"""Seconds (on top of settle and batch) below the mark that a restart looks at again: files
are not always handled in the order of their change times, and what was handled there is
known by its key."""


@dataclass(frozen=True)
class FileInfo:
    """One file as the trigger fires it."""

    path: str
    relpath: str
    kind: str
    size: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    catchup: bool = False

    @classmethod
    def from_stat(cls, path: str, relpath: str, kind: str, st: os.stat_result, catchup: bool = False) -> FileInfo:
        return cls(path, relpath, kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, catchup)

    @property
    def mtime_iso(self) -> str:
        if self.mtime_ns is None:
            return ""
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=timezone.utc).isoformat()

    @property
    def dedupe_key(self) -> str:
        # The change time cannot be set by users (unlike mtime, kept by cp -p, rsync -t, mv):
        # the same file dropped again fires again, an untouched file never fires twice.
        return f"{self.relpath}@{self.ctime_ns}:{self.mtime_ns}:{self.size}"

    @property
    def short_key(self) -> str:
        return hashlib.sha1(self.dedupe_key.encode(), usedforsecurity=False).hexdigest()[:16]


def list_files(opts: FsOptions, log: logging.Logger) -> list[FileInfo]:
    """Every matching regular file under the root (blocking: run it in a thread)."""
    found: list[FileInfo] = []
    folders = [str(opts.root)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if opts.recursive:
                        folders.append(entry.path)
                    continue
                rel = opts.relpath(entry.path)
                if rel is None or not opts.matches(rel):
                    continue
                st = entry.stat()
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISREG(st.st_mode):
                found.append(FileInfo.from_stat(entry.path, rel, "created", st, catchup=True))
    return found


class Cursor:
    """Which files the trigger has handled (fired, or seen change without firing).

    Every matching file whose change time (``ctime``) is below ``mark - margin`` was handled;
    ``done`` holds the short keys of the handled files above that floor. Its size depends on
    the recent rate of files, never on the size of the folder.
    """

    VERSION = 1

    def __init__(self, source: str, window: float) -> None:
        self.source = source
        self.window = window
        """Settle plus batch: how late a file may be handled after its last change."""
        self.mark = -1
        self.done: dict[str, int] = {}
        self.dirty = False

    @property
    def floor(self) -> int:
        return self.mark - int((self.window + RESCAN_MARGIN) * 1e9)

    def restore(self, saved: Any) -> bool:
        """Load a saved checkpoint; False (nothing loaded) if it is absent or of another folder."""
        if not (isinstance(saved, dict) and saved.get("v") == self.VERSION and saved.get("source") == self.source):
            return False
        self.mark = int(saved["mark"])
        self.done = {str(k): int(v) for k, v in saved.get("done", {}).items()}
        return True

    def reset(self, existing: Iterable[FileInfo] = ()) -> None:
        """Start afresh: the ``existing`` files count as handled, anything later is new."""
        self.mark, self.done = -1, {}
        for file in existing:
            self.handled(file)
        self.dirty = True

    def handled(self, file: FileInfo) -> None:
        if file.ctime_ns is None:
            return
        self.done[file.short_key] = file.ctime_ns
        self.mark = max(self.mark, file.ctime_ns)
        self.dirty = True

    def missed(self, files: Iterable[FileInfo]) -> list[FileInfo]:
        """The files not handled yet, oldest change first."""
        floor = self.floor
        return sorted(
            (f for f in files if (f.ctime_ns or 0) >= floor and f.short_key not in self.done),
            key=lambda f: f.ctime_ns or 0,
        )

    def to_json(self) -> dict[str, Any]:
        """The checkpoint to save (forgetting the keys below the floor)."""
        floor = self.floor
        self.done = {k: c for k, c in self.done.items() if c >= floor}
        self.dirty = False
        return {"v": self.VERSION, "source": self.source, "mark": self.mark, "done": self.done}

"""firelink-fs: fire firelink jobs when files appear in a local folder (inotify or polling)."""

from __future__ import annotations

from .trigger import FsWatchTrigger

__all__ = ["FsWatchTrigger"]

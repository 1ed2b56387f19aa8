"""The watchdog bridge: observers and a handler that hands events to the asyncio loop (imports watchdog)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

try:
    from watchdog.events import FileAttribEvent
except ImportError:  # watchdog < 7 (the newest on Python 3.10) reports a chmod as FileModifiedEvent
    FileAttribEvent = FileModifiedEvent

__all__ = ["Callback", "make_observer", "watch_folder", "watch_parent", "unwatch"]

Callback = Callable[[str, str, str, bool], None]
"""``callback(event_type, src_path, dest_path, is_directory)``, called on the loop's thread."""

# What the trigger reacts to; filtering in the emitter spares the loop the noise
# (opened, closed-without-write, the parent folder's own "modified").
_FOLDER_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    FileAttribEvent, DirDeletedEvent, DirMovedEvent,
]
# Watching the nearest existing ancestor of a missing folder: any change of a child folder
# (created, renamed in, permissions changed) may mean the folder can now be watched.
_PARENT_EVENTS: list[type[FileSystemEvent]] = [DirCreatedEvent, DirMovedEvent, DirModifiedEvent]


class _ToLoop(FileSystemEventHandler):
    """Runs on watchdog's thread: forwards each event to the loop and returns at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callback) -> None:
        self._loop = loop
        self._callback = callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(
                self._callback, event.event_type, _str(event.src_path), _str(event.dest_path),
                event.is_directory,
            )
        except RuntimeError:
            pass  # the loop is closed: the daemon is shutting down and the event is moot


def _str(path: str | bytes) -> str:
    return path.decode() if isinstance(path, bytes) else path


def make_observer(poll: float | None) -> BaseObserver:
    """inotify (watchdog's native observer), or a PollingObserver scanning every ``poll`` seconds."""
    observer = PollingObserver(timeout=poll) if poll else Observer()
    observer.daemon = True
    observer.start()
    return observer


def watch_folder(
    observer: BaseObserver, loop: asyncio.AbstractEventLoop, folder: Path, recursive: bool,
    callback: Callback,
) -> ObservedWatch:
    """Start watching ``folder`` (blocking: run it in a thread). Raises ``OSError``."""
    return observer.schedule(
        _ToLoop(loop, callback), str(folder), recursive=recursive, event_filter=_FOLDER_EVENTS
    )


def watch_parent(
    observer: BaseObserver, loop: asyncio.AbstractEventLoop, parent: Path, callback: Callback
) -> ObservedWatch:
    """Watch ``parent`` (not recursively) for the folders appearing in it. Raises ``OSError``."""
    return observer.schedule(
        _ToLoop(loop, callback), str(parent), recursive=False, event_filter=_PARENT_EVENTS
    )


def unwatch(observer: BaseObserver, watch: ObservedWatch) -> None:
    """Stop one watch (blocking: joins its emitter thread)."""
    try:
        observer.unschedule(watch)
    except KeyError:
        pass  # already gone

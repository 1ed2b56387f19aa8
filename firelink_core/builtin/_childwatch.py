"""Waiting for child processes with pidfds on Python 3.11, as asyncio does by default from 3.12."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["install_pidfd_child_watcher"]

log = logging.getLogger("firelink.executor.subprocess")

if sys.version_info < (3, 12):
    # Only below 3.12: asyncio's own watcher is pidfd-based from 3.12, `AbstractChildWatcher`
    # warns on 3.13 and is gone in 3.14, so newer Pythons never touch it.

    class _PidfdChildWatcher(asyncio.AbstractChildWatcher):
        """Python 3.12's pidfd watcher: no thread per child, and bound to whichever loop is
        running when a child starts (3.11's ``PidfdChildWatcher`` keeps the first loop it was
        attached to, which breaks the next ``asyncio.run``)."""

        def __init__(self) -> None:
            self._pidfds: dict[int, tuple[asyncio.AbstractEventLoop, int]] = {}

        def __enter__(self) -> _PidfdChildWatcher:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def is_active(self) -> bool:
            return True

        def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
            return None

        def close(self) -> None:
            return None

        def add_child_handler(self, pid: int, callback: Callable[..., Any], *args: Any) -> None:
            loop = asyncio.get_running_loop()
            pidfd = os.pidfd_open(pid)
            self._pidfds[pid] = (loop, pidfd)
            loop._add_reader(pidfd, self._do_wait, pid, pidfd, callback, args)  # type: ignore[attr-defined]

        def remove_child_handler(self, pid: int) -> bool:
            entry = self._pidfds.pop(pid, None)
            if entry is None:
                return False
            loop, pidfd = entry
            loop._remove_reader(pidfd)  # type: ignore[attr-defined]
            os.close(pidfd)
            return True

        def _do_wait(self, pid: int, pidfd: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
            entry = self._pidfds.pop(pid, None)
            if entry is not None:
                entry[0]._remove_reader(pidfd)  # type: ignore[attr-defined]
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                returncode = 255  # reaped elsewhere, as asyncio reports it
                log.warning("child process %d exit status already read: reporting 255", pid)
            else:
                returncode = os.waitstatus_to_exitcode(status)
            os.close(pidfd)
            callback(pid, returncode, *args)


def install_pidfd_child_watcher() -> bool:
    """Replace 3.11's default thread-per-child watcher with the pidfd one; True if done.

    With the default ``ThreadedChildWatcher`` every subprocess start also starts a thread,
    which waits for the GIL while the engine keeps the loop busy: with thousands of runs
    due at once, launches slow down by about a fifth. Nothing changes on 3.12+ (pidfds are
    the default there), without pidfd support, or when a program chose its own watcher.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        try:
            current = policy.get_child_watcher()
        except (NotImplementedError, AttributeError):
            return False
        if isinstance(current, _PidfdChildWatcher):
            return True
        if type(current) is not asyncio.ThreadedChildWatcher:
            return False
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError:
            return False  # old kernel or a sandbox without pidfd_open
        policy.set_child_watcher(_PidfdChildWatcher())
    return True

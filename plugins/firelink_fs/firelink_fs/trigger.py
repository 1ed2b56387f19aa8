"""The ``watch`` trigger for local folders (``source: /path`` or ``file://``): inotify, or polling."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from firelink_core.plugin_api import Problem, Trigger, TriggerContext, TriggerSpec

from ._cursor import Cursor, FileInfo, list_files
from ._options import CONFIG_SCHEMA, check_options, parse_options

if TYPE_CHECKING:  # watchdog is imported by start(), so validation never loads it
    from watchdog.observers.api import BaseObserver, ObservedWatch

__all__ = ["FsWatchTrigger"]

_RETRY_FIRST, _RETRY_MAX = 1.0, 60.0


class _NoFolder(FileNotFoundError):
    """The source is missing or not a folder (found before asking the OS to watch it)."""


@dataclass
class _Pending:
    """A file seen changing, waiting for its settle timer."""

    kind: str
    fire: bool
    """False for changes that do not fire but still move the cursor (e.g. modified)."""
    catchup: bool = False
    timer: asyncio.TimerHandle | None = None


class FsWatchTrigger(Trigger):
    """Fires for files appearing (or changing) in a local folder.

    Watches with inotify (or polling), waits for each file to settle, then emits one event
    per file (or per batch). A checkpoint in storage (``_cursor.Cursor``) lets a restart fire
    exactly the files that appeared while the daemon was down; dedupe keys make a repeat
    harmless. watchdog calls back on its own thread: events reach the loop through
    ``call_soon_threadsafe``, and one worker task stats, emits and saves, in order.
    """

    type_name = "watch"
    schemes = ("file",)
    description = "Fire for files appearing in a local folder (inotify, or polling for network filesystems)"
    config_schema: Mapping[str, Any] = CONFIG_SCHEMA

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        return check_options(options, config_dir)

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        super().__init__(spec, context)
        self.opts = parse_options(spec.options, context.config_dir, job_catchup=context.job.catchup)
        self.root = self.opts.root
        self._log = context.logger
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: BaseObserver | None = None
        self._watch: ObservedWatch | None = None
        self._active = False
        """True from the moment the watch starts: its first events may precede ``_watch``."""
        self._parent: tuple[Path, ObservedWatch] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = _RETRY_FIRST
        self._attaching: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._pending: dict[str, _Pending] = {}
        self._batch: list[FileInfo] = []
        self._batch_timer: asyncio.TimerHandle | None = None
        self._cursor = Cursor(str(self.root), self.opts.effective_settle + self.opts.batch)
        self._need_baseline = False
        """No usable checkpoint: the files found by the first listing are not new."""
        self._failing = False
        self._stopped = False
        self._health: tuple[str, str] | None = None

    # lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        from . import _observer  # watchdog is loaded only by a running daemon

        self._stopped = False
        self._loop = asyncio.get_running_loop()
        await self._load_checkpoint()
        self._observer = await asyncio.to_thread(_observer.make_observer, self.opts.poll)
        self._worker = asyncio.create_task(self._work(), name=f"firelink-fs {self.spec.key}")
        await self._attach()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for handle in (self._retry, self._batch_timer, *(p.timer for p in self._pending.values())):
            if handle is not None:
                handle.cancel()
        self._pending.clear()
        for task in (self._attaching, self._worker):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            await self._flush_batch()  # its files have settled: no reason to make them wait
            if self._cursor.dirty:
                await self._save_checkpoint()
        except Exception as exc:  # noqa: BLE001 - storage may be closing; the next start rescans
            self._log.warning("%s: could not save the last events at stop: %s", self.spec.key, exc)
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await asyncio.to_thread(observer.join, 10)
        self._watch = self._parent = None
        self._active = False

    def _set_health(self, state: Literal["ok", "degraded"], message: str) -> None:
        if self._health != (state, message):  # a retry that fails the same way is no news
            self._health = (state, message)
            self.context.set_health(state, message)

    # watching the folder, or waiting for it -----------------------------------
    async def _attach(self) -> None:
        """Watch the folder, or report degraded and wait for it to appear."""
        from . import _observer

        assert self._observer is not None and self._loop is not None
        self._retry = None
        try:
            if not self.root.is_dir():
                reason = "not a folder" if self.root.exists() else "no such folder"
                raise _NoFolder(0, reason, str(self.root))
            self._active = True
            self._watch = await asyncio.to_thread(
                _observer.watch_folder, self._observer, self._loop, self.root,
                self.opts.recursive, self._on_event,
            )
        except OSError as exc:
            self._active = False
            await self._wait_for_folder(exc)
            return
        if self._parent is not None:
            parent, self._parent = self._parent, None
            await asyncio.to_thread(_observer.unwatch, self._observer, parent[1])
        self._retry_delay = _RETRY_FIRST
        # Scanning after the watch started: a file arriving meanwhile is seen by both, and
        # both lead to the same pending entry.
        await self._scan()
        self._set_health("ok", f"watching {self.root}")

    async def _wait_for_folder(self, exc: OSError) -> None:
        from . import _observer

        assert self._observer is not None and self._loop is not None
        self._set_health("degraded", f"cannot watch {self.root}: {exc.strerror or exc}; waiting for it")
        if self._need_baseline:
            # The folder is created after our start: every file in it is new.
            self._need_baseline = False
            self._cursor.reset()
            await self._save_checkpoint()
        ancestor = self.root.parent
        while not ancestor.is_dir() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if self._parent is None or self._parent[0] != ancestor:
            if self._parent is not None:
                await asyncio.to_thread(_observer.unwatch, self._observer, self._parent[1])
                self._parent = None
            try:
                watch = await asyncio.to_thread(
                    _observer.watch_parent, self._observer, self._loop, ancestor, self._on_parent_event
                )
                self._parent = (ancestor, watch)
            except OSError as parent_exc:
                self._log.debug("cannot watch %s: %s", ancestor, parent_exc)
        # Also retry with backoff: permissions fixed, or a filesystem inotify cannot see. At
        # once if the folder appeared before the ancestor's watch began (not for an error
        # of the watch itself, such as an unreadable folder: that would spin).
        appeared = isinstance(exc, _NoFolder) and self.root.is_dir()
        delay = 0.0 if appeared else self._retry_delay
        self._retry = self._loop.call_later(delay, self._kick)
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)

    def _kick(self) -> None:
        if self._stopped or self._active:
            return
        if self._attaching is None or self._attaching.done():
            if self._retry is not None:
                self._retry.cancel()
            self._attaching = asyncio.create_task(self._attach())

    def _on_parent_event(self, kind: str, src: str, dest: str, is_dir: bool) -> None:
        # Only a change to the folder or one of its missing ancestors matters (not the
        # watched ancestor's own "modified", sent for any file written in it).
        if self._parent is None:
            return
        for path in (src, dest):
            if path and Path(path) != self._parent[0] and self.root.is_relative_to(path):
                self._kick()
                return

    def _lost_folder(self) -> None:
        """The watched folder was deleted: drop its watch and wait for it again."""
        from . import _observer

        watch, self._watch, self._active = self._watch, None, False
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()

        async def detach() -> None:
            if watch is not None and self._observer is not None:
                await asyncio.to_thread(_observer.unwatch, self._observer, watch)
            await self._wait_for_folder(_NoFolder(0, "the folder was removed", str(self.root)))

        self._attaching = asyncio.create_task(detach())

    # events (on the loop) ---------------------------------------------------------
    def _on_event(self, kind: str, src: str, dest: str, is_dir: bool) -> None:
        if self._stopped or not self._active:
            return
        if is_dir:
            if src == str(self.root) and kind in ("deleted", "moved"):
                self._lost_folder()
            return
        if kind == "created":
            self._touch(src, "created")
        elif kind in ("modified", "closed"):
            self._touch(src, "modified")
        elif kind == "attrib":
            # never fires, but a chmod changes the change time the checkpoint follows
            self._touch(src, "attrib")
        elif kind == "moved":
            self._forget(src)
            self._touch(dest, "moved")
        elif kind == "deleted":
            self._forget(src)
            rel = self.opts.relpath(src)
            if "deleted" in self.opts.events and rel is not None and self.opts.matches(rel):
                self._queue.put_nowait(("deleted", FileInfo(src, rel, "deleted")))

    def _touch(self, path: str, kind: str, *, catchup: bool = False) -> None:
        rel = self.opts.relpath(path)
        if rel is None or not self.opts.matches(rel):
            return
        fire = kind in self.opts.events or (catchup and bool({"created", "moved"} & self.opts.events))
        pending = self._pending.get(path)
        if pending is None:
            pending = self._pending[path] = _Pending(kind, fire, catchup)
        elif pending.timer is not None:
            # Still settling: the change is part of the first one (a created file being
            # written fires once, as created).
            pending.timer.cancel()
        settle = self.opts.effective_settle
        if settle > 0:
            assert self._loop is not None
            pending.timer = self._loop.call_later(settle, self._settled, path, pending)
        else:
            self._settled(path, pending)

    def _settled(self, path: str, pending: _Pending) -> None:
        pending.timer = None
        self._queue.put_nowait(("settled", (path, pending)))

    def _forget(self, path: str) -> None:
        pending = self._pending.pop(path, None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()

    # the worker: stat, emit, checkpoint (one at a time, in order) -----------------
    async def _work(self) -> None:
        while True:
            action, arg = await self._queue.get()
            delay = _RETRY_FIRST
            while True:
                try:
                    await self._handle(action, arg)
                    break
                except Exception as exc:  # noqa: BLE001 - storage trouble must not kill the watch
                    self._failing = True
                    self._log.error("%s: cannot emit (%s); retrying in %.0fs", self.spec.key, exc, delay)
                    self._set_health("degraded", f"cannot emit events: {exc}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
            if self._failing:
                self._failing = False
                self._set_health("ok", f"watching {self.root}")
            if self._queue.empty() and self._cursor.dirty:
                try:
                    await self._save_checkpoint()
                except Exception as exc:  # noqa: BLE001 - kept dirty: saved with the next change
                    self._log.warning("%s: cannot save the checkpoint: %s", self.spec.key, exc)

    async def _handle(self, action: str, arg: Any) -> None:
        if action == "deleted":
            await self._emit_file(arg)
        elif action == "flush":
            await self._flush_batch()
        elif action == "settled":
            path, pending = arg
            await self._handle_settled(path, pending)

    async def _handle_settled(self, path: str, pending: _Pending) -> None:
        if self._pending.get(path) is not pending or pending.timer is not None:
            return  # forgotten, or changed again since its timer fired
        try:
            st = await asyncio.to_thread(os.stat, path)
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                self._log.warning("%s: cannot read %s: %s", self.spec.key, path, exc)
            self._forget(path)
            return
        if self._pending.get(path) is not pending or pending.timer is not None:
            return
        if not stat.S_ISREG(st.st_mode):
            self._forget(path)
            return
        rel = self.opts.relpath(path) or os.path.basename(path)
        file = FileInfo.from_stat(path, rel, pending.kind, st, pending.catchup)
        if pending.fire and self.opts.batch > 0:
            if len(self._batch) >= self.opts.batch_max:
                await self._flush_batch()  # full: its flush may still be queued behind us
            self._batch.append(file)
            del self._pending[path]
            if len(self._batch) >= self.opts.batch_max:
                self._queue.put_nowait(("flush", None))
            elif self._batch_timer is None:
                assert self._loop is not None
                self._batch_timer = self._loop.call_later(
                    self.opts.batch, self._queue.put_nowait, ("flush", None)
                )
            return
        if pending.fire:
            await self._emit_file(file)
        if pending.timer is None and self._pending.get(path) is pending:
            del self._pending[path]
        elif pending.timer is not None:
            # written again while we emitted: what follows is a modification
            pending.kind, pending.fire = "modified", "modified" in self.opts.events
        self._cursor.handled(file)

    async def _emit_file(self, file: FileInfo) -> None:
        payload: dict[str, Any] = {
            "path": file.path, "relpath": file.relpath, "dir": str(self.root), "event": file.kind,
        }
        env = {"FIRELINK_FS_PATH": file.path, "FIRELINK_FS_EVENT": file.kind, "FIRELINK_FS_DIR": str(self.root)}
        if file.size is not None:
            payload.update(size=file.size, mtime=file.mtime_iso)
            env.update(FIRELINK_FS_SIZE=str(file.size), FIRELINK_FS_MTIME=file.mtime_iso)
        if file.catchup:
            payload["catchup"] = True
        key = None if file.kind == "deleted" else file.dedupe_key
        await self.context.emit(payload, env, dedupe_key=key)

    async def _flush_batch(self) -> None:
        if not self._batch:
            return
        files = self._batch
        paths = [f.path for f in files]
        payload = {"paths": paths, "count": len(files), "dir": str(self.root)}
        env = {
            "FIRELINK_FS_PATHS": "\n".join(paths),
            "FIRELINK_FS_COUNT": str(len(files)),
            "FIRELINK_FS_EVENT": "batch",
            "FIRELINK_FS_DIR": str(self.root),
        }
        digest = hashlib.sha1(usedforsecurity=False)
        for f in sorted(files, key=lambda f: f.dedupe_key):
            digest.update(f.dedupe_key.encode() + b"\0")
        await self.context.emit(payload, env, dedupe_key=f"batch:{digest.hexdigest()}")
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        self._batch = []
        for f in files:
            self._cursor.handled(f)

    # checkpoint -----------------------------------------------------------------
    async def _load_checkpoint(self) -> None:
        restored = self._cursor.restore(await self.context.get_checkpoint())
        if restored and self.opts.catchup:
            self._need_baseline = False
        elif not restored and self.opts.start_from == "beginning":
            self._cursor.reset()
            self._need_baseline = False
        else:
            # first start (or catchup off): the files already there are the baseline
            self._need_baseline = True

    async def _save_checkpoint(self) -> None:
        await self.context.set_checkpoint(self._cursor.to_json())

    async def _scan(self) -> None:
        """At start (and when the folder reappears): take the baseline, or fire what was missed."""
        files = await asyncio.to_thread(list_files, self.opts, self._log)
        if self._need_baseline:
            self._need_baseline = False
            self._cursor.reset(files)
            await self._save_checkpoint()
            return
        missed = self._cursor.missed(files)
        if missed:
            self._log.info("%s: %d file(s) appeared in %s while not watching", self.spec.key, len(missed), self.root)
        for file in missed:
            if file.path not in self._pending:
                self._touch(file.path, "created", catchup=True)

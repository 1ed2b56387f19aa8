"""The ``watch`` trigger for local folders (``source: /path`` or ``file://``): inotify, or polling."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from firelink_core.abc import Problem, Trigger, TriggerContext
from firelink_core.durations import DURATION_PATTERN, parse_duration
from firelink_core.model import TriggerSpec

if TYPE_CHECKING:  # watchdog is imported by start(), so validation never loads it
    from watchdog.observers.api import BaseObserver, ObservedWatch

__all__ = ["FsWatchTrigger", "FsOptions", "parse_options", "resolve_source", "EVENT_KINDS"]

EVENT_KINDS = ("created", "modified", "moved", "deleted")
DEFAULT_IGNORE = (".*", "*~", "*.tmp", "*.part", "*.swp")
CHECKPOINT_VERSION = 1
# Files whose change time lies this close below the checkpoint's mark are looked at again
# after a restart (on top of settle and batch): what already fired is recognised by its key.
_RESCAN_MARGIN = 30.0
_RETRY_FIRST, _RETRY_MAX = 1.0, 60.0

_DURATION = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "number", "minimum": 0},
    ]
}
_GLOBS = {"type": "array", "items": {"type": "string", "minLength": 1}}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Watch a local folder: inotify by default, or polling for network filesystems.",
    "properties": {
        "source": {
            "type": "string",
            "minLength": 1,
            "description": "The folder to watch: a path (relative to the config file's folder) or a "
            "file:// URL. It may not exist yet: the trigger is degraded until it appears.",
        },
        "patterns": {
            **_GLOBS,
            "default": ["*"],
            "description": "Fire only for files matching one of these globs. A glob matches the "
            "path relative to the watched folder or the file name (fnmatch: * also matches /).",
        },
        "ignore_patterns": {
            **_GLOBS,
            "default": list(DEFAULT_IGNORE),
            "description": "Never fire for files matching one of these globs (same matching as "
            "patterns). The default skips hidden and temporary files of uploads and editors; "
            "setting this list replaces it.",
        },
        "recursive": {
            "type": "boolean",
            "default": False,
            "description": "Also watch the files of every subfolder.",
        },
        "events": {
            "type": "array",
            "items": {"enum": list(EVENT_KINDS)},
            "minItems": 1,
            "uniqueItems": True,
            "default": ["created", "moved"],
            "description": "Which changes fire: created (also a file moved in from another "
            "folder), moved (renamed into place inside the watched folder, like "
            "upload.tmp -> data.csv), modified (written again later), deleted.",
        },
        "settle": {
            **_DURATION,
            "default": "1s",
            "description": "Fire once a file has not changed for this long, so a file being "
            "written fires once, complete. 0 fires at the first event (the file may be empty). "
            "With poll, at least twice the poll interval.",
        },
        "batch": {
            **_DURATION,
            "default": 0,
            "description": "Collect the files settled within this window (from the first one) "
            "into one run; FIRELINK_FS_PATHS lists them. 0: one run per file.",
        },
        "batch_max": {
            "type": "integer",
            "minimum": 1,
            "default": 500,
            "description": "A batch holding this many files fires at once (the file list must "
            "fit in one environment variable, at most 128 KiB on Linux).",
        },
        "poll": {
            **_DURATION,
            "description": "Scan the folder at this interval instead of using inotify: for NFS, "
            "SMB and other network filesystems where inotify sees nothing. Default: inotify.",
        },
        "catchup": {
            "anyOf": [{"type": "boolean"}, {"enum": ["skip", "latest", "all"]}],
            "default": True,
            "description": "At start, fire for each file that appeared while the daemon was down "
            "(known from a checkpoint in storage); skip (or false) does not. Unset, the job's "
            "catchup applies (a job-level catchup: skip turns it off).",
        },
        "start_from": {
            "enum": ["now", "beginning"],
            "default": "now",
            "description": "Without a checkpoint (first start): now ignores the files already "
            "there; beginning fires for each of them.",
        },
    },
    "required": ["source"],
}


@dataclass(frozen=True)
class FsOptions:
    """The trigger's options, parsed."""

    root: Path
    patterns: tuple[str, ...] = ("*",)
    ignore_patterns: tuple[str, ...] = DEFAULT_IGNORE
    recursive: bool = False
    events: frozenset[str] = frozenset({"created", "moved"})
    settle: float = 1.0
    batch: float = 0.0
    batch_max: int = 500
    poll: float | None = None
    catchup: bool = True
    start_from: str = "now"

    @property
    def effective_settle(self) -> float:
        # A poll only notices a write at its next scan: waiting two intervals guarantees
        # that a scan ran between the last write and the end of the wait.
        return max(self.settle, 2 * self.poll) if self.poll else self.settle

    def matches(self, relpath: str) -> bool:
        """Whether a file (path relative to the root, ``/``-separated) passes the globs."""
        name = relpath.rsplit("/", 1)[-1]

        def hit(globs: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(relpath, g) or fnmatch.fnmatchcase(name, g) for g in globs)

        return hit(self.patterns) and not hit(self.ignore_patterns)


def resolve_source(source: str, config_dir: Path | None) -> Path:
    """The absolute folder of ``source`` (a path or a ``file://`` URL). Raises ``ValueError``."""
    if source.startswith("file:"):
        url = urlsplit(source)
        if url.netloc not in ("", "localhost"):
            raise ValueError(
                f"file:// URLs name a local folder: file:///path (got host {url.netloc!r}); "
                "for a network share, mount it and set poll"
            )
        if not url.path.startswith("/"):
            raise ValueError("a file:// URL needs an absolute path: file:///path")
        path = Path(unquote(url.path))
    else:
        path = Path(source).expanduser()
    if not path.is_absolute():
        path = (config_dir or Path.cwd()) / path
    return Path(os.path.normpath(path))


def _seconds(options: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = options.get(key)
    return default if value is None else parse_duration(value)


def parse_options(
    options: Mapping[str, Any], config_dir: Path | None = None, *, job_catchup: str = "latest"
) -> FsOptions:
    """Options (already schema-valid) to :class:`FsOptions`. Raises ``ValueError``.

    ``job_catchup`` is the job's ``catchup``: with the one-trigger shorthand, ``catchup:``
    written at the job level is the job's key, so it decides when the option is absent.
    """
    catchup = options.get("catchup", job_catchup)
    return FsOptions(
        root=resolve_source(str(options["source"]), config_dir),
        patterns=tuple(options.get("patterns", ("*",))),
        ignore_patterns=tuple(options.get("ignore_patterns", DEFAULT_IGNORE)),
        recursive=bool(options.get("recursive", False)),
        events=frozenset(options.get("events", ("created", "moved"))),
        settle=_seconds(options, "settle", 1.0) or 0.0,
        batch=_seconds(options, "batch", 0.0) or 0.0,
        batch_max=int(options.get("batch_max", 500)),
        poll=_seconds(options, "poll", None) or None,
        catchup=catchup not in (False, "skip"),
        start_from=str(options.get("start_from", "now")),
    )


@dataclass
class _Pending:
    """A file seen changing, waiting for its settle timer."""

    kind: str
    fire: bool
    """False for changes that do not fire but still move the checkpoint (e.g. modified)."""
    catchup: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class _File:
    path: str
    relpath: str
    kind: str
    size: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    catchup: bool = False

    @property
    def mtime_iso(self) -> str:
        if self.mtime_ns is None:
            return ""
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=timezone.utc).isoformat()

    @property
    def dedupe_key(self) -> str:
        # The change time cannot be set by users (unlike mtime, kept by cp -p and rsync -t):
        # the same file dropped again fires again, an untouched file never fires twice.
        return f"{self.relpath}@{self.ctime_ns}:{self.mtime_ns}:{self.size}"

    @property
    def done_key(self) -> str:
        return hashlib.sha1(self.dedupe_key.encode(), usedforsecurity=False).hexdigest()[:16]


class FsWatchTrigger(Trigger):
    """Fires for files appearing (or changing) in a local folder.

    Watches with inotify (or polling), waits for each file to settle, then emits one event
    per file (or per batch). A checkpoint in storage (a high-water mark of the files' change
    times plus the keys of the files handled just below it) lets a restart fire exactly the
    files that appeared while the daemon was down; dedupe keys make a repeat harmless.
    """

    type_name = "watch"
    schemes = ("file",)
    description = "Fire for files appearing in a local folder (inotify, or polling for network filesystems)"
    config_schema: Mapping[str, Any] = CONFIG_SCHEMA

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        problems: list[Problem] = []
        source = str(options.get("source", ""))
        for key in ("patterns", "ignore_patterns"):
            for i, glob in enumerate(options.get(key) or ()):
                if str(glob).startswith("/"):
                    problems.append(Problem(
                        (key, i), f"{glob!r}: globs match paths relative to the watched folder, "
                        "not absolute paths",
                    ))
        for key in ("settle", "batch", "poll"):
            if options.get(key) is not None:
                try:
                    seconds = parse_duration(options[key])
                except ValueError as exc:
                    problems.append(Problem((key,), str(exc)))
                    continue
                if key == "poll" and seconds <= 0:
                    problems.append(Problem((key,), "the poll interval must be more than 0"))
        if "${" in source:
            return problems  # interpolated when the daemon loads the config
        try:
            root = resolve_source(source, config_dir)
        except ValueError as exc:
            return [*problems, Problem(("source",), str(exc))]
        # A folder that does not exist is fine here: `firelink validate` runs in CI, where
        # the server's folders are absent (the daemon reports the trigger degraded instead).
        if root.exists() and not root.is_dir():
            problems.append(Problem(("source",), f"{root} exists but is not a folder"))
        return problems

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
        self._batch: list[_File] = []
        self._batch_timer: asyncio.TimerHandle | None = None
        # checkpoint: every matching file with a change time below `_mark - margin` was handled,
        # and `_done` holds the keys (-> change time) of the files handled above that
        self._mark = -1
        self._done: dict[str, int] = {}
        self._need_baseline = False
        self._dirty = False
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
        if self._dirty:
            try:
                await self._save_checkpoint()
            except Exception:  # noqa: BLE001 - storage may be closing; the next start rescans
                self._log.warning("could not save the checkpoint of %s at stop", self.spec.key)
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
                raise FileNotFoundError(0, reason, str(self.root))
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
            self._mark, self._done, self._dirty = -1, {}, True
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
        # once if the folder appeared before the ancestor's watch began.
        delay = 0.0 if self.root.is_dir() else self._retry_delay
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
            await self._wait_for_folder(FileNotFoundError(0, "the folder was removed", str(self.root)))

        self._attaching = asyncio.create_task(detach())

    # events (on the loop) ---------------------------------------------------------
    def _relpath(self, path: str) -> str | None:
        """The path relative to the root if the trigger watches it, else ``None``."""
        rel = os.path.relpath(path, self.root)
        if rel in (".", "..") or rel.startswith("../"):
            return None
        rel = rel.replace(os.sep, "/")
        if not self.opts.recursive and "/" in rel:
            return None
        return rel

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
            rel = self._relpath(src)
            if "deleted" in self.opts.events and rel is not None and self.opts.matches(rel):
                self._queue.put_nowait(("deleted", _File(src, rel, "deleted")))

    def _touch(self, path: str, kind: str, *, catchup: bool = False) -> None:
        rel = self._relpath(path)
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
            if self._queue.empty() and self._dirty:
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
        rel = self._relpath(path) or os.path.basename(path)
        file = _File(path, rel, pending.kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, pending.catchup)
        if pending.fire and self.opts.batch > 0:
            self._batch.append(file)
            del self._pending[path]
            if len(self._batch) >= self.opts.batch_max:
                await self._flush_batch()
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
        self._handled(file)

    async def _emit_file(self, file: _File) -> None:
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
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
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
        self._batch = []
        for f in files:
            self._handled(f)

    # checkpoint -----------------------------------------------------------------
    @property
    def _margin_ns(self) -> int:
        return int((self.opts.effective_settle + self.opts.batch + _RESCAN_MARGIN) * 1e9)

    def _handled(self, file: _File) -> None:
        if file.ctime_ns is None:
            return
        self._done[file.done_key] = file.ctime_ns
        self._mark = max(self._mark, file.ctime_ns)
        self._dirty = True

    async def _load_checkpoint(self) -> None:
        saved = await self.context.get_checkpoint()
        valid = (
            isinstance(saved, dict)
            and saved.get("v") == CHECKPOINT_VERSION
            and saved.get("source") == str(self.root)
        )
        if valid and self.opts.catchup:
            self._mark = int(saved["mark"])
            self._done = {str(k): int(v) for k, v in saved.get("done", {}).items()}
            self._need_baseline = False
        elif self.opts.start_from == "beginning" and not valid:
            self._mark, self._done, self._need_baseline = -1, {}, False
        else:
            # first start (or catchup: false): the files already there are the baseline
            self._need_baseline = True

    async def _save_checkpoint(self) -> None:
        floor = self._mark - self._margin_ns
        self._done = {k: c for k, c in self._done.items() if c >= floor}
        self._dirty = False
        await self.context.set_checkpoint(
            {"v": CHECKPOINT_VERSION, "source": str(self.root), "mark": self._mark, "done": self._done}
        )

    def _list_files(self) -> list[_File]:
        """Every matching regular file under the root (blocking: run it in a thread)."""
        found: list[_File] = []
        folders = [self.root]
        while folders:
            folder = folders.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                self._log.warning("%s: cannot list %s: %s", self.spec.key, folder, exc)
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if self.opts.recursive:
                            folders.append(Path(entry.path))
                        continue
                    rel = self._relpath(entry.path)
                    if rel is None or not self.opts.matches(rel):
                        continue
                    st = entry.stat()
                except OSError:
                    continue  # gone meanwhile
                if stat.S_ISREG(st.st_mode):
                    found.append(_File(entry.path, rel, "created", st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return found

    async def _scan(self) -> None:
        """At start (and when the folder reappears): baseline, or fire what was missed."""
        files = await asyncio.to_thread(self._list_files)
        if self._need_baseline:
            self._need_baseline = False
            self._mark = max((f.ctime_ns or 0 for f in files), default=-1)
            self._done = {}
            for f in files:
                self._done[f.done_key] = f.ctime_ns or 0
            self._dirty = True
            await self._save_checkpoint()
            return
        floor = self._mark - self._margin_ns
        missed = [f for f in files if (f.ctime_ns or 0) >= floor and f.done_key not in self._done]
        missed.sort(key=lambda f: f.ctime_ns or 0)
        if missed:
            self._log.info("%s: %d file(s) appeared in %s while not watching", self.spec.key, len(missed), self.root)
        for f in missed:
            if f.path not in self._pending:
                self._touch(f.path, "created", catchup=True)

"""The options of the folder watch trigger: JSON Schema, offline checks and parsing (no watchdog here)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from firelink_core.plugin_api import Problem, duration_schema, parse_duration

__all__ = [
    "CONFIG_SCHEMA", "DEFAULT_IGNORE", "EVENT_KINDS", "FsOptions", "check_options", "parse_options",
    "resolve_source",
]

EVENT_KINDS = ("created", "modified", "moved", "deleted")
DEFAULT_IGNORE = (".*", "*~", "*.tmp", "*.part", "*.swp")

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
        "settle": duration_schema(
            "Fire once a file has not changed for this long, so a file being "
            "written fires once, complete. 0 fires at the first event (the file may be empty). "
            "With poll, at least twice the poll interval.",
            "1s",
        ),
        "batch": duration_schema(
            "Collect the files settled within this window (from the first one) "
            "into one run; FIRELINK_FS_PATHS lists them. 0: one run per file.",
            0,
        ),
        "batch_max": {
            "type": "integer",
            "minimum": 1,
            "default": 500,
            "description": "A batch holding this many files fires at once (the file list must "
            "fit in one environment variable, at most 128 KiB on Linux).",
        },
        "poll": duration_schema(
            "Scan the folder at this interval instead of using inotify: for NFS, "
            "SMB and other network filesystems where inotify sees nothing. Default: inotify."
        ),
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

    def relpath(self, path: str) -> str | None:
        """``path`` relative to the root (``/``-separated) if the trigger watches it, else ``None``."""
        rel = os.path.relpath(path, self.root)
        if rel in (".", "..") or rel.startswith("../"):
            return None
        rel = rel.replace(os.sep, "/")
        if not self.recursive and "/" in rel:
            return None
        return rel

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


def check_options(options: Mapping[str, Any], config_dir: Path | None = None) -> list[Problem]:
    """What the schema cannot say; offline, and without requiring the folder to exist."""
    problems: list[Problem] = []
    for key in ("patterns", "ignore_patterns"):
        for i, glob in enumerate(options.get(key) or ()):
            if str(glob).startswith("/"):
                problems.append(Problem(
                    (key, i), f"{glob!r}: globs match paths relative to the watched folder, not absolute paths",
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
    source = str(options.get("source", ""))
    if "${" in source:
        return problems  # interpolated when the daemon loads the config
    try:
        root = resolve_source(source, config_dir)
    except ValueError as exc:
        return [*problems, Problem(("source",), str(exc))]
    # A folder that does not exist is fine here: `firelink validate` runs in CI, where the
    # server's folders are absent (the daemon reports the trigger degraded instead).
    if root.exists() and not root.is_dir():
        problems.append(Problem(("source",), f"{root} exists but is not a folder"))
    return problems

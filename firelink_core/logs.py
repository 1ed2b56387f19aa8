"""Capped per-attempt log files: every executor writes through them, the CLI reads and follows them.

One file per attempt. When it grows past ``max_bytes`` the writer keeps the most recent
half (cut at a line start when one is near) behind a first line
``[firelink: N earlier bytes dropped]``, in a new file renamed over the old one. So the
file on disk is always a plain, ``cat``-able text file of at most about ``max_bytes``,
with no side files that retention would have to know about; the price is copying at most
``max_bytes / 2`` bytes per ``max_bytes / 2`` written, only for jobs that outgrow the cap.
Nothing is ever held in memory beyond one copy buffer.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = [
    "CappedLogWriter",
    "attempt_log_path",
    "read_log",
    "log_tail_lines",
    "LogCursor",
    "dropped_marker",
    "parse_dropped_marker",
]

_MARKER = re.compile(rb"^\[firelink: (\d+) earlier bytes dropped\]\n")
_MARKER_MAX = 64
_READ_CHUNK = 64 * 1024
# A cut that lands mid-line moves to the next line start if one is this close.
_LINE_ALIGN = 4096


def dropped_marker(count: int) -> bytes:
    """The first line of a log whose first ``count`` bytes of output were dropped."""
    return b"[firelink: %d earlier bytes dropped]\n" % count


def parse_dropped_marker(head: bytes) -> tuple[int, int]:
    """``(dropped bytes, marker length)`` of a log starting with ``head``; ``(0, 0)`` if none."""
    match = _MARKER.match(head)
    if match is None:
        return 0, 0
    return int(match.group(1)), match.end()


def attempt_log_path(state_dir: Path, job: str, run_id: str, attempt: int) -> Path:
    """Where attempt ``attempt`` of run ``run_id`` logs: ``<state_dir>/logs/<job>/<run_id>.<attempt>.log``."""
    return Path(state_dir) / "logs" / job / f"{run_id}.{attempt}.log"


class CappedLogWriter:
    """Append-only writer of one attempt's log that keeps the tail within ``max_bytes``.

    Writes go straight to the file (no buffering), so ``firelink logs -f`` sees output as
    it arrives. Opening an existing file appends to it and keeps counting its marker.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max(int(max_bytes), 2)
        self._keep = self.max_bytes // 2
        try:
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        except FileNotFoundError:  # the folder is usually there already: no mkdir per attempt
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self._size = self._file.seek(0, os.SEEK_END)
        self._dropped, self._header = 0, 0
        self._line_start = True
        if self._size:
            with open(self.path, "rb") as head:
                self._dropped, self._header = parse_dropped_marker(head.read(_MARKER_MAX))
                head.seek(-1, os.SEEK_END)
                self._line_start = head.read(1) == b"\n"

    @property
    def size(self) -> int:
        """Bytes in the file now (marker included)."""
        return self._size

    @property
    def dropped(self) -> int:
        """Bytes of output dropped from the head so far."""
        return self._dropped

    @property
    def closed(self) -> bool:
        return self._file.closed

    def will_trim(self, nbytes: int) -> bool:
        """Whether writing ``nbytes`` more makes the writer rewrite the file (slow I/O:
        async callers may want ``asyncio.to_thread`` for that write)."""
        return self._size + nbytes > self.max_bytes

    def write(self, data: bytes) -> None:
        """Append ``data``, dropping the oldest output if the file would pass ``max_bytes``."""
        if not data:
            return
        self._line_start = data.endswith(b"\n")
        if len(data) >= self._keep:
            # The chunk alone fills the kept tail: everything before it goes.
            body = memoryview(data)[len(data) - self._keep :]
            newline = bytes(body[:_LINE_ALIGN]).find(b"\n")
            if 0 <= newline < len(body) - 1:
                body = body[newline + 1 :]
            self._restart(self._dropped + (self._size - self._header) + len(data) - len(body), body)
            return
        self._file.write(data)
        self._size += len(data)
        if self._size > self.max_bytes:
            self._trim()

    def _restart(self, dropped: int, body: bytes | memoryview) -> None:
        header = dropped_marker(dropped)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(header)
            out.write(body)
        self._replace(tmp, dropped, len(header), len(header) + len(body))

    def _trim(self) -> None:
        cut = self._size - self._keep
        with open(self.path, "rb") as src:
            src.seek(cut)
            probe = src.read(min(_LINE_ALIGN, self._keep))
            newline = probe.find(b"\n")
            if 0 <= newline < len(probe) - 1:
                cut += newline + 1
            dropped = self._dropped + cut - self._header
            header = dropped_marker(dropped)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as out:
                out.write(header)
                src.seek(cut)
                shutil.copyfileobj(src, out, 1 << 20)
                size = out.tell()
        self._replace(tmp, dropped, len(header), size)

    def _replace(self, tmp: Path, dropped: int, header: int, size: int) -> None:
        self._file.close()
        os.replace(tmp, self.path)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._dropped, self._header, self._size = dropped, header, size

    def note(self, message: str) -> None:
        """Append a line from firelink itself (``[firelink: ...]``), on a line of its own."""
        line = f"[firelink: {message}]\n".encode(errors="replace")
        self.write(line if self._line_start else b"\n" + line)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CappedLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(path: str | os.PathLike[str], tail_bytes: int | None = None) -> bytes:
    """The log's content (``b""`` if it does not exist).

    With ``tail_bytes``, only the last ``tail_bytes`` of output, behind a marker line
    counting everything before them when something was left out.
    """
    try:
        with open(path, "rb") as src:
            if tail_bytes is None:
                return src.read()
            dropped, header = parse_dropped_marker(src.read(_MARKER_MAX))
            size = src.seek(0, os.SEEK_END)
            body = size - header
            if body <= tail_bytes:
                src.seek(0)
                return src.read()
            src.seek(size - tail_bytes)
            return dropped_marker(dropped + body - tail_bytes) + src.read(tail_bytes)
    except FileNotFoundError:
        return b""


def log_tail_lines(path: str | os.PathLike[str], n: int = 20, *, max_bytes: int = 1 << 20) -> str:
    """The last ``n`` lines of a log as text (undecodable bytes replaced), reading at most
    ``max_bytes`` from its end; ``""`` if the log does not exist."""
    if n <= 0:
        return ""
    try:
        with open(path, "rb") as src:
            end = src.seek(0, os.SEEK_END)
            pos, data = end, b""
            while pos > 0 and data.count(b"\n", 0, len(data) - 1) < n and end - pos < max_bytes:
                step = min(8192, pos, max_bytes - (end - pos))
                pos -= step
                src.seek(pos)
                data = src.read(step) + data
    except FileNotFoundError:
        return ""
    lines = data.decode(errors="replace").splitlines()
    if pos > 0 and len(lines) > n:
        lines = lines[-n:]
    return "\n".join(lines[-n:])


class LogCursor:
    """Follows one attempt's log: each ``read_new()`` returns what was written since the last.

    Positions count the whole output, dropped bytes included, so a trim by the capped
    writer (which replaces the file) neither repeats output nor loses it silently: output
    dropped before this reader got to it comes back as a marker line. The first read
    starts at the beginning of what is kept. Polling it is the caller's choice: the
    control server reads while a client follows a running job (``firelink logs -f``,
    ``firelink trigger --wait``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.position: int | None = None
        """Offset in the whole output (dropped bytes included) read so far; ``None`` before the first read."""

    def read_new(self) -> bytes:
        """What was appended since the last read (``b""`` while the log does not exist)."""
        try:
            src = open(self.path, "rb")
        except FileNotFoundError:
            return b""
        with src:
            dropped, header = parse_dropped_marker(src.read(_MARKER_MAX))
            parts = []
            if self.position is None:
                self.position = dropped
                if dropped:
                    parts.append(dropped_marker(dropped))
            if self.position < dropped:
                parts.append(dropped_marker(dropped - self.position))
                self.position = dropped
            src.seek(header + self.position - dropped)
            while chunk := src.read(_READ_CHUNK):
                self.position += len(chunk)
                parts.append(chunk)
        return b"".join(parts)

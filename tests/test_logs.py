"""The capped log writer and its readers, on real files."""

from __future__ import annotations

import threading

from firelink_core.logs import (
    CappedLogWriter,
    LogCursor,
    attempt_log_path,
    log_tail_lines,
    parse_dropped_marker,
    read_log,
)
from firelink_core.testing import wait_for


def numbered(start: int, stop: int) -> bytes:
    return b"".join(b"line %06d\n" % i for i in range(start, stop))


def test_small_output_is_kept_verbatim(tmp_path):
    path = attempt_log_path(tmp_path, "job", "r1", 1)
    with CappedLogWriter(path, 10_000) as log:
        log.write(b"hello\n")
        log.write(b"world\n")
    assert path == tmp_path / "logs" / "job" / "r1.1.log"
    assert read_log(path) == b"hello\nworld\n"


def test_cap_keeps_the_tail_and_counts_what_was_dropped(tmp_path):
    path = tmp_path / "a.log"
    everything = numbered(0, 5000)  # 60,000 bytes through a 4,000-byte cap
    with CappedLogWriter(path, 4000) as log:
        for i in range(0, len(everything), 37):
            log.write(everything[i : i + 37])
            assert path.stat().st_size <= 4000 + 64
    content = read_log(path)
    dropped, header = parse_dropped_marker(content)
    body = content[header:]
    assert content.startswith(b"[firelink: %d earlier bytes dropped]\n" % dropped)
    assert everything.endswith(body)
    assert dropped + len(body) == len(everything)
    assert len(body) >= 2000 - 12
    # the kept part starts at a line start
    assert body.startswith(b"line ")


def test_a_chunk_larger_than_the_cap_keeps_its_own_tail(tmp_path):
    path = tmp_path / "big.log"
    everything = b"x" * 100 + numbered(0, 1000)
    with CappedLogWriter(path, 1000) as log:
        log.write(everything[:100])
        log.write(everything[100:])
    dropped, header = parse_dropped_marker(read_log(path))
    body = read_log(path)[header:]
    assert everything.endswith(body) and dropped + len(body) == len(everything)
    assert path.stat().st_size <= 1000 + 64
    assert body.startswith(b"line ")  # cut at a line start


def test_reopening_appends_and_keeps_counting(tmp_path):
    path = tmp_path / "re.log"
    everything = numbered(0, 600)
    with CappedLogWriter(path, 2000) as log:
        log.write(everything[:5000])
    with CappedLogWriter(path, 2000) as log:
        assert log.dropped > 0
        for i in range(5000, len(everything), 100):
            log.write(everything[i : i + 100])
    dropped, header = parse_dropped_marker(read_log(path))
    assert dropped + len(read_log(path)) - header == len(everything)


def test_read_log_tail_bytes_and_missing_file(tmp_path):
    path = tmp_path / "t.log"
    with CappedLogWriter(path, 100_000) as log:
        log.write(numbered(0, 100))
    tail = read_log(path, tail_bytes=24)
    assert tail == b"[firelink: 1176 earlier bytes dropped]\nline 000098\nline 000099\n"
    assert read_log(path, tail_bytes=10_000) == numbered(0, 100)
    assert read_log(tmp_path / "nope.log") == b""


def test_log_tail_lines(tmp_path):
    path = tmp_path / "l.log"
    with CappedLogWriter(path, 10_000_000) as log:
        log.write(numbered(0, 20_000))
        log.write(b"last without newline")
    assert log_tail_lines(path, 3) == "line 019998\nline 019999\nlast without newline"
    assert log_tail_lines(path, 1) == "last without newline"
    assert log_tail_lines(tmp_path / "missing.log", 5) == ""
    short = tmp_path / "s.log"
    short.write_bytes(b"one\ntwo\n")
    assert log_tail_lines(short, 20) == "one\ntwo"


def test_follow_sees_everything_across_trims(tmp_path):
    path = tmp_path / "f.log"
    everything = numbered(0, 3000)
    got = bytearray()
    done = threading.Event()
    log = CappedLogWriter(path, 8000)

    def produce() -> None:
        # Each chunk is written once the reader caught up, so the cap never outruns it,
        # but the file is trimmed (replaced) many times while it is followed.
        for i in range(0, len(everything), 3000):
            wait_for(lambda i=i: len(got) >= i, timeout=10)
            log.write(everything[i : i + 3000])
        wait_for(lambda: len(got) >= len(everything), timeout=10)
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    cursor = LogCursor(path)
    while True:
        finished = done.is_set()
        got += cursor.read_new()
        if finished:
            break
        done.wait(0.005)  # a poll interval, as the control server's follower has
    thread.join()
    log.close()
    assert log.dropped > 0
    assert bytes(got) == everything


def test_follow_reports_output_trimmed_before_it_was_read(tmp_path):
    path = tmp_path / "g.log"
    everything = numbered(0, 2000)
    with CappedLogWriter(path, 2000) as log:
        log.write(everything)
    got = LogCursor(path).read_new()
    dropped, header = parse_dropped_marker(got)
    assert dropped > 0 and got[header:] == everything[dropped:]


def test_notes_start_on_a_line_of_their_own(tmp_path):
    path = tmp_path / "n.log"
    with CappedLogWriter(path, 10_000) as log:
        log.note("first")
        log.write(b"partial line")
        log.note("timed out")
    with CappedLogWriter(path, 10_000) as log:
        log.write(b"again, no newline")
    with CappedLogWriter(path, 10_000) as log:
        log.note("reopened")
    assert read_log(path) == (
        b"[firelink: first]\npartial line\n[firelink: timed out]\nagain, no newline\n[firelink: reopened]\n"
    )

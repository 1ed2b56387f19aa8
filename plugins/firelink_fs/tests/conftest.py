"""Helpers for firelink-fs tests: run a FsWatchTrigger on a real folder with an EventRecorder."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from firelink_fs import FsWatchTrigger

from firelink_core.plugin_api import TriggerEvent
from firelink_core.testing import EventRecorder

_sentinels = itertools.count()


@contextlib.asynccontextmanager
async def watching(
    options: Mapping[str, Any],
    *,
    checkpoints: dict[str, Any] | None = None,
    config_dir: Path | None = None,
) -> AsyncIterator[tuple[EventRecorder, FsWatchTrigger]]:
    """A started trigger and its recorder; stopped on exit."""
    rec = EventRecorder("inbox", "watch", options, checkpoints=checkpoints)
    rec.config_dir = config_dir
    trigger = FsWatchTrigger(rec.spec, rec)
    await trigger.start()
    try:
        yield rec, trigger
    finally:
        await trigger.stop()


async def everything_before_sentinel(rec: EventRecorder, folder: Path, timeout: float = 10) -> list[TriggerEvent]:
    """Drop a sentinel file, wait for its event, return the events before it.

    The trigger handles changes in order, so once the sentinel fired every earlier change
    was dealt with: what did not fire by then never will (no sleeping, no guessing).
    """
    sentinel = folder / f"zz-sentinel-{next(_sentinels)}.csv"
    sentinel.write_text("end")
    while True:
        events = await rec.wait_events(len(rec.events) + 1, timeout=timeout)
        for i, event in enumerate(events):
            if event.env.get("FIRELINK_FS_PATH") == str(sentinel) or str(sentinel) in event.payload.get("paths", ()):
                return events[:i]


def paths(events: list[TriggerEvent]) -> list[str]:
    return [e.env["FIRELINK_FS_PATH"] for e in events]


@pytest.fixture
def fs() -> SimpleNamespace:
    """The helpers above (test modules cannot import conftest under --import-mode=importlib)."""
    return SimpleNamespace(watching=watching, before_sentinel=everything_before_sentinel, paths=paths)

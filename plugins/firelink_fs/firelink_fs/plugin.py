"""Hook implementations of firelink-fs: declares the ``watch`` trigger for local folders."""

from __future__ import annotations

from firelink_core.plugin_api import Trigger, hookimpl

from .trigger import FsWatchTrigger


@hookimpl
def firelink_register_triggers() -> list[type[Trigger]]:
    return [FsWatchTrigger]

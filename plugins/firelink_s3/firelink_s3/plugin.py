"""Hook implementations of firelink-s3: declares the ``watch`` trigger for ``s3://`` sources."""

from __future__ import annotations

from firelink_core.plugin_api import Trigger, hookimpl


@hookimpl
def firelink_register_triggers() -> list[type[Trigger]]:
    # boto3 is imported by the trigger only when it starts, so declaring it stays cheap.
    from .trigger import S3WatchTrigger

    return [S3WatchTrigger]

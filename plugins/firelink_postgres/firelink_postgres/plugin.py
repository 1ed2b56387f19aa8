"""Hook implementations of firelink-postgres: the ``postgres`` storage."""

from __future__ import annotations

from firelink_core.plugin_api import Storage, hookimpl

from .storage import PostgresStorage


@hookimpl
def firelink_register_storages() -> list[type[Storage]]:
    return [PostgresStorage]

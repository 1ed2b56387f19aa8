"""The storage contract, run against both built-in backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from firelink_core.builtin.memory import MemoryStorage
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.plugin_api import Storage
from firelink_core.testing import BasicStorageContext, StorageContract


class TestMemoryStorage(StorageContract):
    keeps_history = False

    @pytest.fixture
    def make_storage(self, tmp_path: Path) -> Callable[[], Storage]:
        return lambda: MemoryStorage({}, BasicStorageContext(tmp_path))


class TestSqliteStorage(StorageContract):
    @pytest.fixture
    def make_storage(self, tmp_path: Path) -> Callable[[], Storage]:
        return lambda: SqliteStorage({}, BasicStorageContext(tmp_path / "state"))

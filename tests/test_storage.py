"""The storage contract, run against both built-in backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firelink_core.abc import Storage
from firelink_core.builtin.memory import MemoryStorage
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.testing import BasicStorageContext, StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path, run: Any) -> Storage:
        storage = MemoryStorage({}, BasicStorageContext(tmp_path))
        run(storage.open())
        return storage


class TestSqliteStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path, run: Any) -> Storage:
        storage = SqliteStorage({}, BasicStorageContext(tmp_path / "state"))
        run(storage.open())
        return storage

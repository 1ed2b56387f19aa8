"""The storage contract, run against both built-in backends."""

from __future__ import annotations

import pytest

from firelink_core.builtin.memory import MemoryStorage
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.testing import StorageContract, StorageUnderTest


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage_under_test(self) -> StorageUnderTest:
        return StorageUnderTest(MemoryStorage, keeps_history=False)


class TestSqliteStorage(StorageContract):
    @pytest.fixture
    def storage_under_test(self) -> StorageUnderTest:
        return StorageUnderTest(SqliteStorage)

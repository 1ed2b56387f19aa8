"""The postgres storage passes the storage contract, against a real PostgreSQL server."""

from __future__ import annotations

import pytest
from firelink_postgres import PostgresStorage

from firelink_core.testing import StorageContract, StorageUnderTest

pytestmark = pytest.mark.postgres


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def storage_under_test(self, postgres_server, schema_name: str) -> StorageUnderTest:
        return StorageUnderTest(
            PostgresStorage, {"dsn": postgres_server.dsn, "schema": schema_name, "pool_size": 4}
        )

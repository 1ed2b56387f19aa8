"""firelink-s3 against the core's TriggerContract, on a real SeaweedFS bucket."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from firelink_s3.trigger import S3WatchTrigger

from firelink_core.testing import TriggerContract, TriggerUnderTest

from .conftest import SeaweedServer, s3_client

pytestmark = pytest.mark.s3

_numbers = itertools.count(1)


class TestS3WatchContract(TriggerContract):
    @pytest.fixture
    def trigger_under_test(self, seaweed: SeaweedServer, tmp_path: Path) -> TriggerUnderTest:
        bucket = f"contract-{next(_numbers)}"
        client = s3_client(seaweed.endpoint)
        client.create_bucket(Bucket=bucket)

        async def fire(_trigger: Any) -> None:
            await asyncio.to_thread(client.put_object, Bucket=bucket, Key="in/one.csv", Body=b"1")

        # start_from: beginning, so an object put before the first listing still fires.
        options = {
            "source": f"s3://{bucket}/in/", "endpoint_url": seaweed.endpoint, "poll": "200ms",
            "start_from": "beginning",
        }
        return TriggerUnderTest(S3WatchTrigger, options, fire, event_timeout=20, quiet_period=1.0)

"""Polling mode against a real S3 server (SeaweedFS): new and changed objects, paging, ordered keys, faults."""

from __future__ import annotations

import asyncio
import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from firelink_core.testing import async_wait_for

from .conftest import ACCESS_KEY, SECRET_KEY, SeaweedServer, _free_ports, s3_client

pytestmark = pytest.mark.s3


def _put_many(endpoint: str, bucket: str, keys: list[str]) -> None:
    client = s3_client(endpoint)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


async def _put(client: Any, bucket: str, key: str, body: bytes) -> dict[str, Any]:
    return await asyncio.to_thread(client.put_object, Bucket=bucket, Key=key, Body=body)


async def _polls(trigger: Any, more: int, timeout: float = 20.0) -> None:
    """Wait until ``more`` further listings have completed (what was there has been seen)."""
    target = trigger.polls + more
    await async_wait_for(lambda: trigger.polls >= target, timeout, message=f"{more} more polls")


def test_new_objects_fire_once_with_their_details(seaweed: SeaweedServer, bucket: str, new_trigger: Any) -> None:
    client = s3_client(seaweed.endpoint)
    client.put_object(Bucket=bucket, Key="input/already-there.csv", Body=b"old")

    async def main() -> None:
        trigger, rec = new_trigger({
            "source": f"s3://{bucket}/input/", "endpoint_url": seaweed.endpoint, "poll": "200ms",
            "ignore_patterns": ["*.tmp"],
        })
        await trigger.start()
        try:
            await _polls(trigger, 1)
            a = await _put(client, bucket, "input/a b+c.csv", b"12345")
            b = await _put(client, bucket, "input/sub/b.json", b"{}")
            await _put(client, bucket, "input/partial.tmp", b"ignored")
            await _put(client, bucket, "elsewhere/c.csv", b"outside the prefix")
            await rec.wait_events(2)
            await _polls(trigger, 2)
        finally:
            await trigger.stop()
        assert [e.env["FIRELINK_S3_KEY"] for e in rec.events] == ["input/a b+c.csv", "input/sub/b.json"]
        first = rec.events[0]
        assert first.env == {
            "FIRELINK_S3_BUCKET": bucket,
            "FIRELINK_S3_KEY": "input/a b+c.csv",
            "FIRELINK_S3_ETAG": a["ETag"].strip('"'),
            "FIRELINK_S3_SIZE": "5",
            "FIRELINK_S3_URI": f"s3://{bucket}/input/a b+c.csv",
        }
        assert first.payload["etag"] == a["ETag"].strip('"') and first.payload["size"] == 5
        assert rec.events[1].env["FIRELINK_S3_ETAG"] == b["ETag"].strip('"')
        assert (rec.health.state, rec.health.message) == ("ok", f"listing s3://{bucket}/input/ every 200ms")

    asyncio.run(main())


def test_overwritten_object_fires_again_only_when_its_content_changes(
    seaweed: SeaweedServer, bucket: str, new_trigger: Any
) -> None:
    client = s3_client(seaweed.endpoint)

    async def main() -> None:
        trigger, rec = new_trigger({"source": f"s3://{bucket}/", "endpoint_url": seaweed.endpoint, "poll": "200ms"})
        await trigger.start()
        try:
            await _polls(trigger, 1)
            first = await _put(client, bucket, "daily.csv", b"monday")
            await rec.wait_events(1)
            second = await _put(client, bucket, "daily.csv", b"tuesday")
            await rec.wait_events(2)
            await _put(client, bucket, "daily.csv", b"tuesday")  # same bytes, same ETag
            await _polls(trigger, 3)
        finally:
            await trigger.stop()
        assert [e.env["FIRELINK_S3_ETAG"] for e in rec.events] == [
            first["ETag"].strip('"'), second["ETag"].strip('"'),
        ]

    asyncio.run(main())


def test_start_from_beginning_pages_past_1000_keys(seaweed: SeaweedServer, bucket: str, new_trigger: Any) -> None:
    keys = [f"batch/{i:05d}.dat" for i in range(1050)]
    _put_many(seaweed.endpoint, bucket, keys)

    async def main() -> None:
        trigger, rec = new_trigger({
            "source": f"s3://{bucket}/batch/", "endpoint_url": seaweed.endpoint, "poll": "200ms",
            "start_from": "beginning",
        })
        await trigger.start()
        try:
            await rec.wait_events(1050, timeout=30)
            await _polls(trigger, 2)
        finally:
            await trigger.stop()
        assert sorted(e.env["FIRELINK_S3_KEY"] for e in rec.events) == keys
        assert len({e.dedupe_key for e in rec.events}) == 1050
        # Plain polling costs ceil(N / 1000) list requests per poll.
        assert trigger.last_poll_requests == 2
        assert set(trigger.requests_by_operation) == {"ListObjectsV2"}

    asyncio.run(main())


def test_ordered_keys_idle_poll_costs_one_request(seaweed: SeaweedServer, bucket: str, new_trigger: Any) -> None:
    _put_many(seaweed.endpoint, bucket, [f"logs/2026-11-24T{i:06d}.log" for i in range(1001)])
    client = s3_client(seaweed.endpoint)

    async def main() -> None:
        common = {"source": f"s3://{bucket}/logs/", "endpoint_url": seaweed.endpoint, "poll": "200ms"}
        plain, _plain_rec = new_trigger(common)
        ordered, rec = new_trigger({**common, "ordered_keys": True})
        await plain.start()
        await ordered.start()
        try:
            await _polls(plain, 2)
            await _polls(ordered, 2)
            assert plain.last_poll_requests == 2
            assert ordered.last_poll_requests == 1
            assert rec.events == []
            await _put(client, bucket, "logs/2026-11-24T999998.log", b"x")
            await _put(client, bucket, "logs/2026-11-24T999999.log", b"y")
            await rec.wait_events(2)
            await _polls(ordered, 2)
            assert ordered.last_poll_requests == 1
        finally:
            await plain.stop()
            await ordered.stop()
        assert [e.env["FIRELINK_S3_KEY"] for e in rec.events] == [
            "logs/2026-11-24T999998.log", "logs/2026-11-24T999999.log",
        ]

    asyncio.run(main())


def test_restart_fires_only_what_changed_meanwhile(seaweed: SeaweedServer, bucket: str, new_trigger: Any) -> None:
    client = s3_client(seaweed.endpoint)
    options = {"source": f"s3://{bucket}/in/", "endpoint_url": seaweed.endpoint, "poll": "200ms"}
    checkpoints: dict[str, Any] = {}  # the storage both trigger instances share

    async def first_life() -> list[str]:
        trigger, rec = new_trigger(options, checkpoints=checkpoints)
        await trigger.start()
        try:
            await _polls(trigger, 1)
            await _put(client, bucket, "in/a", b"1")
            await _put(client, bucket, "in/b", b"2")
            await rec.wait_events(2)
        finally:
            await trigger.stop()
        return [e.env["FIRELINK_S3_KEY"] for e in rec.events]

    async def second_life() -> list[str]:
        trigger, rec = new_trigger(options, checkpoints=checkpoints)
        await trigger.start()
        try:
            await rec.wait_events(2)
            await _polls(trigger, 2)
        finally:
            await trigger.stop()
        return [e.env["FIRELINK_S3_KEY"] for e in rec.events]

    assert asyncio.run(first_life()) == ["in/a", "in/b"]
    client.put_object(Bucket=bucket, Key="in/c", Body=b"3")  # while firelink is down
    client.put_object(Bucket=bucket, Key="in/a", Body=b"1 changed")
    assert sorted(asyncio.run(second_life())) == ["in/a", "in/c"]


def test_outage_degrades_then_recovers_without_losing_objects(
    seaweed: SeaweedServer, bucket: str, new_trigger: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="firelink.test.jobB")
    client = s3_client(seaweed.endpoint)

    async def main() -> None:
        trigger, rec = new_trigger({"source": f"s3://{bucket}/", "endpoint_url": seaweed.endpoint, "poll": "200ms"})
        await trigger.start()
        try:
            await _polls(trigger, 1)
            await _put(client, bucket, "before", b"1")
            await rec.wait_events(1)
            await asyncio.to_thread(seaweed.stop)
            await async_wait_for(lambda: rec.health.state == "degraded", 30)
            assert "cannot reach the S3 endpoint" in (rec.health.message or "")
            await asyncio.to_thread(seaweed.start)
            # Written before the trigger's next retry: it must fire once the listing works again.
            await _put(client, bucket, "during", b"2")
            await rec.wait_events(2, timeout=90)
            await async_wait_for(lambda: rec.health.state == "ok", 30)
            await _polls(trigger, 2)
        finally:
            await trigger.stop()
        assert [e.env["FIRELINK_S3_KEY"] for e in rec.events] == ["before", "during"]
        states = [h.state for h in rec.health_history]
        assert states[0] == "ok" and states[-1] == "ok" and "degraded" in states
        assert states.count("ok") == 2  # healthy once at start, once on recovery: no flapping
        reports = [(h.state, h.message) for h in rec.health_history]
        # One report per change, never one per retry (several retries happened meanwhile).
        assert all(a != b for a, b in itertools.pairwise(reports))
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    asyncio.run(main())


def test_wrong_credentials_degrade_with_a_clear_reason(
    seaweed: SeaweedServer, bucket: str, new_trigger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-" + SECRET_KEY)

    async def main() -> None:
        trigger, rec = new_trigger({"source": f"s3://{bucket}/", "endpoint_url": seaweed.endpoint, "poll": "200ms"})
        await trigger.start()
        try:
            await async_wait_for(lambda: rec.health.state == "degraded", 20)
        finally:
            await trigger.stop()
        assert "credentials rejected" in rec.health.message
        assert "SignatureDoesNotMatch" in rec.health.message
        assert rec.events == []

    asyncio.run(main())
    assert ACCESS_KEY  # the key id itself was right: only the secret was wrong


def test_missing_bucket_degrades_with_a_clear_reason(seaweed: SeaweedServer, new_trigger: Any) -> None:
    async def main() -> None:
        trigger, rec = new_trigger({"source": "s3://no-such-bucket-here/x/", "endpoint_url": seaweed.endpoint})
        await trigger.start()
        try:
            await async_wait_for(lambda: rec.health.state == "degraded", 20)
        finally:
            await trigger.stop()
        assert rec.health.message == f"bucket 'no-such-bucket-here' does not exist at {seaweed.endpoint}"

    asyncio.run(main())


def test_unreachable_endpoint_degrades_and_stop_is_prompt(new_trigger: Any) -> None:
    endpoint = f"http://127.0.0.1:{_free_ports(1)[0]}"

    async def main() -> None:
        trigger, rec = new_trigger({"source": "s3://some-bucket/", "endpoint_url": endpoint})
        await trigger.start()
        try:
            await async_wait_for(lambda: rec.health.state == "degraded", 20)
        finally:
            await asyncio.wait_for(trigger.stop(), 5)
        assert rec.health.message.startswith(f"cannot reach the S3 endpoint {endpoint}")
        assert trigger.next_due() is None

    asyncio.run(main())


def test_credentials_from_a_named_profile(
    seaweed: SeaweedServer, bucket: str, new_trigger: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[etl]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    client = s3_client(seaweed.endpoint)

    async def main() -> None:
        good, rec = new_trigger({"source": f"s3://{bucket}/", "endpoint_url": seaweed.endpoint, "poll": "200ms", "profile": "etl"})
        missing, missing_rec = new_trigger({"source": f"s3://{bucket}/", "endpoint_url": seaweed.endpoint, "profile": "nope"})
        await good.start()
        await missing.start()
        try:
            await _polls(good, 1)
            await _put(client, bucket, "x", b"1")
            await rec.wait_events(1)
            await async_wait_for(lambda: missing_rec.health.state == "degraded", 20)
        finally:
            await good.stop()
            await missing.stop()
        assert missing_rec.health.message == "AWS configuration problem: The config profile (nope) could not be found"

    asyncio.run(main())

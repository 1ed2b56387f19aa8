"""Notification mode against moto's server: S3 event notifications delivered to a real SQS endpoint."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from firelink_core.testing import EventRecorder, async_wait_for

from .conftest import MotoServer

pytestmark = pytest.mark.s3

_queue_numbers = itertools.count(1)


def _setup(moto: MotoServer, bucket: str = "media-bucket") -> str:
    """A bucket whose ObjectCreated events go to a fresh queue; returns the queue URL.

    Each test gets its own queue name: a cancelled long poll of an earlier test may still be
    waiting on its queue, and must not swallow this test's messages.
    """
    s3, sqs = moto.client("s3"), moto.client("sqs")
    url = sqs.create_queue(
        QueueName=f"s3-events-{next(_queue_numbers)}", Attributes={"VisibilityTimeout": "1"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return url


def _queue_empty(moto: MotoServer, url: str) -> bool:
    attrs = moto.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def _pending_bodies(moto: MotoServer, url: str) -> list[str]:
    got = moto.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [m["Body"] for m in got.get("Messages", [])]


def test_object_created_events_fire_with_decoded_keys(moto: MotoServer, new_trigger: Any) -> None:
    url = _setup(moto)
    assert any("s3:TestEvent" in body for body in _pending_bodies(moto, url))
    s3 = moto.client("s3")

    async def main() -> None:
        trigger, rec = new_trigger({
            "source": "s3://media-bucket/uploads/", "queue": url, "endpoint_url": moto.endpoint,
            "patterns": ["*.mp4", "*.txt"],
        })
        await trigger.start()
        try:
            put = await asyncio.to_thread(s3.put_object, Bucket="media-bucket", Key="uploads/my clip+1.mp4", Body=b"video")
            await asyncio.to_thread(s3.put_object, Bucket="media-bucket", Key="uploads/notes.doc", Body=b"no")
            await asyncio.to_thread(s3.put_object, Bucket="media-bucket", Key="other/x.mp4", Body=b"no")
            await rec.wait_events(1)
            await async_wait_for(lambda: _queue_empty(moto, url), 20, message="every message deleted")
        finally:
            await trigger.stop()
        assert len(rec.events) == 1
        event = rec.events[0]
        assert event.env == {
            "FIRELINK_S3_BUCKET": "media-bucket",
            "FIRELINK_S3_KEY": "uploads/my clip+1.mp4",
            "FIRELINK_S3_ETAG": put["ETag"].strip('"'),
            "FIRELINK_S3_SIZE": "5",
            "FIRELINK_S3_URI": "s3://media-bucket/uploads/my clip+1.mp4",
        }
        assert event.payload["event_name"].startswith("ObjectCreated:")
        assert "ListObjectsV2" not in trigger.requests_by_operation
        assert rec.health.state == "ok"
        assert [h.state for h in rec.health_history] == ["ok"]

    asyncio.run(main())


def _aws_record(key: str, version_id: str) -> dict[str, Any]:
    """A versioned bucket's ObjectCreated record, shaped as in AWS's documentation (moto's own
    notifications carry no versionId)."""
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-24T07:00:00.000Z", "eventName": "ObjectCreated:CompleteMultipartUpload",
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "firelink",
            "bucket": {"name": "media-bucket", "arn": "arn:aws:s3:::media-bucket"},
            "object": {"key": key, "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e-2",
                       "versionId": version_id, "sequencer": "0055AED6DCD90281E5"},
        },
    }


def test_versioned_events_pass_the_version_id_direct_or_through_sns(moto: MotoServer, new_trigger: Any) -> None:
    url = _setup(moto)
    sqs = moto.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [_aws_record("in/direct.bin", "v1")]}))
    sns_envelope = {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                    "Message": json.dumps({"Records": [_aws_record("in/via%20sns.bin", "v2")]})}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(sns_envelope))

    async def main() -> None:
        trigger, rec = new_trigger({"source": "s3://media-bucket/in/", "queue": url, "endpoint_url": moto.endpoint})
        await trigger.start()
        try:
            await rec.wait_events(2)
        finally:
            await trigger.stop()
        got = sorted((e.env["FIRELINK_S3_KEY"], e.env["FIRELINK_S3_VERSION_ID"], e.payload["version_id"]) for e in rec.events)
        assert got == [("in/direct.bin", "v1", "v1"), ("in/via sns.bin", "v2", "v2")]
        assert rec.events[0].env["FIRELINK_S3_ETAG"] == "d41d8cd98f00b204e9800998ecf8427e-2"

    asyncio.run(main())


def test_a_redelivered_message_runs_once(moto: MotoServer, new_trigger: Any) -> None:
    url = _setup(moto)
    sqs = moto.client("sqs")
    record = {
        "eventName": "ObjectCreated:Put", "eventTime": "2026-11-24T07:00:00.000Z",
        "s3": {"bucket": {"name": "media-bucket"}, "object": {"key": "a%2Fb+c.txt", "size": 3, "eTag": "abc", "sequencer": "0A1"}},
    }
    body = json.dumps({"Records": [record]})
    # SQS is at-least-once: the same notification twice, as a redelivery looks.
    sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody=body)

    async def main() -> None:
        trigger, rec = new_trigger({"source": "s3://media-bucket/", "queue": url, "endpoint_url": moto.endpoint})
        await trigger.start()
        try:
            await rec.wait_events(1)
            await async_wait_for(lambda: _queue_empty(moto, url), 20, message="every message deleted")
        finally:
            await trigger.stop()
        assert [e.env["FIRELINK_S3_KEY"] for e in rec.events] == ["a/b c.txt"]

    asyncio.run(main())


class _FailingOnce(EventRecorder):
    """A context whose first emit fails, as when firelink's storage cannot commit."""

    failures = 0

    async def emit(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures == 0:
            self.failures += 1
            raise OSError("database is locked")
        return await super().emit(*args, **kwargs)


def test_message_is_deleted_only_after_its_event_is_stored(moto: MotoServer) -> None:
    from firelink_s3.trigger import S3WatchTrigger

    url = _setup(moto)
    s3 = moto.client("s3")

    async def main() -> None:
        rec = _FailingOnce("jobB", "watch", {"source": "s3://media-bucket/", "queue": url, "endpoint_url": moto.endpoint})
        trigger = S3WatchTrigger(rec.spec, rec)
        await trigger.start()
        try:
            await asyncio.to_thread(s3.put_object, Bucket="media-bucket", Key="report.csv", Body=b"1")
            await async_wait_for(lambda: rec.health.state == "degraded", 20)
            assert "database is locked" in rec.health.message
            # The message was not deleted: it comes back after the visibility timeout.
            await rec.wait_events(1, timeout=30)
            await async_wait_for(lambda: rec.health.state == "ok", 20)
            await async_wait_for(lambda: _queue_empty(moto, url), 20, message="every message deleted")
        finally:
            await trigger.stop()
        assert [e.env["FIRELINK_S3_KEY"] for e in rec.events] == ["report.csv"]

    asyncio.run(main())


def test_missing_queue_degrades_with_a_clear_reason(moto: MotoServer, new_trigger: Any) -> None:
    url = f"{moto.endpoint}/123456789012/no-such-queue"

    async def main() -> None:
        trigger, rec = new_trigger({"source": "s3://media-bucket/", "queue": url, "endpoint_url": moto.endpoint})
        await trigger.start()
        try:
            await async_wait_for(lambda: rec.health.state == "degraded", 20)
        finally:
            await trigger.stop()
        assert rec.health.message == f"queue {url} does not exist"

    asyncio.run(main())


def test_a_message_caught_by_a_stopped_long_poll_is_handed_back_at_once(moto: MotoServer, new_trigger: Any) -> None:
    url = _setup(moto)
    sqs = moto.client("sqs")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "600"})
    options = {"source": "s3://media-bucket/", "queue": url, "endpoint_url": moto.endpoint}

    async def main() -> None:
        old, _ = new_trigger(options)
        await old.start()
        # Past the test event: the old trigger now sits in a long poll on an empty queue.
        await async_wait_for(lambda: old.polls >= 1 and _queue_empty(moto, url), 20)
        await old.stop()  # as a config reload does, in the same process
        record = {
            "eventName": "ObjectCreated:Put", "eventTime": "2026-11-24T07:00:00.000Z",
            "s3": {"bucket": {"name": "media-bucket"}, "object": {"key": "k.txt", "size": 1, "eTag": "e", "sequencer": "1"}},
        }
        # The abandoned long poll receives it; it must not stay hidden for 600 s.
        await asyncio.to_thread(sqs.send_message, QueueUrl=url, MessageBody=json.dumps({"Records": [record]}))
        new, rec = new_trigger(options)
        await new.start()
        try:
            await rec.wait_events(1, timeout=20)
        finally:
            await new.stop()
        assert [e.env["FIRELINK_S3_KEY"] for e in rec.events] == ["k.txt"]

    asyncio.run(main())

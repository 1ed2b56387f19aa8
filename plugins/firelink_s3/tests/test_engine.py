"""firelink-s3 through the real engine: a run per new object, its variables in the job's process, no doubles."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from firelink_core.plugin_api import RunState
from firelink_core.testing import EngineHarness, async_wait_for, run_engine

from .conftest import MotoServer, SeaweedServer, s3_client

pytestmark = pytest.mark.s3

# The job records the variables it was given, one file per run.
RECORD = (
    "import json, os, pathlib; "
    "env = {k: v for k, v in os.environ.items() if k.startswith('FIRELINK_')}; "
    "pathlib.Path(os.environ['OUT'], env['FIRELINK_RUN_ID'] + '.json').write_text(json.dumps(env))"
)


def _config(bucket: str, endpoint: str, out: Path) -> str:
    return f"""
jobs:
  - name: ingest
    trigger: watch
    source: "s3://{bucket}/in/"
    endpoint_url: "{endpoint}"
    poll: 200ms
    overlap: queue
    command: {json.dumps([sys.executable, "-c", RECORD])}
    env: {{OUT: "{out}"}}
"""


def _seen(out: Path) -> list[dict[str, str]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def test_one_run_per_new_object_with_its_variables_and_none_doubled_across_a_restart(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    client = s3_client(seaweed.endpoint)
    client.put_object(Bucket=bucket, Key="in/before-firelink.csv", Body=b"old")  # start_from: now
    out = tmp_path / "out"
    out.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    config = _config(bucket, seaweed.endpoint, out)

    async def first_life() -> None:
        async with run_engine(config, state) as h:
            # `firelink status` shows the trigger healthy once its baseline listing is done.
            await async_wait_for(lambda: _health(h) == "ok", 20)
            await asyncio.to_thread(client.put_object, Bucket=bucket, Key="in/a.csv", Body=b"aaa")
            await asyncio.to_thread(client.put_object, Bucket=bucket, Key="in/sub dir/b+1.csv", Body=b"bb")
            runs = await h.wait_runs("ingest", 2, timeout=30)
            assert all(r.state is RunState.SUCCESS for r in runs), [r.state for r in runs]

    asyncio.run(first_life())
    env_by_key = {e["FIRELINK_S3_KEY"]: e for e in _seen(out)}
    assert set(env_by_key) == {"in/a.csv", "in/sub dir/b+1.csv"}
    a = env_by_key["in/a.csv"]
    head = client.head_object(Bucket=bucket, Key="in/a.csv")
    assert a["FIRELINK_S3_BUCKET"] == bucket
    assert a["FIRELINK_S3_URI"] == f"s3://{bucket}/in/a.csv"
    assert a["FIRELINK_S3_ETAG"] == head["ETag"].strip('"')
    assert a["FIRELINK_S3_SIZE"] == "3"
    assert a["FIRELINK_TRIGGER"] == "watch"
    assert json.loads(a["FIRELINK_EVENT"])["key"] == "in/a.csv"

    client.put_object(Bucket=bucket, Key="in/c.csv", Body=b"c")  # while the daemon is down

    async def second_life() -> None:
        async with run_engine(config, state) as h:
            # The first listing after the restart sees a, b and c together: any double would
            # be queued in the same poll as c.
            await h.wait_runs("ingest", 3, timeout=30)
            await asyncio.to_thread(client.put_object, Bucket=bucket, Key="in/d.csv", Body=b"d")
            runs = await h.wait_runs("ingest", 4, timeout=30)
            assert len(runs) == 4
            assert all(r.state is RunState.SUCCESS for r in runs), [r.state for r in runs]

    asyncio.run(second_life())
    assert sorted(e["FIRELINK_S3_KEY"] for e in _seen(out)) == [
        "in/a.csv", "in/c.csv", "in/d.csv", "in/sub dir/b+1.csv",
    ]


def _health(h: EngineHarness) -> str:
    (job,) = h.engine.status()
    return job.health["ingest#0"].state


def test_notifications_run_once_even_when_sqs_redelivers_after_a_restart(moto: MotoServer, tmp_path: Path) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    url = sqs.create_queue(QueueName="engine-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="media")
    s3.put_bucket_notification_configuration(
        Bucket="media",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    out = tmp_path / "out"
    out.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    config = f"""
jobs:
  - name: ingest
    trigger: watch
    source: "s3://media/"
    queue: "{url}"
    endpoint_url: "{moto.endpoint}"
    overlap: queue
    command: {json.dumps([sys.executable, "-c", RECORD])}
    env: {{OUT: "{out}"}}
"""
    captured: list[str] = []

    async def first_life() -> None:
        async with run_engine(config, state) as h:
            await asyncio.to_thread(s3.put_object, Bucket="media", Key="clips/new clip+1.mp4", Body=b"v")
            await h.wait_runs("ingest", 1, timeout=30)
        # What SQS would redeliver if the delete had been lost: the same notification.
        (env,) = _seen(out)
        captured.append(env["FIRELINK_S3_KEY"])

    asyncio.run(first_life())
    assert captured == ["clips/new clip+1.mp4"]
    record = {
        "eventName": "ObjectCreated:Put", "eventTime": "2026-11-24T07:00:00.000Z",
        "s3": {"bucket": {"name": "media"}, "object": {"key": "late.mp4", "size": 1, "eTag": "e1", "sequencer": "01"}},
    }
    body = json.dumps({"Records": [record]})
    sqs.send_message(QueueUrl=url, MessageBody=body)

    async def second_life() -> None:
        async with run_engine(config, state) as h:
            await h.wait_runs("ingest", 2, timeout=30)
            sqs.send_message(QueueUrl=url, MessageBody=body)  # a redelivery of the same event
            await async_wait_for(lambda: _queue_empty(sqs, url), 30, message="the redelivery consumed")
            await h.engine.wait_idle(10)
            assert len(await h.runs("ingest")) == 2

    asyncio.run(second_life())
    assert sorted(e["FIRELINK_S3_KEY"] for e in _seen(out)) == ["clips/new clip+1.mp4", "late.mp4"]


def _queue_empty(sqs: Any, url: str) -> bool:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

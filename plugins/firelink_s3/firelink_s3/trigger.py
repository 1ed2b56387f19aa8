"""S3WatchTrigger: ``trigger: watch`` for ``s3://`` sources, by polling or from S3 -> SQS notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_plus, urlsplit

from firelink_core.plugin_api import Problem, Trigger, TriggerContext, TriggerSpec, format_duration

from ._cursor import ListCursor, OrderedCursor, S3Object, cursor_from_json
from ._options import CONFIG_SCHEMA, check_options, parse_options

__all__ = ["S3WatchTrigger"]

T = TypeVar("T")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
SQS_WAIT = 20
"""Seconds of one SQS long poll (the maximum SQS allows): an idle queue costs 3 requests a minute."""

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
    "InvalidClientTokenId", "InvalidToken", "TokenRefreshRequired", "AuthFailure",
    "UnrecognizedClientException", "InvalidSecurity", "RequestExpired",
}
_THROTTLE_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
    "TooManyRequestsException", "RequestThrottled", "RequestThrottledException", "ServiceUnavailable",
}
_QUEUE_MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
_SQS_REGION = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com", re.IGNORECASE)


class S3WatchTrigger(Trigger):
    """Fire the job for each new or changed object under ``s3://bucket/prefix``.

    Counters for benchmarks and ``firelink status``: ``requests`` (HTTP requests sent to S3
    and SQS, retries included), ``requests_by_operation``, ``polls`` (completed listings or
    long polls) and ``last_poll_requests`` (what the last completed poll cost).
    """

    type_name = "watch"
    schemes = ("s3",)
    description = "S3 bucket prefix: new or changed objects (polling, or S3 -> SQS notifications)"
    config_schema = CONFIG_SCHEMA

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        return check_options(options)

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        super().__init__(spec, context)
        self.settings = parse_options(self.options)
        self.requests = 0
        self.requests_by_operation: Counter[str] = Counter()
        self.polls = 0
        self.last_poll_requests = 0
        self._task: asyncio.Task[None] | None = None
        self._s3: Any = None
        self._sqs: Any = None
        self._cursor: ListCursor | OrderedCursor | None = None
        self._cursor_loaded = False
        self._problem: str | None = None
        self._healthy = False
        self._next_poll: float | None = None

    # lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._main(), name=f"firelink-s3 {self.spec.key}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._next_poll = None

    def next_due(self) -> datetime | None:
        if self._next_poll is None or self.settings.queue:
            return None
        return datetime.fromtimestamp(self._next_poll, timezone.utc)

    # the loop ------------------------------------------------------------
    async def _main(self) -> None:
        clock = self.context.clock
        failures = 0
        while True:
            began = clock.monotonic()
            try:
                if self._s3 is None:
                    self._s3, self._sqs = await _in_thread(self._make_clients)
                before = self.requests
                if self.settings.queue:
                    await self._receive_once()
                else:
                    await self._poll_once()
                self.polls += 1
                self.last_poll_requests = self.requests - before
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure degrades the trigger, never the daemon
                self._degraded(exc)
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2**failures)
                failures = min(failures + 1, 16)  # past the cap anyway; keeps 2**n small for months-long outages
                self._next_poll = clock.now() + delay
                await clock.sleep(delay)
                continue
            failures = 0
            self._recovered()
            if not self.settings.queue:
                wait = max(0.0, self.settings.poll - (clock.monotonic() - began))
                self._next_poll = clock.now() + wait
                await clock.sleep(wait)

    def _degraded(self, exc: BaseException) -> None:
        # The context logs each change of health once; retries with the same reason stay quiet.
        reason = self._describe(exc)
        if reason == self._problem:
            return
        if not _is_known(exc):
            self.context.logger.error("s3 watch %s: %s", self.settings.uri, reason, exc_info=exc)
        self._problem = reason
        self._healthy = False
        self.context.set_health("degraded", reason)

    def _recovered(self) -> None:
        if self._healthy:
            return
        self._problem = None
        self._healthy = True
        s = self.settings
        if s.queue:
            self.context.set_health("ok", f"reading S3 notifications from {s.queue}")
        else:
            mode = "after the last key, " if s.ordered_keys else ""
            self.context.set_health("ok", f"listing {s.uri} {mode}every {format_duration(s.poll)}")

    # clients -------------------------------------------------------------
    def _make_clients(self) -> tuple[Any, Any]:
        import boto3
        from botocore.config import Config

        s = self.settings
        session = boto3.Session(profile_name=s.profile) if s.profile else boto3.Session()
        region = s.region or session.region_name or _queue_region(s.queue) or "us-east-1"
        config = Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=SQS_WAIT + 10,
            # S3-compatible servers (MinIO, SeaweedFS) rarely resolve bucket subdomains.
            s3={"addressing_style": "path"} if s.endpoint_url else None,
        )
        s3 = session.client("s3", endpoint_url=s.endpoint_url, region_name=region, config=config)
        s3.meta.events.register("before-send", self._count)
        sqs = None
        if s.queue:
            sqs = session.client("sqs", endpoint_url=s.endpoint_url, region_name=region, config=config)
            sqs.meta.events.register("before-send", self._count)
        return s3, sqs

    def _count(self, event_name: str = "", **_kwargs: Any) -> None:
        # Runs in the worker thread; += on ints under the GIL is good enough for a counter.
        self.requests += 1
        self.requests_by_operation[event_name.rsplit(".", 1)[-1]] += 1

    def _describe(self, exc: BaseException) -> str:
        """One clear sentence for the log and ``firelink status``."""
        s = self.settings
        try:
            from botocore import exceptions as bex
        except ImportError:  # pragma: no cover - boto3 is a dependency
            return f"{type(exc).__name__}: {exc}"
        endpoint = s.endpoint_url or "AWS"
        if isinstance(exc, bex.NoCredentialsError):
            return "no AWS credentials found (boto3's chain: environment, ~/.aws, instance role)"
        if isinstance(exc, (bex.PartialCredentialsError, bex.ProfileNotFound, bex.NoRegionError)):
            return f"AWS configuration problem: {exc}"
        if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectionError, bex.ConnectTimeoutError)):
            return f"cannot reach the S3 endpoint {endpoint}: {exc}"
        if isinstance(exc, bex.ReadTimeoutError):
            return f"the S3 endpoint {endpoint} does not answer: {exc}"
        if isinstance(exc, bex.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            message = err.get("Message") or code
            op = getattr(exc, "operation_name", "request")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return f"bucket {s.bucket!r} does not exist at {endpoint}"
            if code in _CREDENTIAL_CODES:
                return f"credentials rejected ({code}): {message}"
            if code in ("AccessDenied", "AccessDeniedException") or status == 403:
                return f"access denied to {s.uri if op == 'ListObjectsV2' else s.queue} ({op}): {message}"
            if code in _THROTTLE_CODES or status in (429, 503):
                return f"throttled ({code or status}) on {op}: backing off"
            if code in _QUEUE_MISSING:
                return f"queue {s.queue} does not exist"
            return f"{op} failed: {code}: {message}"
        if isinstance(exc, bex.BotoCoreError):
            return f"{type(exc).__name__}: {exc}"
        return f"unexpected error: {type(exc).__name__}: {exc}"

    # polling -------------------------------------------------------------
    async def _load_cursor(self) -> ListCursor | OrderedCursor | None:
        if not self._cursor_loaded:
            raw = await self.context.get_checkpoint()
            self._cursor = cursor_from_json(raw, ordered=self.settings.ordered_keys)
            if raw is not None and self._cursor is None:
                self.context.logger.info(
                    "s3 watch %s: ordered_keys changed since the last run; starting over (start_from: %s)",
                    self.settings.uri, self.settings.start_from,
                )
            self._cursor_loaded = True
        return self._cursor

    async def _save_cursor(self, cursor: ListCursor | OrderedCursor) -> None:
        await self.context.set_checkpoint(cursor.to_json())
        self._cursor = cursor

    async def _poll_once(self) -> None:
        cursor = await self._load_cursor()
        # Nothing stored yet and start_from: now -> this listing is the baseline, it fires nothing.
        baseline = cursor is None and self.settings.start_from == "now"
        if self.settings.ordered_keys:
            assert cursor is None or isinstance(cursor, OrderedCursor)
            await self._poll_ordered(cursor or OrderedCursor(), baseline=baseline, first=cursor is None)
        else:
            assert cursor is None or isinstance(cursor, ListCursor)
            await self._poll_list(cursor or ListCursor(), baseline=baseline, first=cursor is None)

    async def _pages(self, **extra: Any) -> Any:
        """Yield each page of ListObjectsV2 over the prefix, as lists of ``S3Object``."""
        kwargs: dict[str, Any] = {"Bucket": self.settings.bucket, "Prefix": self.settings.prefix, **extra}
        while True:
            page = await _in_thread(self._s3.list_objects_v2, **kwargs)
            yield [_listed(item) for item in page.get("Contents", ())]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    async def _poll_list(self, cursor: ListCursor, *, baseline: bool, first: bool) -> None:
        newest: float | None = None
        kept: list[S3Object] = []
        async for page in self._pages():
            for obj in page:
                if newest is None or obj.last_modified > newest:
                    newest = obj.last_modified
                # Old objects are dropped page by page: a huge listing is never held.
                if cursor.horizon is None or obj.last_modified >= cursor.horizon:
                    kept.append(obj)
        fire, updated = cursor.scan(kept, lookback=self.settings.lookback, wanted=self.settings.wants, newest=newest)
        if not baseline:
            for obj in fire:
                await self._emit(obj)
        if first or updated != cursor:
            await self._save_cursor(updated)

    async def _poll_ordered(self, cursor: OrderedCursor, *, baseline: bool, first: bool) -> None:
        extra = {"StartAfter": cursor.after} if cursor.after else {}
        async for page in self._pages(**extra):
            if not page:
                continue
            if not baseline:
                for obj in page:
                    if self.settings.wants(obj.key):
                        await self._emit(obj)
            cursor = OrderedCursor(after=max(cursor.after or "", page[-1].key))
            await self._save_cursor(cursor)
            first = False
        if first:
            await self._save_cursor(cursor)

    # notifications ---------------------------------------------------------
    async def _receive_once(self) -> None:
        queue = self.settings.queue
        response = await _in_thread(
            self._sqs.receive_message, QueueUrl=queue, WaitTimeSeconds=SQS_WAIT, MaxNumberOfMessages=10,
            on_abandoned=self._release,
        )
        if self._problem is None:
            # Reachable: say so now rather than after the first (up to 20 s) long poll. After a
            # failure, recovery is declared only once the whole round (emit, delete) succeeded.
            self._recovered()
        done: list[dict[str, str]] = []
        for message in response.get("Messages", ()):
            try:
                records = _decode_notification(message.get("Body", ""))
            except ValueError as exc:
                self.context.logger.warning(
                    "s3 watch %s: deleting message %s from %s, not an S3 event notification (%s): %.200s",
                    self.settings.uri, message.get("MessageId"), queue, exc, message.get("Body", ""),
                )
                records = []
            for record in records:
                if record["bucket"] != self.settings.bucket or not self.settings.wants(record["key"]):
                    continue
                await self._emit(
                    S3Object(key=record["key"], etag=record["etag"], size=record["size"], last_modified=0.0),
                    version_id=record["version_id"],
                    dedupe_key=record["dedupe_key"],
                    extra={"event_name": record["event_name"], "event_time": record["event_time"]},
                )
            # Acknowledged only now: every event of this message is durably in firelink's queue.
            done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            result = await _in_thread(self._sqs.delete_message_batch, QueueUrl=queue, Entries=done)
            for failed in result.get("Failed", ()):
                # Redelivered later and dropped by the dedupe key: no double run.
                self.context.logger.warning(
                    "s3 watch %s: could not delete a message from %s (%s): it will be seen again",
                    self.settings.uri, queue, failed.get("Message") or failed.get("Code"),
                )

    def _release(self, response: Mapping[str, Any]) -> None:
        """Messages received by a long poll the trigger stopped waiting for (stop, reload):
        make them visible again at once instead of after the queue's visibility timeout."""
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(response.get("Messages", ()))
        ]
        if entries:
            self._sqs.change_message_visibility_batch(QueueUrl=self.settings.queue, Entries=entries)

    # emitting --------------------------------------------------------------
    async def _emit(
        self,
        obj: S3Object,
        *,
        version_id: str | None = None,
        dedupe_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        bucket = self.settings.bucket
        uri = f"s3://{bucket}/{obj.key}"
        env = {
            "FIRELINK_S3_BUCKET": bucket,
            "FIRELINK_S3_KEY": obj.key,
            "FIRELINK_S3_ETAG": obj.etag,
            "FIRELINK_S3_SIZE": str(obj.size),
            "FIRELINK_S3_URI": uri,
        }
        payload: dict[str, Any] = {"bucket": bucket, "key": obj.key, "etag": obj.etag, "size": obj.size, "uri": uri}
        if version_id:
            env["FIRELINK_S3_VERSION_ID"] = version_id
            payload["version_id"] = version_id
        if obj.last_modified:
            payload["last_modified"] = datetime.fromtimestamp(obj.last_modified, timezone.utc).isoformat()
        payload.update(extra or {})
        await self.context.emit(payload, env, dedupe_key=dedupe_key or obj.dedupe_key)


# --------------------------------------------------------------------------- helpers


async def _in_thread(
    fn: Callable[..., T], /, *args: Any, on_abandoned: Callable[[T], object] | None = None, **kwargs: Any
) -> T:
    """Run a blocking boto3 call in a daemon thread and await its result.

    Not ``asyncio.to_thread``: the default executor is joined when the loop shuts down, so a
    20 s SQS long poll in flight would hold the daemon's exit (and every test) for up to 20 s.
    When the awaiting task is cancelled, the call finishes on its own and its result goes to
    ``on_abandoned`` (in a worker thread) instead.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def abandon(value: Any) -> None:
        if on_abandoned is not None:
            with contextlib.suppress(Exception):
                on_abandoned(value)

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        elif ok and on_abandoned is not None:
            threading.Thread(target=abandon, args=(value,), name="firelink-s3", daemon=True).start()

    def work() -> None:
        try:
            outcome = (True, fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is gone: nobody is waiting any more
            if outcome[0]:
                abandon(outcome[1])

    threading.Thread(target=work, name="firelink-s3", daemon=True).start()
    return await future


def _is_known(exc: BaseException) -> bool:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (BotoCoreError, ClientError))


def _listed(item: Mapping[str, Any]) -> S3Object:
    return S3Object(
        key=item["Key"],
        etag=str(item.get("ETag", "")).strip('"'),
        size=int(item.get("Size", 0)),
        last_modified=item["LastModified"].timestamp(),
    )


def _queue_region(queue: str | None) -> str | None:
    if not queue:
        return None
    match = _SQS_REGION.match(urlsplit(queue).netloc)
    return match.group(1) if match else None


def _decode_notification(body: str) -> list[dict[str, Any]]:
    """The ObjectCreated records of one SQS message body (S3 direct, via SNS, or EventBridge).

    ``s3:TestEvent`` (sent when the notification is configured) and other event kinds give
    an empty list; anything that is not an S3 notification raises ``ValueError``.
    """
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return _decode_notification(data["Message"])  # S3 -> SNS -> SQS fan-out
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("Event") == "s3:TestEvent":
        return []
    if data.get("source") == "aws.s3" and isinstance(data.get("detail"), dict):
        if data.get("detail-type") != "Object Created":
            return []
        detail = data["detail"]
        obj = detail.get("object", {})
        key = str(obj.get("key", ""))  # EventBridge keys are not URL-encoded
        return [_record(detail.get("bucket", {}).get("name"), key, obj, data.get("time", ""))]
    records = data.get("Records")
    if not isinstance(records, list):
        raise ValueError("no Records")
    out = []
    for rec in records:
        if not isinstance(rec, dict) or not str(rec.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = rec.get("s3", {})
        obj = s3.get("object", {})
        key = unquote_plus(str(obj.get("key", "")))  # S3 URL-encodes keys, with + for spaces
        out.append(_record(s3.get("bucket", {}).get("name"), key, obj, rec.get("eventTime", ""), rec.get("eventName")))
    return out


def _record(bucket: Any, key: str, obj: Mapping[str, Any], event_time: str, event_name: Any = None) -> dict[str, Any]:
    etag = str(obj.get("eTag") or obj.get("etag") or "").strip('"')
    version_id = obj.get("versionId") or obj.get("version-id")
    sequencer = obj.get("sequencer")
    if version_id:
        dedupe = f"{key}@v:{version_id}"
    elif sequencer:
        dedupe = f"{key}@s:{sequencer}"  # unique per write of a key
    else:
        dedupe = f"{key}@{etag}@{event_time}"
    return {
        "bucket": bucket,
        "key": key,
        "etag": etag,
        "size": int(obj.get("size") or 0),
        "version_id": str(version_id) if version_id else None,
        "dedupe_key": dedupe,
        "event_name": str(event_name or "ObjectCreated"),
        "event_time": str(event_time),
    }


"""Throttling, which the real servers here never do: a FAKE endpoint answering every request 503 SlowDown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from firelink_core.testing import async_wait_for

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>1</RequestId></Error>"
)


class _SlowDown(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(SLOW_DOWN)))
        self.end_headers()
        self.wfile.write(SLOW_DOWN)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def throttling_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_throttling_degrades_once_and_backs_off(throttling_endpoint: str, new_trigger: Any) -> None:
    async def main() -> None:
        trigger, rec = new_trigger({"source": "s3://busy-bucket/in/", "endpoint_url": throttling_endpoint, "poll": "100ms"})
        await trigger.start()
        try:
            await async_wait_for(lambda: rec.health.state == "degraded", 20)
            first = trigger.requests
            # boto3's own retries gave up; after its backoff the trigger tries again.
            await async_wait_for(lambda: trigger.requests > first, 20)
        finally:
            await trigger.stop()
        assert rec.health.message == "throttled (SlowDown) on ListObjectsV2: backing off"
        assert [h.state for h in rec.health_history] == ["degraded"]
        assert trigger.polls == 0

    asyncio.run(main())

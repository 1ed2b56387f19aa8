"""The Celery worker of firelink attempts: ``celery -A firelink_celery.worker worker -Q <queue>``.

Configured from the environment: ``FIRELINK_BROKER`` (the broker URL, as the daemon's),
``FIRELINK_REDIS`` (the Redis of the attempts' output, default ``FIRELINK_BROKER``) and
``FIRELINK_WORKER_CONCURRENCY`` (attempts at once, default 16).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any

from ._app import make_app
from ._protocol import TASK_NAME
from ._remote import run_attempt

__all__ = ["app", "attempt"]

_broker = os.environ.get("FIRELINK_BROKER")
if not _broker:
    sys.exit("firelink_celery.worker: set FIRELINK_BROKER to the broker URL the daemon uses (redis://...)")
_redis = os.environ.get("FIRELINK_REDIS") or _broker

app = make_app(_broker, worker=True)


@app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def attempt(self: Any, payload: Mapping[str, Any]) -> str:
    """Run one attempt (a thread of the worker's pool, its own event loop); returns a word, never the payload."""
    return asyncio.run(run_attempt(payload, task_id=self.request.id, worker=self.request.hostname, redis_url=_redis))

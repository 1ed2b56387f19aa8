"""The Celery application both sides configure alike: late acknowledgement, one task at a time per slot."""

from __future__ import annotations

import os

from celery import Celery

__all__ = ["make_app"]


def make_app(broker: str, *, worker: bool = False) -> Celery:
    """A Celery app on ``broker``, set up so an attempt is never lost and never run twice.

    ``acks_late`` with ``reject_on_worker_lost``: a message is acknowledged only once its
    attempt ended, so a worker that dies first leaves it to be delivered again (the attempt's
    claim in Redis then stops the second delivery from running the command). A prefetch of
    one keeps a worker from holding messages it is not running yet. A worker reconnects to
    the broker for ever; the daemon's sends fail fast instead, and the executor retries them
    while saying that the broker is down.
    """
    app = Celery("firelink", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        # Attempts wait on child processes and sockets, not on the CPU: threads, so a worker runs
        # many at once, and a worker killed with SIGKILL takes every attempt's runner with it.
        worker_pool="threads",
        worker_concurrency=int(os.environ.get("FIRELINK_WORKER_CONCURRENCY", "16")),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None if worker else 0,
        broker_connection_timeout=None if worker else 3,
        # Worker events would carry each task's arguments: the job's env stays in the message.
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app

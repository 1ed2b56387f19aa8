"""Prometheus metrics of a running engine (``firelink run --metrics HOST:PORT``)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from .events import RunEvent
from .hookspecs import hookimpl
from .records import TERMINAL_STATES

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["EngineMetrics", "parse_address"]

DURATION_BUCKETS = (0.05, 0.25, 1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600)


def parse_address(text: str) -> tuple[str, int]:
    """``127.0.0.1:9464``, ``[::1]:9464`` or ``9464`` (loopback) -> (host, port); ValueError if bad."""
    text = text.strip()
    if text.isdigit():
        host, port_text = "127.0.0.1", text
    elif text.startswith("["):
        host, _, port_text = text[1:].partition("]:")
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9464, got {text!r}")
    if host != "localhost":
        ipaddress.ip_address(host)  # raises ValueError for a malformed address
    return host, int(port_text)


class EngineMetrics:
    """Counts run events through the ``firelink_run_event`` hook and reads the engine at scrape time.

    Registered as a plugin on the engine's own plugin manager, so it sees every event of
    every job; gauges are computed when Prometheus scrapes, so an idle daemon does no work.
    """

    def __init__(self, engine: Engine) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            GCCollector,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        self.engine = engine
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.started = Counter(
            "firelink_runs_started", "Attempts started, by job.", ["job"], registry=self.registry
        )
        self.finished = Counter(
            "firelink_runs_finished",
            "Runs that reached a final state, by job and outcome (success, failed, timed_out, skipped, upstream_failed, interrupted).",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter("firelink_run_retries", "Retries scheduled, by job.", ["job"], registry=self.registry)
        self.trips = Counter(
            "firelink_circuit_trips",
            "Circuit breakers opened: jobs paused by pause_after_failures, by job.",
            ["job"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "firelink_run_duration_seconds",
            "Duration of finished runs (first start to end, retries included), by job.",
            ["job"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.trigger_events = Counter(
            "firelink_trigger_events",
            "Trigger events turned into runs, by trigger type.",
            ["trigger"],
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(engine))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @hookimpl
    def firelink_run_event(self, event: RunEvent) -> None:
        run = event.run
        kind = event.kind
        if kind == "started":
            self.started.labels(run.job).inc()
        elif kind == "retry":
            self.retries.labels(run.job).inc()
        elif kind == "tripped":
            self.trips.labels(run.job).inc()
            return  # its run, failed, was counted by its own event
        elif kind in ("queued", "waiting") and event.detail is None and run.attempts == 0:
            # a run created from a trigger event (a waiting run released later carries a detail)
            self.trigger_events.labels(run.trigger or "dependency").inc()
        if kind != "recovered" and run.state in TERMINAL_STATES:
            self.finished.labels(run.job, str(run.state)).inc()
            duration = run.duration()
            if duration is not None:
                self.duration.labels(run.job).observe(duration)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve ``/metrics`` over HTTP on ``host:port`` in a thread; return the bound address."""
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _EngineCollector:
    """Gauges read from the engine when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        engine = self.engine
        statuses = engine.status()
        queue = GaugeMetricFamily("firelink_queue_depth", "Trigger events and runs waiting for an executor slot.")
        queue.add_metric([], float(engine.queue_depth()))
        yield queue
        running = GaugeMetricFamily("firelink_runs_running", "Runs running now, by job.", labels=["job"])
        waiting = GaugeMetricFamily(
            "firelink_runs_waiting", "Runs waiting on their dependencies, by job.", labels=["job"]
        )
        last_success = GaugeMetricFamily(
            "firelink_last_success_timestamp_seconds",
            "When the job's last successful run finished (absent before its first success).",
            labels=["job"],
        )
        next_due = GaugeMetricFamily(
            "firelink_next_due_timestamp_seconds", "When the job's triggers next fire, if known.", labels=["job"]
        )
        degraded = GaugeMetricFamily(
            "firelink_trigger_degraded", "1 while a trigger reports itself degraded.", labels=["job", "trigger"]
        )
        paused = GaugeMetricFamily(
            "firelink_job_paused", "1 while the job is paused (firelink pause, or its circuit breaker).", labels=["job"]
        )
        for status in statuses:
            paused.add_metric([status.name], 1.0 if status.paused is not None else 0.0)
            running.add_metric([status.name], float(status.running))
            waiting.add_metric([status.name], float(status.waiting))
            success = engine.last_success(status.name)
            if success is not None:
                last_success.add_metric([status.name], success)
            if status.next_due is not None:
                next_due.add_metric([status.name], status.next_due.timestamp())
            for key, health in status.health.items():
                degraded.add_metric([status.name, key], 1.0 if health.state == "degraded" else 0.0)
        yield from (running, waiting, last_success, next_due, degraded, paused)
        failures = CounterMetricFamily(
            "firelink_notifier_failures", "Notifier deliveries that failed or timed out."
        )
        failures.add_metric([], float(engine.notifier_failures))
        yield failures
        storage_errors = CounterMetricFamily(
            "firelink_storage_errors", "Engine steps (fires, dispatches, claims, run ends) that storage failed; each is retried."
        )
        storage_errors.add_metric([], float(engine.storage_errors))
        yield storage_errors
        pending = GaugeMetricFamily(
            "firelink_storage_retries_pending", "Engine steps waiting for storage to come back (0 when it is fine)."
        )
        pending.add_metric([], float(engine.storage_retries_pending))
        yield pending
        wakeups = CounterMetricFamily("firelink_timer_wakeups", "Times the engine's timer woke up.")
        wakeups.add_metric([], float(engine.wakeups))
        yield wakeups

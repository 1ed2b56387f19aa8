"""Chaos: cycles of start, load (manual triggers and a per-second cron), ``kill -9`` at a random
moment and restart, then the whole history checked for loss, doubles and stuck runs.

The short version runs in the suite; ``FIRELINK_CHAOS_CYCLES=100`` runs a long one, and
``FIRELINK_CHAOS_SEED`` replays a printed seed (see docs/engine.md, *Recovery after a crash*).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from firelink_core._control import ControlClient, ControlError, DaemonNotRunning
from firelink_core.testing import wait_for

from .conftest import FirelinkProcess

CYCLES = int(os.environ.get("FIRELINK_CHAOS_CYCLES", "6"))
SEED = int(os.environ.get("FIRELINK_CHAOS_SEED", str(random.SystemRandom().randrange(1 << 32))))
ACTIVE = {"queued", "waiting", "running", "retrying"}

CONFIG = """
defaults:
  log: {keep_runs: null}   # every run stays to be counted
jobs:
  - name: manual
    trigger: manual
    max_instances: 8
    overlap: queue
    command: ["sh", "-c", 'echo "$FIRELINK_RUN_ID" >> EXECS']
  - name: tick
    trigger: cron
    schedule: "* * * * * *"
    catchup: all
    command: ["sh", "-c", 'echo "$FIRELINK_RUN_ID" >> EXECS']
"""


class TriggerLoop(threading.Thread):
    """A client triggering ``manual`` as fast as the daemon answers; keeps the acknowledged run ids."""

    def __init__(self, state_dir: Path, acknowledged: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = ControlClient(state_dir, timeout=5.0)
        self.acknowledged = acknowledged
        self.halt = threading.Event()
        self.refused = 0

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                result = self.client.request("trigger", job="manual", env={})
            except (DaemonNotRunning, ControlError, OSError, ValueError):
                # Killed mid-request, or not up yet: unacknowledged, so it promises nothing.
                self.refused += 1
                self.halt.wait(0.01)
                continue
            self.acknowledged.append(result["run_id"])


def test_kill_9_cycles_lose_nothing_double_nothing_and_leave_nothing_stuck(daemon: FirelinkProcess) -> None:
    rng = random.Random(SEED)
    execs = daemon.root / "execs.txt"
    daemon.write_config(CONFIG.replace("EXECS", str(execs)))
    acknowledged: list[str] = []
    refused = 0
    for _ in range(CYCLES):
        daemon.start()
        loop = TriggerLoop(daemon.state_dir, acknowledged)
        loop.start()
        # The kill lands anywhere: during recovery, catch-up, a burst of triggers or a run.
        deadline = time.monotonic() + rng.uniform(0.2, 2.5)
        wait_for(lambda d=deadline: time.monotonic() >= d, 5, interval=0.01, message="the chosen moment")
        daemon.kill()
        loop.halt.set()
        loop.join(10)
        refused += loop.refused

    daemon.start()
    restarted = time.time()
    acked = set(acknowledged)

    progress: dict[str, object] = {}

    def settled() -> bool:
        runs = daemon.runs("--limit", "1000000")
        progress["missing"] = sorted(acked - {r["id"] for r in runs})[:10]
        progress["active"] = Counter(
            (r["job"], r["state"]) for r in runs if r["state"] in ACTIVE and datetime.fromisoformat(r["created_at"]).timestamp() < restarted
        )
        return not progress["missing"] and not progress["active"]

    try:
        wait_for(settled, 120, interval=0.2, message="every acknowledged run exists and earlier runs ended")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (seed {SEED}; {len(acked)} acknowledged; {progress})") from None
    stop = daemon.cli("stop", "--grace", "30s")
    assert stop.returncode == 0, f"{stop.stderr}\n{daemon.daemon_log()[-4000:]}"
    assert daemon.wait_exit() == 0, daemon.daemon_log()[-4000:]
    runs = daemon.runs("--limit", "1000000")  # from the database, the daemon stopped

    by_id = Counter(r["id"] for r in runs)
    manual = [r for r in runs if r["job"] == "manual"]
    ticks = [r for r in runs if r["job"] == "tick"]
    doubled_instants = {t: n for t, n in Counter(r["scheduled_for"] for r in ticks).items() if n > 1}
    stuck = [r for r in runs if r["state"] in ACTIVE]
    executions = Counter(execs.read_text().split()) if execs.exists() else Counter()
    print(
        f"\nchaos (seed {SEED}): {CYCLES} kill -9 cycles; {len(acked)} acknowledged triggers"
        f" ({refused} unanswered while down or killed); {len(manual)} manual runs, {len(ticks)} cron"
        f" runs; {sum(executions.values())} job executions, {sum(n > 1 for n in executions.values())}"
        f" rerun after a kill (recovery: retry); {len(stuck)} stuck"
    )
    assert len(acknowledged) == len(acked), "a run id was acknowledged twice"
    assert not [rid for rid in acked if by_id[rid] != 1], "an acknowledged trigger has no run, or several"
    assert not [rid for rid, n in by_id.items() if n > 1]
    assert not doubled_instants, f"scheduled instants run twice: {doubled_instants}"
    assert not stuck, f"runs stuck once idle: {stuck}"

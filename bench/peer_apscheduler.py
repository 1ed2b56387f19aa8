"""The peer: APScheduler 3 doing what the firelink daemon does, run in its own virtualenv.

Usage: python peer_apscheduler.py idle JOBS MONTH | latency OUTFILE | startup JOBS MONTH
It prints ``{"ready": true, "add_seconds": ...}`` once its jobs are stored and scheduled,
then serves until it is killed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time


def _far_cron(scheduler, count: int, month: int) -> None:
    from apscheduler.triggers.cron import CronTrigger

    for i in range(count):
        # The same schedules as the firelink config: the 1st of a month chosen by the bench
        # about half a year away, so never due within a benchmark window.
        scheduler.add_job(
            subprocess.run,
            CronTrigger(month=month, day=1, hour=(i // 60) % 24, minute=i % 60, second=0, timezone="UTC"),
            args=(["true"],), id=f"job{i}",
        )


def main() -> None:
    from apscheduler.events import EVENT_SCHEDULER_STARTED
    from apscheduler.schedulers.blocking import BlockingScheduler

    mode = sys.argv[1]
    scheduler = BlockingScheduler(timezone="UTC")
    started = time.perf_counter()
    if mode in ("idle", "startup"):
        _far_cron(scheduler, int(sys.argv[2]), int(sys.argv[3]))
    elif mode == "latency":
        out = sys.argv[2]
        scheduler.add_job(
            subprocess.run, "cron", second="*",
            args=(["sh", "-c", f"date +%s.%N >> {out}"],), id="tick", max_instances=10,
            misfire_grace_time=None,
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")

    def started_listener(_event) -> None:
        # Jobs added before start() are only stored (and their next fire times computed) by
        # start(), which then reports EVENT_SCHEDULER_STARTED: that is "ready with N jobs".
        print(json.dumps({"ready": True, "add_seconds": time.perf_counter() - started}), flush=True)

    scheduler.add_listener(started_listener, EVENT_SCHEDULER_STARTED)
    scheduler.start()


if __name__ == "__main__":
    main()

"""Measuring a process from outside through /proc: CPU time, wake-ups, memory, descriptors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcSample", "sample", "peak_rss_mb"]

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float
    """User + system time of all threads (/proc/PID/stat: counted in 10 ms ticks)."""
    run_seconds: float
    """Time on a CPU summed over the threads alive now, from /proc/PID/task/*/schedstat
    (nanoseconds: what resolves an idle daemon's few milliseconds)."""
    voluntary_switches: int
    """Voluntary context switches summed over every thread: each is a wake-up after a sleep."""
    involuntary_switches: int
    rss_mb: float
    hwm_mb: float
    fds: int
    threads: int

    def minus(self, earlier: ProcSample) -> ProcSample:
        return ProcSample(
            cpu_seconds=self.cpu_seconds - earlier.cpu_seconds,
            run_seconds=self.run_seconds - earlier.run_seconds,
            voluntary_switches=self.voluntary_switches - earlier.voluntary_switches,
            involuntary_switches=self.involuntary_switches - earlier.involuntary_switches,
            rss_mb=self.rss_mb,
            hwm_mb=self.hwm_mb,
            fds=self.fds,
            threads=self.threads,
        )


def _status_fields(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def sample(pid: int) -> ProcSample:
    """One reading of ``pid`` (raises FileNotFoundError once it has exited)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    after_comm = stat.rsplit(")", 1)[1].split()
    utime, stime = int(after_comm[11]), int(after_comm[12])
    voluntary = involuntary = threads = run_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = _status_fields(task / "status")
            run_ns += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:
            continue  # the thread ended between listing and reading
        voluntary += int(fields.get("voluntary_ctxt_switches", 0))
        involuntary += int(fields.get("nonvoluntary_ctxt_switches", 0))
        threads += 1
    status = _status_fields(Path(f"/proc/{pid}/status"))
    return ProcSample(
        cpu_seconds=(utime + stime) / _TICKS,
        run_seconds=run_ns / 1e9,
        voluntary_switches=voluntary,
        involuntary_switches=involuntary,
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        hwm_mb=int(status["VmHWM"].split()[0]) / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=threads,
    )


def peak_rss_mb(pid: int) -> float:
    return sample(pid).hwm_mb

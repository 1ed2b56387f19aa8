"""Runs the benchmarks, prints the table and writes the JSON file of results."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ._support import REPO, BenchError
from .benchmarks import BENCHMARKS, Result, Settings


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": mem_gb, "kernel": platform.release(),
            "python": platform.python_version(), "commit": commit,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _verdict(result: Result) -> str:
    if result.error:
        return "ERROR"
    return {True: "met", False: "MISSED", None: "-"}[result.met]


def table(results: list[Result]) -> str:
    headers = ("benchmark", "firelink", "peer / limit", "ratio", "target", "verdict")
    rows = [(r.name, r.error and f"could not run: {r.error}" or r.firelink, r.reference, r.ratio, r.target,
             _verdict(r)) for r in results]
    widths = [max(len(h), *(len(str(row[i])) for row in rows)) for i, h in enumerate(headers)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def markdown_table(results: list[Result]) -> str:
    lines = ["| benchmark | firelink | peer / limit | ratio | target | verdict |", "|---|---|---|---|---|---|"]
    for r in results:
        first = f"could not run: {r.error}" if r.error else r.firelink
        lines.append(f"| {r.name} | {first} | {r.reference} | {r.ratio} | {r.target} | {_verdict(r)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="each benchmark briefly (CI): reports, never fails on a missed target")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/results/<mode>-<time>.json)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each benchmark (default: per benchmark)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    settings = Settings(quick=args.quick, reps=args.reps)
    mode = "quick" if args.quick else "full"
    out = args.out or REPO / "bench" / "results" / f"{mode}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    started_at = time.time()
    # The repository is installed editable: record the commit at the start as well as at the
    # end, so a tree that changed during a long run is visible in the results.
    commit_at_start = machine()["commit"]
    results: list[Result] = []
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            result = BENCHMARKS[name](settings)
        except BenchError as exc:
            result = Result(name, "", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            result = Result(name, "", error=f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        result.seconds = round(time.perf_counter() - began, 1)
        print(f"[bench] {name}: {_verdict(result)} ({result.seconds:.0f}s) {result.firelink or result.error}",
              file=sys.stderr, flush=True)
        results.append(result)
    report = {
        "mode": mode, "started_at": dt.datetime.fromtimestamp(started_at, dt.timezone.utc).isoformat(),
        "seconds": round(time.time() - started_at, 1), "machine": machine(), "commit_at_start": commit_at_start,
        "command": "bench/run" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else ""),
        "results": [dataclasses.asdict(r) for r in results],
        "missed": [r.name for r in results if r.met is False],
        "errors": [r.name for r in results if r.error],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(results))
    if args.markdown:
        print()
        print(markdown_table(results))
    missed = report["missed"]
    print(f"\n{len(results)} benchmarks in {report['seconds']:.0f}s ({mode}); targets missed: "
          f"{', '.join(missed) or 'none'}; could not run: {', '.join(report['errors']) or 'none'}")
    print(f"results: {out}")
    # Missed targets are reported, not failed: the exit code says only whether all ran.
    return 1 if report["errors"] else 0

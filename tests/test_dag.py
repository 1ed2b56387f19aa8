"""Dependencies: the DAG module, and every branch of the DAG runner through a real engine."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from firelink_core._dag import Dag, DagError
from firelink_core.builtin import subprocess  # noqa: F401 - the built-ins these tests run: a broken one fails loudly
from firelink_core.records import RunState
from firelink_core.testing import async_wait_for, run_engine


def cfg(text: str) -> str:
    return textwrap.dedent(text)


async def state_is(h: Any, run_id: str, state: RunState) -> Any:
    run = await h.storage.get_run(run_id)
    return run if run is not None and run.state is state else None


# --------------------------------------------------------------------------- the module


def test_cycle_is_refused_with_its_path() -> None:
    with pytest.raises(DagError, match=r"dependency cycle \(upstream -> downstream\): (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"):
        Dag({"a": ["c"], "b": ["a"], "c": ["b"]})


def test_unknown_upstream_is_refused() -> None:
    with pytest.raises(DagError, match="'b' depends on unknown job 'ghost'"):
        Dag({"a": [], "b": ["ghost"]})


def test_plan_lists_upstream_subgraph_in_topological_order() -> None:
    dag = Dag({"r1": [], "r2": [], "mid": ["r1", "r2"], "t": ["mid"], "other": ["r1"], "lonely": []})
    plan = dag.plan("t")
    names = [name for name, _ups in plan]
    assert set(names) == {"r1", "r2", "mid", "t"}
    assert names.index("mid") > names.index("r1") and names.index("mid") > names.index("r2")
    assert names[-1] == "t"
    assert dict(plan)["mid"] == ("r1", "r2")
    assert sorted(dag.downstream["r1"]) == ["mid", "other"]
    assert dag.plan("lonely") == [("lonely", ())]


def test_ten_thousand_jobs_plan_correctly() -> None:
    edges: dict[str, list[str]] = {"j0": []}
    for i in range(1, 10_000):
        edges[f"j{i}"] = [f"j{i - 1}"] + ([f"j{i // 2}"] if i > 2 else [])
    dag = Dag(edges)
    plan = dag.plan("j9999")
    assert len(plan) == 10_000
    position = {name: i for i, (name, _ups) in enumerate(plan)}
    assert all(position[up] < position[name] for name, ups in plan for up in ups)


# --------------------------------------------------------------------------- the runner


def test_job_without_trigger_runs_once_when_all_upstreams_succeeded(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: a, trigger: manual, command: ["true"]}
          - {name: b, trigger: manual, command: ["true"]}
          - {name: c, command: ["true"], depends_on: [a, b]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            await h.run("a")
            await h.settle()
            assert await h.runs("c") == []
            b = await h.run("b")
            (c,) = await h.wait_runs("c", 1)
            assert c.state is RunState.SUCCESS and c.trigger == "depends_on"
            assert c.created_at >= b.finished_at
            await h.run("a")  # b has not run again since c started: no second c
            await h.settle()
            assert len(await h.runs("c")) == 1
            await h.run("b")
            runs = await h.wait_runs("c", 2)
            assert len(runs) == 2

    asyncio.run(scenario())


def test_triggered_run_waits_visibly_then_starts(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: up, trigger: manual, command: ["true"]}
          - {name: down, trigger: manual, command: ["true"], depends_on: [up]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            down = await h.trigger("down")
            waiting = await async_wait_for(lambda: state_is(h, down, RunState.WAITING))
            assert "up" in waiting.reason
            up = await h.run("up")
            run = await h.wait_run(down)
            assert run.state is RunState.SUCCESS and run.started_at >= up.finished_at
            # the condition is 'since this job's previous run': a new request waits again
            again = await h.trigger("down")
            await h.settle()
            assert await state_is(h, again, RunState.WAITING)

    asyncio.run(scenario())


def test_waiting_run_marked_upstream_failed(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: up, trigger: manual, command: ["sh", "-c", "exit 2"]}
          - {name: down, trigger: manual, command: ["true"], depends_on: [up]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            down = await h.trigger("down")
            await async_wait_for(lambda: state_is(h, down, RunState.WAITING))
            assert (await h.run("up")).state is RunState.FAILED
            run = await h.wait_run(down)
            assert run.state is RunState.UPSTREAM_FAILED and run.reason == "upstream up failed"
            assert run.attempts == 0

    asyncio.run(scenario())


def test_waiting_run_skipped_after_wait_timeout(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: up, trigger: manual, command: ["true"]}
          - {name: down, trigger: manual, command: ["true"], depends_on: [up], wait_timeout: 0.3s}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            run = await h.wait_run(await h.trigger("down"))
            assert run.state is RunState.SKIPPED and run.reason.startswith("wait_timeout")

    asyncio.run(scenario())


def test_all_done_runs_after_a_failed_upstream(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: up, trigger: manual, command: ["sh", "-c", "exit 1"]}
          - {name: cleanup, command: ["true"], depends_on: {jobs: [up], condition: all_done}}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            assert (await h.run("up")).state is RunState.FAILED
            (run,) = await h.wait_runs("cleanup", 1)
            assert run.state is RunState.SUCCESS

    asyncio.run(scenario())


def test_all_success_job_without_trigger_records_upstream_failed(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: up, trigger: manual, command: ["sh", "-c", "exit $CODE"]}
          - {name: down, command: ["true"], depends_on: [up]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            await h.run("up", {"CODE": "1"})
            (failed,) = await h.wait_runs("down", 1)
            assert failed.state is RunState.UPSTREAM_FAILED
            await h.run("up", {"CODE": "0"})
            runs = await h.wait_runs("down", 2)
            assert [r.state for r in runs] == [RunState.UPSTREAM_FAILED, RunState.SUCCESS]

    asyncio.run(scenario())


def test_one_failed_runs_only_when_an_upstream_failed(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: a, trigger: manual, command: ["sh", "-c", "exit $CODE"]}
          - {name: b, trigger: manual, command: ["sh", "-c", "exit $CODE"]}
          - {name: alert, command: ["true"], depends_on: {jobs: [a, b], condition: one_failed}}
          - name: report
            trigger: manual
            command: ["true"]
            depends_on: {jobs: [a, b], condition: one_failed}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            report = await h.trigger("report")
            await h.run("a", {"CODE": "0"})
            await h.run("b", {"CODE": "0"})
            await h.settle()
            assert await h.runs("alert") == []
            skipped = await h.wait_run(report)
            assert skipped.state is RunState.SKIPPED and "one_failed" in skipped.reason
            await h.run("b", {"CODE": "5"})
            (alert,) = await h.wait_runs("alert", 1)
            assert alert.state is RunState.SUCCESS

    asyncio.run(scenario())


def test_with_upstream_runs_subgraph_first_in_parallel_branches(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    wait_gate = f'while [ ! -e "{gate}" ]; do sleep 0.02; done'
    config = cfg(f"""
        jobs:
          - {{name: r1, trigger: manual, command: '{wait_gate}', shell: true}}
          - {{name: r2, trigger: manual, command: '{wait_gate}', shell: true}}
          - {{name: mid, command: ["true"], depends_on: [r1, r2]}}
          - {{name: target, trigger: manual, command: ["true"], depends_on: [mid]}}
          - {{name: unrelated, trigger: manual, command: ["true"]}}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            target_id = await h.trigger("target", with_upstream=True)

            async def both_roots_running() -> bool:
                runs = await h.runs()
                return sum(r.state is RunState.RUNNING for r in runs if r.job in ("r1", "r2")) == 2

            await async_wait_for(both_roots_running)  # independent branches run together
            assert await state_is(h, target_id, RunState.WAITING)
            gate.touch()
            target = await h.wait_run(target_id)
            assert target.state is RunState.SUCCESS
            await h.settle()
            runs = {r.job: r for r in await h.runs()}
            assert set(runs) == {"r1", "r2", "mid", "target"}  # one run each, nothing unrelated
            assert all(runs[j].parent_run == target_id for j in ("r1", "r2", "mid"))
            assert runs["mid"].started_at >= max(runs["r1"].finished_at, runs["r2"].finished_at)
            assert target.started_at >= runs["mid"].finished_at

    asyncio.run(scenario())


def test_with_upstream_failure_marks_downstream_of_the_request(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: root, trigger: manual, command: ["sh", "-c", "exit 3"]}
          - {name: mid, command: ["true"], depends_on: [root]}
          - {name: target, trigger: manual, command: ["true"], depends_on: [mid]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            target = await h.wait_run(await h.trigger("target", with_upstream=True))
            assert target.state is RunState.UPSTREAM_FAILED and "mid" in target.reason
            runs = {r.job: r.state for r in await h.runs()}
            assert runs == {
                "root": RunState.FAILED, "mid": RunState.UPSTREAM_FAILED, "target": RunState.UPSTREAM_FAILED,
            }

    asyncio.run(scenario())


def test_waiting_run_survives_a_restart(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: up, trigger: manual, command: ["true"]}
          - {name: down, trigger: manual, command: ["true"], depends_on: [up]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            down = await h.trigger("down")
            await async_wait_for(lambda: state_is(h, down, RunState.WAITING))
        async with run_engine(config, tmp_path) as h:
            assert h.engine.status()[1].state == "waiting"
            await h.run("up")
            assert (await h.wait_run(down)).state is RunState.SUCCESS

    asyncio.run(scenario())

"""A trigger's event may carry values of the job's declared parameters
(``TriggerContext.emit(params=...)``): read and checked like a request's, the defaults for
the rest, a bad one refused before anything is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from firelink_core.params import ParamError
from firelink_core.plugin_api import Trigger, TriggerContext, TriggerSpec
from firelink_core.records import RunState
from firelink_core.testing import plugins_with, run_engine

_started: dict[str, TriggerContext] = {}


class HeldTrigger(Trigger):
    """A trigger whose context the test keeps, to emit through it."""

    type_name = "held_double"
    config_schema: dict[str, Any] = {"type": "object", "properties": {}}

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        super().__init__(spec, context)
        _started[spec.job] = context

    async def start(self) -> None:
        self.context.set_health("ok")

    async def stop(self) -> None:
        return None


CONFIG = """
jobs:
  - name: deploy
    trigger: held_double
    params:
      ref: {type: string, default: main}
      count: {type: integer, default: 1}
      token: {type: string, default: none, secret: true}
    command: ["sh", "-c", "echo ref=$FIRELINK_PARAM_REF count=$FIRELINK_PARAM_COUNT"]
"""


def test_an_event_with_params_runs_with_them_and_the_defaults(tmp_path: Path) -> None:
    async def main() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(HeldTrigger)) as h:
            context = _started["deploy"]
            await context.emit({"x": 1}, params={"count": "3"})
            (run,) = await h.wait_runs("deploy", 1)
            assert run.state is RunState.SUCCESS
            assert run.options["params"] == {"ref": "main", "count": 3, "token": "***"}
            assert h.log_text(run).strip() == "ref=main count=3"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("given", "param", "words"),
    [
        ({"count": "many"}, "count", "an integer"),
        ({"nope": "x"}, "nope", "has no parameter"),
        ({"token": "x"}, "token", "secret"),
    ],
)
def test_a_bad_param_is_refused_before_anything_is_stored(
    tmp_path: Path, given: dict[str, str], param: str, words: str
) -> None:
    async def main() -> None:
        async with run_engine(CONFIG, tmp_path, plugins=plugins_with(HeldTrigger)) as h:
            with pytest.raises(ParamError, match=words) as info:
                await _started["deploy"].emit({}, params=given)
            assert info.value.param == param
            await h.settle()
            assert await h.runs() == [] and await h.storage.pending_events() == []

    asyncio.run(main())

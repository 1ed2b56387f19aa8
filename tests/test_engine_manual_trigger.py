"""The manual trigger against the TriggerContract every trigger plugin runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from firelink_core.abc import Trigger
from firelink_core.builtin.manual import ManualTrigger
from firelink_core.testing import TriggerContract, TriggerUnderTest


async def fire(trigger: Trigger) -> None:
    assert isinstance(trigger, ManualTrigger)
    await trigger.fire({"WHO": "tester"})


class TestManualTrigger(TriggerContract):
    @pytest.fixture
    def trigger_under_test(self, tmp_path: Path) -> TriggerUnderTest:
        return TriggerUnderTest(ManualTrigger, {}, fire, quiet_period=0.2)

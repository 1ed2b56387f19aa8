"""Schedule previews (engine/preview.py: next fires, DST notes) and run parameters
(params.py: reading values by type, defaults, substitution), on real configs."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from firelink_core.config import load_config
from firelink_core.engine.preview import (
    fires_between,
    job_zone,
    next_fires,
    parse_instant,
    schedule_triggers,
)
from firelink_core.model import Config, JobSpec
from firelink_core.params import (
    ParamError,
    command_with_params,
    resolve,
    run_params,
    stored_params,
)
from firelink_core.plugins import Plugins

UTC = timezone.utc


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[Config, Plugins]:
    path = tmp_path / "firelink.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            jobs:
              - name: fixed
                trigger: cron
                schedule: "30 2 * * *"
                timezone: Europe/Berlin
                command: ["true"]
              - name: wildcard
                trigger: cron
                schedule: "*/30 * * * *"
                timezone: Europe/Berlin
                command: ["true"]
              - name: both
                triggers:
                  - {trigger: cron, schedule: "0 12 * * *"}
                  - {trigger: interval, every: 8h}
                  - {trigger: manual}
                command: ["true"]
              - name: report
                trigger: manual
                params:
                  day: {type: string, pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
                  count: {type: integer, default: 3}
                  ratio: {type: number, default: 0.5}
                  loud: {type: boolean, default: false}
                  mode: {enum: [fast, slow], default: fast}
                  token: {type: string, secret: true, default: from-config}
                command: ["prog", "--day={params.day}", "{params.count}", "{not-a-placeholder}"]
            """
        )
    )
    return load_config(path, interpolate=False)


def _job(loaded: tuple[Config, Plugins], name: str) -> JobSpec:
    return loaded[0].job(name)


def _fires(
    loaded: tuple[Config, Plugins], name: str, start: str, end: str
) -> list[tuple[str, str | None]]:
    config, plugins = loaded
    job = config.job(name)
    zone = job_zone(job)
    found = fires_between(
        job,
        schedule_triggers(job, plugins, config),
        parse_instant(start, zone),
        parse_instant(end, zone),
    )
    return [(f.local.isoformat(), f.note) for f in found]


def test_a_fixed_time_in_the_skipped_hour_moves_to_the_jump_and_says_so(
    loaded: tuple[Config, Plugins],
) -> None:
    fires = _fires(loaded, "fixed", "2027-03-27", "2027-03-30")
    assert [local for local, _ in fires] == [
        "2027-03-27T02:30:00+01:00",
        "2027-03-28T03:00:00+02:00",
        "2027-03-29T02:30:00+02:00",
    ]
    assert fires[0][1] is None and fires[2][1] is None
    assert fires[1][1] == (
        "02:30 does not exist on 2027-03-28 (clocks jump from 02:00 to 03:00); runs at 03:00"
    )


def test_a_fixed_time_fires_once_on_the_fall_back_night_and_a_wildcard_twice(
    loaded: tuple[Config, Plugins],
) -> None:
    fixed = _fires(loaded, "fixed", "2026-10-25", "2026-10-26")
    assert len(fixed) == 1 and fixed[0][0] == "2026-10-25T02:30:00+02:00"
    assert "fires once, at the first (+02:00)" in (fixed[0][1] or "")
    wildcard = _fires(loaded, "wildcard", "2026-10-25T02:00", "2026-10-25T03:00+01:00")
    assert [local for local, _ in wildcard] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
    ]
    assert all("fires at both" in (note or "") for _, note in wildcard)
    # A wall time the schedule names itself right after the jump is not "moved".
    spring = _fires(loaded, "wildcard", "2027-03-28T01:30", "2027-03-28T03:31")
    assert spring == [
        ("2027-03-28T01:30:00+01:00", None),
        ("2027-03-28T03:00:00+02:00", None),
        ("2027-03-28T03:30:00+02:00", None),
    ]


def test_several_schedule_triggers_merge_in_order_and_others_are_left_out(
    loaded: tuple[Config, Plugins],
) -> None:
    config, plugins = loaded
    job = config.job("both")
    triggers = schedule_triggers(job, plugins, config)
    assert [t.spec.key for t in triggers] == ["both#0", "both#1"]
    fires = next_fires(job, triggers, datetime(2026, 1, 1, tzinfo=UTC), 4)
    assert [(f.at.hour, f.trigger) for f in fires] == [
        (8, "both#1"),
        (12, "both#0"),
        (16, "both#1"),
        (0, "both#1"),
    ]
    assert not schedule_triggers(config.job("report"), plugins, config)


def test_instants_are_read_in_the_zone_without_an_offset() -> None:
    berlin = job_zone(JobSpec(name="x", timezone="Europe/Berlin"))
    assert parse_instant("2027-03-26", berlin) == datetime(2027, 3, 25, 23, tzinfo=UTC)
    assert parse_instant("2027-03-26T08:00Z", berlin) == datetime(2027, 3, 26, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("last tuesday", berlin)


def test_params_are_read_by_type_with_defaults_and_masked_when_secret(
    loaded: tuple[Config, Plugins],
) -> None:
    job = _job(loaded, "report")
    values = resolve(
        job, {"day": "2026-11-03", "count": "7", "ratio": "1e-3", "loud": "YES", "token": "t0p"}
    )
    assert values == {
        "day": "2026-11-03",
        "count": 7,
        "ratio": 0.001,
        "loud": True,
        "mode": "fast",
        "token": "t0p",
    }
    assert stored_params(job, values)["token"] == "***"
    assert resolve(job, {"day": "2026-11-03"})["token"] == "from-config"
    for given, name, said in [
        ({"day": "2026-11-03", "colour": "red"}, "colour", "has no parameter 'colour'"),
        ({}, "day", "is required"),
        ({"day": "03/11/2026"}, "day", "matching"),
        ({"day": "2026-11-03", "count": "1.5"}, "count", "an integer"),
        ({"day": "2026-11-03", "ratio": "nan"}, "ratio", "a number"),
        ({"day": "2026-11-03", "mode": "medium"}, "mode", "one of fast, slow"),
        ({"day": "2026-11-03", "token": ""}, None, None),
    ]:
        if name is None:
            resolve(job, given)
            continue
        with pytest.raises(ParamError) as caught:
            resolve(job, given)
        assert caught.value.param == name and said in caught.value.message


def test_a_secret_value_is_never_in_an_error_message(
    loaded: tuple[Config, Plugins], tmp_path: Path
) -> None:
    job = _job(loaded, "report")
    secret = job.params["token"]
    from dataclasses import replace

    strict = replace(job, params={**job.params, "token": replace(secret, pattern="^x")})
    with pytest.raises(ParamError) as caught:
        resolve(strict, {"day": "2026-11-03", "token": "s3cret-value"})
    assert "s3cret-value" not in caught.value.message and "***" in caught.value.message


def test_placeholders_are_substituted_inside_their_item(loaded: tuple[Config, Plugins]) -> None:
    job = _job(loaded, "report")
    values = run_params(job, {"day": "2026-11-03 ; rm -rf /", "count": 2, "token": "***"}, {})
    command = command_with_params(job.command, values)
    assert command == ("prog", "--day=2026-11-03 ; rm -rf /", "2", "{not-a-placeholder}")
    assert values["token"] == "from-config"  # a masked value falls back to the default
    assert run_params(job, {"token": "***"}, {"FIRELINK_PARAM_TOKEN": "kept"})["token"] == "kept"

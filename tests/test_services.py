"""Plugin services (``firelink_register_services``): their config section is validated with
the config and shown in the schema; a first-party section without its package is a located
error naming the package; ``ControlServer.call`` serves a control request in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from firelink_core._control import ControlServer
from firelink_core.config import merged_schema, parse_config, validate_text
from firelink_core.plugin_api import hookimpl
from firelink_core.services import (
    Service,
    ServiceHost,
    missing_section_message,
    service_classes,
    with_section,
)
from firelink_core.testing import fresh_plugins, run_engine


class Echo(Service):
    """A service owning ``echo: {greeting: ...}``."""

    config_key: ClassVar[str] = "echo"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"greeting": {"type": "string"}},
        "additionalProperties": False,
    }


class EchoPlugin:
    @hookimpl
    def firelink_register_services(self) -> list[type[Service]]:
        return [Echo]


def test_a_first_party_section_without_its_package_names_the_package() -> None:
    errors = validate_text(
        "jobs: []\nhttp:\n  listen: 127.0.0.1:8080\n", "f.yaml", plugins=fresh_plugins()
    )
    assert [(e.line, e.message) for e in errors] == [
        (2, "the 'http' section needs the firelink-web package: pip install firelink-web")
    ]
    assert (
        missing_section_message("http")
        == "the 'http' section needs the firelink-web package: pip install firelink-web"
    )


def test_an_unknown_section_is_still_an_unknown_key() -> None:
    errors = validate_text("jobs: []\necho: {}\n", "f.yaml", plugins=fresh_plugins())
    assert len(errors) == 1 and "unknown top-level key 'echo'" in errors[0].message


def test_a_service_section_is_validated_kept_and_in_the_schema() -> None:
    plugins = fresh_plugins(EchoPlugin())
    assert service_classes(plugins) == {"echo": Echo}
    errors = validate_text(
        "jobs: []\necho: {greeting: 3, colour: red}\n", "f.yaml", plugins=plugins
    )
    messages = " | ".join(e.message for e in errors)
    assert len(errors) == 2 and "colour" in messages and all(e.line == 2 for e in errors)
    config, _ = parse_config("jobs: []\necho: {greeting: hi}\n", plugins=plugins)
    assert config.services == {"echo": {"greeting": "hi"}}
    assert with_section(config, "echo", {"greeting": "yo"}).services == {"echo": {"greeting": "yo"}}
    assert config.services == {"echo": {"greeting": "hi"}}  # unchanged
    assert merged_schema(plugins)["properties"]["echo"]["properties"] == {
        "greeting": {"type": "string"}
    }


class _Daemon:
    def __init__(self, engine: Any, state_dir: Path) -> None:
        self.engine = engine
        self.state_dir = state_dir
        self.stopping = False

    def info(self) -> dict[str, Any]:
        return {"pid": 1}


def test_control_requests_are_served_in_process(tmp_path: Path) -> None:
    yaml = "jobs:\n  - name: hello\n    command: 'true'\n"

    async def main() -> None:
        async with run_engine(yaml, tmp_path) as harness:
            engine = harness.engine
            server = ControlServer(_Daemon(engine, tmp_path), tmp_path / "unused.sock")
            host = ServiceHost(
                engine=engine,
                config=engine.config,
                plugins=engine.plugins,
                state_dir=tmp_path,
                info=lambda: {},
                call=server.call,
            )
            answer = await host.request("trigger", job="hello")
            run_id = answer["run_id"]
            await engine.wait_run(run_id)
            run = await host.request("run", run_id=run_id)
            assert run["run"]["state"] == "success"
            messages = [m async for m in host.stream("trigger", job="helo")]
            assert messages[0]["ok"] is False and messages[0]["error"]["code"] == "unknown-job"
            assert messages[0]["error"]["suggestions"] == ["hello"]
            bad = [m async for m in host.stream("runs", limit=0)]
            assert bad[0]["error"]["code"] == "bad-request"

    asyncio.run(main())

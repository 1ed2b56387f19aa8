"""Issue 20, the first hour: the traps a user coming from crontab meets, through the real CLI."""

from __future__ import annotations

import re
import subprocess

from .conftest import FirelinkProcess


def _validate(daemon: FirelinkProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return daemon.cli("validate", str(daemon.config), *args, state=False)


def test_validate_refuses_a_string_command_with_a_redirection(daemon: FirelinkProcess) -> None:
    daemon.write_config("""
        jobs:
          - name: backup
            trigger: manual
            command: "backup.sh >> /var/log/backup.log 2>&1"
          - name: plain
            trigger: manual
            command: "echo 'a > b' plain words"
    """)
    result = _validate(daemon)
    assert result.returncode == 1, result.stderr
    lines = [
        line for line in (result.stdout + result.stderr).splitlines() if "firelink.yaml:" in line
    ]
    assert len(lines) == 1, result.stderr  # the plain string (quoted '>' included) is allowed
    assert re.match(r".*firelink\.yaml:5:\d+: job 'backup': .*'>>'", lines[0]), lines[0]
    assert "shell: true" in lines[0] and "list" in lines[0]


def test_with_shell_true_the_redirection_works_end_to_end(daemon: FirelinkProcess) -> None:
    out = daemon.root / "backup.log"
    daemon.write_config(f"""
        jobs:
          - name: backup
            trigger: manual
            shell: true
            command: "echo saved >> {out} 2>&1"
    """)
    assert _validate(daemon).returncode == 0
    daemon.start()
    result = daemon.cli("trigger", "backup", "--wait")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "saved\n"

"""The daemon's state on disk under attack or damage: a shared database, a hijacked state
directory, a damaged database, a read-only state directory. Each through ``firelink run``."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from firelink_core.testing import wait_for

from .conftest import FIRELINK, FirelinkProcess

NOBODY = 65534

JOBS = """
jobs:
  - name: ok
    trigger: manual
    command: ["sh", "-c", "echo hello"]
  - name: slow
    trigger: manual
    command: ["sh", "-c", "echo started; while [ ! -e GATE ]; do sleep 0.05; done"]
"""


def write_jobs(daemon: FirelinkProcess, extra: str = "") -> None:
    daemon.write_config(extra + JOBS.replace("GATE", str(daemon.root / "gate")))


def run_once(daemon: FirelinkProcess, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``firelink run`` expected to refuse: it must exit by itself."""
    return subprocess.run(
        [FIRELINK, "run", str(daemon.config), "--state-dir", str(daemon.state_dir)],
        capture_output=True, text=True, env=daemon.env, cwd=daemon.root, timeout=timeout,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_history(daemon: FirelinkProcess) -> Path:
    """Run the daemon once with one successful run; return its database, the daemon stopped."""
    write_jobs(daemon)
    daemon.start()
    assert daemon.cli("trigger", "ok", "--wait").returncode == 0
    assert daemon.cli("stop").returncode == 0
    assert daemon.wait_exit() == 0
    db = daemon.state_dir / "firelink.db"
    assert db.stat().st_size > 0
    return db


# --------------------------------------------------------------------------- one daemon per database


def test_a_second_daemon_on_the_same_database_is_refused_and_the_first_keeps_its_runs(tmp_path: Path) -> None:
    shared = tmp_path / "shared.db"
    first = FirelinkProcess(tmp_path / "a")
    second = FirelinkProcess(tmp_path / "b")
    for d in (first, second):
        d.root.mkdir()
        write_jobs(d, f"storage: {{type: sqlite, path: {shared}}}\n")
    second.write_config(first.config.read_text())
    first.start()
    try:
        run_id = first.cli("trigger", "slow").stdout.strip()
        first.wait_run_state(run_id, {"running"})

        refused = run_once(second)
        assert refused.returncode == 1
        output = refused.stdout + refused.stderr
        assert f"{shared} is in use by another firelink daemon (pid {first.proc.pid})" in output
        assert "Traceback" not in output

        # The first daemon's run was neither taken for crashed nor run again.
        assert first.run_record(run_id)["state"] == "running"
        assert [r["id"] for r in first.runs("slow")] == [run_id]
        # The history still reads through the second config while the first daemon writes.
        offline = second.cli("runs", "--json", "-c", str(second.config))
        assert offline.returncode == 0, offline.stderr
        assert run_id in offline.stdout
    finally:
        (first.root / "gate").touch()
        first.cli("stop")
        first.wait_exit()
    # Once the first daemon is gone, the second may take the database over.
    second.start()
    assert second.cli("stop").returncode == 0


# --------------------------------------------------------------------------- hijacked state directory


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the daemon's user that a hijacker wants it to overwrite."""
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


def refused_untouched(daemon: FirelinkProcess, victim: Path, *expected: str) -> str:
    result = run_once(daemon)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for text in expected:
        assert text in output, output
    assert "Traceback" not in output
    assert victim.read_text() == "precious\n"
    assert not (daemon.state_dir / "firelink.sock").exists()
    return output


def test_a_state_dir_of_another_user_is_refused_and_its_links_never_followed(
    daemon: FirelinkProcess, victim: Path
) -> None:
    write_jobs(daemon)
    daemon.state_dir.mkdir(mode=0o700)
    (daemon.state_dir / "firelink.pid").symlink_to(victim)
    (daemon.state_dir / "logs").mkdir()
    os.chown(daemon.state_dir / "logs", NOBODY, NOBODY)
    os.chown(daemon.state_dir, NOBODY, NOBODY)
    refused_untouched(daemon, victim, f"refusing the state directory {daemon.state_dir}", "belongs to nobody")


def test_a_state_dir_others_may_write_in_is_refused(daemon: FirelinkProcess, victim: Path) -> None:
    write_jobs(daemon)
    daemon.state_dir.mkdir()
    os.chmod(daemon.state_dir, 0o777)
    refused_untouched(daemon, victim, "other users may write in it (mode 777)", "chmod 700")


@pytest.mark.parametrize("name", ["firelink.pid", "firelink.lock", "firelink.log", "firelink.db"])
def test_a_planted_link_in_an_own_state_dir_is_refused(daemon: FirelinkProcess, victim: Path, name: str) -> None:
    write_jobs(daemon)
    daemon.state_dir.mkdir(mode=0o700)
    (daemon.state_dir / name).symlink_to(victim)
    refused_untouched(daemon, victim, f"{name} is a symbolic link")


def test_a_job_log_folder_of_another_user_is_refused(daemon: FirelinkProcess, victim: Path) -> None:
    write_jobs(daemon)
    (daemon.state_dir / "logs" / "ok").mkdir(parents=True, mode=0o700)
    os.chmod(daemon.state_dir, 0o700)
    os.chown(daemon.state_dir / "logs" / "ok", NOBODY, NOBODY)
    refused_untouched(daemon, victim, "belongs to nobody")


def test_a_state_dir_under_a_folder_of_another_user_is_refused(tmp_path: Path, victim: Path) -> None:
    # The hijacker owns a folder above: it could swap the state directory for its own.
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    daemon = FirelinkProcess(tmp_path)
    daemon.state_dir = theirs / "state"
    write_jobs(daemon)
    daemon.state_dir.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    refused_untouched(daemon, victim, f"the folder {theirs} above it belongs to nobody")


def test_detach_refuses_a_hijacked_state_dir_too(daemon: FirelinkProcess, victim: Path) -> None:
    write_jobs(daemon)
    daemon.state_dir.mkdir(mode=0o700)
    (daemon.state_dir / "firelink.log").symlink_to(victim)
    result = daemon.cli("run", str(daemon.config), "--detach")
    if result.returncode == 0:  # leave no daemon behind when this fails
        daemon.cli("stop", "--grace", "0")
    assert result.returncode == 1
    assert "firelink.log is a symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"


# --------------------------------------------------------------------------- damaged database


def test_an_emptied_database_is_refused_never_recreated(daemon: FirelinkProcess) -> None:
    db = with_history(daemon)
    db.write_bytes(b"")
    result = run_once(daemon)
    assert result.returncode == 1
    assert f"the database {db} is empty (0 bytes)" in result.stderr
    assert "Restore it from a backup" in result.stderr
    assert "Traceback" not in result.stderr
    assert db.stat().st_size == 0  # left for the user to restore


def test_a_database_damaged_in_the_middle_is_refused_at_start(daemon: FirelinkProcess) -> None:
    db = with_history(daemon)
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 6 * page
    # Pages 3 to 5 (tables and indexes past the header page) become noise.
    data[2 * page : 5 * page] = bytes((i * 7919) % 251 for i in range(3 * page))
    db.write_bytes(bytes(data))
    before = digest(db)
    result = run_once(daemon)
    assert result.returncode == 1, result.stderr
    assert f"the database {db} is damaged" in result.stderr or "malformed" in result.stderr
    assert "Restore it from a backup" in result.stderr and ".recover" in result.stderr
    assert "Traceback" not in result.stderr
    assert digest(db) == before


def test_a_read_only_state_dir_is_a_clear_error(daemon: FirelinkProcess) -> None:
    with_history(daemon)
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount the state directory read-only")
    state = str(daemon.state_dir)
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind -o ro {state} {state}"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount read-only here (needs CAP_SYS_ADMIN): {probe.stderr.strip()}")
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f'mount --bind -o ro "$1" "$1" && exec {FIRELINK} run "$2" --state-dir "$1"', "sh", state, str(daemon.config)],
        capture_output=True, text=True, env=daemon.env, cwd=daemon.root, timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot write in the state directory {state}" in result.stderr
    assert "Read-only file system" in result.stderr
    assert "Traceback" not in result.stderr
    wait_for(lambda: daemon.cli("status").returncode == 3, 10, message="nothing answers")

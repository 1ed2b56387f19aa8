"""Where a config's state directory is, and whether it is safe for the daemon to write in."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path

from ._interpolation import expand

__all__ = [
    "DEFAULT_STATE_DIR",
    "DAEMON_FILES",
    "UnsafeStateDir",
    "check_state_dir",
    "default_state_dir",
    "resolve_state_dir",
    "config_state_dir",
]

DEFAULT_STATE_DIR = Path("~/.local/state/firelink")
"""The state directory of a config without ``state_dir`` (and of clients without a config)."""


def default_state_dir() -> Path:
    """``DEFAULT_STATE_DIR`` for the current user, absolute."""
    return DEFAULT_STATE_DIR.expanduser().resolve()


def resolve_state_dir(raw: str | None, config_dir: Path) -> Path:
    """A ``state_dir`` value (already interpolated) as an absolute path; ``None`` is the default."""
    if raw is None:
        return default_state_dir()
    return (config_dir / Path(raw).expanduser()).resolve()


def config_state_dir(config_path: Path) -> Path:
    """The state directory a config names, read without validating the rest of it.

    Clients only need to find the socket, so a config that was broken after the daemon
    started must not stop ``firelink status -c`` from working. ``${VAR}`` references are
    interpolated from the environment as the daemon does; an unset one stays as written.
    """
    import yaml

    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        data = None
    raw = data.get("state_dir") if isinstance(data, dict) else None
    if not isinstance(raw, str):
        raw = None
    return resolve_state_dir(None if raw is None else expand(raw), config_path.resolve().parent)


# --------------------------------------------------------------------------- ownership

DAEMON_FILES = (
    "firelink.lock", "firelink.pid", "firelink.sock", "firelink.log",
    "firelink.db", "firelink.db-wal", "firelink.db-shm", "firelink.db.lock",
)
"""The files the daemon writes in its state directory (besides ``logs/``)."""


class UnsafeStateDir(Exception):
    """The state directory, a folder above it or a file in it could be changed by another user."""


def check_state_dir(path: Path, *, files: Iterable[str] = DAEMON_FILES) -> None:
    """Refuse a state directory another user could hijack; raise ``UnsafeStateDir`` saying why.

    A daemon (often root) writes its pid, lock, socket, database and job logs there: if another
    user owns the folder, may write in it, or planted a symlink in it, those writes land where
    that user chooses. So the folder must belong to the daemon's user and be writable by no
    other user (its group may write when it is the user's own group); every folder above it
    must belong to that user or root and be writable by no other user either, unless sticky
    (``/tmp``); the daemon's files, and ``logs/`` with its job folders, must be real files
    and folders of that user, never symlinks.
    """
    uid = os.geteuid()
    path = Path(path)
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISLNK(st.st_mode):
        path = path.resolve()
        st = os.stat(path)
    _check_dir(path, st, uid, "the state directory")
    for parent in path.parents:
        pst = os.stat(parent)
        if pst.st_uid not in (0, uid):
            raise UnsafeStateDir(
                f"refusing the state directory {path}: the folder {parent} above it belongs to"
                f" {_user(pst.st_uid)}, who could replace it; use a state directory in folders of"
                f" {_user(uid)} or root"
            )
        if _writable_by_others(pst) and not pst.st_mode & stat.S_ISVTX:
            raise UnsafeStateDir(
                f"refusing the state directory {path}: the folder {parent} above it is writable by"
                f" other users (mode {stat.S_IMODE(pst.st_mode):03o}), who could replace it"
            )
    for name in files:
        _check_entry(path / name, uid, directory=False)
    logs = path / "logs"
    if _check_entry(logs, uid, directory=True):
        with os.scandir(logs) as entries:
            for entry in entries:
                _check_entry(Path(entry.path), uid, directory=None)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _check_dir(path: Path, st: os.stat_result, uid: int, what: str) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeStateDir(f"refusing {what} {path}: it is not a directory")
    if st.st_uid != uid:
        raise UnsafeStateDir(
            f"refusing {what} {path}: it belongs to {_user(st.st_uid)}, not to {_user(uid)} who runs"
            f" firelink; use a directory of your own (or `chown {_user(uid)} {path}` if it is yours)"
        )
    if _writable_by_others(st):
        raise UnsafeStateDir(
            f"refusing {what} {path}: other users may write in it (mode {stat.S_IMODE(st.st_mode):03o});"
            f" `chmod 700 {path}`"
        )


def _writable_by_others(st: os.stat_result) -> bool:
    # Group-writable is fine for the user's own group (umask 002 with private groups).
    return bool(st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != os.getegid()))


def _check_entry(path: Path, uid: int, *, directory: bool | None) -> bool:
    """Whether ``path`` exists, after refusing a symlink, another user's entry or a wrong kind."""
    st = _lstat(path)
    if st is None:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeStateDir(
            f"refusing the state directory {path.parent}: {path.name} is a symbolic link (to"
            f" {os.readlink(path)}); firelink never writes through links there. Remove it if you did not make it."
        )
    if directory is True or (directory is None and stat.S_ISDIR(st.st_mode)):
        _check_dir(path, st, uid, "the folder")
    elif st.st_uid != uid:
        raise UnsafeStateDir(f"refusing the state directory {path.parent}: {path.name} belongs to {_user(st.st_uid)}")
    return True


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"

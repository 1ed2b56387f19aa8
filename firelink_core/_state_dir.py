"""Where a config's state directory is: its ``state_dir`` relative to the config's folder."""

from __future__ import annotations

from pathlib import Path

from ._interpolation import expand

__all__ = ["DEFAULT_STATE_DIR", "default_state_dir", "resolve_state_dir", "config_state_dir"]

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

"""Suite-wide guard: the tests run against this checkout, never a stale installed copy."""

from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
_PACKAGES = {
    "firelink_core": ROOT / "firelink_core",
    "firelink_fs": ROOT / "plugins" / "firelink_fs" / "firelink_fs",
    "firelink_s3": ROOT / "plugins" / "firelink_s3" / "firelink_s3",
    "firelink_docker": ROOT / "plugins" / "firelink_docker" / "firelink_docker",
    "firelink_celery": ROOT / "plugins" / "firelink_celery" / "firelink_celery",
    "firelink_postgres": ROOT / "plugins" / "firelink_postgres" / "firelink_postgres",
    "firelink_web": ROOT / "plugins" / "firelink_web" / "firelink_web",
}


def pytest_configure(config) -> None:
    for name, expected in _PACKAGES.items():
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise SystemExit(f"{name} is not installed: run scripts/dev-install ({exc})") from None
        found = Path(module.__file__).resolve().parent
        if found != expected:
            raise SystemExit(
                f"{name} is imported from {found}, not from this checkout ({expected}):"
                " install it editable with scripts/dev-install"
            )

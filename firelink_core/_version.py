"""The installed firelink version, in one place for the application and plugin APIs."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("firelink-core")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

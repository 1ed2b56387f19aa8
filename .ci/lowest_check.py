"""Fails unless every direct runtime dependency is installed at its declared lower bound."""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
_REQ = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*>=\s*([0-9.]+)\s*(?:;\s*(.*))?$")
_PY_MARKER = re.compile(r"""^python_version\s*(>=|<|==)\s*['"]([0-9.]+)['"]$""")


def _release(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _applies(marker: str | None) -> bool:
    """The markers our pyproject files use: python_version comparisons and Windows-only."""
    if not marker:
        return True
    if marker.replace('"', "'") == "platform_system == 'Windows'":
        return sys.platform == "win32"
    match = _PY_MARKER.match(marker)
    if match is None:
        raise SystemExit(f"lowest_check: cannot evaluate the marker {marker!r}")
    op, wanted = match.groups()
    running, bound = sys.version_info[:2], _release(wanted)
    return {">=": running >= bound, "<": running < bound, "==": running == bound}[op]


def main() -> int:
    wrong = []
    for path in [ROOT / "pyproject.toml", *sorted(ROOT.glob("plugins/*/pyproject.toml"))]:
        with path.open("rb") as f:
            requirements = tomllib.load(f)["project"]["dependencies"]
        for req in requirements:
            match = _REQ.match(req)
            if match is None or not _applies(match.group(3)):
                continue  # unbounded, pinned first-party, or not for this platform
            name, bound = match.group(1), match.group(2)
            try:
                installed = version(name)
            except PackageNotFoundError:
                installed = "missing"
            status = "ok" if installed != "missing" and _release(installed) == _release(bound) else "NOT THE BOUND"
            dist = "firelink-core" if path.parent == ROOT else path.parent.name.replace("_", "-")
            print(f"{dist}: {name}>={bound}: installed {installed}  {status}")
            if status != "ok":
                wrong.append(name)
    if wrong:
        print(f"lowest_check: not at the lower bound: {', '.join(wrong)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

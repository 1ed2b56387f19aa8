"""The four distributions' metadata: first-party names, one version, licenses, typing markers."""

from __future__ import annotations

import re
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = [ROOT / "pyproject.toml", *sorted(ROOT.glob("plugins/*/pyproject.toml"))]
CORE = "firelink-core"
FIRST_PARTY = {CORE, "firelink-fs", "firelink-s3", "firelink-docker", "firelink-celery", "firelink-postgres", "firelink-web"}
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _load(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(data: dict[str, Any]) -> list[str]:
    """Every requirement a pyproject.toml names: runtime, extras and dependency groups."""
    project = data["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    for group in data.get("dependency-groups", {}).values():
        reqs += [r for r in group if isinstance(r, str)]
    return reqs


def _req_name(req: str) -> str:
    match = _NAME.match(req)
    assert match, f"cannot read a distribution name from {req!r}"
    return _normalize(match.group(1))


@pytest.fixture(scope="module")
def projects() -> dict[str, dict[str, Any]]:
    loaded = {_normalize(d["project"]["name"]): d for d in map(_load, PROJECTS)}
    assert set(loaded) == FIRST_PARTY
    return loaded


def test_first_party_dependencies_use_first_party_names(projects: dict[str, dict[str, Any]]) -> None:
    # "firelink" on the public index is an unrelated project: depending on it is a
    # dependency-confusion hazard, so every firelink-ish name must be one of ours.
    for name, data in projects.items():
        for req in _requirements(data):
            dep = _req_name(req)
            if dep.startswith("firelink"):
                assert dep in FIRST_PARTY, f"{name} depends on {req!r}, not a first-party distribution"


def test_one_version_for_the_four_distributions(projects: dict[str, dict[str, Any]]) -> None:
    versions = {name: data["project"]["version"] for name, data in projects.items()}
    assert len(set(versions.values())) == 1, versions
    core_version = versions[CORE]
    for name, data in projects.items():
        if name == CORE:
            continue
        pins = [r for r in data["project"]["dependencies"] if _req_name(r) == CORE]
        assert pins == [f"{CORE}=={core_version}"], f"{name} must pin {CORE}=={core_version}"


def test_the_installed_core_is_this_version(projects: dict[str, dict[str, Any]]) -> None:
    # A stale editable install (made before a version bump or the rename) reports another.
    for name, data in projects.items():
        assert installed_version(name) == data["project"]["version"], f"reinstall {name}: scripts/dev-install"


def test_every_distribution_declares_license_readme_pythons_and_urls(
    projects: dict[str, dict[str, Any]],
) -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0" in license_text
    for path in PROJECTS:
        project = _load(path)["project"]
        name = project["name"]
        assert project["license"] == "Apache-2.0", name
        for pattern in project["license-files"]:
            files = list(path.parent.glob(pattern))
            assert files, f"{name}: license-files {pattern!r} matches nothing"
            assert all(f.read_text(encoding="utf-8") == license_text for f in files), name
        assert (path.parent / project["readme"]).is_file(), name
        assert project["requires-python"] == f">={PYTHONS[0]}", name
        declared = {c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")}
        assert declared == set(PYTHONS), name
        assert "Repository" in project["urls"], name


def test_every_package_ships_py_typed() -> None:
    for path in PROJECTS:
        setuptools = _load(path)["tool"]["setuptools"]
        packages = setuptools["packages"]
        listed = packages if isinstance(packages, list) else packages["find"]["include"]
        top_level = [p for p in listed if "." not in p and "*" not in p]
        assert top_level, path
        for package in top_level:
            assert (path.parent / package / "py.typed").is_file(), f"{package}/py.typed is missing"
            assert "py.typed" in setuptools["package-data"].get(package, []), f"{package}: py.typed not package data"


def test_test_tools_are_a_dependency_group_not_an_extra(projects: dict[str, dict[str, Any]]) -> None:
    core = projects[CORE]
    extras = core["project"].get("optional-dependencies", {})
    assert "test" not in extras
    assert [_req_name(r) for r in extras["testing"]] == ["pytest"]
    assert "pytest" in {_req_name(r) for r in core["dependency-groups"]["test"]}


def test_install_instructions_name_the_published_distributions() -> None:
    # `pip install firelink ...`, or "firelink>=0.1" in a dependency list
    bare = re.compile(r"""pip install (?:[^\n`]* )?firelink(?![-\w])|["']firelink(?:\[\w+\])? *[<>=~!;]""")
    texts = [ROOT / "README.md", ROOT / ".pre-commit-hooks.yaml", *ROOT.glob("docs/*.md"), *ROOT.glob("plugins/*/README.md")]
    for path in texts:
        for line in path.read_text(encoding="utf-8").splitlines():
            assert not bare.search(line), f"{path.relative_to(ROOT)}: {line.strip()!r} installs the unrelated 'firelink'"


def test_the_changelog_has_the_current_version(projects: dict[str, dict[str, Any]]) -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {projects[CORE]['project']['version']}" in text

"""What pyproject.toml promises: every runtime dependency is used by voxgate."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _distribution(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _import_names(distribution: str) -> set[str]:
    """The top-level modules ``distribution`` provides (its own name if not installed)."""
    names = {
        top
        for top, distributions in packages_distributions().items()
        if distribution in {_distribution(name) for name in distributions}
    }
    return names or {distribution.replace("-", "_")}


def _imported_by_voxgate() -> set[str]:
    """Top-level names of every module that voxgate/ imports, anywhere in a module."""
    imported: set[str] = set()
    for path in (ROOT / "voxgate").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    return imported


RUNTIME = [_distribution(requirement) for requirement in PYPROJECT["project"]["dependencies"]]


def test_the_distribution_names_are_read_right() -> None:
    assert _distribution("uvloop>=0.19,<1; sys_platform == 'linux'") == "uvloop"
    assert _distribution("webrtcvad_wheels>=2") == "webrtcvad-wheels"
    assert _import_names("pytest") >= {"pytest", "_pytest"}  # installed: what it provides
    assert _import_names("webrtcvad-nowhere") == {"webrtcvad_nowhere"}  # not installed
    assert "numpy" in RUNTIME


@pytest.mark.parametrize("distribution", RUNTIME)
def test_every_runtime_dependency_is_imported_by_voxgate(distribution: str) -> None:
    assert _import_names(distribution) & _imported_by_voxgate(), (
        f"{distribution} is a runtime dependency that voxgate never imports: "
        "move it to an extra until a feature uses it"
    )


def test_the_g711_oracles_are_installed_with_the_tests() -> None:
    """libsndfile (a run-time dependency: the bots' WAV files) and FFmpeg (tests only)."""
    test_extra = {
        _distribution(requirement)
        for requirement in PYPROJECT["project"]["optional-dependencies"]["test"]
    }
    assert "av" in test_extra
    assert "soundfile" in {_distribution(r) for r in PYPROJECT["project"]["dependencies"]}

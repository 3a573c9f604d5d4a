"""Test-wide set-up.

- tests/support holds the peers the end-to-end tests talk to (the carrier
  emulator, the REST stand-ins, a scripted bot): it goes on sys.path.
- Hypothesis runs without its per-example deadline (timing is for the benchmarks).
- Each test runs in its own temporary directory (the default store lives under ./var/).
- CPython's ``audioop`` (deprecated in 3.11, gone in 3.13, where the
  ``audioop-lts`` port provides the same module) is the G.711 oracle.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent / "support"))

# Fixtures from tests/support: a throwaway PostgreSQL server with a fresh database per
# test, and a store of each backend in turn.
pytest_plugins = ["postgres", "stores"]

# The machines are shared and noisy: an example that is slow once is not a bug.
settings.register_profile("voxgate", deadline=None)
settings.load_profile("voxgate")


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in a directory of its own, so the default store (``./var/voxgate.db``)
    of every bridge a test starts, in-process or as ``voxgate serve``, is that test's: no
    number route or call of one test reaches another."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("audioop")

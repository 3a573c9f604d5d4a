"""Test-wide set-up.

- tests/support holds the peers the end-to-end tests talk to (the carrier
  emulator, the REST stand-ins, a scripted bot): it goes on sys.path.
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

sys.path.insert(0, str(Path(__file__).parent / "support"))


@pytest.fixture(scope="session")
def audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("audioop")

"""Oracles for the codec tests.

CPython's ``audioop`` (deprecated in 3.11, gone in 3.13, where the
``audioop-lts`` port provides the same module) is the reference for G.711.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("audioop")

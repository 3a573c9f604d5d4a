"""A store of each backend in turn, for the tests of the store and of what uses it.

- ``store_url`` (parametrized): a SQLite file in the test's ``tmp_path``, then a fresh
  PostgreSQL database (``postgres_url``, tests/support/postgres.py).
- ``with_store``: runs ``scenario(store)`` in a new event loop with that store opened,
  and closes it after.

Registered for every test by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from voxgate.bridge.store import Store, open_store

Scenario = Callable[[Store], Awaitable[None]]
WithStore = Callable[[Scenario], None]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file in ``tmp_path`` (an absolute path: four slashes), or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def with_store(store_url: str) -> WithStore:
    """Run ``scenario(store)`` in a new event loop with the store opened, then closed."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            store = open_store(store_url)
            await store.open()
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())

    return run

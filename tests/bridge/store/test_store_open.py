"""open_store (voxgate/bridge/store/__init__.py): the backend from the URL, and a clear
ConfigError, never echoing a password, for a URL it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxgate.bridge.store import SqliteStore, open_store
from voxgate.bridge.store.postgres import PostgresStore
from voxgate.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/voxgate.db", Path("var/voxgate.db")),  # relative to the working dir
        ("sqlite:////var/lib/voxgate/store.db", Path("/var/lib/voxgate/store.db")),
        ("sqlite:///data%20dir/x.db", Path("data dir/x.db")),
        ("SQLite:///x.db", Path("x.db")),
    ],
)
def test_a_sqlite_url_names_a_file(url: str, path: Path) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert (store.path, store.url) == (path, url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://vox:pw-Secret-1@db.example:5432/voxgate", "postgresql://***@db.example:5432/voxgate"),
        ("postgres://db.example/voxgate?sslmode=require", "postgres://db.example/voxgate?sslmode=require"),
        ("postgresql:///voxgate?host=/run/postgresql&password=pw-Secret-1", "postgresql:///voxgate?host=/run/postgresql&password=***"),
    ],
)  # fmt: skip
def test_a_postgresql_url_is_kept_without_its_password(url: str, shown: str) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.url == shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://root:pw-Secret-1@db/voxgate", "expected sqlite:///"),
        ("", "expected sqlite:///"),
        ("/var/voxgate.db", "expected sqlite:///"),
        ("sqlite://host/voxgate.db", "no host, query or fragment"),
        ("sqlite:///", "no host, query or fragment"),
        ("sqlite:///x.db?mode=ro", "no host, query or fragment"),
        ("postgresql://u:pw-Secret-1@db/voxgate?bogus=1", "not a valid PostgreSQL URL"),
        ("postgresql://u:pw-Secret%zz@db/voxgate", 'invalid percent-encoded token: "\\*\\*\\*"'),
        ("postgresql://u:pw-Secret-1@[db/voxgate", "IPv6 host address"),
        ("postgresql://u:pw-Secret-1@db/voxgate?password", "missing key/value separator"),
    ],
)
def test_an_unusable_url_is_a_config_error_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        open_store(url)
    assert "pw-Secret-1" not in str(caught.value)

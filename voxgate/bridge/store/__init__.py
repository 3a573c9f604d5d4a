"""The control plane's storage: one :class:`Store` interface, two backends.

``open_store(url)`` picks the backend from the URL (the store is not yet open: ``await
store.open()`` connects and migrates the schema):

- ``sqlite:///var/voxgate.db``: a SQLite file, the path relative to the working directory
  (three slashes, then the path); ``sqlite:////var/lib/voxgate.db``: an absolute path
  (the fourth slash is the path's own). Percent-escapes in the path are decoded. For one
  node.
- ``postgresql://user:password@host:port/dbname?sslmode=...`` (or ``postgres://``): libpq's
  URL syntax; several nodes share the database.

``store.url`` is the URL with its password removed, for logs.
"""

from __future__ import annotations

from urllib.parse import unquote

from voxgate.bridge.store.api import Store
from voxgate.bridge.store.feed import Feed
from voxgate.bridge.store.records import (
    CALL_STATUSES,
    FINAL_STATUSES,
    ApiKey,
    CallFilter,
    CallRecord,
    CallStatus,
    Delivery,
    DeliveryStatus,
    Direction,
    IdempotentResponse,
    KeyMode,
    NumberRoute,
    Page,
    Subscription,
)
from voxgate.bridge.store.sqlite import SqliteStore
from voxgate.errors import ConfigError
from voxgate.redact import redact_url

__all__ = [
    "CALL_STATUSES",
    "FINAL_STATUSES",
    "ApiKey",
    "CallFilter",
    "CallRecord",
    "CallStatus",
    "Delivery",
    "DeliveryStatus",
    "Direction",
    "Feed",
    "IdempotentResponse",
    "KeyMode",
    "NumberRoute",
    "Page",
    "SqliteStore",
    "Store",
    "Subscription",
    "open_store",
]

_SQLITE = "sqlite:///"


def open_store(url: str) -> Store:
    """The store ``url`` names (see the module's documentation); ConfigError if none."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        return SqliteStore(_sqlite_path(url), url=redact_url(url))
    if scheme in ("postgresql", "postgres"):
        # Imported here: psycopg costs a SQLite-only node a tenth of a second at start-up.
        from voxgate.bridge.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(url)
    raise ConfigError(
        f"store URL {redact_url(url)!r}: expected sqlite:///path/to/file.db"
        " or postgresql://user:password@host:port/dbname"
    )


def _sqlite_path(url: str) -> str:
    path = url[len(_SQLITE) :] if url[: len(_SQLITE)].lower() == _SQLITE else ""
    if not path or "?" in path or "#" in path:
        raise ConfigError(
            f"store URL {redact_url(url)!r}: a SQLite URL is sqlite:///relative/path.db"
            " or sqlite:////absolute/path.db, with no host, query or fragment"
        )
    return unquote(path)

"""The store's tables, as numbered migrations shared by both backends.

Theory of operation. A database records every migration applied to it in
``schema_migrations``. Opening a store, the backend (under a lock: SQLite's write lock,
PostgreSQL's advisory lock, so two nodes starting together migrate once) reads the highest
version recorded and asks :func:`plan` what to run:

- the database is newer than this code: :class:`ConfigError` (an older voxgate would
  misread it; upgrade voxgate or restore the older database);
- otherwise the migrations after that version, in order. The backend runs them and records
  each one's row in ``schema_migrations`` in the same transaction, so a crash leaves the
  database at the version it had or at the newest, never in between (both SQLite and
  PostgreSQL roll back DDL).

A migration is never edited once released: a change is a new migration.

The SQL is the portable subset (TEXT, INTEGER, BIGINT, DOUBLE PRECISION; JSON as TEXT).
The one difference is the insertion counter ``seq``: SQLite's rowid
(``INTEGER PRIMARY KEY AUTOINCREMENT``, never reused) and PostgreSQL's identity column;
:class:`PerDialect` holds both side by side. Tables listed newest first have ``seq`` as
their primary key and their string ``id`` as a unique key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from voxgate.errors import ConfigError

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True)
class PerDialect:
    sqlite: str
    postgres: str

    def pick(self, dialect: Dialect) -> str:
        return self.sqlite if dialect == "sqlite" else self.postgres


Statement = str | PerDialect


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[Statement, ...]

    def sql(self, dialect: Dialect) -> list[str]:
        return [s if isinstance(s, str) else s.pick(dialect) for s in self.statements]

    def record(self, applied_at: float) -> dict[str, Any]:
        """The parameters of :data:`RECORD_VERSION` for this migration."""
        return {"version": self.version, "description": self.description, "applied_at": applied_at}


def _listed(name: str, columns: str) -> PerDialect:
    """CREATE TABLE for a table paged newest first: ``seq`` first, then ``columns``."""
    return PerDialect(
        sqlite=f"CREATE TABLE {name} (seq INTEGER PRIMARY KEY AUTOINCREMENT, {columns})",
        postgres=(
            f"CREATE TABLE {name} (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {columns})"
        ),
    )


_REAL: Final = "DOUBLE PRECISION"

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "settings, API keys, calls, numbers, webhook subscriptions, outbox, idempotency",
        (
            "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE api_keys (id TEXT PRIMARY KEY, mode TEXT NOT NULL,"
            " prefix TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,"
            f" created_at {_REAL} NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)",
            _listed(
                "calls",
                "id TEXT NOT NULL UNIQUE, mode TEXT NOT NULL, direction TEXT NOT NULL,"
                " status TEXT NOT NULL, from_number TEXT NOT NULL, to_number TEXT NOT NULL,"
                f" created_at {_REAL} NOT NULL, owner TEXT NOT NULL DEFAULT '',"
                " data TEXT NOT NULL DEFAULT '{}'",
            ),
            # Listing newest first under each filter, and a node's live calls.
            "CREATE INDEX calls_by_status ON calls (status, seq)",
            "CREATE INDEX calls_by_direction ON calls (direction, seq)",
            "CREATE INDEX calls_by_from ON calls (from_number, seq)",
            "CREATE INDEX calls_by_to ON calls (to_number, seq)",
            "CREATE INDEX calls_by_created ON calls (created_at)",
            "CREATE INDEX calls_by_mode ON calls (mode, seq)",
            "CREATE INDEX calls_by_owner ON calls (owner, status)",
            _listed(
                "numbers",
                "id TEXT NOT NULL UNIQUE, number TEXT NOT NULL UNIQUE,"
                " incoming_call_action TEXT NOT NULL, settings TEXT NOT NULL,"
                f" created_at {_REAL} NOT NULL, updated_at {_REAL} NOT NULL",
            ),
            _listed(
                "subscriptions",
                "id TEXT NOT NULL UNIQUE, url TEXT NOT NULL, events TEXT NOT NULL,"
                f" secret TEXT NOT NULL, created_at {_REAL} NOT NULL",
            ),
            _listed(
                "deliveries",
                "id TEXT NOT NULL UNIQUE, url TEXT NOT NULL, secret TEXT NOT NULL,"
                " event_id TEXT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL,"
                " status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
                f" next_attempt_at {_REAL} NOT NULL, created_at {_REAL} NOT NULL,"
                " subscription_id TEXT, call_id TEXT, last_error TEXT NOT NULL DEFAULT '',"
                f" last_status INTEGER, delivered_at {_REAL},"
                f" leased_until {_REAL} NOT NULL DEFAULT 0, lease_owner TEXT NOT NULL DEFAULT ''",
            ),
            "CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)",
            "CREATE INDEX deliveries_by_status ON deliveries (status, seq)",
            "CREATE TABLE idempotency (key_id TEXT NOT NULL, idem_key TEXT NOT NULL,"
            " status INTEGER NOT NULL, body TEXT NOT NULL, request_hash TEXT NOT NULL,"
            f" created_at {_REAL} NOT NULL, PRIMARY KEY (key_id, idem_key))",
        ),
    ),
)

# --- the bookkeeping, run by every backend before the migrations ---
CREATE_MIGRATIONS_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    f" description TEXT NOT NULL, applied_at {_REAL} NOT NULL)"
)
CURRENT_VERSION: Final = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
RECORD_VERSION: Final = (
    "INSERT INTO schema_migrations (version, description, applied_at)"
    " VALUES (%(version)s, %(description)s, %(applied_at)s)"
)


def latest(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def plan(
    current: int, migrations: Sequence[Migration] = MIGRATIONS, *, url: str = "the store"
) -> list[Migration]:
    """The migrations to apply to a database at version ``current``, in order.

    ``url`` (redacted) names the database in the error."""
    if current > latest(migrations):
        raise ConfigError(
            f"{url}: the schema is at version {current}, newer than this voxgate knows"
            f" ({latest(migrations)}): upgrade voxgate, or point it at another database"
        )
    return [m for m in migrations if m.version > current]

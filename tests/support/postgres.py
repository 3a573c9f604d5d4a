"""A throwaway PostgreSQL server for the tests, and a fresh database for each test.

- ``postgres_server`` (session): ``initdb`` into a temporary directory, ``pg_ctl start`` on
  a free loopback port with its unix socket in that directory and fsync off (nothing here
  must survive a power cut), trust authentication; stopped and removed at the end. As root
  (CI) the server runs as the ``postgres`` system user: PostgreSQL refuses to run as root.
- ``postgres_url`` (function): a new database on that server, dropped after the test, so
  tests never see one another's rows.

The binaries come from Debian's ``postgresql`` package (``scripts/setup-postgres``, which
``scripts/test`` runs); without them the tests that need the server fail, saying so.
Registered for every test by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg
import pytest
from psycopg import sql
from served import free_port

SUPERUSER: Final = "voxgate"
START_LIMIT: Final = 60  # seconds for pg_ctl to see the server accept connections
STARTS: Final = 3  # tries, each on a new free port (another process may take the first)


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL's binaries, else those on PATH, else None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda initdb: int(initdb.parts[-3]) if initdb.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


@dataclass(frozen=True)
class PostgresServer:
    bindir: Path
    root: Path  # data/, the unix socket, the log
    port: int

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def _initdb(bindir: Path, root: Path) -> None:
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("as root, the test server runs as the user postgres: there is none")
        shutil.chown(root, "postgres", "postgres")
    initdb = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER]
    _run([*initdb, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])


def _start(bindir: Path, root: Path) -> PostgresServer:
    for attempt in range(STARTS):
        server = PostgresServer(bindir, root, free_port())
        options = f"-F -h 127.0.0.1 -p {server.port} -k {root}"
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(server.log)]
        try:
            _run([*pg_ctl, "-w", "-t", str(START_LIMIT), "-o", options, "start"])
        except RuntimeError as exc:
            if attempt == STARTS - 1:
                log = server.log.read_text(errors="replace") if server.log.exists() else ""
                raise RuntimeError(f"{exc}\nserver log:\n{log[-4000:]}") from None
            continue
        return server
    raise AssertionError("unreachable")


def _stop(server: PostgresServer) -> None:
    pg_ctl = str(server.bindir / "pg_ctl")
    _run([pg_ctl, "-D", str(server.root / "data"), "-m", "immediate", "-w", "stop"])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb):"
            " run scripts/setup-postgres"
        )
    root = Path(tempfile.mkdtemp(prefix="voxgate-pg-"))
    try:
        _initdb(bindir, root)
        server = _start(bindir, root)
        try:
            yield server
        finally:
            _stop(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)


_databases = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"test_{os.getpid()}_{next(_databases)}"
    admin_url = postgres_server.url()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_server.url(name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

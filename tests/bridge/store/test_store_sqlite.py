"""The SQLite backend's own promises: WAL, its directory made, the event loop free while
it works, and durability (a reopen, and a process killed with SIGKILL mid-write)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from voxgate.bridge.store import CallFilter, CallRecord, open_store
from voxgate.bridge.store.sqlite import SqliteStore
from voxgate.errors import ConfigError

BATCH = 20  # calls each step of the child updates in one transaction

CHILD = f"""
import asyncio, sys
from voxgate.bridge.store import CallRecord, open_store

async def main():
    store = open_store(sys.argv[1])
    await store.open()
    for step in range(1_000_000):
        await store.add_call(CallRecord(
            id=f"call_{{step}}", mode="test", direction="inbound", status="ringing",
            from_number="+1555", to_number="+1666", created_at=float(step)))
        first = max(0, step - {BATCH} + 1)
        await store.update_calls(
            [(f"call_{{n}}", {{"data": {{"step": step}}}}) for n in range(first, step + 1)])
        print(step, flush=True)

asyncio.run(main())
"""


def a_call(n: int) -> CallRecord:
    return CallRecord(f"call_{n}", "test", "inbound", "ringing", "+1555", "+1666", float(n))


def test_the_file_is_in_wal_mode_in_a_directory_made_for_it(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"

    async def scenario() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.add_call(a_call(1))
        await store.close()

    asyncio.run(scenario())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_rows_are_there_after_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"

    async def write() -> None:
        store = open_store(url)
        await store.open()
        for n in range(5):
            await store.add_call(a_call(n))
        await store.update_call("call_3", status="completed", data={"sip_code": 200})
        await store.close()

    async def read() -> list[CallRecord]:
        store = open_store(url)
        await store.open()
        try:
            return list((await store.list_calls(CallFilter(), limit=10)).data)
        finally:
            await store.close()

    asyncio.run(write())
    calls = asyncio.run(read())
    assert [call.id for call in calls] == [f"call_{n}" for n in range(4, -1, -1)]
    assert (calls[1].status, calls[1].data) == ("completed", {"sip_code": 200})


def test_the_event_loop_runs_while_the_store_writes(tmp_path: Path) -> None:
    async def scenario() -> int:
        store = SqliteStore(tmp_path / "store.db")
        await store.open()
        for n in range(500):
            await store.add_call(a_call(n))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        ticker = asyncio.create_task(tick())
        updates = [(f"call_{n % 500}", {"data": {"k": n}}) for n in range(5000)]
        await store.update_calls(updates)
        ticker.cancel()
        await store.close()
        return ticks

    assert asyncio.run(scenario()) > 100  # the loop turned while the thread wrote


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not a database file, not at all" * 100)

    async def scenario() -> None:
        await SqliteStore(path).open()

    with pytest.raises(ConfigError, match=r"sqlite:///.*store\.db: cannot use the database"):
        asyncio.run(scenario())


def test_sigkill_mid_write_leaves_every_committed_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    committed = [int(child.stdout.readline()) for _ in range(300)]
    child.kill()
    child.wait(timeout=30)
    committed += [int(line) for line in child.stdout.read().split()]
    child.stdout.close()
    last = committed[-1]

    with sqlite3.connect(tmp_path / "store.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    async def read() -> list[CallRecord]:
        store = open_store(url)
        await store.open()
        try:
            return list((await store.list_calls(CallFilter(), limit=100_000)).data)
        finally:
            await store.close()

    calls = {call.id: call for call in asyncio.run(read())}
    assert {f"call_{step}" for step in committed} <= calls.keys()
    assert len(calls) <= last + 2  # at most one step committed but not yet printed
    # each step's batch is all or nothing: the newest step reached all of its calls
    newest = max(call.data.get("step", -1) for call in calls.values())
    assert newest >= last
    for n in range(max(0, newest - BATCH + 1), newest + 1):
        assert calls[f"call_{n}"].data == {"step": newest}

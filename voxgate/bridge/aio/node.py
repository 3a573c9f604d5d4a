"""A node: N worker processes sharing one port, acting as one bridge.

Theory of operation
-------------------
``voxgate serve --workers N`` (N > 1) runs a small supervisor, which runs no
event loop and carries no call. It claims the port first (a socket bound with
``SO_REUSEPORT`` and never listened on, so a taken port is one clear error and
the port stays the node's), then forks N workers. Each worker binds its own
listening socket to the same address with ``SO_REUSEPORT``: the kernel spreads
new connections over the workers, and a call lives in the worker that accepted
its stream, with all its sockets and timers.

What the workers share (:class:`NodeShared`, in memory mapped by the fork):
one lock and a count of calls per worker slot. A worker admits a call only if
the node as a whole is below ``server.max_calls`` (:meth:`NodeLink.reserve`).

Each worker also answers on a Unix socket of its own in the node's run
directory (``worker-<slot>.sock``; one line in, ``calls`` or ``metrics``, one
JSON object out): its call ids, pid and whether it drains, and with
``metrics`` its counters, summaries and gauges too.
``/metrics`` and ``/healthz`` on any worker gather every worker's snapshot, so
they answer for the node; :meth:`NodeLink.find_call` tells which worker holds
a call (what the REST API of a later release uses to reach it).

Signals: SIGTERM or SIGINT to the supervisor is passed to every worker (each
drains: ``server.drain_seconds``); a second one is passed on too (stop now).
A worker that dies otherwise is counted, logged, its calls are taken off the
node's count, and a new worker takes its slot (at most one restart per slot
per second); the other workers and their calls are not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from multiprocessing.sharedctypes import SynchronizedArray
from pathlib import Path
from types import FrameType
from typing import Any, Final

from voxgate.config import Config
from voxgate.errors import ConfigError
from voxgate.obs import METRICS

log = logging.getLogger("voxgate.node")

LOCK_TIMEOUT: Final = 0.5  # a worker that died holding the lock must not stall the node
SNAPSHOT_TIMEOUT: Final = 2.0  # a worker that does not answer is left out of node figures
RESTART_INTERVAL: Final = 1.0  # at most one restart per slot per second
POLL: Final = 0.1  # how often the supervisor looks at its workers
_COMMANDS: Final = (b"calls", b"metrics")  # what a worker's control socket answers
_ACT: Final = b"act "  # ... and a live-call action another worker hands over (JSON after it)
MAX_ACTION: Final = 16 * 1024 * 1024  # bytes of one handed-over action (a /play upload)
ACTION_TIMEOUT: Final = 10.0
MAX_ASKING: Final = 64  # actions one worker hands to another at once (more wait their turn)
BACKLOG: Final = 1024  # connections a worker's socket holds unaccepted (then: refused)


class NodeShared:
    """What the workers of one node share; made by the supervisor before the fork."""

    def __init__(self, workers: int, run_dir: str) -> None:
        context = multiprocessing.get_context("fork")
        self.workers = workers
        self.run_dir = run_dir
        self.calls: SynchronizedArray[int] = context.Array("i", workers)  # per slot

    def socket_path(self, slot: int) -> str:
        return os.path.join(self.run_dir, f"worker-{slot}.sock")

    def forget_slot(self, slot: int) -> None:
        """The worker of ``slot`` is gone: its calls are no longer the node's."""
        lock = self.calls.get_lock()
        if lock.acquire(timeout=LOCK_TIMEOUT):
            try:
                self.calls[slot] = 0
            finally:
                lock.release()
        else:  # the dead worker held it: the count is all that lock protects
            self.calls[slot] = 0


@dataclass
class NodeLink:
    """One worker's view of its node (see the module docstring)."""

    shared: NodeShared
    slot: int
    max_calls: int
    snapshot: Callable[[bool], dict[str, Any]] = field(default=lambda metrics: {})
    on_action: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    """This worker's figures: its calls, and with ``True`` its metrics too."""
    _server: asyncio.AbstractServer | None = None
    _asking: dict[int, asyncio.Semaphore] = field(default_factory=dict)  # per slot asked

    def reserve(self) -> bool:
        """Count one more call on this worker if the node is below ``max_calls``."""
        lock = self.shared.calls.get_lock()
        if not lock.acquire(timeout=LOCK_TIMEOUT):
            METRICS.count("errors", kind="node_lock")
            log.error("the node's call count is locked up; refusing a call")
            return False
        try:
            if sum(self.shared.calls[:]) >= self.max_calls:
                return False
            self.shared.calls[self.slot] += 1
            return True
        finally:
            lock.release()

    def full(self) -> bool:
        """Whether the node holds ``max_calls`` calls (read without the lock: a hint)."""
        return sum(self.shared.calls[:]) >= self.max_calls

    def release(self) -> None:
        lock = self.shared.calls.get_lock()
        with contextlib.suppress(Exception):
            if lock.acquire(timeout=LOCK_TIMEOUT):
                try:
                    self.shared.calls[self.slot] = max(0, self.shared.calls[self.slot] - 1)
                finally:
                    lock.release()

    # --- the worker's control socket --------------------------------------------------

    async def start(self) -> None:
        path = self.shared.socket_path(self.slot)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server = await asyncio.start_unix_server(
            self._answer, path, limit=MAX_ACTION, backlog=BACKLOG
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            command = (await asyncio.wait_for(reader.readline(), SNAPSHOT_TIMEOUT)).strip()
            if command in _COMMANDS:
                writer.write(json.dumps(self.snapshot(command == b"metrics")).encode())
                await writer.drain()
            elif command.startswith(_ACT) and self.on_action is not None:
                answer = await self.on_action(json.loads(command[len(_ACT) :]))
                writer.write(json.dumps(answer).encode())
                await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, KeyError, TypeError):
            pass
        finally:
            writer.close()

    async def gather(self, *, metrics: bool = False) -> list[dict[str, Any]]:
        """Every live worker's snapshot (this one's taken directly); its metrics too if asked
        (they weigh far more than the calls: only /metrics asks)."""
        slots = range(self.shared.workers)
        found = await asyncio.gather(*(self._ask(slot, metrics) for slot in slots))
        return [snapshot for snapshot in found if snapshot is not None]

    async def find_call(self, call_id: str) -> int | None:
        """The slot of the worker that holds ``call_id``, if any does."""
        for snapshot in await self.gather():
            if call_id in snapshot.get("calls", ()):
                slot: int = snapshot["slot"]
                return slot
        return None

    async def ask_action(self, slot: int, request: dict[str, Any]) -> dict[str, Any] | None:
        """Hand a live-call action to the worker of ``slot``; its answer, or None when it
        does not answer (restarting, gone). A burst waits its turn (:data:`MAX_ASKING` at
        once): past the worker socket's backlog a connection is refused, not queued."""
        asking = self._asking.setdefault(slot, asyncio.Semaphore(MAX_ASKING))
        try:
            async with asyncio.timeout(ACTION_TIMEOUT), asking:
                reader, writer = await asyncio.open_unix_connection(self.shared.socket_path(slot))
                writer.write(_ACT + json.dumps(request).encode() + b"\n")
                data = await reader.read()
                writer.close()
            answer: dict[str, Any] = json.loads(data)
            return answer
        except (OSError, TimeoutError, ValueError):
            return None

    async def _ask(self, slot: int, metrics: bool) -> dict[str, Any] | None:
        if slot == self.slot:
            return self.snapshot(metrics)
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(self.shared.socket_path(slot))
                writer.write(b"metrics\n" if metrics else b"calls\n")
                data = await reader.read()
                writer.close()
            answer: dict[str, Any] = json.loads(data)
            return answer
        except (OSError, TimeoutError, ValueError):
            return None  # restarting, or gone: left out of the node's figures


# --- the supervisor ---------------------------------------------------------------------


def tcp_socket(host: str, port: int, *, reuse_port: bool, listen: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEPORT`` if asked), listening if asked;
    a clear error if the address cannot be had."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = info[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise ConfigError(f"server.host: cannot listen on {host}: {error.strerror}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(2048)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"server.port: cannot listen on {host}:{port}: {error.strerror}"
        ) from None
    return sock


class Supervisor:
    """Forks the workers, passes signals on, replaces a worker that dies."""

    def __init__(
        self, config: Config, workers: int, run_worker: Callable[[Config, NodeLink], None]
    ) -> None:
        self.config = config
        self.workers = workers
        self.run_worker = run_worker
        self.claim = tcp_socket(
            config.server.host, config.server.port, reuse_port=True, listen=False
        )
        self.port: int = self.claim.getsockname()[1]
        self.config = replace(config, server=replace(config.server, port=self.port))
        self.run_dir = tempfile.mkdtemp(prefix="voxgate-node-")
        self.shared = NodeShared(workers, self.run_dir)
        self.pids: dict[int, int] = {}  # slot -> pid
        self.started_at: dict[int, float] = {}
        self.stopping = 0  # stop signals received

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOPS}
        try:
            for slot in range(self.workers):
                self._fork(slot)
            log.info(
                "voxgate node listening on %s:%d with %d workers",
                self.config.server.host,
                self.port,
                self.workers,
            )
            while self.pids:
                self._reap()
                time.sleep(POLL)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for pid in self.pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.claim.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _fork(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                for sig in _STOPS:
                    signal.signal(sig, signal.SIG_DFL)
                # Signals reach the workers through the supervisor only (a terminal's ^C
                # goes to the whole process group: it would count twice), and a worker
                # whose supervisor is gone stops as if told to.
                os.setpgid(0, 0)
                _die_with_parent()
                self.claim.close()
                link = NodeLink(self.shared, slot, self.config.server.max_calls)
                self.run_worker(self.config, link)
            except BaseException:
                log.exception("worker %d failed", slot)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.pids[slot] = pid
        self.started_at[slot] = time.monotonic()

    def _reap(self) -> None:
        for slot, pid in list(self.pids.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            del self.pids[slot]
            self.shared.forget_slot(slot)
            if self.stopping:
                continue
            METRICS.count("errors", kind="worker_died")
            log.error("worker %d (pid %d) died (%s); starting a new one", slot, pid, _how(status))
            wait = self.started_at[slot] + RESTART_INTERVAL - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._fork(slot)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stopping += 1
        for pid in list(self.pids.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


_STOPS: Final = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG: Final = 1  # prctl(2)


def _die_with_parent() -> None:
    """SIGTERM this process when its parent exits (Linux; elsewhere nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


# --- node-wide figures ------------------------------------------------------------------


def merged_metrics(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counters and gauges summed, summaries' observations pooled, across workers."""
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    observed: dict[str, list[float]] = {}
    gauges: dict[str, float] = {}
    for snapshot in snapshots:
        for name, labels, count in snapshot.get("counters", ()):
            key = (name, tuple((str(k), str(v)) for k, v in labels))
            counters[key] = counters.get(key, 0) + int(count)
        for name, values in snapshot.get("observed", {}).items():
            observed.setdefault(name, []).extend(float(v) for v in values)
        for name, value in snapshot.get("gauges", {}).items():
            gauges[name] = gauges.get(name, 0) + value
    return {"counters": counters, "observed": observed, "gauges": gauges}


def worker_pids(supervisor_pid: int) -> list[int]:
    """The pids of a node's workers (its supervisor's children), for tools and tests."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children")
    with contextlib.suppress(OSError):
        return [int(pid) for pid in children.read_text().split()]
    return []

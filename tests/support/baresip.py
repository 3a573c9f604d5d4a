"""baresip, a real SIP user agent, run headless and driven from a test.

Theory of operation: :class:`Baresip` writes a config directory of its own
(``baresip -f DIR``) that loads only G.711, ``aufile`` (a WAV file as the
microphone), ``sndfile`` (optional: each call's encoded and decoded audio
saved as ``dump-<time>-enc.wav`` / ``dump-<time>-dec.wav`` in DIR), the
account and menu modules (the ``dial``/``hold``/``sndcode`` commands) and
``ctrl_tcp``. No sound card, no console: the test commands it through
``ctrl_tcp``, JSON objects framed as netstrings (``12:{"a":"b"...},``) on a
loopback TCP port. baresip answers each command with a ``response`` object
(matched here by its ``token``) and reports call events (``CALL_ESTABLISHED``,
``CALL_CLOSED``, ...) as ``event`` objects, which are kept in :attr:`events`.
With ``sip_trace`` (``-s``) baresip also prints each SIP message it sends or
receives; :meth:`Baresip.sip_messages` reads them back from its output.

SIP listens on a loopback port the system picks (baresip is the caller: the
peer answers to its Via), RTP takes ports from ``rtp_ports``. baresip's
stdout and stderr go to ``DIR/baresip.log`` (:meth:`Baresip.output`); it is
started with ``-t`` as a last-resort time limit and always terminated (then
killed) when the context ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

BARESIP: Final = shutil.which("baresip")
MODULES: Final = Path("/usr/lib/baresip/modules")
CONNECT_LIMIT: Final = 10.0  # seconds for baresip to open its control port
TRACED: Final = re.compile(r"\x1b\[36;1m#\n[^\n]*\n(.*?)\x1b\[;m", re.DOTALL)

Json = dict[str, Any]


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


def split_netstrings(buffer: bytearray) -> list[bytes]:
    """Take the complete netstrings off the front of ``buffer``; return their payloads."""
    payloads = []
    while (colon := buffer.find(b":")) > 0:
        size = int(buffer[:colon])
        end = colon + 1 + size
        if len(buffer) <= end:
            break
        if buffer[end : end + 1] != b",":
            raise ValueError(f"bad netstring from baresip: {bytes(buffer[: end + 1])!r}")
        payloads.append(bytes(buffer[colon + 1 : end]))
        del buffer[: end + 1]
    return payloads


class Baresip:
    """``async with Baresip(dir, source=wav) as ua:`` then ``await ua.command("dial", uri)``."""

    def __init__(
        self,
        home: Path,
        *,
        source: Path,
        rtp_ports: tuple[int, int],
        record: bool = False,
        sip_trace: bool = False,
        lifetime: float = 120.0,
    ) -> None:
        self.home = home
        self.events: list[Json] = []
        self._source = source
        self._rtp_ports = rtp_ports
        self._record = record
        self._sip_trace = sip_trace
        self._lifetime = lifetime
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._responses: dict[str, asyncio.Future[Json]] = {}
        self._changed = asyncio.Condition()
        self._tokens = 0

    @property
    def log_path(self) -> Path:
        return self.home / "baresip.log"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sip_messages(self) -> list[str]:
        """With ``sip_trace``: the SIP messages baresip sent and received, in order."""
        return TRACED.findall(self.output())

    def recordings(self, direction: str) -> list[Path]:
        """The WAV files ``sndfile`` wrote: ``"dec"`` (what baresip heard) or ``"enc"``."""
        return sorted(self.home.glob(f"dump-*-{direction}.wav"))

    def _write_config(self, control_port: int) -> None:
        low, high = self._rtp_ports
        lines = [
            "poll_method epoll",
            "net_interface 127.0.0.1",
            "sip_listen 127.0.0.1",
            f"audio_source aufile,{self._source}",
            f"rtp_ports {low}-{high}",
            f"module_path {MODULES}",
            "module g711.so",
            "module aufile.so",
            *(["module sndfile.so", f"snd_path {self.home}"] if self._record else []),
            "module_tmp account.so",
            "module_app menu.so",
            "statmode_default off",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{control_port}",
        ]
        (self.home / "config").write_text("\n".join(lines) + "\n")
        (self.home / "accounts").write_text("<sip:test@127.0.0.1>;regint=0\n")

    async def __aenter__(self) -> Self:
        assert BARESIP is not None, "baresip is not installed"
        control_port = free_tcp_port()
        self._write_config(control_port)
        command = [BARESIP, "-f", str(self.home), "-t", str(int(self._lifetime))]
        if self._sip_trace:
            command.append("-s")
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            reader, self._writer = await self._connect(control_port)
        except BaseException:
            await self._stop()
            raise
        self._reader_task = asyncio.create_task(self._read(reader))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self._process is not None
        deadline = asyncio.get_running_loop().time() + CONNECT_LIMIT
        while True:
            try:
                return await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                late = asyncio.get_running_loop().time() > deadline
                if self._process.poll() is not None or late:
                    raise RuntimeError(f"baresip did not start:\n{self.output()}") from None
                await asyncio.sleep(0.05)

    async def _stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buffer = bytearray()
        while chunk := await reader.read(65536):
            buffer += chunk
            for payload in split_netstrings(buffer):
                message: Json = json.loads(payload)
                if message.get("response"):
                    future = self._responses.pop(str(message.get("token")), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("event"):
                    async with self._changed:
                        self.events.append(message)
                        self._changed.notify_all()

    async def command(self, name: str, params: str = "", timeout: float = 5.0) -> Json:
        """Run a menu command (``dial``, ``hold``, ``resume``, ``sndcode``, ``hangup``...);
        its response (``data`` holds the command's text output)."""
        assert self._writer is not None
        self._tokens += 1
        token = str(self._tokens)
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        request = {"command": name, "params": params, "token": token}
        self._writer.write(netstring(json.dumps(request).encode()))
        await self._writer.drain()
        async with asyncio.timeout(timeout):
            response = await future
        if not response.get("ok"):
            raise RuntimeError(f"baresip refused {name} {params!r}: {response.get('data')}")
        return response

    def of_type(self, kind: str) -> list[Json]:
        return [e for e in self.events if e.get("type") == kind]

    async def event(self, kind: str, count: int = 1, timeout: float = 10.0) -> Json:
        """The ``count``-th event of type ``kind`` (``CALL_ESTABLISHED``...), once it came."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.of_type(kind)) >= count)
        except TimeoutError:
            seen = [e.get("type") for e in self.events]
            raise TimeoutError(f"no {kind} #{count} from baresip in {timeout} s: {seen}") from None
        return self.of_type(kind)[count - 1]

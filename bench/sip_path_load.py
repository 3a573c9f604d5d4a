"""The RTP load of bench/sip_path.py: marked 20 ms PCMU packets, sent on one grid, timed back.

Each endpoint is one UDP socket of this process (one per call for a call into
voxgate; two per call, caller and callee, for a call through rtpengine). One
grid sends every endpoint's packets: 20 slots 1 ms apart, each slot sending the
packets of the calls whose index is the slot modulo 20, every 20 ms, so a
relay sees a steady stream rather than a burst of N packets each 20 ms; one
timer per slot, plain non-blocking ``sendto``, no per-call task.

A packet is an RTP header (PT 0, sequence and timestamp moving on by one
frame, the endpoint's SSRC) and 160 bytes of payload whose first 12 say who
sent which frame (``VX``, the side, the call, the frame number; the rest is
fixed audio). A relay in PCMU passthrough, and voxgate's echo through its bot,
returns those bytes unchanged, so what comes back says exactly which frame it
is, whatever the relay did to the header.

Times: the send time is ``time.time()`` just before ``sendto``; the receive
time is the kernel's timestamp of the datagram (``SO_TIMESTAMPNS``, the same
clock), so the load's own scheduling delays do not count as the relay's on the
way back. The echo bot notes its times on the same clock.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
import struct
import time
from array import array
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from bench.sip_path_peers import MAGIC, MARK

Address = tuple[str, int]
SO_TIMESTAMPNS: Final = 35  # Linux <asm-generic/socket.h>; SCM_TIMESTAMPNS is the same value
TIMESPEC: Final = struct.Struct("=qq")
HEAD: Final = struct.Struct(">BBHII")  # RFC 3550 section 5.1: V=2, PT 0 (PCMU), seq, ts, SSRC
FILL: Final = bytes(range(40, 188))  # with the 12-byte mark: one 20 ms PCMU frame
SLOTS: Final = 20
FRAME: Final = 0.020


@dataclass(slots=True)
class Endpoint:
    call: int
    side: int  # 0: the caller; 1: the callee (through rtpengine)
    expects: int  # the side whose frames should arrive here
    sock: socket.socket
    remote: Address | None = None  # None: this call is not up, nothing is sent
    ssrc: int = 0
    sequence: int = 0
    timestamp: int = 0

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


class RtpLoad:
    """N calls' RTP for ``frames`` frames; see the module docstring."""

    def __init__(self, calls: int, sides: int, frames: int) -> None:
        self.calls, self.sides, self.frames = calls, sides, frames
        size = calls * frames
        self.sent = [array("d", [math.nan]) * size for _ in range(sides)]
        self.back = [array("d", [math.nan]) * size for _ in range(sides)]
        self.endpoints: list[Endpoint] = []
        self.begin = 0.0  # loop time of frame 0, slot 0
        self.received = 0
        self.marked = 0  # packets that carry a frame's mark
        self.unmarked = 0  # packets without a mark (voxgate's silence) in the measured window
        self.window = (math.inf, math.inf)  # of the kernel's receive times
        self.misrouted = 0  # marked for another call or side
        self.duplicated = 0
        self.send_errors = 0
        self.receive_errors = 0
        self._slots: list[list[Endpoint]] = [[] for _ in range(SLOTS)]
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def add(self, call: int, side: int) -> Endpoint:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setblocking(False)
        expects = side if self.sides == 1 else 1 - side
        endpoint = Endpoint(call, side, expects, sock, ssrc=secrets.randbits(32))
        endpoint.sequence = secrets.randbelow(1 << 16)
        endpoint.timestamp = secrets.randbits(32)
        self.endpoints.append(endpoint)
        self._slots[call % SLOTS].append(endpoint)
        self._loop.add_reader(sock.fileno(), self._read, endpoint)
        return endpoint

    def close(self) -> None:
        for endpoint in self.endpoints:
            self._loop.remove_reader(endpoint.sock.fileno())
            endpoint.sock.close()
        self.endpoints = []
        self._closed = True

    # --- sending ----------------------------------------------------------------------------

    def start(self) -> asyncio.Future[None]:
        """Send every frame on the grid from 50 ms on; done after the last frame's last slot."""
        loop = self._loop
        self.begin = loop.time() + 0.05
        done: asyncio.Future[None] = loop.create_future()
        for slot in range(SLOTS):
            loop.call_at(self.begin + slot * 0.001, self._tick, slot, 0, done)
        return done

    async def settle(self, quiet: float = 0.5, limit: float = 15.0) -> None:
        """Wait until no marked packet has come for ``quiet`` seconds (at most ``limit``):
        frames a relay still holds come back before the calls end."""
        began, seen = time.monotonic(), -1
        while self.marked != seen and time.monotonic() - began < limit:
            seen = self.marked
            await asyncio.sleep(quiet)

    def measure(self, start_at: float, seconds: float) -> None:
        """Count unmarked packets from ``start_at`` (event loop time) for ``seconds``."""
        start = time.time() + start_at - self._loop.time()
        self.window = (start, start + seconds)

    def _tick(self, slot: int, frame: int, done: asyncio.Future[None]) -> None:
        if self._closed:
            return
        frames = self.frames
        for endpoint in self._slots[slot]:
            remote = endpoint.remote
            if remote is None:
                continue
            endpoint.sequence = (endpoint.sequence + 1) & 0xFFFF
            endpoint.timestamp = (endpoint.timestamp + 160) & 0xFFFFFFFF
            packet = (
                HEAD.pack(0x80, 0, endpoint.sequence, endpoint.timestamp, endpoint.ssrc)
                + MARK.pack(MAGIC, endpoint.side, endpoint.call, frame)
                + FILL
            )
            self.sent[endpoint.side][endpoint.call * frames + frame] = time.time()
            try:
                endpoint.sock.sendto(packet, remote)
            except OSError:
                self.send_errors += 1
        if frame + 1 < frames:
            at = self.begin + (frame + 1) * FRAME + slot * 0.001
            self._loop.call_at(at, self._tick, slot, frame + 1, done)
        elif slot == SLOTS - 1 and not done.done():
            done.set_result(None)

    # --- receiving --------------------------------------------------------------------------

    def _read(self, endpoint: Endpoint) -> None:
        sock, frames = endpoint.sock, self.frames
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.receive_errors += 1
                return
            at = _kernel_time(ancillary)
            self.received += 1
            offset = 12 + 4 * (data[0] & 15) if data else 0
            if len(data) < offset + MARK.size or data[offset : offset + 2] != MAGIC:
                if self.window[0] <= at < self.window[1]:
                    self.unmarked += 1
                continue
            _, side, call, frame = MARK.unpack_from(data, offset)
            self.marked += 1
            if call != endpoint.call or side != endpoint.expects or frame >= frames:
                self.misrouted += 1
                continue
            back = self.back[side]
            index = call * frames + frame
            if back[index] == back[index]:  # not NaN: seen before
                self.duplicated += 1
            else:
                back[index] = at

    # --- results ----------------------------------------------------------------------------

    def matrix(self, which: str, side: int) -> npt.NDArray[np.float64]:
        """``sent`` or ``back`` times of ``side``'s frames, (calls, frames), NaN where none."""
        source = self.sent if which == "sent" else self.back
        return np.frombuffer(source[side], dtype=np.float64).reshape(self.calls, self.frames)


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return float(seconds) + float(nanoseconds) * 1e-9
    return time.time()


def percentiles(values: npt.NDArray[np.float64]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (seconds) in milliseconds; NaN when there are none."""
    if values.size == 0:
        return {"p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50_ms": float(p50) * 1000,
        "p99_ms": float(p99) * 1000,
        "max_ms": float(values.max()) * 1000,
    }

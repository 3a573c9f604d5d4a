"""One load-test call's RTP socket against a plain UDP peer on loopback: what goes on the wire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast

import numpy as np
import pytest
from numpy.typing import NDArray
from scenario import run

from voxgate.bridge.rtp.packet import RtpPacket, parse_rtp, plain_packet
from voxgate.bridge.rtp.telephone_event import (
    TelephoneEvent,
    parse_telephone_event,
    serialize_telephone_event,
)
from voxgate.bridge.sip.sdp import Codec, Negotiated
from voxgate.codecs.dtmf import DtmfDetector
from voxgate.codecs.g711 import ulaw_decode, ulaw_encode
from voxgate.errors import ConfigError
from voxgate.loadtest.siprtp import RtpLeg

FRAME = 160


class Peer(asyncio.DatagramProtocol):
    """voxgate's side of the media, reduced to a socket that keeps what it gets."""

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(parse_rtp(data))

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))


class Heard:
    def __init__(self, fail: bool = False) -> None:
        self.audio: list[tuple[NDArray[np.int16], float]] = []
        self.digits: list[str] = []
        self.fail = fail

    def audio_received(self, samples: NDArray[np.int16], now: float) -> None:
        self.audio.append((samples, now))
        if self.fail:
            raise RuntimeError("the sink's own bug")

    def dtmf_received(self, digit: str, now: float) -> None:
        self.digits.append(digit)


def negotiated(port: int, *, events: bool) -> Negotiated:
    return Negotiated(
        codec=Codec("PCMU", 0, 8000),
        telephone_event=Codec("telephone-event", 101, 8000, fmtp="0-16") if events else None,
        remote_address="127.0.0.1",
        remote_port=port,
        ptime=20,
        direction="sendrecv",
        remote_direction="sendrecv",
    )


@asynccontextmanager
async def leg_and_peer(sink: Heard) -> AsyncIterator[tuple[RtpLeg, Peer]]:
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    _, leg = await loop.create_datagram_endpoint(
        lambda: RtpLeg(sink, "call-test"), local_addr=("127.0.0.1", 0)
    )
    try:
        yield leg, peer
    finally:
        leg.close()
        peer_transport.close()
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def peer_port(peer: Peer) -> int:
    assert peer.transport is not None
    port: int = peer.transport.get_extra_info("sockname")[1]
    return port


def tone(count: int) -> NDArray[np.int16]:
    t = np.arange(count) / 8000
    return (5000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_a_digit_as_rfc4733_goes_beside_the_audio_ticks() -> None:
    async def scenario() -> None:
        async with leg_and_peer(Heard()) as (leg, peer):
            leg.start(negotiated(peer_port(peer), events=True))
            frame = tone(FRAME)
            for _ in range(3):
                leg.send_audio(frame)
            leg.send_dtmf("7", 100)
            for _ in range(10):
                leg.send_audio(frame)
            await until(lambda: len(peer.packets) == 20)
        packets = peer.packets
        assert [p.sequence for p in packets] == [
            (packets[0].sequence + i) & 0xFFFF for i in range(20)
        ]
        audio = [p for p in packets if p.payload_type == 0]
        events = [p for p in packets if p.payload_type == 101]
        assert len(audio) == 13 and len(events) == 7
        # each of the key's ticks sends its event packet, then the tick's audio
        assert [p.payload_type for p in packets[3:17]] == [101, 0] * 7
        start = audio[0].timestamp
        assert [p.timestamp for p in audio] == [(start + i * FRAME) & 0xFFFFFFFF for i in range(13)]
        assert [p.marker for p in audio] == [True] + [False] * 12
        assert {p.timestamp for p in events} == {(start + 3 * FRAME) & 0xFFFFFFFF}
        assert [p.marker for p in events] == [True] + [False] * 6
        parsed = [parse_telephone_event(p.payload) for p in events]
        assert [e.event for e in parsed] == [7] * 7
        assert [e.duration for e in parsed] == [160, 320, 480, 640, 800, 800, 800]
        assert [e.end for e in parsed] == [False] * 4 + [True] * 3
        assert all(
            np.array_equal(ulaw_decode(p.payload), ulaw_decode(ulaw_encode(frame))) for p in audio
        )

    run(scenario(), timeout=30)


def test_without_telephone_events_a_digit_is_its_tone_in_the_audio() -> None:
    async def scenario() -> None:
        async with leg_and_peer(Heard()) as (leg, peer):
            leg.start(negotiated(peer_port(peer), events=False))
            silence = np.zeros(FRAME, np.int16)
            leg.send_audio(silence)
            leg.send_dtmf("#", 100)
            for _ in range(15):
                leg.send_audio(silence)
            await until(lambda: len(peer.packets) == 16)
        assert {p.payload_type for p in peer.packets} == {0}
        audio = np.concatenate([ulaw_decode(p.payload) for p in peer.packets])
        detector = DtmfDetector()
        found = [d.digit for d in detector.feed(audio)] + [d.digit for d in detector.flush()]
        assert found == ["#"]
        with pytest.raises(ConfigError):
            leg.send_dtmf("x")

    run(scenario(), timeout=30)


def test_what_comes_back_is_held_until_the_answer_and_counted() -> None:
    async def scenario() -> None:
        sink = Heard(fail=True)
        async with leg_and_peer(sink) as (leg, peer):
            frame = ulaw_encode(tone(FRAME)).tobytes()
            peer.send(plain_packet(0, 1, 160, 77, frame, marker=True), leg.port)
            await asyncio.sleep(0.2)  # arrived, before the answer
            assert sink.audio == []
            answered = time.monotonic()
            leg.start(negotiated(peer_port(peer), events=True))
            assert len(sink.audio) == 1 and sink.audio[0][1] < answered
            key = serialize_telephone_event(TelephoneEvent(5, False, 10, 160))
            end = serialize_telephone_event(TelephoneEvent(5, True, 10, 800))
            for index, payload in enumerate([key, key, end, end, end]):
                peer.send(plain_packet(101, 2 + index, 480, 77, payload, marker=False), leg.port)
            peer.send(b"\x00 not rtp", leg.port)
            peer.send(bytes([0x81, 201]) + bytes(6), leg.port)  # an RTCP receiver report
            peer.send(plain_packet(13, 9, 960, 77, b"\x40", marker=False), leg.port)  # CN
            peer.send(plain_packet(0, 10, 1120, 77, frame, marker=False), leg.port)
            await until(lambda: len(sink.audio) == 2)
        counts = leg.counts
        assert sink.digits == ["5"]
        assert (counts.audio_in, counts.events_in, counts.dtmf_in) == (2, 5, 1)
        assert (counts.bad_in, counts.rtcp_in, counts.other_in) == (1, 1, 1)
        assert counts.sink_errors == 2  # the sink raised on both audio packets: nothing broke
        assert np.array_equal(sink.audio[1][0], ulaw_decode(frame))

    run(scenario(), timeout=30)

"""The peers of bench/sip_path.py: a SIP caller, an rtpengine ng client, a timed echo bot.

- :class:`SipCaller`: a minimal SIP UAC over one UDP socket (RFC 3261): INVITE
  with a PCMU + telephone-event offer, retransmitted on Timer A until a response
  (section 17.1.1.2), ACK for every final response (for a 2xx a new transaction,
  section 13.2.2.4; for an error the same branch, section 17.1.1.3), BYE
  retransmitted until its response. Requests from the far end (a BYE when voxgate
  ends a call) are answered 200 and the call is marked as dropped. Messages are
  built with voxgate's own serializer and parsed with its parser.
- :class:`RtpEngine`: rtpengine's ng control protocol: a cookie, a space and a
  bencoded dictionary over UDP, one cookie per command (a cookie seen before is
  answered from rtpengine's cache, not carried out); ``offer`` with the caller's
  SDP, ``answer`` with the callee's, ``delete``.
- :func:`serve_bot`: a voxgate.v1 echo bot on picows, in its own process, that
  sends each media message's audio straight back and notes, for each marked frame
  (bench/sip_path_load.py), when it arrived and when its echo was written; on
  SIGTERM it writes those times (``time.time()``, the clock of the load's kernel
  timestamps) to a ``.npz`` file.
"""

from __future__ import annotations

import asyncio
import binascii
import secrets
import signal
import struct
import time
from array import array
from dataclasses import dataclass
from typing import Final

import numpy as np
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from voxgate.bridge.sip.headers import Headers
from voxgate.bridge.sip.message import (
    Request,
    Response,
    parse_message,
    parse_name_addr,
    response_to,
)
from voxgate.bridge.sip.sdp import offer_sdp, parse_sdp, serialize_sdp
from voxgate.errors import SipParseError

Address = tuple[str, int]
T1: Final = 0.5  # RFC 3261 section 17.1.1.1
TIMER_B: Final = 64 * T1
CALLER: Final = "+15550001111"
CALLED: Final = "+15557770000"

# --- SIP ----------------------------------------------------------------------------------


@dataclass
class Dialog:
    """One call of the caller's."""

    index: int
    call_id: str
    from_tag: str
    rtp_port: int
    invited_at: float = 0.0
    answered_at: float = 0.0
    status: int = 0  # the INVITE's final status (0: none came)
    to: str = ""  # the To of the 2xx, with voxgate's tag
    target: str = ""  # the Contact of the 2xx: where ACK and BYE go
    remote: Address | None = None  # voxgate's RTP address, from the answer's SDP
    dropped: bool = False  # the far end sent BYE
    bye_status: int = 0
    bye_sent_at: float = 0.0
    bye_answered_at: float = 0.0
    provisional: bool = False
    final: asyncio.Future[None] | None = None
    bye_done: asyncio.Future[None] | None = None
    invite: bytes = b""
    acks: int = 0


class SipCaller(asyncio.DatagramProtocol):
    """See the module docstring."""

    def __init__(self, server: Address) -> None:
        self.server = server
        self.dialogs: dict[str, Dialog] = {}
        self.retransmissions = 0  # of INVITEs
        self.bye_retransmissions = 0
        self.unparsable = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._local: Address = ("127.0.0.1", 0)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        name = transport.get_extra_info("sockname")
        self._local = (name[0], name[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # --- INVITE, ACK, BYE -------------------------------------------------------------------

    async def invite(self, index: int, rtp_port: int) -> Dialog:
        """Call voxgate; returns when the INVITE has its final response (or timed out)."""
        loop = asyncio.get_running_loop()
        tag = secrets.token_hex(4)
        dialog = Dialog(index, f"bench-{index}-{secrets.token_hex(6)}", tag, rtp_port)
        dialog.final = loop.create_future()
        self.dialogs[dialog.call_id] = dialog
        offer = offer_sdp(
            address="127.0.0.1", port=rtp_port, session_id=index + 1, session_version=1,
            codecs=["PCMU"], username="bench",
        )  # fmt: skip
        uri = f"sip:{CALLED}@{self.server[0]}:{self.server[1]}"
        headers = self._common(dialog, _branch(), "1 INVITE", f"<{uri}>")
        headers.add("Content-Type", "application/sdp")
        dialog.invite = Request("INVITE", uri, headers, serialize_sdp(offer)).serialize()
        dialog.invited_at = time.monotonic()
        self._send(dialog.invite)
        wait = T1
        while not dialog.final.done():  # Timer A doubles until a provisional response
            try:
                await asyncio.wait_for(asyncio.shield(dialog.final), wait)
            except TimeoutError:
                if time.monotonic() - dialog.invited_at > TIMER_B:
                    break
                if not dialog.provisional:
                    self.retransmissions += 1
                    self._send(dialog.invite)
                    wait *= 2
        return dialog

    async def bye(self, dialog: Dialog) -> bool:
        """Hang up; True when voxgate answered 200."""
        if dialog.dropped or dialog.status != 200:
            return False
        dialog.bye_done = asyncio.get_running_loop().create_future()
        headers = self._common(dialog, _branch(), "2 BYE", dialog.to)
        message = Request("BYE", dialog.target, headers).serialize()
        started, wait = time.monotonic(), T1
        dialog.bye_sent_at = started
        self._send(message)
        while not dialog.bye_done.done() and time.monotonic() - started < TIMER_B:
            try:
                await asyncio.wait_for(asyncio.shield(dialog.bye_done), wait)
            except TimeoutError:
                self.bye_retransmissions += 1
                self._send(message)
                wait = min(2 * wait, 4.0)
        return dialog.bye_status == 200

    def _common(self, dialog: Dialog, branch: str, cseq: str, to: str) -> Headers:
        host, port = self._local
        return Headers([
            ("Via", f"SIP/2.0/UDP {host}:{port};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{CALLER}@{host}>;tag={dialog.from_tag}"),
            ("To", to),
            ("Call-ID", dialog.call_id),
            ("CSeq", cseq),
            ("Contact", f"<sip:bench@{host}:{port}>"),
        ])  # fmt: skip

    def _ack(self, dialog: Dialog, response: Response) -> None:
        to = response.headers.get("To") or ""
        if response.status < 300:
            branch, target = _branch(), dialog.target
        else:  # section 17.1.1.3: the ACK of an error is part of the INVITE's transaction
            via = response.headers.get("Via") or ""
            branch = via.split("branch=", 1)[-1].split(";", 1)[0]
            target = f"sip:{CALLED}@{self.server[0]}:{self.server[1]}"
        headers = self._common(dialog, branch, "1 ACK", to)
        dialog.acks += 1
        self._send(Request("ACK", target, headers).serialize())

    # --- what arrives ---------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse_message(data)
        except SipParseError:
            self.unparsable += 1
            return
        if isinstance(message, Request):
            self._request(message)
            return
        dialog = self.dialogs.get(message.headers.get("Call-ID") or "")
        if dialog is None:
            return
        method = (message.headers.get("CSeq") or "").split()[-1]
        if method == "INVITE":
            self._invite_response(dialog, message)
        elif method == "BYE" and message.status >= 200 and dialog.bye_done is not None:
            dialog.bye_status = message.status
            if not dialog.bye_done.done():
                dialog.bye_answered_at = time.monotonic()
                dialog.bye_done.set_result(None)

    def _invite_response(self, dialog: Dialog, response: Response) -> None:
        assert dialog.final is not None
        if response.status < 200:
            dialog.provisional = True
            return
        if dialog.final.done():  # a retransmitted final response: ACK again
            self._ack(dialog, response)
            return
        dialog.status = response.status
        dialog.answered_at = time.monotonic()
        if response.status < 300:
            dialog.to = response.headers.get("To") or ""
            contact = response.headers.get("Contact")
            dialog.target = parse_name_addr(contact).uri if contact else ""
            sdp = parse_sdp(response.body)
            audio = sdp.audio()
            address = sdp.address_for(audio) if audio is not None else None
            if audio is not None and address is not None:
                dialog.remote = (address, audio.port)
        self._ack(dialog, response)
        dialog.final.set_result(None)

    def _request(self, request: Request) -> None:
        if request.method == "ACK":
            return
        dialog = self.dialogs.get(request.headers.get("Call-ID") or "")
        if request.method == "BYE" and dialog is not None:
            dialog.dropped = True
        self._send(response_to(request, 200).serialize())

    def _send(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.sendto(data, self.server)


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)  # RFC 3261 section 8.1.1.7


# --- rtpengine's ng protocol ---------------------------------------------------------------

Bencoded = int | bytes | str | list["Bencoded"] | dict[str, "Bencoded"]


def bencode(value: Bencoded) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(map(bencode, value)) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"


def bdecode(data: bytes, at: int = 0) -> tuple[Bencoded, int]:
    """One value from ``data`` at ``at``, and where it ends. Strings come back as bytes."""
    kind = data[at : at + 1]
    if kind == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if kind in (b"l", b"d"):
        items: list[Bencoded] = []
        at += 1
        while data[at : at + 1] != b"e":
            item, at = bdecode(data, at)
            items.append(item)
        if kind == b"l":
            return items, at + 1
        pairs = zip(items[::2], items[1::2], strict=True)
        return {_text(k): v for k, v in pairs}, at + 1
    colon = data.index(b":", at)
    length = int(data[at:colon])
    return data[colon + 1 : colon + 1 + length], colon + 1 + length


def _text(value: Bencoded) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RtpEngine(asyncio.DatagramProtocol):
    """An ng client: :meth:`command` sends one dictionary, returns rtpengine's answer."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._transport: asyncio.DatagramTransport | None = None
        self._waiting: dict[bytes, asyncio.Future[dict[str, Bencoded]]] = {}
        self._cookies = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def command(self, body: dict[str, Bencoded], timeout: float = 2.0) -> dict[str, Bencoded]:
        assert self._transport is not None
        self._cookies += 1
        cookie = b"%d_%s" % (self._cookies, secrets.token_hex(4).encode())
        future: asyncio.Future[dict[str, Bencoded]] = asyncio.get_running_loop().create_future()
        self._waiting[cookie] = future
        try:
            self._transport.sendto(cookie + b" " + bencode(body), self.address)
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(cookie, None)
        if reply.get("result") not in (b"ok", b"pong"):
            reason = reply.get("error-reason", b"?")
            raise RuntimeError(f"rtpengine refused {body.get('command')!r}: {reason!r}")
        return reply

    async def relay(self, call_id: str, caller: Address, callee: Address) -> tuple[int, int]:
        """Set up a call between two endpoints; returns rtpengine's ports that the caller
        and the callee send to."""
        offer = await self.command({
            "command": "offer", "call-id": call_id, "from-tag": "caller",
            "sdp": _sdp(caller), "replace": ["origin"],
        })  # fmt: skip
        answer = await self.command({
            "command": "answer", "call-id": call_id, "from-tag": "caller", "to-tag": "callee",
            "sdp": _sdp(callee), "replace": ["origin"],
        })  # fmt: skip
        return _audio_port(answer), _audio_port(offer)

    async def delete(self, call_id: str) -> None:
        await self.command({"command": "delete", "call-id": call_id, "from-tag": "caller"})

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        cookie, _, body = data.partition(b" ")
        future = self._waiting.get(cookie)
        if future is None or future.done():
            return
        try:
            value, _ = bdecode(body)
        except (ValueError, IndexError) as error:
            future.set_exception(RuntimeError(f"rtpengine's answer is not bencode: {error}"))
            return
        future.set_result(value if isinstance(value, dict) else {})


def _sdp(endpoint: Address) -> str:
    offer = offer_sdp(
        address=endpoint[0], port=endpoint[1], session_id=endpoint[1], session_version=1,
        codecs=["PCMU"], username="bench",
    )  # fmt: skip
    return serialize_sdp(offer).decode()


def _audio_port(reply: dict[str, Bencoded]) -> int:
    sdp = reply.get("sdp")
    audio = parse_sdp(sdp if isinstance(sdp, bytes) else b"").audio()
    if audio is None:
        raise RuntimeError("rtpengine's SDP has no audio stream")
    return audio.port


# --- the timed echo bot (its own process) ---------------------------------------------------

MARK: Final = struct.Struct(">2sBxII")  # magic, side, call, frame: bench/sip_path_load.py
MAGIC: Final = b"VX"
TEXT: Final = WSMsgType.TEXT


class _Times:
    """When each marked frame reached the bot and when its echo left, by call and frame."""

    def __init__(self, calls: int, frames: int) -> None:
        self.calls, self.frames = calls, frames
        self.arrived = array("d", [float("nan")]) * (calls * frames)
        self.left = array("d", [float("nan")]) * (calls * frames)
        self.calls_started = 0
        self.media = 0

    def note(self, audio: str, arrived: float, left: float) -> None:
        try:
            head = binascii.a2b_base64(audio[:16])
        except (binascii.Error, ValueError):
            return
        if len(head) < 12 or head[:2] != MAGIC:
            return
        _, _, call, frame = MARK.unpack_from(head)
        if call < self.calls and frame < self.frames:
            at = call * self.frames + frame
            self.arrived[at] = arrived
            self.left[at] = left


class _TimedEcho(WSListener):
    def __init__(self, times: _Times) -> None:
        super().__init__()
        self.times = times

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is TEXT:
            arrived = time.time()
            message = orjson.loads(frame.get_payload_as_bytes())
            kind = message.get("type")
            if kind == "media":
                audio = message["audio"]
                transport.send(TEXT, b'{"type":"response.audio.delta","audio":"%s"}' % (
                    audio.encode()
                ))  # fmt: skip
                self.times.media += 1
                self.times.note(audio, arrived, time.time())
            elif kind == "start":
                self.times.calls_started += 1
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def serve_bot(port: int, calls: int, frames: int, out: str) -> None:
    """Serve until SIGTERM or SIGINT, then write the times to ``out`` (.npz)."""
    times = _Times(calls, frames)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopping)
    server = await ws_create_server(lambda request: _TimedEcho(times), "127.0.0.1", port)
    async with server:
        await stop
    np.savez(
        out,
        arrived=np.frombuffer(times.arrived, dtype=np.float64).reshape(calls, frames),
        left=np.frombuffer(times.left, dtype=np.float64).reshape(calls, frames),
        counts=np.array([times.calls_started, times.media]),
    )

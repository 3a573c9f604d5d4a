"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for a call's one audio stream.

Theory of operation
-------------------
:func:`parse_sdp` turns a body into frozen values and :func:`serialize_sdp` writes them back
(CRLF lines, ``t=0 0``, an ``a=rtpmap`` for every named codec). Parsing is strict where a
mistake would pick the wrong codec or address (``v=``/``o=``/``s=``, ``m=`` lines, payload
types, ``a=rtpmap``, ``c=``) and lenient elsewhere: unknown lines and attributes are skipped,
an unreadable ``a=ptime`` or ``a=rtcp`` counts as absent, LF or CRLF, any line order after
``v=``. Payload types of the RFC 3551 static table are known without ``a=rtpmap``.

voxgate carries one audio stream per call, G.711 or L16, with RFC 4733 telephone-event beside
it. As answerer (UAS), :func:`negotiate` picks the first codec in the *offer's* order that
voxgate accepts, from the first usable ``RTP/AVP`` audio line; :func:`answer_sdp` then answers
every ``m=`` line of the offer in order (RFC 3264 section 6), rejecting all but that one with
port 0. As offerer (UAC), :func:`offer_sdp` builds the offer and :func:`accept_answer` reads
what the answerer chose. Either way the result is a :class:`Negotiated`: the codec and
telephone-event payload types to *send* with, where to send, packet time and directions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from voxgate.errors import SdpParseError, UnsupportedFormatError

SUPPORTED: Final = ("PCMU", "PCMA", "L16")
"""The codecs voxgate handles, in its order of preference when it offers."""

DIRECTIONS: Final = ("sendrecv", "sendonly", "recvonly", "inactive")
TELEPHONE_EVENT: Final = "telephone-event"


def _static_table(table: str) -> dict[int, tuple[str, int, int]]:
    entries = (entry.replace(":", "/").split("/") for entry in table.split())
    return {int(e[0]): (e[1], int(e[2]), int(e[3]) if len(e) > 3 else 1) for e in entries}


# RFC 3551 section 6, tables 4 and 5, as <pt>:<name>/<clock rate>[/<channels>].
STATIC_PAYLOAD_TYPES: Final = _static_table(
    "0:PCMU/8000 3:GSM/8000 4:G723/8000 5:DVI4/8000 6:DVI4/16000 7:LPC/8000 8:PCMA/8000"
    " 9:G722/8000 10:L16/44100/2 11:L16/44100/1 12:QCELP/8000 13:CN/8000 14:MPA/90000"
    " 15:G728/8000 16:DVI4/11025 17:DVI4/22050 18:G729/8000 25:CelB/90000 26:JPEG/90000"
    " 28:nv/90000 31:H261/90000 32:MPV/90000 33:MP2T/90000 34:H263/90000"
)

# The payload types voxgate gives the codecs it offers (RFC 3551 static, else dynamic).
_OFFER_PAYLOAD_TYPES: Final = {"PCMU": 0, "PCMA": 8, "L16": 96}
_NUMBER = re.compile(r"[0-9]{1,30}")  # ASCII only: int() would also take "1_0" and "٣"
_LINE = re.compile(r"[a-z]=[^\r\x00]*")


@dataclass(frozen=True, slots=True)
class Codec:
    """One RTP payload format: the name keeps the peer's case and compares case-insensitively."""

    name: str
    payload_type: int
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=`` line and its attributes.

    ``codecs`` follow the ``m=`` line's order. A dynamic payload type without ``a=rtpmap`` is
    a codec with an empty name and clock rate 0 (it matches nothing). ``formats`` holds the
    ``m=`` line's formats only when the protocol is not RTP (``("t38",)`` for ``udptl``).
    """

    media: str
    port: int
    protocol: str
    codecs: tuple[Codec, ...]
    connection: str | None
    direction: str
    ptime: int | None
    rtcp_port: int | None = None
    formats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionDescription:
    origin_username: str
    session_id: int
    session_version: int
    origin_address: str
    connection: str | None
    media: tuple[MediaDescription, ...]
    session_name: str = "-"

    def audio(self) -> MediaDescription | None:
        """The first audio stream that is not rejected (port 0)."""
        return next((m for m in self.media if m.media == "audio" and m.port != 0), None)

    def address_for(self, media: MediaDescription) -> str | None:
        """Where a stream's media goes: its own ``c=``, else the session's (RFC 4566 5.7)."""
        return media.connection if media.connection is not None else self.connection


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome of offer/answer for the audio stream, with the payload types to send."""

    codec: Codec
    telephone_event: Codec | None
    remote_address: str
    remote_port: int
    ptime: int
    direction: str
    remote_direction: str

    @property
    def on_hold(self) -> bool:
        """The peer holds the call: RFC 3264 8.4, or the RFC 2543 style ``c=0.0.0.0``."""
        return self.remote_direction in ("sendonly", "inactive") or self.remote_address == "0.0.0.0"


# --- parsing --------------------------------------------------------------------------------


def _fail(what: str, text: str) -> SdpParseError:
    return SdpParseError(f"{what}: {text[:60]!r}")


def _number(text: str, what: str, limit: int) -> int:
    if not _NUMBER.fullmatch(text) or int(text) > limit:
        raise _fail(f"bad {what}", text)
    return int(text)


def _optional_number(text: str, limit: int) -> int | None:
    return int(text) if _NUMBER.fullmatch(text) and int(text) <= limit else None


def _is_rtp(protocol: str) -> bool:
    return "RTP" in protocol.upper().split("/")


def _connection(value: str) -> str:
    """``c=<nettype> <addrtype> <address>[/ttl[/count]]`` -> the address."""
    parts = value.split()
    if len(parts) != 3 or not parts[2].split("/")[0]:
        raise _fail("bad c= line", value)
    return parts[2].split("/")[0]


def _rtpmap(value: str) -> tuple[int, tuple[str, int, int]]:
    """``<pt> <name>/<clock rate>[/<channels>]`` (RFC 4566 6)."""
    pt, _, encoding = value.partition(" ")
    parts = encoding.strip().split("/")
    if len(parts) not in (2, 3) or not parts[0]:
        raise _fail("bad a=rtpmap", value)
    channels = _number(parts[2], "rtpmap channels", 255) if len(parts) == 3 else 1
    rate = _number(parts[1], "rtpmap clock rate", 2**32 - 1)
    if rate == 0 or channels == 0:
        raise _fail("bad a=rtpmap", value)
    return _number(pt, "rtpmap payload type", 127), (parts[0], rate, channels)


@dataclass(slots=True)
class _MediaDraft:
    media: str
    port: int
    protocol: str
    formats: list[str]
    connection: str | None = None
    direction: str | None = None
    ptime: int | None = None
    rtcp_port: int | None = None
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)

    def take(self, kind: str, value: str) -> None:
        if kind == "c" and self.connection is None:
            self.connection = _connection(value)
        elif kind == "a":
            self._attribute(*_split_attribute(value))

    def _attribute(self, name: str, value: str) -> None:
        if name in DIRECTIONS:
            self.direction = name
        elif name == "ptime":
            self.ptime = _optional_number(value.strip(), 10_000)
        elif name == "rtcp":  # RFC 3605: a=rtcp:<port> [<nettype> <addrtype> <address>]
            self.rtcp_port = _optional_number((value.split() or [""])[0], 65535)
        elif name == "rtpmap" and _is_rtp(self.protocol):
            self.rtpmap.setdefault(*_rtpmap(value))
        elif name == "fmtp" and _is_rtp(self.protocol):
            pt, _, params = value.partition(" ")
            if params.strip():  # RFC 4566 6: a=fmtp:<format> <format specific parameters>
                self.fmtp.setdefault(_number(pt, "fmtp payload type", 127), params.strip())

    def build(self, session_direction: str | None) -> MediaDescription:
        rtp = _is_rtp(self.protocol)
        return MediaDescription(
            media=self.media,
            port=self.port,
            protocol=self.protocol,
            codecs=tuple(self._codec(int(f)) for f in self.formats) if rtp else (),
            connection=self.connection,
            direction=self.direction or session_direction or "sendrecv",
            ptime=self.ptime,
            rtcp_port=self.rtcp_port,
            formats=() if rtp else tuple(self.formats),
        )

    def _codec(self, pt: int) -> Codec:
        name, rate, channels = self.rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt, ("", 0, 1))
        return Codec(name, pt, rate, channels, self.fmtp.get(pt))


def _split_attribute(value: str) -> tuple[str, str]:
    name, _, rest = value.partition(":")
    return name.strip().lower(), rest


def _media_line(value: str) -> _MediaDraft:
    """``m=<media> <port>[/<count>] <proto> <fmt> ...`` (RFC 4566 5.14)."""
    parts = value.split()
    if len(parts) < 4:
        raise _fail("bad m= line", value)
    port, _, count = parts[1].partition("/")
    if count:
        _number(count, "m= port count", 65535)
    draft = _MediaDraft(parts[0], _number(port, "m= port", 65535), parts[2], parts[3:])
    if _is_rtp(draft.protocol):
        for fmt in draft.formats:
            _number(fmt, "m= payload type", 127)
    return draft


@dataclass(slots=True)
class _SessionDraft:
    origin: tuple[str, int, int, str] | None = None
    name: str | None = None
    connection: str | None = None
    direction: str | None = None
    media: list[_MediaDraft] = field(default_factory=list)

    def take(self, kind: str, value: str) -> None:
        if kind == "o":
            self._origin(value)
        elif kind == "s" and self.name is None:
            self.name = value.strip() or "-"
        elif kind in ("v", "s"):
            raise _fail(f"second {kind}= line", value)
        elif kind == "c" and self.connection is None:
            self.connection = _connection(value)
        elif kind == "a" and _split_attribute(value)[0] in DIRECTIONS:
            self.direction = _split_attribute(value)[0]

    def _origin(self, value: str) -> None:
        """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (5.2)."""
        parts = value.split()
        if self.origin is not None or len(parts) != 6:
            raise _fail("bad or second o= line", value)
        session_id = _number(parts[1], "o= session id", 10**30)
        version = _number(parts[2], "o= session version", 10**30)
        self.origin = (parts[0], session_id, version, parts[5])

    def build(self) -> SessionDescription:
        if self.origin is None or self.name is None:
            raise SdpParseError("an o= or s= line is missing")
        for draft in self.media:
            if draft.connection is None and self.connection is None:
                raise _fail("no c= line for a stream", draft.media)
        username, session_id, version, address = self.origin
        media = tuple(draft.build(self.direction) for draft in self.media)
        return SessionDescription(
            username, session_id, version, address, self.connection, media, self.name
        )


def _lines(data: bytes | str) -> Iterator[tuple[str, str]]:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise SdpParseError("SDP is not UTF-8") from None
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if not line:
            continue
        if not _LINE.fullmatch(line):
            raise _fail("not an SDP line", line)
        yield line[0], line[2:]


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; :class:`SdpParseError` on anything malformed."""
    lines = _lines(data)
    if next(lines, None) != ("v", "0"):
        raise SdpParseError("SDP does not start with v=0")
    session = _SessionDraft()
    for kind, value in lines:
        if kind == "m":
            session.media.append(_media_line(value))
        elif kind in ("v", "o", "s") or not session.media:
            session.take(kind, value)
        else:
            session.media[-1].take(kind, value)
    return session.build()


# --- serialization --------------------------------------------------------------------------


def _address(address: str) -> str:
    return f"IN {'IP6' if ':' in address else 'IP4'} {address}"


def _media_lines(media: MediaDescription) -> list[str]:
    formats = [str(c.payload_type) for c in media.codecs] if media.codecs else media.formats
    lines = [f"m={media.media} {media.port} {media.protocol} {' '.join(formats)}"]
    if media.connection is not None:
        lines.append(f"c={_address(media.connection)}")
    for codec in media.codecs:
        if codec.name:
            channels = f"/{codec.channels}" if codec.channels != 1 else ""
            lines.append(f"a=rtpmap:{codec.payload_type} {codec.name}/{codec.clock_rate}{channels}")
        if codec.fmtp is not None:
            lines.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
    if media.ptime is not None:
        lines.append(f"a=ptime:{media.ptime}")
    if media.rtcp_port is not None:
        lines.append(f"a=rtcp:{media.rtcp_port}")
    lines.append(f"a={media.direction}")
    return lines


def serialize_sdp(sdp: SessionDescription) -> bytes:
    origin = f"{sdp.origin_username} {sdp.session_id} {sdp.session_version}"
    lines = ["v=0", f"o={origin} {_address(sdp.origin_address)}", f"s={sdp.session_name or '-'}"]
    if sdp.connection is not None:
        lines.append(f"c={_address(sdp.connection)}")
    lines.append("t=0 0")
    for media in sdp.media:
        lines.extend(_media_lines(media))
    return ("\r\n".join(lines) + "\r\n").encode()


# --- offer/answer ---------------------------------------------------------------------------


def _direction(ours: str, theirs: str) -> str:
    """What we may do given what we want and what the peer said (RFC 3264 6.1)."""
    send = ours in ("sendrecv", "sendonly") and theirs in ("sendrecv", "recvonly")
    receive = ours in ("sendrecv", "recvonly") and theirs in ("sendrecv", "sendonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (send, receive), "inactive"
    )


def _ptime(*candidates: int | None) -> int:
    return next((p for p in candidates if p in (20, 30)), 20)


def _acceptable(codec: Codec, accept: set[str]) -> bool:
    name = codec.name.lower()
    if name not in accept or name in (TELEPHONE_EVENT, "cn"):
        return False
    if name in ("pcmu", "pcma"):
        return codec.clock_rate == 8000 and codec.channels == 1
    if name == "l16":  # L16 at 44100 (static 10 and 11) is more than a phone call carries
        return codec.clock_rate in (8000, 16000) and codec.channels == 1
    return True


def _telephone_event(codecs: Sequence[Codec], clock_rate: int) -> Codec | None:
    """RFC 4733 2.1: telephone-event runs at the clock rate of the audio codec it goes with."""
    return next(
        (c for c in codecs if c.name.lower() == TELEPHONE_EVENT and c.clock_rate == clock_rate),
        None,
    )


def _avp_audio(offer: SessionDescription) -> Iterator[tuple[int, MediaDescription]]:
    for index, media in enumerate(offer.media):
        if media.media == "audio" and media.port != 0 and media.protocol.upper() == "RTP/AVP":
            yield index, media


def negotiate(offer: SessionDescription, *, accept: Sequence[str] = SUPPORTED) -> Negotiated | None:
    """The answerer's choice, or None when nothing is in common (the UAS answers 488)."""
    wanted = {name.lower() for name in accept}
    for _, media in _avp_audio(offer):
        codec = next((c for c in media.codecs if _acceptable(c, wanted)), None)
        address = offer.address_for(media)
        if codec is not None and address is not None:
            return Negotiated(
                codec=codec,
                telephone_event=_telephone_event(media.codecs, codec.clock_rate),
                remote_address=address,
                remote_port=media.port,
                ptime=_ptime(media.ptime),
                direction=_direction("sendrecv", media.direction),
                remote_direction=media.direction,
            )
    return None


def _rejected(media: MediaDescription) -> MediaDescription:
    """RFC 3264 6: a stream we do not take is answered with port 0 and one of its formats."""
    first, formats = media.codecs[:1], media.formats[:1]
    return MediaDescription(
        media.media, 0, media.protocol, first, None, "inactive", None, None, formats
    )


def _chosen_index(offer: SessionDescription, negotiated: Negotiated) -> int:
    for index, media in _avp_audio(offer):
        if media.port == negotiated.remote_port and negotiated.codec in media.codecs:
            return index
    raise ValueError("the negotiated stream is not in this offer")


def answer_sdp(
    offer: SessionDescription,
    negotiated: Negotiated,
    *,
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    username: str = "voxgate",
) -> SessionDescription:
    """The answer to ``offer``: one line per offered ``m=`` line, only the chosen one live."""
    chosen = _chosen_index(offer, negotiated)
    event = negotiated.telephone_event
    codecs = (negotiated.codec,) + ((replace(event, fmtp=event.fmtp or "0-16"),) if event else ())
    direction, ptime = negotiated.direction, negotiated.ptime
    live = MediaDescription("audio", port, "RTP/AVP", codecs, None, direction, ptime)
    media = tuple(live if i == chosen else _rejected(m) for i, m in enumerate(offer.media))
    return SessionDescription(username, session_id, session_version, address, address, media)


def offer_sdp(
    *,
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    codecs: Sequence[str] = SUPPORTED,
    telephone_event_pt: int = 101,
    ptime: int = 20,
    direction: str = "sendrecv",
    username: str = "voxgate",
) -> SessionDescription:
    """voxgate's offer: PCMU 0, PCMA 8, L16/8000 96 as asked, then telephone-event."""
    unknown = [name for name in codecs if name.upper() not in _OFFER_PAYLOAD_TYPES]
    if unknown or not codecs:
        raise UnsupportedFormatError(f"cannot offer codecs {list(codecs)!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    names = [name.upper() for name in codecs]
    offered = [Codec(name, _OFFER_PAYLOAD_TYPES[name], 8000) for name in names]
    offered.append(Codec(TELEPHONE_EVENT, telephone_event_pt, 8000, fmtp="0-16"))
    audio = MediaDescription("audio", port, "RTP/AVP", tuple(offered), None, direction, ptime)
    return SessionDescription(username, session_id, session_version, address, address, (audio,))


def _same_codec(a: Codec, b: Codec) -> bool:
    return (a.name.lower(), a.clock_rate, a.channels) == (b.name.lower(), b.clock_rate, b.channels)


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated | None:
    """The offerer's reading of the answer, or None if the audio stream was not accepted."""
    index = next((i for i, m in enumerate(offer.media) if m.media == "audio" and m.port != 0), None)
    if index is None or index >= len(answer.media):
        return None
    ours, theirs = offer.media[index], answer.media[index]
    if theirs.port == 0 or (theirs.media, theirs.protocol) != (ours.media, ours.protocol):
        return None
    wanted = {c.name.lower() for c in ours.codecs}
    offered = [c for c in theirs.codecs if any(_same_codec(c, o) for o in ours.codecs)]
    codec = next((c for c in offered if _acceptable(c, wanted)), None)
    address = answer.address_for(theirs)
    if codec is None or address is None:
        return None
    event = _telephone_event(theirs.codecs, codec.clock_rate)
    offered_event = _telephone_event(ours.codecs, codec.clock_rate)
    return Negotiated(
        codec=codec,
        telephone_event=event if offered_event is not None else None,
        remote_address=address,
        remote_port=theirs.port,
        ptime=_ptime(theirs.ptime, ours.ptime),
        direction=_direction(ours.direction, theirs.direction),
        remote_direction=theirs.direction,
    )

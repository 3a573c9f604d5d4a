"""Tests of the test-support code: the carrier emulator and the REST stand-ins (Twilio,
Telnyx, Plivo).

The emulator talks to a tiny websockets server written here (the
application side), the stand-ins to an httpx client, all over 127.0.0.1.
Each async body runs under ``asyncio.run`` (debug on) inside a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from carrier import (
    PLIVO_SUBPROTOCOL,
    CarrierDialect,
    CarrierEmulator,
    PlayoutBuffer,
    plivo_signature_v3,
    twilio_signature,
)
from rest_standin import (
    PLIVO_AUTH_ID,
    PLIVO_AUTH_TOKEN,
    TELNYX_API_KEY,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    RestStandIn,
)
from websockets.asyncio.server import ServerConnection, serve

from voxgate.bridge.carriers.rest import plivo_signature_valid

TIMEOUT = 10.0
FRAME = bytes(range(160))  # 20 ms of PCMU, distinct bytes
TWILIO = {"call_id": "CA" + "1" * 32, "stream_id": "MZ" + "2" * 32, "account_id": "AC" + "3" * 32}
TELNYX = {
    "call_id": "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ",
    "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
    "account_id": "3E6F995F-85F7-4705-9741-53B116D28237",
}
PLIVO = {
    "call_id": "12345678-1234-1234-1234-123456789abc",
    "stream_id": "87654321-4321-4321-4321-cba987654321",
    "account_id": "MAXXXXXXXXXXXXXXXXXX",
}
IDS: dict[str, dict[str, str]] = {"twilio": TWILIO, "telnyx": TELNYX, "plivo": PLIVO}
DIALECTS: list[CarrierDialect] = ["twilio", "telnyx"]
Json = dict[str, Any]


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TIMEOUT):
            await body()

    asyncio.run(bounded(), debug=True)


class FakeApp:
    """The application side of a media stream: records what arrives, can answer."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str | bytes]] = []
        self.connection: ServerConnection | None = None
        self.url = ""

    async def handler(self, connection: ServerConnection) -> None:
        self.connection = connection
        async for message in connection:
            self.arrivals.append((time.monotonic(), message))

    def messages(self) -> list[Json]:
        return [json.loads(message) for _, message in self.arrivals]

    async def wait_for_count(self, count: int, timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.arrivals) < count:
                await asyncio.sleep(0.001)

    async def wait_for(self, count: int, timeout: float = 3.0) -> list[Json]:
        await self.wait_for_count(count, timeout)
        return self.messages()

    async def send(self, message: Json | str | bytes) -> float:
        assert self.connection is not None
        await self.connection.send(
            message if isinstance(message, str | bytes) else json.dumps(message)
        )
        return time.monotonic()


@contextlib.asynccontextmanager
async def fake_app() -> AsyncIterator[FakeApp]:
    app = FakeApp()
    async with serve(app.handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        app.url = f"ws://127.0.0.1:{port}/stream"
        yield app


def emulator(app: FakeApp, dialect: CarrierDialect, **options: Any) -> CarrierEmulator:
    return CarrierEmulator(app.url, dialect, **{**IDS[dialect], **options})


# -- the carrier's first messages ---------------------------------------------


def test_twilio_opens_with_connected_then_start_and_signs_the_upgrade() -> None:
    async def body() -> None:
        async with fake_app() as app:
            params = {"bot": "echo", "FirstName": "Jane"}
            async with emulator(app, "twilio", custom_parameters=params, twilio_auth_token="tok"):
                messages = await app.wait_for(2)
                assert app.connection is not None
                headers = app.connection.request.headers  # type: ignore[union-attr]
        assert all(isinstance(message, str) for _, message in app.arrivals)
        assert messages == [
            {"event": "connected", "protocol": "Call", "version": "1.0.0"},
            {
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "accountSid": TWILIO["account_id"],
                    "streamSid": TWILIO["stream_id"],
                    "callSid": TWILIO["call_id"],
                    "tracks": ["inbound"],
                    "customParameters": params,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": TWILIO["stream_id"],
            },
        ]
        assert headers["X-Twilio-Signature"] == twilio_signature("tok", app.url)

    run(body)


def test_telnyx_opens_with_connected_then_start_and_sends_the_auth_header() -> None:
    async def body() -> None:
        async with fake_app() as app:
            options = {"custom_parameters": {"customer_id": "c1"}, "client_state": "aGk="}
            async with emulator(app, "telnyx", streaming_auth_token="secret", **options) as carrier:
                messages = await app.wait_for(2)
                assert app.connection is not None
                headers = app.connection.request.headers  # type: ignore[union-attr]
        assert messages == [
            {"event": "connected", "version": "1.0.0"},
            {
                "event": "start",
                "sequence_number": "1",
                "start": {
                    "user_id": TELNYX["account_id"],
                    "call_control_id": TELNYX["call_id"],
                    "call_session_id": carrier.call_session_id,
                    "from": "+15550001111",
                    "to": "+15550002222",
                    "client_state": "aGk=",
                    "custom_parameters": {"customer_id": "c1"},
                    "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
                },
                "stream_id": TELNYX["stream_id"],
            },
        ]
        assert re.fullmatch(r"[0-9a-f-]{36}", carrier.call_session_id)
        assert headers["x-telnyx-streaming-auth-token"] == "secret"

    run(body)


def test_generated_ids_have_the_vendor_shapes() -> None:
    twilio = CarrierEmulator("ws://127.0.0.1:9", "twilio")
    telnyx = CarrierEmulator("ws://127.0.0.1:9", "telnyx")
    for sid, prefix in [
        (twilio.call_id, "CA"),
        (twilio.stream_id, "MZ"),
        (twilio.account_id, "AC"),
    ]:
        assert re.fullmatch(prefix + "[0-9a-f]{32}", sid)
    assert telnyx.call_id.startswith("v3:")
    assert re.fullmatch(r"[0-9A-F-]{36}", telnyx.stream_id)


def test_twilio_signature_matches_twilios_published_vector() -> None:
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
              "From": "+14158675309", "To": "+18005551212"}  # fmt: skip
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.mark.parametrize(
    ("dialect", "encoding", "rate"),
    [("twilio", "PCMA", 8000), ("twilio", "PCMU", 16000), ("telnyx", "OPUS", 8000)],
)
def test_formats_the_carrier_cannot_stream_are_refused(
    dialect: Any, encoding: str, rate: int
) -> None:
    with pytest.raises(ValueError, match=r"Twilio|Telnyx"):
        CarrierEmulator("ws://127.0.0.1:9", dialect, encoding=encoding, sample_rate=rate)


# -- carrier -> application: media, dtmf, stop --------------------------------

MEDIA_VECTORS = {
    "twilio": lambda n, ts, payload: {
        "event": "media",
        "sequenceNumber": str(n + 1),
        "media": {"track": "inbound", "chunk": str(n), "timestamp": ts, "payload": payload},
        "streamSid": TWILIO["stream_id"],
    },
    "telnyx": lambda n, ts, payload: {
        "event": "media",
        "sequence_number": str(n + 1),
        "media": {"track": "inbound", "chunk": str(n), "timestamp": ts, "payload": payload},
        "stream_id": TELNYX["stream_id"],
    },
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_media_messages_number_chunks_and_timestamps(dialect: CarrierDialect) -> None:
    audio = FRAME * 2 + FRAME[:80]  # two whole frames and a half frame

    async def body() -> None:
        async with fake_app() as app, emulator(app, dialect) as carrier:
            await carrier.send_audio(audio, paced=False)
            messages = await app.wait_for(5)
        chunks = [FRAME, FRAME, FRAME[:80]]
        expected = [
            MEDIA_VECTORS[dialect](n, str(20 * (n - 1)), base64.b64encode(chunk).decode())
            for n, chunk in enumerate(chunks, start=1)
        ]
        assert messages[2:] == expected

    run(body)


def test_telnyx_l16_frames_are_20_ms_of_two_byte_samples() -> None:
    async def body() -> None:
        async with fake_app() as app:
            carrier = emulator(app, "telnyx", encoding="L16", sample_rate=16000)
            async with carrier:
                await carrier.send_audio(bytes(1280), paced=False)
                messages = await app.wait_for(4)
        assert messages[1]["start"]["media_format"] == {
            "encoding": "L16", "sample_rate": 16000, "channels": 1}  # fmt: skip
        sizes = [len(base64.b64decode(m["media"]["payload"])) for m in messages[2:]]
        assert sizes == [640, 640]
        assert [m["media"]["timestamp"] for m in messages[2:]] == ["0", "20"]

    run(body)


def test_dtmf_and_stop_messages() -> None:
    async def body() -> None:
        async with fake_app() as app:
            async with emulator(app, "twilio") as twilio:
                await twilio.send_dtmf("5")
                await twilio.send_stop()
                twilio_messages = (await app.wait_for(4))[2:]
            app.arrivals.clear()
            async with emulator(app, "telnyx") as telnyx:
                await telnyx.send_dtmf("#")
                await telnyx.send_stop()
                telnyx_messages = (await app.wait_for(4))[2:]
            with pytest.raises(ValueError, match="DTMF"):
                await telnyx.send_dtmf("x")
        assert twilio_messages == [
            {"event": "dtmf", "streamSid": TWILIO["stream_id"], "sequenceNumber": "2",
             "dtmf": {"track": "inbound_track", "digit": "5"}},
            {"event": "stop", "sequenceNumber": "3", "stop": {
                "accountSid": TWILIO["account_id"], "callSid": TWILIO["call_id"]},
             "streamSid": TWILIO["stream_id"]},
        ]  # fmt: skip
        occurred_at = telnyx_messages[0].pop("occurred_at")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", occurred_at)
        assert telnyx_messages == [
            {"event": "dtmf", "stream_id": TELNYX["stream_id"], "sequence_number": "2",
             "dtmf": {"digit": "#"}},
            {"event": "stop", "sequence_number": "3", "stop": {
                "user_id": TELNYX["account_id"], "call_control_id": TELNYX["call_id"]},
             "stream_id": TELNYX["stream_id"]},
        ]  # fmt: skip

    run(body)


def test_paced_audio_arrives_every_20_ms_without_drift() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "twilio") as carrier:
            await carrier.send_audio(FRAME * 50)  # one second
            await app.wait_for(52)
        # Medians, so that a few late wake-ups of a loaded machine do not count.
        arrivals = [at for at, _ in app.arrivals[2:]]
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert abs(statistics.median(gaps) - 0.020) < 0.003, sorted(gaps)
        lateness = [at - arrivals[0] - 0.020 * index for index, at in enumerate(arrivals)]
        drift = statistics.median(lateness[-10:]) - statistics.median(lateness[:10])
        assert abs(drift) < 0.004, drift  # absolute deadlines: 40 frames later, no drift

    run(body)


def test_unpaced_audio_goes_at_once() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "telnyx") as carrier:
            started = time.monotonic()
            await carrier.send_audio(FRAME * 50, paced=False)
            await app.wait_for(52)
        assert app.arrivals[-1][0] - started < 0.3

    run(body)


def test_telnyx_shuffles_media_within_windows_keeping_true_numbering() -> None:
    frames = [bytes([n]) * 160 for n in range(12)]

    async def body() -> None:
        async with fake_app() as app, emulator(app, "telnyx") as carrier:
            await carrier.send_audio(b"".join(frames), paced=False, shuffle_window=4)
            media = (await app.wait_for(14))[2:]
            with pytest.raises(ValueError, match="Telnyx"):
                await emulator(app, "twilio").send_audio(FRAME, shuffle_window=4)
        chunks = [int(m["media"]["chunk"]) for m in media]
        assert chunks != sorted(chunks)
        for window in range(0, 12, 4):
            assert sorted(chunks[window : window + 4]) == list(range(window + 1, window + 5))
        by_chunk = sorted(media, key=lambda m: int(m["media"]["chunk"]))
        assert [base64.b64decode(m["media"]["payload"]) for m in by_chunk] == frames
        assert [int(m["sequence_number"]) for m in by_chunk] == list(range(2, 14))

    run(body)


def test_sequence_numbers_rise_on_the_wire_when_echoes_interleave_with_media() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "twilio") as carrier:
            await app.wait_for(2)
            sending = asyncio.create_task(carrier.send_audio(FRAME * 10))
            await app.wait_for(4)
            await app.send(app_message("twilio", "mark", mark={"name": "early"}))
            await sending
            messages = await app.wait_for(13)
        assert [m["event"] for m in messages].count("mark") == 1
        sequence = [int(m["sequenceNumber"]) for m in messages[1:]]
        assert sequence == list(range(1, 13))

    run(body)


def test_hang_up_sends_stop_then_closes_and_tolerates_a_closed_socket() -> None:
    async def body() -> None:
        async with fake_app() as app:
            async with emulator(app, "telnyx") as carrier:
                await app.wait_for(2)
                await carrier.hang_up()
                assert carrier.closed.is_set()
                assert carrier.close_code == 1000
            assert (await app.wait_for(3))[2]["event"] == "stop"
            async with emulator(app, "twilio") as twilio:
                await app.wait_for(5)
                assert app.connection is not None
                await app.connection.close()
                await twilio.wait_for_close(timeout=2)
                await twilio.hang_up()
            assert len(app.arrivals) == 5

    run(body)


def test_send_raw_sends_exactly_the_given_frame() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "twilio") as carrier:
            await carrier.send_raw("not json {")
            await carrier.send_raw(b"\x00\x01binary")
            await app.wait_for_count(4)
        assert [message for _, message in app.arrivals[2:]] == ["not json {", b"\x00\x01binary"]

    run(body)


# -- application -> carrier: media, marks, clear, bad input, close ----------------


def app_message(dialect: CarrierDialect, event: str, **fields: Any) -> Json:
    stream = {"streamSid": TWILIO["stream_id"]} if dialect == "twilio" else {}
    return {"event": event, **stream, **fields}


def mark_echo(dialect: CarrierDialect, sequence: int, name: str) -> Json:
    if dialect == "twilio":
        return {"event": "mark", "sequenceNumber": str(sequence),
                "streamSid": TWILIO["stream_id"], "mark": {"name": name}}  # fmt: skip
    return {"event": "mark", "stream_id": TELNYX["stream_id"],
            "sequence_number": str(sequence), "mark": {"name": name}}  # fmt: skip


def media(dialect: CarrierDialect, audio: bytes) -> Json:
    return app_message(dialect, "media", media={"payload": base64.b64encode(audio).decode()})


@pytest.mark.parametrize("dialect", DIALECTS)
def test_mark_is_echoed_once_the_audio_before_it_has_played(dialect: CarrierDialect) -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, dialect) as carrier:
            await app.wait_for(2)
            sent_at = await app.send(media(dialect, FRAME * 10))  # 200 ms
            await app.send(app_message(dialect, "mark", mark={"name": "m1"}))
            echo = (await app.wait_for(3))[2]
            echoed_at = app.arrivals[2][0]
            assert carrier.received_audio() == FRAME * 10
            assert len(carrier.media_arrivals()) == 1
            assert carrier.media_arrivals()[0] >= sent_at - 0.001
            assert carrier.marks_echoed() == ["m1"]
            assert not carrier.mark_echoes[0].cleared
            assert carrier.protocol_errors == []
        assert echo == mark_echo(dialect, 2, "m1")
        assert 0.19 < echoed_at - sent_at < 0.35

    run(body)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_mark_with_nothing_queued_is_echoed_at_once(dialect: CarrierDialect) -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, dialect):
            await app.wait_for(2)
            sent_at = await app.send(app_message(dialect, "mark", mark={"name": "now"}))
            assert (await app.wait_for(3))[2] == mark_echo(dialect, 2, "now")
        assert app.arrivals[2][0] - sent_at < 0.15  # at once (bounds for a loaded machine)

    run(body)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_clear_empties_the_buffer_and_returns_pending_marks_at_once(
    dialect: CarrierDialect,
) -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, dialect) as carrier:
            await app.wait_for(2)
            await app.send(media(dialect, FRAME * 50))  # one second queued
            for name in ("a", "b"):
                await app.send(app_message(dialect, "mark", mark={"name": name}))
            await asyncio.sleep(0.05)
            cleared_at = await app.send(app_message(dialect, "clear"))
            echoes = (await app.wait_for(4))[2:]
            assert app.arrivals[-1][0] - cleared_at < 0.3  # not after the 1 s queued
            assert [echo.cleared for echo in carrier.mark_echoes] == [True, True]
            assert len(carrier.clears) == 1
            await app.send(media(dialect, FRAME))  # playout restarts from empty
            sent_at = await app.send(app_message(dialect, "mark", mark={"name": "c"}))
            assert (await app.wait_for(5))[4] == mark_echo(dialect, 4, "c")
            assert 0.01 < app.arrivals[4][0] - sent_at < 0.1
        assert echoes == [mark_echo(dialect, 2, "a"), mark_echo(dialect, 3, "b")]

    run(body)


BAD_INPUT = [
    ("twilio", b"\x01\x02", "binary frame", None),
    ("twilio", "{nope", "not JSON", None),
    ("twilio", json.dumps({"event": "media", "media": {"payload": "AAAA"}}), "streamSid", None),
    ("twilio", json.dumps(app_message("twilio", "mark", mark={})), "mark.name", None),
    ("twilio", json.dumps(app_message("twilio", "play")), "unknown event", None),
    ("telnyx", "[1, 2]", "JSON object", (100003, "malformed_frame")),
    ("telnyx", json.dumps({"event": "media", "media": {"payload": "@@@"}}), "base64",
     (100004, "invalid_media")),
    ("telnyx", json.dumps({"event": "media", "media": {}}), "media.payload",
     (100003, "malformed_frame")),
]  # fmt: skip


@pytest.mark.parametrize(("dialect", "message", "reason", "telnyx_error"), BAD_INPUT)
def test_bad_input_is_recorded_and_telnyx_answers_an_error_frame(
    dialect: CarrierDialect, message: str | bytes, reason: str, telnyx_error: Any
) -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, dialect) as carrier:
            await app.wait_for(2)
            await app.send(message)
            await carrier.wait_for(lambda: bool(carrier.protocol_errors), timeout=2)
            assert reason in carrier.protocol_errors[0]
            assert carrier.received_audio() == b""
            if telnyx_error is not None:
                error = (await app.wait_for(3))[2]
                assert error["event"] == "error"
                assert error["stream_id"] == TELNYX["stream_id"]
                assert (error["payload"]["code"], error["payload"]["title"]) == telnyx_error
            else:
                await asyncio.sleep(0.02)
                assert len(app.arrivals) == 2  # Twilio says nothing on the socket

    run(body)


def test_close_code_and_reason_from_the_application_are_recorded() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "telnyx") as carrier:
            await app.wait_for(2)
            assert app.connection is not None
            await app.connection.close(1008, "bad token")
            assert await carrier.wait_for_close(timeout=2) == 1008
            assert carrier.close_reason == "bad token"
            assert carrier.closed.is_set()

    run(body)


def test_wait_for_gives_up_with_a_timeout_naming_the_state() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "twilio") as carrier:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="0 media"):
                await carrier.wait_for_audio(160, timeout=0.05)
            assert time.monotonic() - started < 0.5

    run(body)


PLAYOUT = [  # (steps, expected marks due at the end), 8000 bytes per second
    ([("audio", 0.0, 160), ("mark", 0.0, "m"), ("due", 0.019, [])], ["m"]),
    ([("audio", 0.0, 160), ("mark", 0.0, "m"), ("due", 0.020, ["m"])], []),
    ([("mark", 1.0, "now"), ("due", 1.0, ["now"])], []),
    ([("audio", 0.0, 160), ("audio", 0.5, 160), ("mark", 0.5, "m"), ("due", 0.52, ["m"])], []),
    ([("audio", 0.0, 800), ("mark", 0.0, "a"), ("audio", 0.0, 800), ("mark", 0.0, "b"),
      ("due", 0.1, ["a"]), ("due", 0.2, ["b"])], []),
    ([("audio", 0.0, 8000), ("mark", 0.0, "a"), ("mark", 0.0, "b"), ("clear", 0.1, ["a", "b"]),
      ("audio", 0.1, 160), ("mark", 0.1, "c"), ("due", 0.119, []), ("due", 0.121, ["c"])], []),
]  # fmt: skip


@pytest.mark.parametrize(("steps", "left"), PLAYOUT)
def test_playout_buffer_model(steps: list[tuple[str, float, Any]], left: list[str]) -> None:
    buffer = PlayoutBuffer(8000)
    for kind, now, value in steps:
        if kind == "audio":
            buffer.add_audio(now, value)
        elif kind == "mark":
            buffer.add_mark(now, value)
        elif kind == "due":
            assert buffer.due_marks(now) == value, (kind, now)
        else:
            assert buffer.clear(now) == value
    assert buffer.pending_marks == left


# -- the REST stand-ins -----------------------------------------------------------

CALL = "CA" + "a" * 32
TWILIO_PATH = f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Calls/{CALL}.json"
GOOD_AUTH = (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)
DIAL = "<Response><Dial><Number>+15557654321</Number></Dial></Response>"


def twilio_error(status: int, code: int) -> Json:
    more = f"https://www.twilio.com/docs/errors/{code}"
    return {"code": code, "status": status, "more_info": more}


TWILIO_CASES = [  # (path, auth, form, status, expected subset of the JSON answer)
    (TWILIO_PATH, GOOD_AUTH, {"Status": "completed"}, 200,
     {"sid": CALL, "account_sid": TWILIO_ACCOUNT_SID, "status": "completed", "uri": TWILIO_PATH}),
    (TWILIO_PATH, GOOD_AUTH, {"Twiml": DIAL}, 200, {"sid": CALL, "status": "in-progress"}),
    (TWILIO_PATH, GOOD_AUTH, {"Twiml": "<Response><Dial>sip:a@b</Dial></Response>"}, 200, {}),
    (TWILIO_PATH, (TWILIO_ACCOUNT_SID, "wrong"), {"Status": "completed"}, 401,
     {**twilio_error(401, 20003), "message": "Authenticate"}),
    (TWILIO_PATH, None, {"Status": "completed"}, 401, twilio_error(401, 20003)),
    (TWILIO_PATH, (TWILIO_ACCOUNT_SID, "é"), {"Status": "completed"}, 401, {}),
    (TWILIO_PATH.replace("0123", "9999"), GOOD_AUTH, {"Status": "completed"}, 401, {}),
    (TWILIO_PATH, GOOD_AUTH, {}, 400, twilio_error(400, 20001)),
    (TWILIO_PATH, GOOD_AUTH, {"Status": "busy"}, 400, twilio_error(400, 20001)),
    (TWILIO_PATH, GOOD_AUTH, {"Status": "completed", "Twiml": DIAL}, 400, {}),
    (TWILIO_PATH, GOOD_AUTH, {"Twiml": "<Response><Dial>"}, 400, twilio_error(400, 12100)),
    (TWILIO_PATH, GOOD_AUTH, {"Twiml": "<Say>hi</Say>"}, 400, twilio_error(400, 12102)),
    (TWILIO_PATH, GOOD_AUTH, {"Twiml": "<Response><Say>hi</Say></Response>"}, 400, {}),
    (TWILIO_PATH, GOOD_AUTH, {"Url": "https://example.com/x"}, 400, {}),
    (TWILIO_PATH.replace("aaaa", "bbbb"), GOOD_AUTH, {"Status": "completed"}, 404,
     {**twilio_error(404, 20404), "message": f"The requested resource "
      f"{TWILIO_PATH.replace('aaaa', 'bbbb')} was not found"}),
    (TWILIO_PATH.replace(CALL, "CA123"), GOOD_AUTH, {"Status": "completed"}, 404, {}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "auth", "form", "status", "expected"), TWILIO_CASES)
def test_twilio_update_call(
    path: str, auth: Any, form: dict[str, str], status: int, expected: Json
) -> None:
    async def body() -> None:
        async with RestStandIn(twilio_calls=[CALL]) as standin:
            async with httpx.AsyncClient(base_url=standin.base_url, timeout=5) as client:
                response = await client.post(path, data=form, auth=auth)
            assert response.status_code == status
            assert response.headers["content-type"] == "application/json; charset=utf-8"
            assert response.json().items() >= expected.items()
            assert len(standin.requests) == 1
            recorded = standin.requests[0]
            assert (recorded.vendor, recorded.status, recorded.path) == ("twilio", status, path)
            assert recorded.body == response.request.content
            if status == 401:
                assert response.headers["www-authenticate"] == 'Basic realm="Twilio API"'
            if "Twiml" in form and status == 200:
                assert recorded.action == "transfer"
                assert recorded.target in ("+15557654321", "sip:a@b")

    run(body)


def test_twilio_refuses_to_redirect_a_completed_call_and_a_json_body() -> None:
    async def body() -> None:
        async with RestStandIn() as standin:
            async with httpx.AsyncClient(base_url=standin.base_url, timeout=5, auth=GOOD_AUTH) as c:
                assert (await c.post(TWILIO_PATH, data={"Status": "completed"})).status_code == 200
                redirect = await c.post(TWILIO_PATH, data={"Twiml": DIAL})
                again = await c.post(TWILIO_PATH, data={"Status": "completed"})
                as_json = await c.post(TWILIO_PATH, json={"Status": "completed"})
            assert redirect.status_code == 400
            assert redirect.json()["code"] == 21220
            assert again.status_code == 200
            assert again.json()["status"] == "completed"
            assert as_json.status_code == 400
            assert [r.status for r in standin.requests] == [200, 400, 200, 400]
            assert [r.action for r in standin.accepted()] == ["hangup", "hangup"]
            assert standin.accepted("hangup")[0].params == {"Status": "completed"}

    run(body)


TELNYX_ID = "v3:abc-123"
TELNYX_CASES = [  # (action, authorization header, body, status, expected JSON)
    ("hangup", f"Bearer {TELNYX_API_KEY}", b"{}", 200, {"data": {"result": "ok"}}),
    ("hangup", f"Bearer {TELNYX_API_KEY}", b"", 200, {"data": {"result": "ok"}}),
    ("transfer", f"Bearer {TELNYX_API_KEY}", b'{"to": "+15557654321"}', 200,
     {"data": {"result": "ok"}}),
    ("hangup", "Bearer wrong", b"{}", 401, {"errors": [{
        "code": "10009", "title": "Authentication failed",
        "detail": "The required authentication headers were either invalid or not included in "
                  "the request.",
        "meta": {"url": "https://developers.telnyx.com/docs/overview/errors/10009"}}]}),
    ("hangup", TELNYX_API_KEY, b"{}", 401, None),
    ("transfer", f"Bearer {TELNYX_API_KEY}", b"{}", 422, {"errors": [{
        "code": "10004", "title": "Missing required parameter",
        "detail": "The 'to' parameter is required and cannot be blank.",
        "source": {"pointer": "/to"},
        "meta": {"url": "https://developers.telnyx.com/docs/overview/errors/10004"}}]}),
    ("transfer", f"Bearer {TELNYX_API_KEY}", b'{"to": " "}', 422, None),
    ("transfer", f"Bearer {TELNYX_API_KEY}", b"to=+1555", 400, None),
    ("hangup", f"Bearer {TELNYX_API_KEY}", b"[]", 400, None),
    ("bridge", f"Bearer {TELNYX_API_KEY}", b"{}", 404, None),
]  # fmt: skip


@pytest.mark.parametrize(("action", "authorization", "content", "status", "expected"), TELNYX_CASES)
def test_telnyx_call_control(
    action: str, authorization: str, content: bytes, status: int, expected: Json | None
) -> None:
    async def body() -> None:
        async with RestStandIn() as standin:
            async with httpx.AsyncClient(base_url=standin.base_url, timeout=5) as client:
                response = await client.post(
                    f"/v2/calls/{TELNYX_ID}/actions/{action}",
                    content=content,
                    headers={"Authorization": authorization, "Content-Type": "application/json"},
                )
            assert response.status_code == status
            if expected is not None:
                assert response.json() == expected
            if status != 200:
                assert set(response.json()["errors"][0]) >= {"code", "title", "detail"}
            [recorded] = standin.requests
            assert (recorded.vendor, recorded.call_id, recorded.status) == (
                "telnyx",
                TELNYX_ID,
                status,
            )
            assert recorded.action == (action if status == 200 else None)
            assert recorded.headers["authorization"] == authorization
            if action == "transfer" and status == 200:
                assert recorded.target == "+15557654321"

    run(body)


def test_telnyx_refuses_commands_for_ended_or_unknown_calls() -> None:
    async def body() -> None:
        async with RestStandIn(telnyx_calls=[TELNYX_ID]) as standin:
            headers = {"Authorization": f"Bearer {TELNYX_API_KEY}"}
            async with httpx.AsyncClient(
                base_url=standin.base_url, timeout=5, headers=headers
            ) as c:
                hangup = await c.post(f"/v2/calls/{TELNYX_ID}/actions/hangup", json={})
                after = await c.post(f"/v2/calls/{TELNYX_ID}/actions/transfer", json={"to": "+1"})
                unknown = await c.post("/v2/calls/v3:other/actions/hangup", json={})
                stray = await c.get("/v2/balance")
            assert hangup.status_code == 200
            assert (after.status_code, after.json()["errors"][0]["code"]) == (422, "90018")
            assert (unknown.status_code, unknown.json()["errors"][0]["code"]) == (422, "90015")
            assert stray.status_code == 404
            assert [(r.vendor, r.status) for r in standin.requests] == [
                ("telnyx", 200), ("telnyx", 422), ("telnyx", 422), ("unknown", 404)]  # fmt: skip

    run(body)


def test_stand_in_runs_only_inside_its_context() -> None:
    async def body() -> None:
        standin = RestStandIn()
        with pytest.raises(RuntimeError, match="not running"):
            _ = standin.base_url
        async with standin:
            url = standin.base_url
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(timeout=2) as client:
                await client.post(url + "/v2/calls/x/actions/hangup")

    run(body)


# -- Plivo ------------------------------------------------------------------------


def plivo_message(event: str, **fields: Any) -> Json:
    return {"event": event, "streamId": PLIVO["stream_id"], **fields}


def play_audio(audio: bytes, content_type: str = "audio/x-mulaw", rate: int = 8000) -> Json:
    media = {"contentType": content_type, "sampleRate": rate}
    return plivo_message("playAudio", media={**media, "payload": base64.b64encode(audio).decode()})


def test_plivo_opens_with_start_offers_its_subprotocol_and_signs_the_upgrade() -> None:
    async def body() -> None:
        async with fake_app() as app:
            params = {"userId": "12345", "sessionId": "abcxyz"}
            options = {"custom_parameters": params, "plivo_auth_token": "tok"}
            async with emulator(app, "plivo", **options):
                messages = await app.wait_for(1)
                await asyncio.sleep(0.02)
                assert app.connection is not None
                headers = app.connection.request.headers  # type: ignore[union-attr]
        assert len(app.arrivals) == 1  # no "connected"
        assert messages == [
            {
                "event": "start",
                "sequenceNumber": 1,
                "start": {
                    "callId": PLIVO["call_id"],
                    "streamId": PLIVO["stream_id"],
                    "accountId": PLIVO["account_id"],
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
                },
                "extra_headers": "userId=12345;sessionId=abcxyz",
            }
        ]
        assert headers["Sec-WebSocket-Protocol"] == PLIVO_SUBPROTOCOL
        nonce = headers["X-Plivo-Signature-V3-Nonce"]
        assert re.fullmatch(r"[0-9]{20}", nonce)
        assert headers["X-Plivo-Signature-V3"] == plivo_signature_v3("tok", app.url, nonce)

    run(body)


def test_plivo_signature_matches_a_hand_written_message_and_voxgates_check() -> None:
    url = "wss://vx.example.com/v1/streams/plivo?token=a%2Bb&b=2"
    signed = b"wss://vx.example.com/v1/streams/plivo?b=2&token=a+b.42"
    digest = hmac.new(b"tok", signed, hashlib.sha256).digest()
    assert plivo_signature_v3("tok", url, "42") == base64.b64encode(digest).decode()
    assert plivo_signature_valid("tok", url, "42", plivo_signature_v3("tok", url, "42"))


def test_plivo_media_numbers_are_json_numbers_and_timestamps_unix_ms() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "plivo") as carrier:
            before = int(time.time() * 1000)
            await carrier.send_audio(FRAME * 2, paced=False)
            await carrier.send_dtmf("5")
            messages = (await app.wait_for(4))[1:]
            after = int(time.time() * 1000)
        media = [m["media"] for m in messages[:2]]
        assert [m["sequenceNumber"] for m in messages] == [2, 3, 4]
        assert [m["chunk"] for m in media] == [1, 2]
        stamps = [int(m["timestamp"]) for m in media]
        assert all(isinstance(m["timestamp"], str) for m in media)
        assert before - 1000 <= stamps[0] <= after and stamps[1] - stamps[0] == 20
        assert all(m["streamId"] == PLIVO["stream_id"] for m in messages)
        assert messages[2]["dtmf"] == {"track": "inbound", "digit": "5"}

    run(body)


def test_plivo_hangs_up_by_closing_without_stop() -> None:
    async def body() -> None:
        async with fake_app() as app:
            carrier = emulator(app, "plivo")
            async with carrier:
                await app.wait_for(1)
                with pytest.raises(ValueError, match="no stop"):
                    await carrier.send_stop()
                await carrier.hang_up()
                assert carrier.closed.is_set()
            await asyncio.sleep(0.02)
            assert [m["event"] for m in app.messages()] == ["start"]

    run(body)


def test_plivo_checkpoint_is_answered_with_played_stream_once_played() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "plivo") as carrier:
            await app.wait_for(1)
            sent_at = await app.send(play_audio(FRAME * 10))  # 200 ms
            await app.send(plivo_message("checkpoint", name="m1"))
            echo = (await app.wait_for(2))[1]
            echoed_at = app.arrivals[1][0]
            now_at = await app.send(plivo_message("checkpoint", name="now"))
            assert (await app.wait_for(3))[2]["name"] == "now"
            assert app.arrivals[2][0] - now_at < 0.15
            assert carrier.received_audio() == FRAME * 10
            assert carrier.protocol_errors == []
        assert echo == {"event": "playedStream", "sequenceNumber": 2,
                        "streamId": PLIVO["stream_id"], "name": "m1"}  # fmt: skip
        assert 0.19 < echoed_at - sent_at < 0.35

    run(body)


def test_plivo_clear_audio_is_answered_and_drops_pending_checkpoints_unanswered() -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "plivo") as carrier:
            await app.wait_for(1)
            await app.send(play_audio(FRAME * 50))  # one second queued
            for name in ("a", "b"):
                await app.send(plivo_message("checkpoint", name=name))
            await asyncio.sleep(0.05)
            await app.send(plivo_message("clearAudio"))
            cleared = (await app.wait_for(2))[1]
            await asyncio.sleep(0.1)
            assert len(app.arrivals) == 2  # no playedStream for a or b
            assert carrier.marks_dropped == ["a", "b"]
            assert carrier.mark_echoes == []
        assert cleared == {"event": "clearedAudio", "sequenceNumber": 2,
                           "streamId": PLIVO["stream_id"]}  # fmt: skip

    run(body)


PLIVO_BAD_INPUT = [
    (play_audio(FRAME, "audio/x-l16", 8000), "playAudio as 'audio/x-l16'"),
    (play_audio(FRAME, "audio/x-mulaw", 16000), "at 16000"),
    ({"event": "playAudio", "media": "AAAA"}, "media object"),
    ({"event": "checkpoint", "name": "x"}, "checkpoint without a streamId"),
    (plivo_message("checkpoint"), "checkpoint.name"),
    ({**plivo_message("clearAudio"), "streamId": "other"}, "is not"),
    (plivo_message("media", media={"payload": ""}), "unknown event 'media'"),
    (plivo_message("mark", mark={"name": "x"}), "unknown event 'mark'"),
]


@pytest.mark.parametrize(("message", "reason"), PLIVO_BAD_INPUT)
def test_plivo_refuses_what_plivo_would_and_says_nothing(message: Json, reason: str) -> None:
    async def body() -> None:
        async with fake_app() as app, emulator(app, "plivo") as carrier:
            await app.wait_for(1)
            await app.send(message)
            await carrier.wait_for(lambda: bool(carrier.protocol_errors), timeout=2)
            assert reason in carrier.protocol_errors[0]
            assert carrier.received_audio() == b""
            await asyncio.sleep(0.02)
            assert len(app.arrivals) == 1

    run(body)


@pytest.mark.parametrize(("encoding", "rate"), [("PCMU", 16000), ("OPUS", 8000), ("L16", 24000)])
def test_formats_plivo_cannot_stream_are_refused(encoding: str, rate: int) -> None:
    with pytest.raises(ValueError, match="Plivo"):
        CarrierEmulator("ws://127.0.0.1:9", "plivo", encoding=encoding, sample_rate=rate)


def test_plivo_ids_have_plivos_shapes() -> None:
    plivo = CarrierEmulator("ws://127.0.0.1:9", "plivo")
    assert re.fullmatch(r"[0-9a-f-]{36}", plivo.call_id)
    assert re.fullmatch(r"[0-9a-f-]{36}", plivo.stream_id)
    assert re.fullmatch(r"MA[0-9A-Z]{18}", plivo.account_id)


PLIVO_CALL = "78737f83-4660-490d-98e1-025dfe4b5c8f"
PLIVO_PATH = f"/v1/Account/{PLIVO_AUTH_ID}/Call/{PLIVO_CALL}/"
PLIVO_AUTH = (PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN)
PlivoCase = tuple[tuple[str, str], Any, Any, int, str | None]
PLIVO_CASES: list[PlivoCase] = [  # ((method, path), auth, JSON body, status, action)
    (("DELETE", PLIVO_PATH), PLIVO_AUTH, None, 204, "hangup"),
    (("DELETE", PLIVO_PATH), (PLIVO_AUTH_ID, "wrong"), None, 401, None),
    (("DELETE", PLIVO_PATH), None, None, 401, None),
    (("DELETE", PLIVO_PATH.replace(PLIVO_AUTH_ID, "MAOTHER")), PLIVO_AUTH, None, 401, None),
    (("DELETE", PLIVO_PATH.replace("78737f83", "00000000")), PLIVO_AUTH, None, 404, None),
    (("DELETE", f"/v1/Account/{PLIVO_AUTH_ID}/Call/"), PLIVO_AUTH, None, 404, None),
    (("POST", PLIVO_PATH), PLIVO_AUTH, {"legs": "aleg", "aleg_url": "https://x.example/xml"},
     202, "transfer"),
    (("POST", PLIVO_PATH), PLIVO_AUTH,
     {"aleg_url": "https://x.example/xml", "aleg_method": "GET"}, 202, "transfer"),
    (("POST", PLIVO_PATH), PLIVO_AUTH, {"legs": "aleg"}, 400, None),
    (("POST", PLIVO_PATH), PLIVO_AUTH, {"legs": "both", "aleg_url": "https://x.example/a"}, 400,
     None),
    (("POST", PLIVO_PATH), PLIVO_AUTH, {"legs": "cleg"}, 400, None),
    (("POST", PLIVO_PATH), PLIVO_AUTH, {"aleg_url": "https://x/a", "aleg_method": "PUT"}, 400,
     None),
    (("POST", PLIVO_PATH), PLIVO_AUTH, [], 400, None),
]  # fmt: skip


@pytest.mark.parametrize(("request_line", "auth", "payload", "status", "action"), PLIVO_CASES)
def test_plivo_call_api(
    request_line: tuple[str, str], auth: Any, payload: Any, status: int, action: str | None
) -> None:
    method, path = request_line

    async def body() -> None:
        async with RestStandIn(plivo_calls=[PLIVO_CALL]) as standin:
            async with httpx.AsyncClient(base_url=standin.base_url, timeout=5) as client:
                response = await client.request(method, path, json=payload, auth=auth)
            assert response.status_code == status
            [recorded] = standin.requests
            if status == 204:
                assert response.content == b""
            elif status == 202:
                assert response.json()["message"] == "call transferred"
                assert recorded.target == payload["aleg_url"]
            else:
                assert set(response.json()) == {"api_id", "error"} or recorded.vendor == "unknown"
            assert recorded.action == action
            assert recorded.vendor == ("unknown" if path.endswith("/Call/") else "plivo")

    run(body)


def test_plivo_answers_404_once_a_call_is_hung_up() -> None:
    async def body() -> None:
        async with RestStandIn() as standin:
            async with httpx.AsyncClient(
                base_url=standin.base_url, timeout=5, auth=PLIVO_AUTH
            ) as c:
                first = await c.delete(PLIVO_PATH)
                again = await c.delete(PLIVO_PATH)
                moved = await c.post(PLIVO_PATH, data={"aleg_url": "https://x.example/xml"})
            assert [first.status_code, again.status_code, moved.status_code] == [204, 404, 404]
            assert [r.action for r in standin.accepted()] == ["hangup"]

    run(body)

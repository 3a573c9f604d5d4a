"""The Python work of one frame pair through a call, without sockets.

    .venv/bin/python -m bench.frame_path                 # PCMU both sides
    .venv/bin/python -m bench.frame_path --bot-audio pcm16/24000
    .venv/bin/python -m bench.frame_path --profile       # and where the time goes

One call's session (the real :class:`CallSession`, its Twilio dialect, call
core, playout and v1 bot dialect) is fed what the sockets would hand it for
one frame pair: a carrier ``media`` message, the bot's
``response.audio.delta`` back, and the timer's wake-up that sends it to the
carrier. The sockets are stand-ins that keep what is sent, so the figure is
the bridge's own work per frame pair (CPU time, microseconds), the part of
``bench/relay_compare.py``'s figure that is not the kernel's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from typing import Any

from voxgate.bridge.aio import session as session_module
from voxgate.bridge.aio.session import BotTarget, CallSession, StreamLeg
from voxgate.bridge.botlink.dialects import make_bot_dialect
from voxgate.bridge.call_api import CallPolicy
from voxgate.bridge.carriers.twilio import TwilioDialect
from voxgate.bridge.events import StreamStarted
from voxgate.bridge.wire import encode_audio
from voxgate.codecs.formats import AudioFormat


class _Socket:
    """What the session writes to: kept, counted."""

    def __init__(self) -> None:
        self.sent = 0
        self.last: Any = None
        self.closing = False
        self.call_id = ""

    def put(self, message: Any, *, origin: float | None = None) -> None:
        self.sent += 1
        self.last = message

    def close(self, code: int, reason: str) -> None:
        self.closing = True

    async def wait_closed(self, timeout: float = 1.0) -> None:
        return None


class _Link:
    """A bot socket that is connected at once."""

    def __init__(self, owner: CallSession, target: BotTarget, attempt: int, timeout: float):
        self.owner, self.target, self.attempt = owner, target, attempt
        self.dialect = make_bot_dialect(target.dialect, binary_audio=False, carrier="twilio")
        self.socket = _Socket()
        asyncio.get_running_loop().call_soon(owner.bot_connected, self)  # type: ignore[arg-type]

    def send(self, message: Any, *, origin: float | None = None) -> None:
        self.socket.put(message)

    def close(self, code: int, reason: str) -> None:
        pass

    async def wait_closed(self, timeout: float) -> None:
        return None


async def measure(frames: int, bot_audio: AudioFormat, profile: bool) -> dict[str, float]:
    setattr(session_module, "BotSocket", _Link)  # noqa: B010  (a stand-in, connected at once)
    clock = [1000.0]
    setattr(session_module, "_now", lambda: clock[0])  # noqa: B010  (time, stepped)
    due: list[float | None] = [None]

    def schedule(target: object, when: float | None) -> None:
        due[0] = when

    dialect = TwilioDialect()
    sid = "MZ" + "0" * 32
    start = {
        "event": "start", "sequenceNumber": "1", "streamSid": sid,
        "start": {"accountSid": "AC" + "0" * 32, "streamSid": sid, "callSid": "CA" + "0" * 32,
                  "tracks": ["inbound"], "customParameters": {},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
    }  # fmt: skip
    started = dialect.parse_upstream(json.dumps(start))
    assert isinstance(started, StreamStarted)
    carrier = _Socket()
    session = CallSession(
        call_id="vx-bench",
        carrier="twilio",
        carrier_leg=StreamLeg(dialect, carrier),  # type: ignore[arg-type]
        carrier_dialect=dialect,
        started=started,
        bot=BotTarget(url="ws://bot/", audio=bot_audio),
        policy=CallPolicy(),
        schedule=schedule,
    )
    await asyncio.sleep(0)  # the bot "connects"
    link: Any = session._link
    assert link is not None
    frame = bytes((i * 7 + 1) % 256 for i in range(160))
    payload = encode_audio(frame)
    bot_frame = encode_audio(bytes(bot_audio.bytes_per(20)))
    reply = json.dumps({"type": "response.audio.delta", "audio": bot_frame})
    media = [
        json.dumps({"event": "media", "sequenceNumber": str(n + 2), "streamSid": sid,
                    "media": {"track": "inbound", "chunk": str(n + 1),
                              "timestamp": str(n * 20), "payload": payload}})
        for n in range(frames)
    ]  # fmt: skip
    profiler = cProfile.Profile() if profile else None
    begin_cpu = time.process_time()
    if profiler:
        profiler.enable()
    for message in media:
        clock[0] += 0.020
        session.on_carrier_message(message)
        session.bot_message(link, reply)
        when = due[0]
        while when is not None and when <= clock[0] + 0.002:
            when = due[0] = session.wake(max(when, clock[0]))
    # the rest of the playout: waited for, not counted as work per frame
    if profiler:
        profiler.disable()
    cpu = time.process_time() - begin_cpu
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return {
        "frames": frames,
        "us_per_frame_pair": cpu / frames * 1e6,
        "to_bot": link.socket.sent,
        "to_carrier": carrier.sent,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.frame_path", description=__doc__)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--bot-audio", default="pcmu")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, float] = {}

    async def run() -> None:
        result.update(await measure(args.frames, AudioFormat.parse(args.bot_audio), args.profile))

    asyncio.run(run())
    for key, value in result.items():
        print(f"{key:<18} {value:.2f}" if isinstance(value, float) else f"{key:<18} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One error boundary per call: an unexpected exception ends that call alone."""

from __future__ import annotations

import logging

import pytest
from carrier import CarrierEmulator
from e2e import bridge, metric
from scenario import run
from scripted_bot import ScriptedBot

from voxgate.bridge.call import Call
from voxgate.bridge.events import DownstreamEvent, DtmfReceived, MarkRequested, UpstreamEvent


@pytest.mark.parametrize("side", ["carrier", "bot"])
def test_an_exception_in_one_call_ends_it_with_internal_error_and_spares_the_other(
    side: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    carrier_event, bot_event = Call.carrier_event, Call.bot_event

    def exploding_carrier_event(self: Call, event: UpstreamEvent, now: float) -> None:
        if isinstance(event, DtmfReceived):
            raise RuntimeError("a bug in the call core")
        carrier_event(self, event, now)

    def exploding_bot_event(self: Call, event: DownstreamEvent, now: float, **kw: int) -> None:
        if isinstance(event, MarkRequested) and event.name == "explode":
            raise RuntimeError("a bug in the call core")
        bot_event(self, event, now, **kw)

    monkeypatch.setattr(Call, "carrier_event", exploding_carrier_event)
    monkeypatch.setattr(Call, "bot_event", exploding_bot_event)

    async def scenario() -> None:
        async with bridge() as running, ScriptedBot() as bot:
            url = f"{running.ws_url}/v1/streams/twilio"
            params = {"wss_url": bot.url}
            async with (
                CarrierEmulator(url, "twilio", custom_parameters=params) as broken,
                CarrierEmulator(url, "twilio", custom_parameters=params) as healthy,
            ):
                first, second = await bot.connection(0), await bot.connection(1)
                await first.wait_for_type("start")
                await second.wait_for_type("start")
                if side == "carrier":
                    await broken.send_dtmf("5")
                else:
                    await first.send({"type": "mark", "name": "explode"})
                assert await broken.wait_for_close(timeout=5) == 1011
                (stop,) = await first.wait_for_type("stop")
                assert stop["reason"] == "internal_error"
                await first.closed.wait()
                assert first.close_code == 1011
                # the other call goes on
                await healthy.send_audio(b"\x55" * 1600)
                await second.wait_for(lambda: len(second.audio()) >= 1600)
                assert await metric(running, 'voxgate_calls_ended{reason="internal_error"}') >= 1
                assert await metric(running, 'voxgate_errors{kind="internal"}') >= 1

    with caplog.at_level(logging.INFO):
        run(scenario())
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert tracebacks, "the failure is logged with its traceback"
    call_ids = [getattr(r, "call_id", None) for r in tracebacks]
    assert all(call_ids), call_ids
    assert len(set(call_ids)) == len(call_ids), "logged once per call"

"""``POST /v1/calls`` with a live key: out through ``sip.trunk``, played by SIPp (a real SIP
peer, the far end as a UAS), to the built-in echo bot; the call's progress as webhooks and
the record read back, a busy and a silent far end, and ``/hangup`` while it rings (CANCEL)
and once it is answered (BYE); and the moments in between: an answer that crosses the
CANCEL, a hangup or the callee's BYE while the answered call's session is still opening."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from control_api import Api, serve_api, until
from scenario import run
from sipp_peer import SCENARIOS, SIPP, free_udp_port, rtp_range
from webhook_receiver import WebhookReceiver

from voxgate.bridge.aio.sipleg import SipLeg

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is installed by scripts/test")

CALLEE = "+15557770000"
SIPP_LIMIT = 60  # seconds SIPp waits on any one step before it gives up (-timeout)


@dataclass
class Trunk:
    """SIPp playing the trunk for one call of a scenario."""

    port: int
    process: subprocess.Popen[str]
    workdir: Path

    async def finished(self, timeout: float = 30.0) -> int:
        """SIPp's exit status once its one call is over (0: every step went as scripted)."""
        return await asyncio.to_thread(self.process.wait, timeout)

    def seen(self) -> str:
        """What SIPp saw and sent (its message trace and errors), for assertions and failures."""
        return "".join(
            path.read_text(errors="replace")
            for pattern in ("*_messages.log", "*_errors.log")
            for path in sorted(self.workdir.glob(pattern))
        )

    def invite_call_id(self) -> str:
        found = re.search(r"^INVITE .*?^Call-ID:\s*(\S+)", self.seen(), re.M | re.S)
        assert found, self.seen()[-3000:]
        return found.group(1)


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


@asynccontextmanager
async def trunk(workdir: Path, scenario: str) -> AsyncIterator[Trunk]:
    """SIPp running ``scenario`` (a UAS) for one call on a free loopback port."""
    assert SIPP is not None
    port = free_udp_port()
    (workdir / scenario).write_text((SCENARIOS / scenario).read_text())
    command = [SIPP, "-sf", scenario, "-i", "127.0.0.1", "-p", str(port),
               "-mp", str(free_udp_port() // 2 * 2), "-m", "1", "-timeout", f"{SIPP_LIMIT}s",
               "-timeout_error", "-trace_err", "-trace_msg", "-nostdin"]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        async with asyncio.timeout(10):
            while not _bound(port):  # SIPp listens
                assert process.poll() is None, "SIPp did not start"
                await asyncio.sleep(0.02)
        yield Trunk(port, process, workdir)
    finally:
        if process.poll() is None:
            process.kill()
        await asyncio.to_thread(process.wait, 10)


@asynccontextmanager
async def live_api(tmp_path: Path, sipp: Trunk) -> AsyncIterator[tuple[Api, WebhookReceiver]]:
    """voxgate (in this process) with SIP on a free port and SIPp as its trunk, and a webhook
    receiver subscribed to every event."""
    low, high = rtp_range()
    async with (
        serve_api(
            tmp_path,
            VOXGATE_SIP_ENABLED="true",
            VOXGATE_SIP_PORT="0",
            VOXGATE_SIP_TRUNK=f"sip:127.0.0.1:{sipp.port}",
            VOXGATE_SIP_FROM_NUMBER="+15550001111",
            VOXGATE_SIP_RTP_PORT_MIN=str(low),
            VOXGATE_SIP_RTP_PORT_MAX=str(high),
        ) as api,
        WebhookReceiver() as receiver,
    ):
        answer = await api.client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=api.auth()
        )
        assert answer.status_code == 201, answer.text
        receiver.secrets.append(answer.json()["secret"])
        yield api, receiver


async def place(api: Api, **body: Any) -> dict[str, Any]:
    answer = await api.client.post(
        "/v1/calls", json={"to": CALLEE, **body}, headers=api.auth(api.live_key)
    )
    assert answer.status_code == 201, answer.text
    call: dict[str, Any] = answer.json()
    assert call["status"] == "queued" and call["mode"] == "live"
    assert call["direction"] == "outbound" and call["carrier"] == "sip"
    return call


async def read(api: Api, call_id: str) -> dict[str, Any]:
    answer = await api.client.get(f"/v1/calls/{call_id}", headers=api.auth(api.live_key))
    assert answer.status_code == 200, answer.text
    call: dict[str, Any] = answer.json()
    return call


def in_order(receiver: WebhookReceiver, call_id: str) -> list[str]:
    """A call's webhook events in the order voxgate made them (``created_at``; several
    deliveries go out at once, so two events made within one 50 ms batch may arrive
    swapped)."""
    about = [
        (r.event["created_at"], n, r.event["type"])
        for n, r in enumerate(receiver.received)
        if r.event["data"]["call"]["id"] == call_id
    ]
    return [kind for _, _, kind in sorted(about)]


def settled(api: Api) -> bool:
    """Nothing of a call is left: no session, no dial, no SIP leg or task, no RTP port held."""
    sip = api.control.bridge.sip
    assert sip is not None
    left = (api.control.bridge.sessions, api.control.pending, sip.legs, sip._dials, sip._tasks)
    return not any(left) and sip.ports.in_use == 0


def test_a_live_call_goes_out_through_the_trunk_to_the_echo_bot(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_answer_hangs_up.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            call = await place(api, timeout=20)
            await receiver.wait_for("call.completed", call["id"])
            kinds = in_order(receiver, call["id"])
            assert kinds[:4] == ["call.initiated", "call.ringing", "call.answered", "bot.connected"]
            assert kinds[-1] == "call.completed" and "call.failed" not in kinds
            assert all(r.signed for r in receiver.received)
            assert await sipp.finished() == 0, sipp.seen()[-4000:]
            done = await read(api, call["id"])
            assert done["status"] == "completed" and done["direction"] == "outbound"
            assert done["sip_call_id"] == sipp.invite_call_id()
            assert done["sip_final_code"] == 200
            assert (done["hangup_cause"], done["hangup_side"]) == ("caller_hangup", "caller")
            assert 1.0 < done["duration"] < 15.0  # SIPp hangs up 1.5 s after its answer
            assert done["ringing_at"] <= done["answered_at"] <= done["ended_at"]
            assert done["from"] == "+15550001111" and done["to"] == CALLEE
            assert done["quality"]["bot_connects"] == 1, done["quality"]
            event = next(r.event for r in receiver.received if r.event["type"] == "call.completed")
            assert event["data"]["call"]["sip_call_id"] == done["sip_call_id"]
            await until_settled(api)

    run(scenario(), timeout=120)


def test_a_busy_callee_ends_the_call_busy_with_its_486(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_busy.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            call = await place(api, timeout=20)
            await receiver.wait_for("call.failed", call["id"])
            assert await sipp.finished() == 0, sipp.seen()[-4000:]  # it had its ACK
            kinds = in_order(receiver, call["id"])
            assert kinds == ["call.initiated", "call.failed"]
            failed = next(r.event for r in receiver.received if r.event["type"] == "call.failed")
            assert failed["data"]["call"]["status"] == "busy"
            done = await read(api, call["id"])
            assert (done["status"], done["sip_final_code"]) == ("busy", 486)
            assert done["hangup_side"] == "callee" and done["answered_at"] is None
            await until_settled(api)

    run(scenario(), timeout=120)


def test_a_callee_that_never_answers_ends_no_answer_at_the_timeout(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_no_answer.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            started = time.monotonic()
            call = await place(api, timeout=2)
            await receiver.wait_for("call.failed", call["id"])
            took = time.monotonic() - started
            assert await sipp.finished() == 0, sipp.seen()[-4000:]  # it had the CANCEL
            assert "CANCEL sip:" in sipp.seen()
            assert in_order(receiver, call["id"]) == [
                "call.initiated",
                "call.ringing",
                "call.failed",
            ]
            done = await read(api, call["id"])
            assert (done["status"], done["sip_final_code"]) == ("no-answer", 487)
            assert done["ringing_at"] and done["answered_at"] is None
            assert 1.5 < took < 20  # the call's timeout, not SIP's 32 s transaction timeout
            await until_settled(api)

    run(scenario(), timeout=120)


def test_hangup_while_it_rings_cancels_the_call(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_no_answer.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            call = await place(api, timeout=30)
            await receiver.wait_for("call.ringing", call["id"])
            hung = await api.client.post(
                f"/v1/calls/{call['id']}/hangup", headers=api.auth(api.live_key)
            )
            assert hung.status_code == 202, hung.text
            await receiver.wait_for("call.failed", call["id"])
            assert await sipp.finished() == 0, sipp.seen()[-4000:]  # it had the CANCEL
            assert "CANCEL sip:" in sipp.seen()
            done = await read(api, call["id"])
            assert done["status"] == "canceled" and done["hangup_cause"] == "canceled"
            assert done["answered_at"] is None
            await until_settled(api)
            again = await api.client.post(
                f"/v1/calls/{call['id']}/hangup", headers=api.auth(api.live_key)
            )
            assert again.status_code == 409, again.text

    run(scenario(), timeout=120)


def test_hangup_once_answered_sends_bye_and_ends_api_hangup(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_answer.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            call = await place(api, timeout=20)
            await receiver.wait_for("bot.connected", call["id"])
            hung = await api.client.post(
                f"/v1/calls/{call['id']}/hangup", headers=api.auth(api.live_key)
            )
            assert hung.status_code == 202, hung.text
            await receiver.wait_for("call.completed", call["id"])
            assert await sipp.finished() == 0, sipp.seen()[-4000:]  # it had the BYE
            assert "BYE sip:" in sipp.seen()
            done = await read(api, call["id"])
            assert done["status"] == "completed"
            assert (done["hangup_cause"], done["hangup_side"]) == ("api_hangup", "api")
            assert (done["sip_final_code"], done["sip_call_id"]) == (200, sipp.invite_call_id())
            await until_settled(api)

    run(scenario(), timeout=120)


@pytest.mark.parametrize("how", ["hangup", "timeout"])
def test_an_answer_that_crosses_the_cancel_is_hung_up_not_bridged(tmp_path: Path, how: str) -> None:
    """RFC 3261 9.1: a 200 OK to the INVITE may cross voxgate's CANCEL; the call voxgate gave
    up on (``/hangup``, or its ``timeout``) is then ended with BYE, never bridged."""

    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_answer_crosses_cancel.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            call = await place(api, timeout=30 if how == "hangup" else 2)
            if how == "hangup":
                await receiver.wait_for("call.ringing", call["id"])
                hung = await api.client.post(
                    f"/v1/calls/{call['id']}/hangup", headers=api.auth(api.live_key)
                )
                assert hung.status_code == 202, hung.text
            await receiver.wait_for("call.failed", call["id"])
            assert await sipp.finished() == 0, sipp.seen()[-4000:]  # ACK, then BYE
            assert "BYE sip:" in sipp.seen()
            await until_settled(api)
            done = await read(api, call["id"])
            assert done["status"] == ("canceled" if how == "hangup" else "no-answer"), done
            assert done["answered_at"] is None
            assert "call.answered" not in receiver.events(call["id"])
            assert "bot.connected" not in receiver.events(call["id"])

    run(scenario(), timeout=120)


def slow_rtp_sockets(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """A loaded event loop, as the call sees it: its RTP socket takes ``seconds`` to open,
    so the callee's answer is in and the call's session is not there yet."""
    opened = SipLeg.open

    async def slow_open(leg: SipLeg, sock: socket.socket) -> None:
        await asyncio.sleep(seconds)
        await opened(leg, sock)

    monkeypatch.setattr(SipLeg, "open", slow_open)


def test_hangup_after_the_answer_but_before_the_bot_hangs_up_with_bye(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/hangup`` in the moment between the callee's 200 OK and the call's session: BYE,
    and no bot."""
    slow_rtp_sockets(monkeypatch, 1.0)

    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_answer.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            sip = api.control.bridge.sip
            assert sip is not None
            call = await place(api, timeout=20)
            await until(lambda: sip.legs, timeout=20)  # answered in SIP, no session yet
            assert not api.control.bridge.sessions
            hung = await api.client.post(
                f"/v1/calls/{call['id']}/hangup", headers=api.auth(api.live_key)
            )
            assert hung.status_code == 202, hung.text
            await receiver.wait_for("call.failed", call["id"])
            assert await sipp.finished() == 0, sipp.seen()[-4000:]  # it had the BYE
            await until_settled(api)
            done = await read(api, call["id"])
            assert done["status"] == "canceled" and done["answered_at"] is None, done
            assert "bot.connected" not in receiver.events(call["id"])

    run(scenario(), timeout=120)


def test_a_callee_that_hangs_up_before_the_bot_ends_the_call_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callee's BYE comes while the answered call's session is still opening: the call
    ends ``failed`` (never bridged), with no bot and nothing left behind."""
    slow_rtp_sockets(monkeypatch, 3.0)  # SIPp hangs up 1.5 s after its answer

    async def scenario() -> None:
        async with (
            trunk(tmp_path, "uas_answer_hangs_up.xml") as sipp,
            live_api(tmp_path, sipp) as (api, receiver),
        ):
            call = await place(api, timeout=20)
            await receiver.wait_for("call.failed", call["id"])
            assert await sipp.finished() == 0, sipp.seen()[-4000:]  # its BYE had a 200
            await until_settled(api)
            done = await read(api, call["id"])
            assert (done["status"], done["sip_final_code"]) == ("failed", 200), done
            assert done["answered_at"] is None
            assert "bot.connected" not in receiver.events(call["id"])

    run(scenario(), timeout=120)


async def until_settled(api: Api, timeout: float = 10.0) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not settled(api):
                await asyncio.sleep(0.05)
    assert settled(api), "a call's session, dial or SIP leg was left behind"

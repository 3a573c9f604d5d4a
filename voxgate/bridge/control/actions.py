"""Live-call actions (``/hangup``, ``/transfer``, ``/dtmf``, ``/play``, ``/bot``), carried out
where the call lives.

A call lives in one worker of one node. :func:`act` is what an endpoint calls: when this
worker holds the call, :func:`perform` acts on its session; a call still ringing can only
be hung up (its dial is cancelled: ``canceled``); a live call held elsewhere (the store
names its owner) is handed to the owner by the courier (:mod:`.courier`), whose answer
is the endpoint's. :func:`perform` is also what the owner runs for a forwarded action, so
both paths answer alike: 202 with ``{"id", "action", "status": "accepted"}``, or the
error body (404 unknown call, 409 not live, 422 bad input).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ValidationError

from voxgate.bridge.aio.outbox import PIN
from voxgate.bridge.aio.session import CallSession
from voxgate.bridge.control.dialer import bot_parameters, vet_outgoing
from voxgate.bridge.control.models import BotSwap, DtmfBody, PlayBody, TransferBody
from voxgate.bridge.control.play import audio_for_call
from voxgate.bridge.store.records import FINAL_STATUSES
from voxgate.errors import ApiError, ConfigError, UnsupportedFormatError
from voxgate.redact import redact_url

if TYPE_CHECKING:
    from voxgate.bridge.control.plane import ControlPlane

ACTIONS: Final = ("hangup", "transfer", "dtmf", "play", "bot")
BODIES: Final[dict[str, type[BaseModel]]] = {
    "transfer": TransferBody,
    "dtmf": DtmfBody,
    "play": PlayBody,
    "bot": BotSwap,
}
FETCH_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: dict[str, Any]

    @staticmethod
    def of(error: ApiError) -> Outcome:
        detail: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.field is not None:
            detail["field"] = error.field
        return Outcome(error.status, {"error": detail})


def accepted(call_id: str, action: str) -> Outcome:
    return Outcome(202, {"id": call_id, "action": action, "status": "accepted"})


async def act(
    control: ControlPlane, mode: str, call_id: str, action: str, args: dict[str, Any]
) -> Outcome:
    """Carry out ``action`` on the call wherever it lives (see the module docstring)."""
    if control.session_of(call_id) is not None:
        return await perform(control, mode, call_id, action, args)
    record = await control.store.get_call(call_id) if len(call_id) <= 64 else None
    if record is None or record.mode != mode:
        return Outcome.of(ApiError(404, "not_found", f"no call {call_id[:64]!r}"))
    if record.owner and record.owner != control.owner and record.status not in FINAL_STATUSES:
        return await control.courier.ask(record.owner, mode, call_id, action, args)
    if action == "hangup" and control.cancel(call_id):
        return accepted(call_id, action)
    live = record.status not in FINAL_STATUSES and record.owner
    why = "not answered yet" if live else "not in progress"
    return Outcome.of(ApiError(409, "call_not_live", f"the call is {record.status}: {why}"))


async def perform(
    control: ControlPlane, mode: str, call_id: str, action: str, args: dict[str, Any]
) -> Outcome:
    """Act on a call this worker holds; errors become their JSON answers."""
    try:
        session = control.session_of(call_id)
        live = control.ledger.live.get(call_id)
        if session is None or (live is not None and live.record.mode != mode):
            if control.cancel(call_id) and action == "hangup":
                return accepted(call_id, action)
            raise ApiError(409, "call_not_live", "the call is not in progress on this worker")
        if not session.call.live:
            raise ApiError(409, "call_not_live", "the call is ending")
        await _carry_out(control, session, action, _parsed(action, args))
    except ApiError as error:
        return Outcome.of(error)
    return accepted(call_id, action)


def _parsed(action: str, args: dict[str, Any]) -> Any:
    if action not in ACTIONS:
        raise ApiError(404, "not_found", f"no action {action[:20]!r}")
    model = BODIES.get(action)
    if model is None:
        return None
    try:
        return model.model_validate(args)
    except ValidationError as error:  # checked by the endpoint already; a forwarded one too
        first = error.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise ApiError(422, "invalid_request", str(first.get("msg")), field=field) from None


async def _carry_out(control: ControlPlane, session: CallSession, action: str, body: Any) -> None:
    if action == "hangup":
        session.api_hangup()
    elif isinstance(body, TransferBody):
        problem = session.api_transfer(body.target)
        if problem is not None:
            raise ApiError(409, "transfer_unavailable", problem)
    elif isinstance(body, DtmfBody):
        session.api_dtmf(body.digits)
    elif isinstance(body, PlayBody):
        await _play(control, session, body)
    elif isinstance(body, BotSwap):
        await _swap_bot(control, session, body)


async def _play(control: ControlPlane, session: CallSession, body: PlayBody) -> None:
    if body.audio_base64 is not None:
        try:
            data = base64.b64decode(body.audio_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                422, "invalid_request", "audio_base64 is not base64", field="audio_base64"
            ) from None
    else:
        data = await _fetch(control, body.url or "")
    kind = "wav" if data[:4] == b"RIFF" else body.format
    audio = audio_for_call(data, kind, body.sample_rate, session.call.carrier_format)
    if not session.call.live:
        raise ApiError(409, "call_not_live", "the call ended")
    if not session.api_play(audio, barge_in=body.barge_in):
        raise ApiError(409, "queue_full", "the call's audio queue is full")


async def _fetch(control: ControlPlane, url: str) -> bytes:
    """The audio at ``url``: its address vetted like a webhook's and pinned, size bounded."""
    limit = control.config.api.max_play_bytes
    target = await vet_outgoing(control, url, "url")
    chunks: list[bytes] = []
    size = 0
    try:
        async with control.client.stream(
            "GET", url, timeout=FETCH_TIMEOUT, extensions={PIN: target.address}
        ) as response:
            if response.status_code != 200:
                status = response.status_code
                raise ApiError(422, "fetch_failed", f"the audio URL answered {status}", field="url")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "too_large", f"audio is at most {limit} bytes", field="url")
                chunks.append(chunk)
    except ApiError:
        raise
    except Exception as error:
        problem = f"cannot fetch the audio: {type(error).__name__}"
        raise ApiError(422, "fetch_failed", problem, field="url") from None
    return b"".join(chunks)


async def _swap_bot(control: ControlPlane, session: CallSession, body: BotSwap) -> None:
    params = await bot_parameters(control, body.model_dump(exclude_none=True))
    started = replace(session.call.carrier_start, custom_parameters=params)
    try:
        target = control.bridge.bot_target(started)
    except (ConfigError, UnsupportedFormatError) as error:
        raise ApiError(422, "invalid_request", str(error)) from None
    session.replace_bot(target)
    control.ledger.change(
        session.call_id, bot_url=redact_url(target.url), bot_dialect=target.dialect
    )

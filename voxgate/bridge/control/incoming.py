"""Asking a number's webhook what to do with an incoming call
(``incoming_call_action = "webhook"``).

voxgate POSTs ``{"type": "call.incoming", "data": {from, to, carrier, carrier_call_id}}``,
signed like every webhook (``X-Voxgate-Signature``), and waits at most
:data:`ANSWER_TIMEOUT` seconds. The answer is ``{"action": "answer" | "reject", ...}``
where ``answer`` may carry per-call bot settings (``wss_url``, ``wss_header``,
``bot_dialect``, ``bot_audio``) and ``custom_parameters`` for the bot's ``start``; a
``wss_url`` is vetted like one given to ``POST /v1/calls``.
No answer in time, an error status, or a body that is not such an object rejects the call
(a caller hears a refusal rather than an unknown bot).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Final

import httpx

from voxgate import __version__
from voxgate.bridge.aio.botaddr import BotAddressRefused, vet_bot_url
from voxgate.bridge.aio.outbox import PIN
from voxgate.bridge.control.signing import HEADER, sign
from voxgate.bridge.control.ssrf import WebhookAddressRefused, vet_webhook_url
from voxgate.obs import METRICS

if TYPE_CHECKING:
    from voxgate.bridge.control.plane import ControlPlane, Decision

ANSWER_TIMEOUT: Final = 5.0
MAX_ANSWER: Final = 65536
BOT_SETTINGS: Final = ("wss_url", "wss_header", "bot_dialect", "bot_audio")


async def ask_webhook(control: ControlPlane, url: str, question: dict[str, Any]) -> Decision:
    from voxgate.bridge.control.plane import Decision  # noqa: PLC0415 (a cycle at import)

    body = json.dumps({"type": "call.incoming", "api_version": "v1", "data": question}).encode()
    allowed = control.private_allowed(control.config.webhooks.private_targets)
    try:
        target = await vet_webhook_url(url, private_allowed=allowed)
        answer = await control.client.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"voxgate/{__version__}",
                HEADER: sign(control.webhook_secret, body, int(time.time())),
            },
            timeout=ANSWER_TIMEOUT,
            extensions={PIN: target.address},
        )
    except (WebhookAddressRefused, httpx.HTTPError) as error:
        METRICS.count("incoming_decisions", decision="webhook_failed")
        return Decision(False, reason=f"the number's webhook failed: {type(error).__name__}")
    decided = _read(answer)
    if decided is None:
        METRICS.count("incoming_decisions", decision="webhook_failed")
        return Decision(False, reason=f"the number's webhook answered {answer.status_code}")
    action, parameters = decided
    METRICS.count("incoming_decisions", decision=action)
    if action == "reject":
        return Decision(False, reason="rejected by the number's webhook")
    if "wss_url" in parameters:
        bot = control.config.bot
        try:
            await vet_bot_url(
                parameters["wss_url"],
                allow=bot.allow,
                private_allowed=control.private_allowed(bot.private_targets),
            )
        except BotAddressRefused as error:
            return Decision(False, reason=f"the webhook's wss_url is refused: {error}")
    return Decision(True, parameters)


def _read(answer: httpx.Response) -> tuple[str, dict[str, str]] | None:
    if not answer.is_success or len(answer.content) > MAX_ANSWER:
        return None
    try:
        decided = answer.json()
    except ValueError:
        return None
    if not isinstance(decided, dict) or decided.get("action") not in ("answer", "reject"):
        return None
    parameters = {
        name: str(decided[name]) for name in BOT_SETTINGS if isinstance(decided.get(name), str)
    }
    extra = decided.get("custom_parameters")
    if isinstance(extra, dict):
        parameters.update({str(k): str(v) for k, v in extra.items() if k not in BOT_SETTINGS})
    return str(decided["action"]), parameters

"""The control plane of one worker: its store, ledger, live events, webhooks and keys.

The REST routes (:mod:`.api_calls`, :mod:`.api_numbers`, :mod:`.api_webhooks`,
:mod:`.api_events`) act through one :class:`ControlPlane` on ``app.state.control``; the
bridge tells it about calls that arrive by themselves (carrier streams, SIP) through
:meth:`ControlPlane.call_started`, and asks it which bot a called number goes to
(:meth:`ControlPlane.bot_config_for`): the store's number routes are the source of truth,
the configuration file's ``[routes]`` only seed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from voxgate.bridge.aio.outbox import OutboxWorker, webhook_client
from voxgate.bridge.aio.session import CallSession
from voxgate.bridge.call_api import ENDED_BY, CallEnded
from voxgate.bridge.control.bus import EventBus
from voxgate.bridge.control.courier import Courier, answer_from_node
from voxgate.bridge.control.incoming import ask_webhook
from voxgate.bridge.control.keys import hash_secret, mode_of
from voxgate.bridge.control.ledger import CallLedger
from voxgate.bridge.control.ratelimit import RequestRate
from voxgate.bridge.events import StreamStarted
from voxgate.bridge.store import open_store
from voxgate.bridge.store.api import Store
from voxgate.bridge.store.records import ApiKey, CallRecord, NumberRoute
from voxgate.codecs.formats import AudioFormat
from voxgate.config import BotConfig, Config, parse_header_lines
from voxgate.errors import ApiError, ConfigError
from voxgate.obs import METRICS
from voxgate.redact import redact_url

if TYPE_CHECKING:
    from voxgate.bridge.aio.app import Bridge

log = logging.getLogger("voxgate.control")

KEY_CACHE_SECONDS: Final = 5.0  # a revoked key may keep working this long on a worker
ROUTES_REFRESH: Final = 5.0  # another node's number changes reach this worker within this
WEBHOOK_SECRET_SETTING: Final = "webhook_secret"
STOP_WAIT: Final = 5.0  # seconds stop() gives the tasks it cancels to wind up
QUALITY_FIELDS: Final = (
    "frames_in",
    "frames_to_bot",
    "frames_out",
    "frames_late",
    "frames_padded",
    "reorder_lost",
    "bot_connects",
    "bot_drops",
    "dtmf_in",
    "dtmf_out",
)


class ControlPlane:
    def __init__(self, config: Config, bridge: Bridge, *, owner: str) -> None:
        self.config = config
        self.bridge = bridge
        self.owner = owner
        self.store: Store = open_store(config.store.url)
        self.bus = EventBus()
        self.rate = RequestRate(config.api.rate_limit)
        self.client = webhook_client()  # every outgoing request: to a vetted, pinned address
        self.routes: dict[str, NumberRoute] = {}
        self.webhook_secret = config.webhooks.secret
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self.pending: dict[str, asyncio.Future[None]] = {}  # calls placed, not answered yet
        self.courier = Courier(self)
        self.outbox = OutboxWorker(
            self.store,
            self.client,
            worker_id=owner,
            clock=time.time,
            rng=random.Random(),
            private_allowed=self.private_allowed(config.webhooks.private_targets),
            timeout=config.webhooks.timeout,
        )
        self.ledger = CallLedger(
            self.store,
            self.bus,
            owner=owner,
            webhook_secret=lambda: self.webhook_secret,
            poke=self.outbox.poke,
        )

    def private_allowed(self, setting: str) -> bool:
        return self.config.private_allowed(setting)

    # --- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        if not self.webhook_secret:
            made = "whsec_" + secrets.token_urlsafe(32)
            self.webhook_secret = await self.store.setdefault_setting(WEBHOOK_SECRET_SETTING, made)
        await self._seed_routes()
        await self.refresh_routes()
        await self._end_orphans()
        released = await self.store.release_leases(self.owner)
        if released:
            log.warning(
                "%d webhook deliveries were under way at the last stop: sent again", released
            )
        self.ledger.start()
        self.outbox.start()
        await self.courier.start()
        if self.bridge.node is not None:
            self.bridge.node.on_action = lambda request: answer_from_node(self, request)
        self.track(self._refresh_routes_forever())
        log.info("control plane ready (store %s)", self.store.url)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:  # calls still ringing report canceled before the ledger's last batch
            await asyncio.wait(tasks, timeout=STOP_WAIT)
        await self.courier.stop()
        self.bus.close()
        await self.ledger.stop()
        await self.outbox.stop()
        await self.client.aclose()
        await self.store.close()

    def track(self, work: Any, *, call_id: str | None = None) -> None:
        """Keep a task alive until done (cancelled at stop); with ``call_id``, it places that
        call and :meth:`cancel` can stop it while the call is not answered."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if call_id is not None:
            self.pending[call_id] = task
            task.add_done_callback(lambda _: self.pending.pop(call_id, None))

    def cancel(self, call_id: str) -> bool:
        """Stop placing a call that is not answered yet (it ends ``canceled``)."""
        task = self.pending.get(call_id)
        if task is None or task.done() or self.session_of(call_id) is not None:
            return False
        task.cancel()
        return True

    async def _end_orphans(self) -> None:
        """Calls this worker held when it last stopped (or died) are over: say so, with their
        last webhook (``call.completed``, or ``call.failed`` for one never answered)."""
        for record in await self.store.live_calls_of(self.owner):
            answered = record.status == "in-progress"
            status = "completed" if answered else "failed"
            ended = await self.store.update_call(
                record.id,
                status=status,
                owner="",
                data={
                    "ended_at": time.time(),
                    "hangup_cause": "voxgate_restart",
                    "hangup_side": "voxgate",
                    "disposition": "voxgate_restart",
                },
            )
            if ended is None:
                continue
            webhook = record.data.get("webhook_url")
            self.ledger.remember(ended, webhook if isinstance(webhook, str) else None)
            self.ledger.event(record.id, "call.completed" if answered else "call.failed")
            log.warning("call %s by a restart", status, extra={"call_id": record.id})

    # --- keys -----------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> ApiKey:
        scheme, _, secret = (authorization or "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or mode_of(secret) is None:
            raise ApiError(
                401,
                "unauthorized",
                "send an API key: Authorization: Bearer vg_live_... or vg_test_...",
                headers={"WWW-Authenticate": 'Bearer realm="voxgate"'},
            )
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is None or cached[0] < now:
            key = await self.store.key_by_hash(digest)
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[digest] = (now + KEY_CACHE_SECONDS, key)
        else:
            key = cached[1]
        if key is None or key.revoked:
            METRICS.count("api_unauthorized")
            raise ApiError(
                401,
                "unauthorized",
                "this API key is not valid",
                headers={"WWW-Authenticate": 'Bearer realm="voxgate"'},
            )
        return key

    # --- number routes --------------------------------------------------------------------

    async def _seed_routes(self) -> None:
        """The configuration file's ``[routes]`` become number routes, once."""
        now = time.time()
        for number, bot in self.config.routes.items():
            if await self.store.number_by_called(number) is not None:
                continue
            route = NumberRoute(
                id=f"num_{secrets.token_hex(8)}",
                number=number,
                incoming_call_action="auto_accept",
                settings=_settings_of(bot, self.config.bot),
                created_at=now,
                updated_at=now,
            )
            with contextlib.suppress(KeyError):  # another worker seeded it first
                await self.store.add_number(route)

    async def refresh_routes(self) -> None:
        routes: dict[str, NumberRoute] = {}
        before: int | None = None
        while True:
            page = await self.store.list_numbers(limit=200, before=before)
            routes.update((route.number, route) for route in page.data)
            if not page.has_more:
                break
            before = page.next_cursor
        self.routes = routes

    async def _refresh_routes_forever(self) -> None:
        while True:
            await asyncio.sleep(ROUTES_REFRESH)
            try:
                await self.refresh_routes()
            except Exception:
                METRICS.count("errors", kind="store")
                log.exception("reading number routes failed")

    def route_for(self, number: str | None) -> NumberRoute | None:
        if not number:
            return None
        return self.routes.get(number) or self.routes.get(number.lstrip("+"))

    def bot_config_for(self, number: str | None) -> BotConfig | None:
        """The bot of a called number's route (None: no route, the configuration decides)."""
        route = self.route_for(number)
        if route is None:
            return None
        return bot_config(route.settings, self.config.bot)

    # --- incoming calls: accept, reject, or ask the number's webhook ------------------------

    async def decide(
        self, *, to_number: str | None, from_number: str | None, carrier: str, carrier_call_id: str
    ) -> Decision:
        """What to do with an incoming call, by its number's ``incoming_call_action``."""
        route = self.route_for(to_number)
        if route is None or route.incoming_call_action == "auto_accept":
            return Decision(True)
        if route.incoming_call_action == "reject":
            METRICS.count("incoming_decisions", decision="reject")
            return Decision(False, reason="rejected by the number's route")
        url = route.settings.get("webhook_url")
        if not isinstance(url, str) or not url:
            return Decision(False, reason="the number asks a webhook but has no webhook_url")
        question = {
            "from": from_number,
            "to": to_number,
            "carrier": carrier,
            "carrier_call_id": carrier_call_id,
        }
        return await ask_webhook(self, url, question)

    # --- calls the bridge tells us about ----------------------------------------------------

    def call_started(self, session: CallSession, carrier: str, started: StreamStarted) -> None:
        """A call has its session: follow it (a call placed through the API is known already)."""
        session.observer = self._observe
        session.on_ended = self._ended
        if session.call_id in self.ledger.live:  # placed through the API
            if carrier == "sip":
                self.ledger.change(session.call_id, sip_call_id=started.call_id, sip_final_code=200)
            return
        now = time.time()
        route = self.route_for(started.to_number)
        webhook = route.settings.get("webhook_url") if route is not None else None
        record = CallRecord(
            id=session.call_id,
            mode="live",
            direction="outbound" if started.direction == "outbound" else "inbound",
            status="in-progress",
            from_number=started.from_number or "",
            to_number=started.to_number or "",
            created_at=now,
            data={
                "answered_at": now,
                "carrier": carrier,
                "bot_url": redact_url(session.bot.url),
                "bot_dialect": session.bot.dialect,
                "sip_call_id": started.call_id if carrier == "sip" else None,
                "carrier_call_id": started.call_id,
                "webhook_url": webhook if isinstance(webhook, str) else None,
            },
        )
        self.ledger.begin(record, webhook_url=webhook if isinstance(webhook, str) else None)
        self.ledger.event(session.call_id, "call.answered")

    def _observe(self, session: CallSession, event_type: str, data: dict[str, object]) -> None:
        if event_type == "dtmf.received":
            self.ledger.dtmf(session.call_id, str(data.get("digit")), data.get("method"))
        else:
            self.ledger.event(session.call_id, event_type, data)

    def _ended(self, session: CallSession, ended: CallEnded) -> None:
        now = time.time()
        live = self.ledger.live.get(session.call_id)
        answered = live.record.data.get("answered_at") if live is not None else None
        duration = round(now - answered, 3) if isinstance(answered, int | float) else None
        target = session.call.transfer_target
        record = self.ledger.change(
            session.call_id,
            ended_at=now,
            duration=duration,
            disposition=ended.reason,
            hangup_cause=ended.reason,
            hangup_side=ENDED_BY.get(ended.reason, "voxgate"),
            transfer_target=target,
            quality=quality_of(ended.summary),
        )
        if record is None:
            return
        if ended.reason == "transferred":
            self.ledger.event(session.call_id, "call.transferred", {"target": target})
        record = self.ledger.change(session.call_id, status="completed")
        if record is not None:
            self.ledger.event(session.call_id, "call.completed", record=record)

    async def update_gauges(self) -> None:
        """Figures for /metrics that live in the control plane."""
        METRICS.gauges["webhook_queue_depth"] = await self.store.pending_count()
        METRICS.gauges["sse_listeners"] = self.bus.listeners
        METRICS.gauges["ledger_queue"] = self.ledger.queued

    # --- the calls of this worker -------------------------------------------------------------

    def session_of(self, call_id: str) -> CallSession | None:
        return self.bridge.sessions.get(call_id)


@dataclass(frozen=True, slots=True)
class Decision:
    """An incoming call's fate: accepted (with the webhook's bot settings, if any) or not."""

    accept: bool
    parameters: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""


def quality_of(summary: Mapping[str, object]) -> dict[str, Any]:
    return {
        name: value
        for name in QUALITY_FIELDS
        if isinstance(value := summary.get(name), int | float)
    }


def _settings_of(bot: BotConfig, default: BotConfig) -> dict[str, Any]:
    """A configured route as a number route's settings (what differs from ``[bot]``)."""
    settings: dict[str, Any] = {}
    if bot.url:
        settings["wss_url"] = bot.url
    if bot.header:
        settings["wss_header"] = "\n".join(f"{n}: {v}" for n, v in bot.header)
    if bot.dialect != default.dialect:
        settings["bot_dialect"] = bot.dialect
    if bot.audio != default.audio:
        settings["bot_audio"] = str(bot.audio)
    if bot.connect_ws_after_answer != default.connect_ws_after_answer:
        settings["connect_ws_after_answer"] = bot.connect_ws_after_answer
    if bot.opening_text:
        settings["text"] = bot.opening_text
    if bot.system_prompt:
        settings["system_msg"] = bot.system_prompt
    return settings


def bot_config(settings: Mapping[str, Any], default: BotConfig) -> BotConfig:
    """A number route's bot: its settings over ``[bot]``."""
    bot = default
    if settings.get("wss_url"):
        bot = replace(bot, url=str(settings["wss_url"]))
    if settings.get("wss_header"):
        try:
            bot = replace(bot, header=parse_header_lines(str(settings["wss_header"])))
        except ConfigError:
            log.error("a number route's wss_header is not valid; ignored")
    if settings.get("bot_dialect"):
        bot = replace(bot, dialect=settings["bot_dialect"])
    if settings.get("bot_audio"):
        bot = replace(bot, audio=AudioFormat.parse(str(settings["bot_audio"])))
    if settings.get("connect_ws_after_answer") is not None:
        bot = replace(bot, connect_ws_after_answer=int(settings["connect_ws_after_answer"]))
    if settings.get("text"):
        bot = replace(bot, opening_text=str(settings["text"]))
    if settings.get("system_msg"):
        bot = replace(bot, system_prompt=str(settings["system_msg"]))
    return bot

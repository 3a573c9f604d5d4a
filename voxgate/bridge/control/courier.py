"""Handing a live-call action to the worker that holds the call, and bringing back its answer.

Theory of operation
-------------------
The store names each live call's owner, ``<node>/<slot>``. An action that reaches another
worker is asked of the owner:

- same node, another worker (``voxgate serve --workers N``): over the node's worker socket
  (:meth:`voxgate.bridge.aio.node.NodeLink.ask_action`), any store;
- another node: through the shared store's notifications (PostgreSQL LISTEN/NOTIFY): the
  request on :data:`REQUESTS` names its owner and a request id; the owner carries it out
  (:func:`voxgate.bridge.control.actions.perform`) and answers on :data:`ANSWERS`.

Only workers that share the store can ask each other, and what they send is a request
the asking worker has authenticated already (its key's mode travels with it). An owner that
does not answer within :data:`ANSWER_TIMEOUT` (it died: its calls end with it) gives 503.
A request too large for one notification (a big ``/play`` upload) is refused with 413:
send it with a ``url`` instead, or to the node that holds the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any, Final

from voxgate.bridge.control.actions import Outcome, perform
from voxgate.errors import ApiError
from voxgate.obs import METRICS

if TYPE_CHECKING:
    from voxgate.bridge.control.plane import ControlPlane

log = logging.getLogger("voxgate.control")

REQUESTS: Final = "voxgate_actions"
ANSWERS: Final = "voxgate_answers"
ANSWER_TIMEOUT: Final = 5.0
MAX_WAITING: Final = 1000


class Courier:
    def __init__(self, control: ControlPlane) -> None:
        self.control = control
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for channel, handle in ((REQUESTS, self._request), (ANSWERS, self._answer)):
            feed = self.control.store.listen(channel)
            await feed.ready()
            self._tasks.append(asyncio.create_task(self._listen(channel, feed, handle)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiting in self._waiting.values():
            waiting.cancel()

    async def ask(
        self, owner: str, mode: str, call_id: str, action: str, args: dict[str, Any]
    ) -> Outcome:
        node, _, slot = owner.rpartition("/")
        link = self.control.bridge.node
        here = self.control.owner.rpartition("/")[0]
        request = {"to": owner, "mode": mode, "call_id": call_id, "action": action, "args": args}
        METRICS.count("actions_forwarded", path="node" if node == here else "store")
        if node == here and link is not None and slot.isdigit():
            answer = await link.ask_action(int(slot), request)
            if answer is None:
                return _gone()
            return Outcome(int(answer["status"]), dict(answer["body"]))
        return await self._ask_store(request)

    async def _ask_store(self, request: dict[str, Any]) -> Outcome:
        if len(self._waiting) >= MAX_WAITING:
            return Outcome.of(ApiError(503, "busy", "too many forwarded actions under way"))
        request_id = secrets.token_hex(8)
        request |= {"id": request_id, "from": self.control.owner}
        try:
            payload = json.dumps(request)
            waiting = asyncio.get_running_loop().create_future()
            self._waiting[request_id] = waiting
            await self.control.store.notify(REQUESTS, payload)
        except ValueError:
            self._waiting.pop(request_id, None)
            problem = "this request is too large to forward to the node that holds the call"
            return Outcome.of(ApiError(413, "too_large", problem))
        try:
            return await asyncio.wait_for(waiting, ANSWER_TIMEOUT)
        except TimeoutError:
            return _gone()
        finally:
            self._waiting.pop(request_id, None)

    async def _listen(self, channel: str, feed: Any, handle: Any) -> None:
        while True:
            try:
                async for payload in feed:
                    await handle(payload)
                return
            except ConnectionError as error:
                METRICS.count("errors", kind="courier")
                log.warning("listening for %s failed (%s); listening again", channel, error)
                await asyncio.sleep(1.0)
                feed = self.control.store.listen(channel)
                await feed.ready()

    async def _request(self, payload: str) -> None:
        try:
            request = json.loads(payload)
            if request.get("to") != self.control.owner:
                return
            outcome = await perform(
                self.control,
                str(request["mode"]),
                str(request["call_id"]),
                str(request["action"]),
                dict(request["args"]),
            )
            answer = {"id": request["id"], "to": request["from"], "status": outcome.status}
            await self.control.store.notify(ANSWERS, json.dumps(answer | {"body": outcome.body}))
        except (ValueError, KeyError, TypeError):
            METRICS.count("errors", kind="courier")
            log.warning("a forwarded action could not be read or answered")

    async def _answer(self, payload: str) -> None:
        try:
            answer = json.loads(payload)
            waiting = self._waiting.get(str(answer.get("id")))
            if answer.get("to") != self.control.owner or waiting is None or waiting.done():
                return
            waiting.set_result(Outcome(int(answer["status"]), dict(answer["body"])))
        except (ValueError, KeyError, TypeError):
            METRICS.count("errors", kind="courier")


async def answer_from_node(control: ControlPlane, request: dict[str, Any]) -> dict[str, Any]:
    """A request another worker of this node sent over its worker socket."""
    outcome = await perform(
        control,
        str(request["mode"]),
        str(request["call_id"]),
        str(request["action"]),
        dict(request["args"]),
    )
    return {"status": outcome.status, "body": outcome.body}


def _gone() -> Outcome:
    return Outcome.of(
        ApiError(503, "owner_unavailable", "the voxgate worker holding this call does not answer")
    )

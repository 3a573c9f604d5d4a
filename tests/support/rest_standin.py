"""Local stand-ins for the carriers' REST APIs that voxgate calls to end or move a call.

The carriers cannot be reached from tests, so this Starlette app answers the
few endpoints voxgate uses the way the vendors document them, validates the
request shape strictly, and records every request for the test to inspect.

Twilio, "Call resource - Update a Call resource"
(twilio.com/docs/voice/api/call-resource#update-a-call-resource):

- ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json``, HTTP Basic
  auth ``AccountSid:AuthToken``, form-encoded body. ``Status`` is
  ``canceled`` or ``completed`` (``completed`` hangs up an in-progress call,
  ``canceled`` does not affect one); ``Twiml`` replaces the call's TwiML and
  is mutually exclusive with ``Url``. SIDs are ``AC``/``CA`` + 32 hex digits.
- 200 answers the call resource (``sid``, ``account_sid``, ``status``,
  ``uri``... dates in RFC 2822). Errors are
  ``{"code", "message", "more_info", "status"}``: 20003 with 401 for bad
  credentials, 20404 with 404 for an unknown call, 21220 "Invalid call
  state" for redirecting a call that is no longer in progress, 12100
  "Document parse failure" and 12102 "The root element must be Response"
  for bad TwiML. For bodies that set neither or both of Status and Twiml, or
  an unknown Status, the stand-in answers 400 with code 20001 (its own
  choice: the exact Twilio code for these was not verified). TwiML without a
  ``<Dial>`` is refused with 400 too: voxgate only sends TwiML to transfer.

Telnyx, Call Control "Hangup call" and "Transfer call"
(developers.telnyx.com/api-reference/call-commands/...):

- ``POST /v2/calls/{call_control_id}/actions/hangup`` and ``.../transfer``,
  ``Authorization: Bearer <API key>``, JSON body (transfer requires ``to``;
  both accept ``client_state``, ``command_id``...).
- 200 answers ``{"data": {"result": "ok"}}`` (CallControlCommandResponse).
  Errors are ``{"errors": [{"code", "title", "detail", "source"?, "meta"?}]}``
  with string codes: 10009 "Authentication failed" (401), 10004 "Missing
  required parameter" with ``source.pointer`` ``/to`` (422), 90015 "Invalid
  Call Control ID" and 90018 "Call has already ended" (422), and 10015
  "Bad Request" (400) for a body that is not a JSON object.

Plivo, "Hangup a specific call" and "Transfer a call"
(plivo.com/docs/voice/api/call/...):

- ``DELETE /v1/Account/{auth_id}/Call/{call_uuid}/``, HTTP Basic auth
  ``auth_id:auth_token``, no arguments: 204 with no body. (Without a call
  uuid Plivo hangs up every call of the account; the stand-in has no such
  route and answers 404.)
- ``POST /v1/Account/{auth_id}/Call/{call_uuid}/`` with ``legs`` (``aleg``,
  ``bleg`` or ``both``), ``aleg_url``/``bleg_url`` (required for the legs
  named) and ``aleg_method``/``bleg_method`` (``GET`` or ``POST``), as JSON
  (what Plivo's SDKs send) or a form: 202 ``{"message": "call transferred",
  "api_id"}``; the transfer's target is the ``aleg_url``.
- Errors are ``{"api_id", "error"}`` (Plivo's general API response shape).
  The statuses are the documented ones where a page gives them; the error
  texts ("Authentication failed", "not found", the 400 messages) are the
  stand-in's own, not checked against Plivo.

Call state: every call starts in progress; a Twilio ``Status=completed``,
a Telnyx hangup or a Plivo DELETE ends it, after which Twilio refuses TwiML
(21220), Telnyx refuses every command (90018) and Plivo answers 404. When a
set of known call ids is configured, other ids are unknown (Twilio 404,
Telnyx 90015, Plivo 404).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Vendor = Literal["twilio", "telnyx", "plivo", "unknown"]

TWILIO_ACCOUNT_SID: Final = "AC" + "0123456789abcdef" * 2
TWILIO_AUTH_TOKEN: Final = "twilio-test-auth-token"
TELNYX_API_KEY: Final = "KEYtelnyx-test-api-key"
PLIVO_AUTH_ID: Final = "MAXXXXXXXXXXXXXXXXXX"
PLIVO_AUTH_TOKEN: Final = "plivo-test-auth-token"
_PLIVO_LEGS: Final = frozenset({"aleg", "bleg", "both"})
TIMEOUT: Final = 5.0

_TWILIO_SID = re.compile(r"(AC|CA)[0-9a-fA-F]{32}")
_TWILIO_FIELDS: Final = frozenset({"Status", "Twiml", "Url", "Method", "StatusCallback"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the stand-in received, and how it answered."""

    vendor: Vendor
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int
    action: str | None = None  # "hangup" or "transfer" when the request was valid
    call_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # form fields or JSON body
    target: str | None = None  # where a transfer goes


class _RefusedError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class RestStandIn:
    """Twilio and Telnyx REST stand-ins served by uvicorn on 127.0.0.1, port 0."""

    def __init__(
        self,
        *,
        twilio_account_sid: str = TWILIO_ACCOUNT_SID,
        twilio_auth_token: str = TWILIO_AUTH_TOKEN,
        telnyx_api_key: str = TELNYX_API_KEY,
        plivo_auth_id: str = PLIVO_AUTH_ID,
        plivo_auth_token: str = PLIVO_AUTH_TOKEN,
        twilio_calls: Iterable[str] | None = None,
        telnyx_calls: Iterable[str] | None = None,
        plivo_calls: Iterable[str] | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.twilio_account_sid = twilio_account_sid
        self.twilio_auth_token = twilio_auth_token
        self.telnyx_api_key = telnyx_api_key
        self.plivo_auth_id = plivo_auth_id
        self.plivo_auth_token = plivo_auth_token
        self.known_twilio_calls = None if twilio_calls is None else set(twilio_calls)
        self.known_telnyx_calls = None if telnyx_calls is None else set(telnyx_calls)
        self.known_plivo_calls = None if plivo_calls is None else set(plivo_calls)
        self.ended_calls: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.timeout = timeout
        self.app = Starlette(
            routes=[
                Route(
                    "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json",
                    self._twilio_update_call,
                    methods=["POST"],
                ),
                Route(
                    "/v2/calls/{call_control_id}/actions/{action}",
                    self._telnyx_action,
                    methods=["POST"],
                ),
                Route(
                    "/v1/Account/{auth_id}/Call/{call_uuid}/",
                    self._plivo_call,
                    methods=["DELETE", "POST"],
                ),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    # -- running -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        # log_config=None, log_level=None: leave the process's logging setup alone.
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            ws="none",
            log_config=None,
            log_level=None,
            access_log=False,
        )
        self._server = server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve(), name="rest-standin")
        async with asyncio.timeout(self.timeout):
            while not server.started:
                if self._task.done():
                    raise RuntimeError(
                        "the REST stand-in did not start"
                    ) from self._task.exception()
                await asyncio.sleep(0.005)
        self._port = server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.timeout)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            await asyncio.wait([self._task], timeout=self.timeout)
        self._server = self._task = None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the REST stand-in is not running")
        return f"http://127.0.0.1:{self._port}"

    def accepted(self, action: str | None = None) -> list[RecordedRequest]:
        """Requests answered with success (200, or Plivo's 202 and 204), optionally only those
        of one action."""
        return [
            r
            for r in self.requests
            if r.status in (200, 202, 204) and (action is None or r.action == action)
        ]

    # -- Twilio --------------------------------------------------------------

    async def _twilio_update_call(self, request: Request) -> Response:
        body = await request.body()
        account_sid = request.path_params["account_sid"]
        call_sid = request.path_params["call_sid"]
        try:
            self._check_twilio_auth(request, account_sid)
            self._check_twilio_call(request, call_sid)
            params = _twilio_form(request, body)
            action, target = self._twilio_action(params, call_sid)
        except _RefusedError as refused:
            self._record(request, body, refused.response.status_code, "twilio", call_id=call_sid)
            return refused.response
        if action == "hangup":
            self.ended_calls.add(call_sid)
        status = "completed" if call_sid in self.ended_calls else "in-progress"
        self._record(
            request,
            body,
            200,
            "twilio",
            action=action,
            call_id=call_sid,
            params=params,
            target=target,
        )
        return _twilio_json(self._twilio_call_resource(call_sid, status), 200)

    def _check_twilio_auth(self, request: Request, account_sid: str) -> None:
        expected = f"{self.twilio_account_sid}:{self.twilio_auth_token}"
        supplied = _basic_credentials(request.headers.get("authorization", ""))
        if supplied is None or not hmac.compare_digest(supplied.encode(), expected.encode()):
            raise _RefusedError(_twilio_error(401, 20003, "Authenticate", basic_realm=True))
        if account_sid != self.twilio_account_sid:
            raise _RefusedError(_twilio_error(401, 20003, "Authenticate", basic_realm=True))

    def _check_twilio_call(self, request: Request, call_sid: str) -> None:
        known = self.known_twilio_calls
        if not _TWILIO_SID.fullmatch(call_sid) or (known is not None and call_sid not in known):
            message = f"The requested resource {request.url.path} was not found"
            raise _RefusedError(_twilio_error(404, 20404, message))

    def _twilio_action(self, params: dict[str, str], call_sid: str) -> tuple[str, str | None]:
        unknown = sorted(set(params) - _TWILIO_FIELDS)
        if unknown:
            raise _RefusedError(
                _twilio_error(400, 20001, f"Unknown parameters: {', '.join(unknown)}")
            )
        if "Url" in params:
            raise _RefusedError(
                _twilio_error(400, 20001, "The stand-in does not fetch Url; send Twiml")
            )
        if ("Status" in params) == ("Twiml" in params):
            raise _RefusedError(_twilio_error(400, 20001, "Send exactly one of Status and Twiml"))
        if "Status" in params:
            status = params["Status"]
            if status not in ("completed", "canceled"):
                raise _RefusedError(
                    _twilio_error(
                        400, 20001, f"Status must be canceled or completed, not {status!r}"
                    )
                )
            return ("hangup" if status == "completed" else "cancel"), None
        if call_sid in self.ended_calls:
            raise _RefusedError(
                _twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
            )
        return "transfer", _dial_target(params["Twiml"])

    def _twilio_call_resource(self, call_sid: str, status: str) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC))  # RFC 2822, "+0000"
        path = f"/2010-04-01/Accounts/{self.twilio_account_sid}/Calls/{call_sid}"
        return {
            "account_sid": self.twilio_account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "inbound",
            "duration": None if status == "in-progress" else "0",
            "end_time": None if status == "in-progress" else now,
            "forwarded_from": None,
            "from": "+15550001111",
            "from_formatted": "(555) 000-1111",
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + "0" * 32,
            "price": None,
            "price_unit": "USD",
            "sid": call_sid,
            "start_time": now,
            "status": status,
            "subresource_uris": {
                name: f"{path}/{name.title().replace('_', '')}.json"
                for name in ("notifications", "recordings", "payments", "events", "streams")
            },
            "to": "+15550002222",
            "to_formatted": "(555) 000-2222",
            "trunk_sid": None,
            "uri": f"{path}.json",
            "queue_time": "0",
        }

    # -- Telnyx --------------------------------------------------------------

    async def _telnyx_action(self, request: Request) -> Response:
        body = await request.body()
        call_id = request.path_params["call_control_id"]
        action = request.path_params["action"]
        try:
            self._check_telnyx_auth(request)
            if action not in ("hangup", "transfer"):
                raise _RefusedError(
                    _telnyx_error(
                        404,
                        "10005",
                        "Resource not found",
                        "The requested resource or URL could not be found.",
                    )
                )
            params = _telnyx_body(body, require_to=action == "transfer")
            self._check_telnyx_call(call_id)
        except _RefusedError as refused:
            self._record(request, body, refused.response.status_code, "telnyx", call_id=call_id)
            return refused.response
        if action == "hangup":
            self.ended_calls.add(call_id)
        target = params.get("to") if action == "transfer" else None
        self._record(
            request,
            body,
            200,
            "telnyx",
            action=action,
            call_id=call_id,
            params=params,
            target=target,
        )
        return JSONResponse({"data": {"result": "ok"}})

    def _check_telnyx_auth(self, request: Request) -> None:
        supplied = request.headers.get("authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {self.telnyx_api_key}".encode()):
            raise _RefusedError(
                _telnyx_error(
                    401,
                    "10009",
                    "Authentication failed",
                    "The required authentication headers were either "
                    "invalid or not included in the request.",
                )
            )

    def _check_telnyx_call(self, call_id: str) -> None:
        known = self.known_telnyx_calls
        if known is not None and call_id not in known:
            raise _RefusedError(
                _telnyx_error(
                    422,
                    "90015",
                    "Invalid Call Control ID",
                    "The call_control_id provided was not valid.",
                    pointer="/call_control_id",
                )
            )
        if call_id in self.ended_calls:
            raise _RefusedError(
                _telnyx_error(
                    422,
                    "90018",
                    "Call has already ended",
                    "This call is no longer active and can't receive commands.",
                )
            )

    # -- Plivo ---------------------------------------------------------------

    async def _plivo_call(self, request: Request) -> Response:
        body = await request.body()
        call_uuid = request.path_params["call_uuid"]
        try:
            self._check_plivo_auth(request, request.path_params["auth_id"])
            self._check_plivo_call(call_uuid)
            if request.method == "DELETE":
                action, params, target = "hangup", {}, None
            else:
                params = _plivo_body(request, body)
                action, target = "transfer", _plivo_transfer_target(params)
        except _RefusedError as refused:
            self._record(request, body, refused.response.status_code, "plivo", call_id=call_uuid)
            return refused.response
        if action == "hangup":
            self.ended_calls.add(call_uuid)
        status = 204 if action == "hangup" else 202
        self._record(
            request,
            body,
            status,
            "plivo",
            action=action,
            call_id=call_uuid,
            params=params,
            target=target,
        )
        if status == 204:
            return Response(status_code=204)
        return JSONResponse({"message": "call transferred", "api_id": str(uuid.uuid4())}, 202)

    def _check_plivo_auth(self, request: Request, auth_id: str) -> None:
        expected = f"{self.plivo_auth_id}:{self.plivo_auth_token}"
        supplied = _basic_credentials(request.headers.get("authorization", ""))
        valid = supplied is not None and hmac.compare_digest(supplied.encode(), expected.encode())
        if not valid or auth_id != self.plivo_auth_id:
            raise _RefusedError(_plivo_error(401, "Authentication failed"))

    def _check_plivo_call(self, call_uuid: str) -> None:
        known = self.known_plivo_calls
        if (known is not None and call_uuid not in known) or call_uuid in self.ended_calls:
            raise _RefusedError(_plivo_error(404, "not found"))

    # -- anything else ---------------------------------------------------------

    async def _unknown(self, request: Request) -> Response:
        body = await request.body()
        self._record(request, body, 404, "unknown")
        return JSONResponse(
            {"error": f"the stand-in has no {request.method} {request.url.path}"}, 404
        )

    def _record(
        self, request: Request, body: bytes, status: int, vendor: Vendor, **details: Any
    ) -> None:
        """Keep the request; ``details`` are RecordedRequest's action, call_id, params, target."""
        headers = {name.lower(): value for name, value in request.headers.items()}
        path = request.url.path
        self.requests.append(
            RecordedRequest(vendor, request.method, path, headers, body, status, **details)
        )


def _basic_credentials(header: str) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _twilio_form(request: Request, body: bytes) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _RefusedError(
            _twilio_error(400, 20001, f"Expected a form body, not {content_type!r}")
        )
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as error:
        raise _RefusedError(_twilio_error(400, 20001, f"Malformed form body: {error}")) from None
    if any(len(values) != 1 for values in fields.values()):
        raise _RefusedError(_twilio_error(400, 20001, "A parameter appears more than once"))
    return {name: values[0] for name, values in fields.items()}


def _dial_target(twiml: str) -> str:
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as error:
        raise _RefusedError(_twilio_error(400, 12100, f"Document parse failure: {error}")) from None
    if root.tag != "Response":
        raise _RefusedError(_twilio_error(400, 12102, "The root element must be Response"))
    dial = root.find("Dial")
    if dial is None:
        raise _RefusedError(_twilio_error(400, 20001, "The stand-in expects TwiML with a <Dial>"))
    nouns = [child.text or "" for child in dial if child.tag in ("Number", "Sip", "Client")]
    target = (nouns[0] if nouns else dial.text or "").strip()
    if not target:
        raise _RefusedError(_twilio_error(400, 20001, "<Dial> names no number, SIP URI or client"))
    return target


def _twilio_error(status: int, code: int, message: str, *, basic_realm: bool = False) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    response = _twilio_json(body, status)
    if basic_realm:
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def _twilio_json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status, media_type="application/json; charset=utf-8")


def _telnyx_body(body: bytes, *, require_to: bool) -> dict[str, Any]:
    try:
        params = json.loads(body) if body.strip() else {}
    except ValueError:
        params = None
    if not isinstance(params, dict):
        raise _RefusedError(
            _telnyx_error(
                400, "10015", "Bad Request", "The request failed because it was not well-formed."
            )
        )
    to = params.get("to")
    if require_to and not (isinstance(to, str) and to.strip()):
        raise _RefusedError(
            _telnyx_error(
                422,
                "10004",
                "Missing required parameter",
                "The 'to' parameter is required and cannot be blank.",
                pointer="/to",
            )
        )
    return params


def _telnyx_error(
    status: int, code: str, title: str, detail: str, *, pointer: str | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    error["meta"] = {"url": f"https://developers.telnyx.com/docs/overview/errors/{code}"}
    return JSONResponse({"errors": [error]}, status)


def _plivo_error(status: int, error: str) -> Response:
    return JSONResponse({"api_id": str(uuid.uuid4()), "error": error}, status)


def _plivo_body(request: Request, body: bytes) -> dict[str, Any]:
    """A transfer's arguments, as JSON (Plivo's SDKs) or as a form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    params: object = None
    try:
        if content_type == "application/json":
            params = json.loads(body)
        elif content_type == "application/x-www-form-urlencoded":
            params = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    except (ValueError, UnicodeDecodeError):
        params = None
    if not isinstance(params, dict):
        raise _RefusedError(_plivo_error(400, "the body must be a JSON object or a form"))
    return params


def _plivo_transfer_target(params: dict[str, Any]) -> str:
    legs = params.get("legs", "aleg")
    if legs not in _PLIVO_LEGS:
        raise _RefusedError(_plivo_error(400, "legs must be aleg, bleg or both"))
    for leg in ("aleg", "bleg"):
        needed = legs in (leg, "both")
        url = params.get(f"{leg}_url")
        if needed and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise _RefusedError(_plivo_error(400, f"{leg}_url is required for legs={legs}"))
        if params.get(f"{leg}_method", "POST") not in ("GET", "POST"):
            raise _RefusedError(_plivo_error(400, f"{leg}_method must be GET or POST"))
    target = params.get("aleg_url") if legs != "bleg" else params.get("bleg_url")
    return str(target)

"""A Twilio-compatible SMS provider over real HTTP, for the tests and the demo.

It answers POST /2010-04-01/Accounts/{AccountSid}/Messages.json the way Twilio's Messages API does: HTTP Basic
auth with the account SID and auth token (401, error 20003, otherwise), form fields To, From or
MessagingServiceSid, Body, StatusCallback; 201 with the message resource on success; 400 with Twilio's error
JSON ({"code", "message", "more_info", "status"}) for a bad To (21211), a landline (21614), a missing Body
(21602) or From (21603), and a recipient who replied STOP (21610). Faults can be injected: `fail(429, times=2,
retry_after=7)` answers the next two sends with 429 (error 20429) and Retry-After: 7; `fail(500)` with a 500.

`reply(from_number, body, webhook_url)` plays a phone answering: STOP-like keywords put the number on the
account's opt-out list (START-like ones take it off) as Twilio's default handling does, and when a webhook URL is
given the inbound message is POSTed there form-encoded and signed with X-Twilio-Signature, as Twilio does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from app.simulator.server import SimulatedServer

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio's default keywords (its Advanced Opt-Out documentation): written out here on their own, not imported
# from the channel, so that the tests compare two readings.
_STOP = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
_START = {"start", "yes", "unstop"}


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Fault:
    status: int
    times: int
    retry_after: int | None = None


@dataclass
class SentSms:
    sid: str
    to: str
    sender: str
    body: str
    status_callback: str | None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


class SmsSimulator(SimulatedServer):
    def __init__(self, account_sid: str | None = None, auth_token: str | None = None,
                 landlines: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.account_sid = account_sid or _sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.landlines = set(landlines)
        self.messages: list[SentSms] = []
        self.opted_out: set[str] = set()
        self.requests = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.app = self._build()

    @property
    def api_url(self) -> str:
        return self.origin

    def fail(self, status: int, times: int = 1, retry_after: int | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(status, times, retry_after))

    def _next_fault(self) -> Fault | None:
        with self._lock:
            while self._faults and self._faults[0].times <= 0:
                self._faults.pop(0)
            if not self._faults:
                return None
            self._faults[0].times -= 1
            return self._faults[0]

    def signature(self, url: str, params: dict[str, str]) -> str:
        data = url + "".join(name + params[name] for name in sorted(params))
        return base64.b64encode(hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()

    def reply(self, from_number: str, body: str, to_number: str = "+15005550006", webhook_url: str | None = None
              ) -> requests.Response | None:
        word = body.strip().strip(".!").lower()
        with self._lock:
            if word in _STOP:
                self.opted_out.add(from_number)
            elif word in _START:
                self.opted_out.discard(from_number)
        if webhook_url is None:
            return None
        params = {"MessageSid": _sid("SM"), "SmsSid": "", "AccountSid": self.account_sid, "From": from_number,
                  "To": to_number, "Body": body, "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01"}
        params["SmsSid"] = params["MessageSid"]
        headers = {"X-Twilio-Signature": self.signature(webhook_url, params), "User-Agent": "TwilioProxy/1.1"}
        return requests.post(webhook_url, data=params, headers=headers, timeout=10)

    def _error(self, status: int, code: int, message: str) -> tuple[Response, int]:
        return jsonify({"code": code, "message": message, "more_info": f"/docs/errors/{code}", "status": status}), status

    def _build(self) -> Flask:
        app = Flask(__name__)

        @app.post("/2010-04-01/Accounts/<account_sid>/Messages.json")
        def create_message(account_sid: str) -> Any:
            with self._lock:
                self.requests += 1
            auth = request.authorization
            if auth is None or auth.type != "basic" or not (
                    hmac.compare_digest(auth.username or "", self.account_sid)
                    and hmac.compare_digest(auth.password or "", self.auth_token)):
                response, status = self._error(401, 20003, "Authenticate")
                response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
                return response, status
            if account_sid != self.account_sid:
                return self._error(404, 20404, f"The requested resource /Accounts/{account_sid} was not found")
            fault = self._next_fault()
            if fault is not None:
                response, status = self._error(fault.status, 20429 if fault.status == 429 else 20500,
                                               "Too Many Requests" if fault.status == 429 else "Internal Server Error")
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
                return response, fault.status
            form = request.form
            to, body = form.get("To", ""), form.get("Body", "")
            sender = form.get("From") or form.get("MessagingServiceSid") or ""
            if not to or not _E164.match(to):
                return self._error(400, 21211, f"Invalid 'To' Phone Number: {to}")
            if not sender:
                return self._error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
            if not body:
                return self._error(400, 21602, "Message body is required.")
            if to in self.landlines:
                return self._error(400, 21614, f"'To' number {to} is not a valid mobile number")
            with self._lock:
                if to in self.opted_out:
                    return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
                sms = SentSms(sid=_sid("SM"), to=to, sender=sender, body=body,
                              status_callback=form.get("StatusCallback"))
                self.messages.append(sms)
            return jsonify({
                "sid": sms.sid, "account_sid": self.account_sid, "to": to, "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"), "body": body, "status": "queued",
                "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
                "date_created": format_datetime(sms.created, usegmt=True), "error_code": None, "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sms.sid}.json",
            }), 201

        return app

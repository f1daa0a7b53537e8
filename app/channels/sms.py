"""SMS through a Twilio-compatible REST API, and the pure half of inbound STOP handling.

Sending: POST {api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP Basic auth (AccountSid, auth
token) and the form fields To, From (or MessagingServiceSid for an "MG..." sender), Body and, when configured,
StatusCallback. 201 is sent (the message SID is the provider id). 429 and 5xx are retried, honouring
Retry-After; a refused connection or a timeout is retried too. Twilio's error codes make the rest permanent:
21610 (the recipient replied STOP: record the opt-out), 21211 / 21614 / 21612 (not a valid, mobile or reachable
number), 20003 (authentication). The Messages API takes no idempotency key, so a retry after a timeout that
hit Twilio after the request was sent may send twice; the SID is returned so the dispatcher records it at once.

Receiving: Twilio POSTs each inbound message (form-encoded) to the number's webhook, signed in
`X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the auth token, of the full URL Twilio called followed by
every POST parameter name and value, sorted by name (and by value for repeated names). `inbound_sms` checks it
(as twilio-python's RequestValidator does, with and without the default port) and reads the Body's keywords:
STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE opt out; START, YES, UNSTOP opt back in; HELP and
INFO ask for help (Twilio's default keywords, per its Advanced Opt-Out documentation). With Advanced Opt-Out
Twilio also sends `OptOutType` (STOP, START, HELP), which wins since a merchant may have custom keywords. The web
layer applies the decision; this module only decides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import structlog

from app.core.ports import OutboundMessage, SendResult
from connectors.payload import retry_after

log = structlog.get_logger(__name__)

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
UNSUBSCRIBED = 21610  # "Attempt to send to unsubscribed recipient"
INVALID_RECIPIENT = frozenset({21211, 21612, 21614})  # invalid To; not reachable by SMS; not a mobile number
CONFIG = frozenset({20003, 20404, 21212, 21408, 21606, 21659})  # auth; not found; bad From; region not enabled


@dataclass(frozen=True)
class SmsConfig:
    api_url: str  # the provider's API base URL, without /2010-04-01
    account_sid: str
    auth_token: str
    sender: str = ""  # default From: an E.164 number, an alphanumeric sender id, or a Messaging Service SID
    status_callback_url: str = ""
    timeout_s: float = 10.0

    def __repr__(self) -> str:  # never show the token
        return f"SmsConfig(api_url={self.api_url!r}, account_sid={self.account_sid!r})"


class TwilioSmsChannel:
    name = "sms"

    def __init__(self, config: SmsConfig, session: requests.Session | None = None) -> None:
        self.config = config
        self.session = session or requests.Session()
        self.session.auth = (config.account_sid, config.auth_token)
        self.url = f"{config.api_url.rstrip('/')}/{API_VERSION}/Accounts/{quote(config.account_sid, safe='')}/Messages.json"

    def send(self, message: OutboundMessage) -> SendResult:
        to = message.to.strip()
        if not E164.match(to):
            return SendResult.failed(f"not an E.164 phone number: {to!r}", reason="invalid_recipient")
        body = message.text.strip()
        if not body:
            return SendResult.failed("an SMS needs a text body", reason="config")
        sender = (message.sender_address or self.config.sender).strip()
        if not sender:
            return SendResult.failed("no SMS sender configured", reason="config")
        form = {"To": to, "Body": body}
        form["MessagingServiceSid" if sender.startswith("MG") else "From"] = sender
        if self.config.status_callback_url:
            form["StatusCallback"] = self.config.status_callback_url
        try:
            response = self.session.post(self.url, data=form, timeout=(self.config.timeout_s, self.config.timeout_s),
                                         allow_redirects=False)
        except requests.ConnectionError as exc:  # refused, reset, DNS, connect timeout: nothing was sent
            return self._log(message, SendResult.retry(f"SMS API unreachable: {type(exc).__name__}"))
        except requests.Timeout:
            return self._log(message, SendResult.retry("SMS API timed out (the message may have been sent)"))
        return self._log(message, classify_response(response.status_code, _json(response),
                                                    response.headers.get("Retry-After")))

    def _log(self, message: OutboundMessage, result: SendResult) -> SendResult:
        log.info("sms.send", shop_id=message.shop_id, idempotency=message.key, outcome=result.outcome,
                 code=result.code, reason=result.reason, provider_id=result.provider_id)
        return result


def _json(response: requests.Response) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, Mapping) else {}


def classify_response(status: int, data: Mapping[str, Any], retry_after_header: str | None = None) -> SendResult:
    """The dispatcher's reading of one answer of the Messages API."""
    raw_code = data.get("code")
    code = int(raw_code) if isinstance(raw_code, int | str) and str(raw_code).isdigit() else None
    text = str(data.get("message") or "")[:300]
    label = f"HTTP {status}" + (f", error {code}" if code else "") + (f": {text}" if text else "")
    if 200 <= status < 300:
        sid = data.get("sid")
        return SendResult.sent(str(sid) if sid else None)
    if status == 429:
        return SendResult.retry(label, reason="rate_limited", code=str(code or 429),
                                retry_after=retry_after(retry_after_header) or None)
    if status >= 500:
        return SendResult.retry(label, reason="unavailable", code=str(code or status),
                                retry_after=retry_after(retry_after_header) or None)
    if code == UNSUBSCRIBED:
        return SendResult.failed(label, reason="unsubscribed", code=str(code))
    if code in INVALID_RECIPIENT:
        return SendResult.failed(label, reason="invalid_recipient", code=str(code))
    if status in (401, 403) or code in CONFIG:
        return SendResult.failed(label, reason="auth" if status in (401, 403) or code == 20003 else "config",
                                 code=str(code or status))
    return SendResult.failed(label, reason="rejected", code=str(code or status))


# --- inbound ---------------------------------------------------------------------------------------------------

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})
Params = Mapping[str, str] | Iterable[tuple[str, str]]
InboundAction = Literal["opt_out", "opt_in", "help", "message"]
_OPT_OUT_TYPE: dict[str, InboundAction] = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}


def _pairs(params: Params) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), str(v)) for k, v in items]


def twilio_signature(auth_token: str, url: str, params: Params) -> str:
    """X-Twilio-Signature for a form POST to `url`: the URL, then each name and value, sorted by name and value
    (repeated pairs once), HMAC-SHA1 under the auth token, base64."""
    data = url + "".join(k + v for k, v in sorted(set(_pairs(params))))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the scheme's default port: Twilio may have signed any."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host.rsplit(":", 1)[0] if parts.port else host
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url, urlunsplit(parts._replace(netloc=userinfo + bare))]
    if default:
        variants.append(urlunsplit(parts._replace(netloc=f"{userinfo}{bare}:{default}")))
    return list(dict.fromkeys(variants))


def valid_twilio_signature(auth_tokens: str | Sequence[str], url: str, params: Params, signature: str | None) -> bool:
    """Constant-time check of X-Twilio-Signature under each token (the primary and, while rotating, the secondary)."""
    if not signature:
        return False
    pairs = _pairs(params)
    given = signature.strip().encode()
    ok = False
    for token in [auth_tokens] if isinstance(auth_tokens, str) else auth_tokens:
        if token:
            for variant in _url_variants(url):
                ok |= hmac.compare_digest(twilio_signature(token, variant, pairs).encode(), given)
    return ok


@dataclass(frozen=True)
class InboundSms:
    action: InboundAction
    from_number: str
    to_number: str
    body: str
    keyword: str | None  # the keyword that decided it, upper case; None for an ordinary message
    message_sid: str
    account_sid: str


def keyword_action(body: str) -> tuple[InboundAction, str | None]:
    """A Body that is exactly one keyword (any case, surrounding spaces and punctuation ignored) opts out, opts
    in or asks for help; anything else ("stop texting me") is an ordinary message."""
    word = re.sub(r"^[\s\W_]+|[\s\W_]+$", "", body or "").upper()
    if word in OPT_OUT:
        return "opt_out", word
    if word in OPT_IN:
        return "opt_in", word
    if word in HELP:
        return "help", word
    return "message", None


def interpret_inbound(params: Params) -> InboundSms:
    first: dict[str, str] = {}
    for k, v in _pairs(params):
        first.setdefault(k, v)
    body = first.get("Body", "")
    action, keyword = keyword_action(body)
    opt_out_type = first.get("OptOutType", "").strip().upper()
    if opt_out_type in _OPT_OUT_TYPE:
        action, keyword = _OPT_OUT_TYPE[opt_out_type], keyword or opt_out_type
    return InboundSms(action=action, from_number=first.get("From", ""), to_number=first.get("To", ""), body=body,
                      keyword=keyword, message_sid=first.get("MessageSid", first.get("SmsSid", "")),
                      account_sid=first.get("AccountSid", ""))


def inbound_sms(auth_tokens: str | Sequence[str], url: str, params: Params, signature: str | None
                ) -> InboundSms | None:
    """The decision for one inbound webhook, or None when its signature is not valid (answer 403).

    `url` must be the URL Twilio called, as Twilio saw it (scheme, host and query included): behind a proxy,
    rebuild it from the public origin, not from the proxied request."""
    pairs = _pairs(params)
    if not valid_twilio_signature(auth_tokens, url, pairs, signature):
        return None
    return interpret_inbound(pairs)

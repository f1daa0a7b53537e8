"""What every connector needs to read a platform's payloads and signatures: strict, pure, one clear error
(MalformedPayload) naming the field that is wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from connectors.base import Headers, MalformedPayload


def without_nul(value: Any) -> Any:
    """A parsed payload with every NUL character taken out of its texts and keys.

    JSON may carry one (`\\u0000`), say in a customer's name or an order note, but PostgreSQL's text cannot hold
    one: the whole order would fail to be stored and end parked, its points and messages with it. A NUL means
    nothing in any field Encore reads, so it is dropped where the store's data comes in (webhooks and history)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def header(headers: Headers, *names: str) -> str | None:
    """The first of `names` present, case-insensitively, whether `headers` is a dict or the framework's."""
    for name in names:
        found = headers.get(name)
        if found is not None:
            return found
    wanted = [n.lower() for n in names]
    present = {k.lower(): v for k, v in headers.items()}
    return next((present[n] for n in wanted if n in present), None)


def b64_hmac(body: bytes, secret: str) -> str:
    """Base64 of the raw HMAC-SHA256 digest of the raw body: how Shopify and WooCommerce both sign."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def valid_b64_hmac(body: bytes, signature: str | None, secrets: tuple[str, ...]) -> bool:
    """Compare in constant time under every given secret (the current one and, while rotating, the old one);
    an empty secret never verifies anything."""
    if not signature:
        return False
    given = signature.strip().encode("utf-8", "replace")
    ok = False
    for secret in secrets:
        if secret:
            ok |= hmac.compare_digest(b64_hmac(body, secret).encode(), given)
    return ok


def obj(payload: Any, what: str = "the body") -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise MalformedPayload(f"{what} is not a JSON object")
    return payload


def ident(data: Mapping[str, Any], key: str = "id") -> str:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() in ("", "0"):
        raise MalformedPayload(f"missing or invalid '{key}'")
    return str(value).strip()


def opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def when(data: Mapping[str, Any], key: str, required: bool = True, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO 8601 time, as an aware UTC datetime. A time without a zone is refused, unless the platform
    documents it as UTC (WooCommerce's `*_gmt` fields)."""
    value = data.get(key)
    if value in (None, ""):
        if required:
            raise MalformedPayload(f"missing '{key}'")
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"'{key}' is not an ISO 8601 time: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedPayload(f"'{key}' is not an ISO 8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise MalformedPayload(f"'{key}' has no time zone: {value!r}")
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def required_when(data: Mapping[str, Any], key: str, *, naive_is_utc: bool = False) -> datetime:
    value = when(data, key, naive_is_utc=naive_is_utc)
    assert value is not None  # when() raises for a missing required time
    return value


def money(data: Mapping[str, Any], key: str, default: str | None = None) -> Decimal:
    value = data.get(key, default)
    if value is None or value == "":
        if default is None:
            raise MalformedPayload(f"missing '{key}'")
        value = default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedPayload(f"'{key}' is not an amount: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MalformedPayload(f"'{key}' is not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MalformedPayload(f"'{key}' is not an amount: {value!r}")
    return amount


def retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110); 0 if unreadable."""
    if not value:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max((at - datetime.now(UTC)).total_seconds(), 0.0)


def codes(found: Iterable[str]) -> tuple[str, ...]:
    """Discount codes as Encore keeps them: lower-cased (codes match in any case on both platforms), sorted."""
    return tuple(sorted({c.strip().lower() for c in found if c.strip()}))

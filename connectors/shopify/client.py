"""The only module that speaks HTTP to Shopify: OAuth token calls and the GraphQL Admin API.

Every call has a timeout; 429, 5xx, THROTTLED and network errors are retried with backoff (tenacity);
GraphQL cost is read from each response and the next query waits for the bucket to refill; userErrors
become ShopifyUserErrors. Tokens are never logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from app.core.ports import StoreBusy
from connectors.payload import retry_after

API_VERSION = "2025-10"  # the one place the Admin API version is pinned
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"

log = structlog.get_logger(__name__)


class ShopifyApiError(Exception):
    """Shopify answered with an error that retrying will not mend."""


class ShopifyAuthError(ShopifyApiError):
    """The token or grant was refused (401/403, invalid_grant, invalid subject token)."""


class ShopifyRetryable(ShopifyApiError, StoreBusy):
    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShopifyResultGone(ShopifyApiError):
    """A bulk operation's result URL no longer answers (it expires)."""


class ShopifyUserErrors(ShopifyApiError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("message")) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_at: datetime | None
    refresh_token: str | None
    refresh_expires_at: datetime | None
    scope: str

    def __repr__(self) -> str:  # tokens never reach a log through repr
        return f"TokenSet(expires_at={self.expires_at!r}, scope={self.scope!r})"


@dataclass
class _Bucket:
    available: float = 1000.0
    maximum: float = 1000.0
    restore_rate: float = 50.0
    seen_at: float = 0.0


def _wait(retry_state: RetryCallState) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    backoff: float = wait_exponential(multiplier=0.25, max=8)(retry_state)
    return max(backoff, getattr(exc, "retry_after", 0.0))


class ShopifyClient:
    def __init__(self, *, api_key: str, api_secret: str, shop_origin: str = "https://{shop}",
                 session: requests.Session | None = None, timeout: tuple[float, float] = (3.05, 20.0),
                 attempts: int = 6, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api_key, self._secret, self._origin = api_key, api_secret, shop_origin
        self.http = session or requests.Session()
        self.timeout, self.attempts, self.sleep = timeout, attempts, sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def origin(self, shop: str) -> str:
        return self._origin.format(shop=shop)

    def authorize_url(self, shop: str, *, scopes: str, redirect_uri: str, state: str) -> str:
        query = urlencode({"client_id": self.api_key, "scope": scopes, "redirect_uri": redirect_uri, "state": state})
        return f"{self.origin(shop)}/admin/oauth/authorize?{query}"

    def _retrying(self, attempts: int | None = None) -> Retrying:
        return Retrying(stop=stop_after_attempt(attempts or self.attempts), wait=_wait, sleep=self.sleep, reraise=True,
                        retry=retry_if_exception_type((ShopifyRetryable, requests.ConnectionError, requests.Timeout)))

    def _post(self, url: str, *, json: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> requests.Response:
        response = self.http.post(url, json=json, headers=dict(headers or {}), timeout=self.timeout)
        if response.status_code == 429 or response.status_code >= 500:
            raise ShopifyRetryable(f"HTTP {response.status_code} from {url}",
                                   retry_after(response.headers.get("Retry-After")))
        if response.status_code in (401, 403):
            raise ShopifyAuthError(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise ShopifyApiError(f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    # --- OAuth -------------------------------------------------------------------------------------------

    def _token(self, shop: str, form: dict[str, Any]) -> TokenSet:
        body = {"client_id": self.api_key, "client_secret": self._secret, **form}
        url = f"{self.origin(shop)}/admin/oauth/access_token"
        try:
            response = self._retrying()(self._post, url, json=body)
        except ShopifyApiError as exc:
            if isinstance(exc, ShopifyRetryable):
                raise
            raise ShopifyAuthError(f"token request refused for {shop}: {exc}") from None
        data = response.json()
        now = datetime.now(UTC)

        def at(seconds: Any) -> datetime | None:
            return now + timedelta(seconds=int(seconds)) if seconds else None

        return TokenSet(access_token=data["access_token"], expires_at=at(data.get("expires_in")),
                        refresh_token=data.get("refresh_token"),
                        refresh_expires_at=at(data.get("refresh_token_expires_in")), scope=data.get("scope", ""))

    def exchange_id_token(self, shop: str, id_token: str) -> TokenSet:
        """Token exchange of an App Bridge ID token for an expiring offline access token."""
        return self._token(shop, {"grant_type": TOKEN_EXCHANGE, "subject_token": id_token,
                                  "subject_token_type": ID_TOKEN_TYPE, "requested_token_type": OFFLINE_TOKEN_TYPE,
                                  "expiring": 1})

    def exchange_code(self, shop: str, code: str) -> TokenSet:
        """Authorization-code grant, for installs that start outside the admin."""
        return self._token(shop, {"code": code, "expiring": 1})

    def refresh(self, shop: str, refresh_token: str) -> TokenSet:
        return self._token(shop, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    # --- GraphQL Admin API ---------------------------------------------------------------------------------

    def _pace(self, shop: str, cost: float) -> None:
        with self._lock:
            bucket = self._buckets.get(shop)
        if bucket is None:
            return
        restored = min(bucket.maximum, bucket.available + (time.monotonic() - bucket.seen_at) * bucket.restore_rate)
        if restored < cost:
            self.sleep((cost - restored) / max(bucket.restore_rate, 1.0))

    def _note_cost(self, shop: str, extensions: Mapping[str, Any]) -> None:
        status = (extensions.get("cost") or {}).get("throttleStatus")
        if status:
            with self._lock:
                self._buckets[shop] = _Bucket(float(status["currentlyAvailable"]), float(status["maximumAvailable"]),
                                              float(status["restoreRate"]), time.monotonic())

    def graphql(self, shop: str, access_token: str, query: str, variables: Mapping[str, Any] | None = None, *,
                user_errors_at: str | None = None, expected_cost: float = 50.0,
                attempts: int | None = None) -> dict[str, Any]:
        """One GraphQL call, retried on 429, 5xx, THROTTLED and network errors up to `attempts` tries (the
        client's default when None). A caller with a retry schedule of its own (reward and referral codes) asks for
        few, so that a store that is down does not hold a shopper's request or a worker for long."""
        url = f"{self.origin(shop)}/admin/api/{API_VERSION}/graphql.json"
        headers = {"X-Shopify-Access-Token": access_token, "Content-Type": "application/json"}

        def attempt() -> dict[str, Any]:
            self._pace(shop, expected_cost)
            body = self._post(url, json={"query": query, "variables": dict(variables or {})}, headers=headers).json()
            self._note_cost(shop, body.get("extensions") or {})
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                raise ShopifyRetryable("THROTTLED")
            if errors:
                raise ShopifyApiError("; ".join(str(e.get("message")) for e in errors))
            data: dict[str, Any] = body.get("data") or {}
            return data

        data = self._retrying(attempts)(attempt)
        if user_errors_at:
            problems = (data.get(user_errors_at) or {}).get("userErrors") or []
            if problems:
                raise ShopifyUserErrors(problems)
        return data

    # --- bulk operation results ------------------------------------------------------------------------------

    def jsonl(self, url: str, offset: int = 0) -> Iterator[tuple[bytes, int]]:
        """Stream a bulk operation's JSONL result from a byte offset (a Range request, so a resumed import does
        not read again what it has); yields each line with the offset right after it. Never the whole file in
        memory. A server that ignores Range is read from the start, skipping up to the offset."""
        def attempt() -> requests.Response:
            response = self.http.get(url, headers={"Range": f"bytes={offset}-"} if offset else {},
                                     timeout=self.timeout, stream=True)
            if response.status_code == 429 or response.status_code >= 500:
                response.close()
                raise ShopifyRetryable(f"HTTP {response.status_code} from the bulk result",
                                       retry_after(response.headers.get("Retry-After")))
            if response.status_code in (403, 404, 410):
                response.close()
                raise ShopifyResultGone(f"HTTP {response.status_code}: the bulk result is gone (kept for 7 days)")
            if response.status_code >= 400:
                response.close()
                raise ShopifyApiError(f"HTTP {response.status_code} from the bulk result")
            return response

        response = self._retrying()(attempt)
        with response:
            at = offset if response.status_code == 206 else 0
            pending = b""
            for chunk in response.iter_content(chunk_size=65536):
                pending += chunk
                start = 0
                while (end := pending.find(b"\n", start)) >= 0:
                    line, start = pending[start:end], end + 1
                    at += len(line) + 1
                    if at > offset and line.strip():
                        yield line, at
                pending = pending[start:]
            if pending.strip():
                at += len(pending)
                if at > offset:
                    yield pending, at

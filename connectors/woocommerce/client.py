"""The only module that speaks HTTP to WooCommerce: the REST API (wc/v3) through the `woocommerce` package.

Every call has a timeout (the package passes `timeout` to each request); 429, 5xx and network errors are retried
with exponential backoff (tenacity), honouring Retry-After; other errors become typed exceptions carrying the
platform's error `code`. Paging follows X-WP-TotalPages, and a page that fails is retried, never skipped.

What the package does, read at woocommerce 3.0.0 (`woocommerce/api.py`):

* it calls `requests.request` itself, with no way to pass a session: this module routes that call through the
  client's own session (below), which outside development is `app.net.guarded_session()`, so a store host that
  re-resolves to a private address between the URL check and a call (DNS rebinding) is refused at connect time;
* over https it sends HTTP Basic auth; over plain http it signs OAuth 1.0a (HMAC-SHA256) into the query string,
  which is what WooCommerce itself requires on http (Basic is only honoured over SSL);
* on http the query is also repeated (signed in the URL, then appended again as `params`);
* the OAuth URL carries the consumer key, so a `requests` error message can name it: errors leave this module
  with the method and path only, never the URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import requests
import structlog
import woocommerce
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from app.core.ports import StoreBusy
from app.net import guarded_session
from connectors.payload import retry_after

API_VERSION = "wc/v3"
BATCH_LIMIT = 100  # WooCommerce refuses batches of more than 100 items (413)
PER_PAGE = 100  # the REST API's maximum per_page

log = structlog.get_logger(__name__)


class WooCommerceError(Exception):
    """WooCommerce answered with an error that retrying will not mend; `code` is the platform's error code."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class WooCommerceAuthError(WooCommerceError):
    """The keys were refused (401/403): wrong, revoked, or without the needed permission."""


class WooCommerceNotFound(WooCommerceError):
    """404: the resource (or the REST route) does not exist."""


class WooCommerceRetryable(WooCommerceError, StoreBusy):
    """429, 5xx, a timeout or a failed connection: worth another try, after `retry_after` seconds at least."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float = 0.0) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


def _wait(retry_state: RetryCallState) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    backoff: float = wait_exponential(multiplier=0.5, max=30)(retry_state)
    return max(backoff, getattr(exc, "retry_after", 0.0))


def _error_of(response: requests.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(body, dict):
        code = body.get("code")
        return (str(code) if code is not None else None), str(body.get("message") or "")[:300]
    return None, response.text[:200]


# The session the package's module-level `request` goes through, set by the client around each call.
_SESSION: ContextVar[requests.Session | None] = ContextVar("woocommerce_session", default=None)


def _request(method: str, url: str, **kwargs: Any) -> requests.Response:
    session = _SESSION.get()
    return session.request(method, url, **kwargs) if session else requests.request(method, url, **kwargs)


woocommerce.api.request = _request


class WooCommerceClient:
    def __init__(self, store_url: str, consumer_key: str, consumer_secret: str, *,
                 timeout: tuple[float, float] = (3.05, 30.0), attempts: int = 5,
                 sleep: Callable[[float], None] = time.sleep, verify_ssl: bool = True,
                 user_agent: str = "Encore/0.1 (+woocommerce)", allow_private: bool = False) -> None:
        """`allow_private`: the store may be on a private or loopback address (development and the simulator);
        otherwise every connection goes only to public addresses, checked when it is opened."""
        self.session = requests.Session() if allow_private else guarded_session()
        self.store_url = store_url.rstrip("/")
        self.consumer_key = consumer_key
        self.timeout, self.attempts, self.sleep = timeout, attempts, sleep
        self.api: Any = woocommerce.API(url=self.store_url, consumer_key=consumer_key,
                                        consumer_secret=consumer_secret, version=API_VERSION, timeout=timeout,
                                        verify_ssl=verify_ssl, query_string_auth=False, user_agent=user_agent)

    def __repr__(self) -> str:  # neither the secret nor the whole key reaches a log through repr
        return f"WooCommerceClient(store_url={self.store_url!r}, consumer_key='…{self.consumer_key[-4:]}')"

    # --- transport -------------------------------------------------------------------------------------

    def _retrying(self) -> Retrying:
        return Retrying(stop=stop_after_attempt(self.attempts), wait=_wait, sleep=self.sleep, reraise=True,
                        retry=retry_if_exception_type(WooCommerceRetryable))

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None,
              data: Any | None) -> requests.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        where = f"{method} {path}"
        token = _SESSION.set(self.session)
        try:
            if method == "GET":
                response: requests.Response = self.api.get(path, params=query)
            elif method == "POST":
                response = self.api.post(path, data, params=query)
            elif method == "PUT":
                response = self.api.put(path, data, params=query)
            else:
                response = self.api.delete(path, params=query)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise WooCommerceRetryable(f"{where}: {type(exc).__name__}") from None  # the URL holds the key
        except requests.RequestException as exc:
            raise WooCommerceError(f"{where}: {type(exc).__name__}") from None
        finally:
            _SESSION.reset(token)
        status = response.status_code
        if status < 400:
            return response
        code, message = _error_of(response)
        text = f"{where}: HTTP {status} {code or ''}: {message}"
        if status == 429 or status >= 500:
            log.warning("woocommerce.retryable", method=method, path=path, status=status, code=code)
            raise WooCommerceRetryable(text, status=status, code=code,
                                       retry_after=retry_after(response.headers.get("Retry-After")))
        if status in (401, 403):
            raise WooCommerceAuthError(text, status=status, code=code)
        if status == 404:
            raise WooCommerceNotFound(text, status=status, code=code)
        raise WooCommerceError(text, status=status, code=code)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                data: Any | None = None) -> requests.Response:
        """One call, retried on 429/5xx/network errors; the final failure is raised as a typed error."""
        response: requests.Response = self._retrying()(self._once, method.upper(), path.strip("/"), params, data)
        return response

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, data: Any) -> Any:
        return self.request("POST", path, data=data).json()

    def put(self, path: str, data: Any) -> Any:
        return self.request("PUT", path, data=data).json()

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("DELETE", path, params=params).json()

    def page(self, path: str, params: Mapping[str, Any] | None,
             number: int) -> tuple[list[dict[str, Any]], int | None, int | None]:
        """One page of a collection with the store's counts (X-WP-Total, X-WP-TotalPages), retried on 429/5xx."""
        query = {"per_page": PER_PAGE, **(params or {}), "page": number}
        response = self.request("GET", path, params=query)
        items = response.json()
        if not isinstance(items, list):
            raise WooCommerceError(f"GET {path}: expected a list, got {type(items).__name__}")
        total, pages = (response.headers.get(h) for h in ("X-WP-Total", "X-WP-TotalPages"))
        return items, int(total) if total and total.isdigit() else None, int(pages) if pages and pages.isdigit() else None

    def pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a collection, in order, following X-WP-TotalPages; a failing page is retried (then
        raised), never skipped."""
        per_page = int((params or {}).get("per_page", PER_PAGE))
        page = 1
        while True:
            items, _, total = self.page(path, params, page)
            yield items
            if not items or (total is not None and page >= total) or (total is None and len(items) < per_page):
                return
            page += 1

    # --- what Encore asks of a store --------------------------------------------------------------------

    def system_status(self) -> dict[str, Any]:
        """A cheap authenticated call that confirms the keys (and names the store's home_url)."""
        status: dict[str, Any] = self.get("system_status")
        return status

    def orders_modified_after(self, since: datetime, *, per_page: int = PER_PAGE) -> Iterator[dict[str, Any]]:
        """Every order modified after `since` (UTC), oldest id first, so that orders created while paging land on
        later pages instead of shifting the ones already read."""
        when = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        params = {"modified_after": when, "dates_are_gmt": "true", "orderby": "id", "order": "asc",
                  "per_page": per_page}
        for page in self.pages("orders", params):
            yield from page

    def order(self, order_id: int | str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"orders/{order_id}")
        return found

    def create_webhook(self, topic: str, delivery_url: str, secret: str, *, name: str | None = None,
                       status: str = "active") -> dict[str, Any]:
        made: dict[str, Any] = self.post("webhooks", {"name": name or f"Encore {topic}", "topic": topic,
                                                      "delivery_url": delivery_url, "secret": secret,
                                                      "status": status})
        return made

    def webhooks(self) -> list[dict[str, Any]]:
        return [w for page in self.pages("webhooks") for w in page]

    def update_webhook(self, webhook_id: int, **fields: Any) -> dict[str, Any]:
        updated: dict[str, Any] = self.put(f"webhooks/{webhook_id}", fields)
        return updated

    def delete_webhook(self, webhook_id: int) -> dict[str, Any]:
        gone: dict[str, Any] = self.delete(f"webhooks/{webhook_id}", {"force": "true"})
        return gone

    def create_coupon(self, code: str, *, amount: str, discount_type: str = "percent", usage_limit: int | None = 1,
                      email_restrictions: list[str] | None = None, date_expires_gmt: str | None = None,
                      individual_use: bool = True, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"code": code, "amount": amount, "discount_type": discount_type,
                                "individual_use": individual_use, **extra}
        if usage_limit is not None:
            data["usage_limit"] = usage_limit
        if email_restrictions:
            data["email_restrictions"] = email_restrictions
        if date_expires_gmt:
            data["date_expires_gmt"] = date_expires_gmt
        made: dict[str, Any] = self.post("coupons", data)
        return made

    def find_coupon(self, code: str) -> dict[str, Any] | None:
        found = self.get("coupons", {"code": code})
        return found[0] if found else None

    def create_coupons(self, coupons: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """coupons/batch, BATCH_LIMIT at a time; each result is the coupon or {"id": 0, "error": {...}}."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(coupons), BATCH_LIMIT):
            answer = self.post("coupons/batch", {"create": coupons[start:start + BATCH_LIMIT]})
            results.extend(answer.get("create") or [])
        return results

"""Property tests of the endpoints anyone on the internet can call: the webhook intake given random bodies and
headers answers 400/401/404/413 (never 500, never a stored delivery), and the public pages (survey, preferences,
unsubscribe, referral landing, storefront proxy) given random tokens, query strings and forms never answer 500.
One app and database serve all examples of a test (hypothesis does not reset function fixtures), which is what
these properties need: nothing they send may be accepted anyway."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.bootstrap import Container
from app.db import models as t

FAST = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

header_names = st.sampled_from([
    "X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id",
    "X-WC-Webhook-Signature", "X-WC-Webhook-Topic", "X-WC-Webhook-Source", "X-WC-Webhook-Delivery-ID",
    "X-WC-Webhook-ID", "Content-Type"])
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
text = st.text(max_size=40)
tokens = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"), min_size=1,
                 max_size=80)


@FAST
@given(platform=st.sampled_from(["shopify", "woocommerce", "other"]), body=st.binary(max_size=2000),
       headers=st.dictionaries(header_names, header_values, max_size=6))
def test_the_webhook_intake_refuses_random_deliveries_cleanly(client: FlaskClient, container: Container,
                                                                platform: str, body: bytes,
                                                                headers: dict[str, str]) -> None:
    response = client.post(f"/webhooks/{platform}", data=body, headers=headers)
    assert response.status_code in (400, 401, 404, 413), response.status_code
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(t.InboxRow)) == 0


@FAST
@given(prefix=st.sampled_from(["s", "p", "u", "o", "c", "proxy/r"]), token=tokens,
       method=st.sampled_from(["GET", "POST"]),
       form=st.dictionaries(st.sampled_from(["csrf", "score", "nps", "comment", "email", "action", "frequency",
                                             "birthday_month", "birthday_day", "List-Unsubscribe"]), text, max_size=6),
       query=st.dictionaries(st.sampled_from(["shop", "signature", "timestamp", "logged_in_customer_id", "path_prefix",
                                              "lang", "url"]), text, max_size=5))
def test_public_pages_never_fail_on_random_tokens_params_and_forms(client: FlaskClient, method: str, prefix: str,
                                                                   token: str, form: dict[str, str],
                                                                   query: dict[str, Any]) -> None:
    response = client.open(f"/{prefix}/{token}", method=method, data=form, query_string=query)
    assert response.status_code < 500, (prefix, token, response.status_code)


@FAST
@given(path=st.sampled_from(["/proxy/loyalty", "/proxy/loyalty/balance", "/proxy/loyalty/redeem"]),
       query=st.dictionaries(st.sampled_from(["shop", "signature", "timestamp", "logged_in_customer_id", "path_prefix"]),
                             text, max_size=5),
       body=st.binary(max_size=300))
def test_the_storefront_proxy_never_fails_on_random_requests(client: FlaskClient, path: str, query: dict[str, Any],
                                                             body: bytes) -> None:
    response = client.post(path, data=body, query_string=query, content_type="application/json") \
        if path.endswith("redeem") else client.get(path, query_string=query)
    assert response.status_code < 500, (path, query, response.status_code)

"""The OpenAPI description of the JSON API (app/web/openapi.yaml, served at /api/openapi.json) against the app:

- drift: the description's (method, path) pairs are exactly the app's JSON routes under /api/admin and
  /proxy/loyalty, so a route added without a description (or a description left behind) fails here; and the
  document is valid OpenAPI 3.1 (schemathesis validates it against the specification's meta-schema);
- conformance: schemathesis generates requests for every operation from the description (valid ones, and
  invalid ones that break it), sends them to the WSGI app in-process, authenticated for a shop seeded with a
  bit of everything (the admin API with Encore's own and Shopify's session tokens; the proxy API signed as
  Shopify's app proxy signs, for a logged-in customer or nobody), half of the time with the path naming one of
  the shop's real rows, and checks every answer: no 5xx, a documented status code, the documented content
  type, a body that matches the documented schema and the documented headers. Deterministic (derandomized)
  and bounded: EXAMPLES requests per operation and generation mode.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.bootstrap import Container
from app.simulator.shopify import ShopifySimulator
from app.web.auth import issue_admin_token
from connectors.shopify.proxy import sign
from tests.conftest import API_KEY, API_SECRET
from tests.fakes import FakeStorePlatform
from tests.integration.test_tenant_isolation import Shop, _populate

Operation = APIOperation[Any, Any, Any, Any]
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}


def no_undocumented_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, but the ones an operation promises (502: the store or the mail channel could not be reached)."""
    if str(response.status_code) in case.operation.definition.raw["responses"]:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [no_undocumented_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
DESCRIBED = ("/api/admin/", "/proxy/loyalty")
MINTER = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")  # never started
# A path parameter -> the seeded shop's own row it may name (else the generated value stands).
REAL = {"row_id": "inbox", "export_id": "export", "segment_id": "segment", "reward_id": "reward", "item_id": "item",
        "referral_id": "referral", "message_id": "message", "customer_id": "customer", "key": "journey",
        "index": "zero"}
RULES = {"match": "all", "rules": [{"field": "orders_count", "op": ">=", "value": 1}]}
CSV = (Path(__file__).parent.parent / "data" / "orders_sample.csv").read_bytes()
# Body fields that, half of the time, are set to what the seeded shop takes, so writes get past validation too
# ("reward": the shop's reward id; "csv": a sample file of orders; None drops the field, so that "step" is the
# journey's first step).
OVERLAY: dict[str, dict[str, Any]] = {
    "POST /api/admin/journeys/{key}/preview": {"step": None},
    "POST /api/admin/journeys/{key}/test": {"step": None, "to": "owner@example.com"},
    "POST /api/admin/loyalty/bonuses": {"multiplier": "2", "starts_at": "2030-01-01T00:00", "ends_at": "2030-02-01T00:00",
                                        "products": None},
    "POST /api/admin/segments": {"rules": RULES},
    "PUT /api/admin/segments/{segment_id}": {"rules": RULES},
    "POST /api/admin/segments/preview": {"rules": RULES},
    "POST /api/admin/loyalty/rewards": {"kind": "amount", "value": "5", "product_id": None, "segment_id": None},
    "POST /api/admin/loyalty/customers/{customer_id}/adjust": {"direction": "add", "points": 5, "note": "fuzzed",
                                                               "staff": "Schemathesis"},
    "POST /api/admin/imports/csv": {"file": "csv"},
    "POST /proxy/loyalty/redeem": {"reward_id": "reward"},
    "PUT /api/admin/referrals/program": {"friend_kind": "percent", "friend_value": "10", "friend_valid_days": 30,
                                         "referrer_points": 500, "referrer_reward_id": None, "wait_days": 30,
                                         "cap_per_referrer": None, "cap_window_days": 30, "holdout_percent": 0},
}
JOURNEYS = ("survey", "thank_you", "shipped", "win_back", "birthday", "abandoned_cart")


def _document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    found: dict[str, Any] = response.get_json()
    return found


def _described(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in ("get", "put", "post", "delete", "patch")}


def _routes(app: Flask) -> set[tuple[str, str]]:
    """The app's routes under the described prefixes, in OpenAPI's notation (`<int:id>` -> `{id}`)."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(DESCRIBED):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        found |= {(method, path) for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
    return found


def test_the_description_covers_exactly_the_json_routes(app: Flask, client: FlaskClient) -> None:
    document = _document(client)
    described, routes = _described(document), _routes(app)
    assert len(routes) == 50, sorted(routes)  # 47 admin-API routes and the proxy's 3 (the parser sees them all)
    assert described - routes == set(), "described but not routed"
    assert routes - described == set(), "routed but not described: add them to app/web/openapi.yaml"


def test_the_description_is_valid_openapi(client: FlaskClient) -> None:
    document = _document(client)
    assert document["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # the OpenAPI 3.1 meta-schema
    broken = {**document, "paths": {**document["paths"], "/api/admin/overview": {"get": {"responses": "none"}}}}
    with pytest.raises(Exception, match="responses"):  # the control: the same validation refuses a broken one
        schemathesis.openapi.from_dict(broken).validate()
    operations = [_usable(result) for result in schema.get_all_operations()]
    assert len(operations) == 50


def _usable(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    """The operation, or the reason schemathesis cannot generate requests for it."""
    assert isinstance(result, Ok), result.err()
    return result.ok()


def test_the_description_holds_no_secret(client: FlaskClient, container: Container) -> None:
    text = client.get("/api/openapi.json").get_data(as_text=True)
    assert API_SECRET not in text and not any(key in text for key in container.settings.encryption_keys)
    assert "shpss_" not in text and "whsec_" not in text and "shpat_" not in text


def test_the_description_is_public(client: FlaskClient) -> None:
    response = client.get("/api/openapi.json")  # no token, no signature
    assert response.status_code == 200
    assert "/api/admin/overview" in response.get_json()["paths"]


NUL = "a\x00b"
# What the first fuzzing runs found answering 500 (PostgreSQL refuses NUL in text, even in a comparison; an id
# column is a BIGINT): each is refused cleanly now, on either database.
HOSTILE: list[tuple[str, str, Any, int]] = [
    ("GET", "/api/admin/journeys/a%00b", None, 404),
    ("POST", "/api/admin/journeys/a%00b/enabled", {"enabled": True}, 404),
    ("GET", "/api/admin/loyalty/customers/a%00b", None, 404),
    ("GET", "/api/admin/loyalty/customers?q=a%00b", None, 400),
    ("POST", "/api/admin/loyalty/customers/{customer}/adjust",
     {"points": 1, "note": NUL, "staff": "Bo", "request_key": "abcdefgh"}, 400),
    ("POST", "/api/admin/loyalty/rewards", {"kind": "amount", "title": NUL, "cost": 5, "value": "5"}, 400),
    ("PUT", "/api/admin/loyalty/tiers", {"tiers": [{"name": NUL, "threshold": "0", "multiplier": "1"}]}, 400),
    ("POST", "/api/admin/referrals/{referral}/override", {"staff": NUL, "note": "why"}, 400),
    ("POST", "/api/admin/segments/preview", {"rules": {"rules": [{"field": "bought_product", "op": "any",
                                                                  "value": [NUL]}]}}, 400),
    ("POST", "/api/admin/feedback/{item}/resolve", {"staff": NUL, "note": "done"}, 400),
    ("GET", "/api/admin/exports/9223372036854775808", None, 404),
    ("POST", "/api/admin/inbox/99999999999999999999999/retry", None, 404),
    ("PUT", "/api/admin/loyalty/rewards/9223372036854775808", {"title": "x"}, 404),
    ("DELETE", "/api/admin/segments/9223372036854775808", None, 404),
    ("POST", "/api/admin/journeys/survey/test", {"template": {"subject": "s", "html": " ", "text": ""}}, 400),
]


def test_what_the_fuzzing_found_is_refused_cleanly(client: FlaskClient, container: Container, seeded: Shop) -> None:
    headers = {"Authorization": f"Bearer {issue_admin_token(container, seeded.id, seeded.domain)}"}
    for method, path, body, status in HOSTILE:
        response = client.open(path.format(**seeded.ids), method=method, json=body, headers=headers)
        assert (response.status_code, response.is_json) == (status, True), (method, path, response.get_data()[:200])
    query = urlencode(_signed(seeded, seeded.customer, []))
    response = client.post(f"/proxy/loyalty/redeem?{query}", json={"reward_id": seeded.ids["reward"],
                                                                   "request_key": "abcd\x00efgh"})
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"
    # and the referral landing page (HTML, beside the JSON API): an unknown code, an address refused
    response = client.get(f"/proxy/r/a%00b?{query}")
    assert response.status_code == 200 and response.mimetype == "text/html"
    response = client.post(f"/proxy/r/{seeded.ids['code']}?{query}", data={"email": "x\x00@example.com"})
    assert response.status_code == 422 and response.mimetype == "text/html"


@pytest.fixture
def seeded(container: Container, store: FakeStorePlatform) -> Shop:
    return _populate(container, "zqa", "71001", store)


def _signed(shop: Shop, customer: str, params: list[tuple[str, str]]) -> dict[str, str]:
    """`params` and Shopify's app proxy parameters for the shop and the customer, signed as the proxy signs."""
    params = [*params, ("shop", shop.domain), ("logged_in_customer_id", customer), ("path_prefix", "/apps/encore"),
              ("timestamp", str(int(time.time())))]
    return {**dict(params), "signature": sign(params, API_SECRET)}


def _proxy_query(case: Any, shop: Shop, customer: str) -> None:
    """The case's query as Shopify's app proxy sends it: the shop, the customer, a fresh timestamp, signed."""
    own = [(k, str(v)) for k, v in (case.query or {}).items()
           if k not in ("shop", "logged_in_customer_id", "path_prefix", "timestamp", "signature")]
    case.query = _signed(shop, customer, own)


def test_every_operation_conforms_to_the_description(app: Flask, client: FlaskClient, container: Container,
                                                     seeded: Shop) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    shop = seeded
    real = {**shop.ids, "zero": 0}  # (a journey key is drawn from JOURNEYS)
    tokens = {"encore": issue_admin_token(container, shop.id, shop.domain),
              "shopify": MINTER.session_token(shop.domain, ttl=3600)}
    sent: dict[str, set[int]] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = _usable(result)
        for mode, examples in EXAMPLES.items():
            run = settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck))(
                given(case=op.as_strategy(generation_mode=mode), use_real=st.booleans(),
                      token=st.sampled_from(sorted(tokens)), customer=st.sampled_from([shop.customer, ""]),
                      journey=st.sampled_from(JOURNEYS))(_exchange))
            try:
                run(op=op, shop=shop, real=real, tokens=tokens, sent=sent)
            except Exception as exc:  # every operation runs; the failures are reported together
                failures.append(f"{op.label} ({mode.value}): {type(exc).__name__}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert len(sent) == 50
    # The runs reached past authentication into the handlers: a success for most operations, not only refusals.
    succeeded = {label for label, statuses in sent.items() if any(200 <= s < 300 for s in statuses)}
    assert len(succeeded) >= 40, sorted((k, sorted(v)) for k, v in sent.items() if k not in succeeded)


def _exchange(case: Any, use_real: bool, token: str, customer: str, journey: str, *, op: Any, shop: Shop,
              real: dict[str, Any], tokens: dict[str, str], sent: dict[str, set[int]]) -> None:
    """One generated request, half of the time bent to name the shop's real rows, sent and checked."""
    if use_real:
        for name in case.path_parameters or {}:
            if name in REAL:
                case.path_parameters[name] = journey if name == "key" else real[REAL[name]]
        for name, value in OVERLAY.get(op.label, {}).items() if isinstance(case.body, dict) else ():
            if value is None:
                case.body.pop(name, None)
            else:
                case.body[name] = real[value] if value == "reward" else CSV if value == "csv" else value
    headers = {}
    if case.path.startswith("/proxy/"):
        _proxy_query(case, shop, customer)
        if use_real and case.headers:  # else the plugin's headers (generated for its scheme) make it a plugin request
            case.headers = {k: v for k, v in case.headers.items() if not k.lower().startswith("x-encore-")}
    else:
        headers["Authorization"] = f"Bearer {tokens[token]}"
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    sent.setdefault(op.label, set()).add(response.status_code)

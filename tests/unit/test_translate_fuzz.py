"""Property tests of the webhook translators: whatever JSON a store (or someone who has its secret) sends, a
translator returns commands or raises MalformedPayload, the one error the webhook endpoint turns into a clean
refusal; any other exception would be a 500 and a retry storm. Inputs are arbitrary JSON and the real samples
in tests/samples with one value replaced by arbitrary JSON, or one key removed, at any depth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import MalformedPayload
from connectors.shopify import translate as shopify
from connectors.woocommerce import translate as woocommerce
from tests.samples import shopify as shopify_samples

SAMPLES = Path(__file__).parents[1] / "samples"
WOO_ORDER = json.loads((SAMPLES / "woocommerce" / "order-created.body.json").read_text())
SHOPIFY = {
    "orders/create": shopify_samples.ORDER, "orders/updated": shopify_samples.ORDER,
    "fulfillments/create": shopify_samples.FULFILLMENT, "refunds/create": shopify_samples.REFUND,
    "customers/create": shopify_samples.CUSTOMER, "customers/data_request": shopify_samples.DATA_REQUEST,
    "customers/redact": shopify_samples.CUSTOMER_REDACT, "shop/redact": shopify_samples.SHOP_REDACT,
}
WOOCOMMERCE = {"order.created": WOO_ORDER, "order.updated": WOO_ORDER, "order.deleted": {"id": 11},
               "customer.created": {"id": 7, "email": WOO_ORDER["billing"]["email"], "first_name": "Ann",
                                    "date_created_gmt": WOO_ORDER["date_created_gmt"], "billing": WOO_ORDER["billing"]}}

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20) \
    | st.sampled_from(["", "0", "-1", "1e999", "NaN", "2026-02-30T25:00:00", "USD", "abc", "9" * 40])
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a JSON value (dict keys and list indexes)."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


@st.composite
def mutated(draw: st.DrawFn, sample: Any) -> Any:
    """The sample with one value at some path replaced by arbitrary JSON, or its key dropped."""
    copy = json.loads(json.dumps(sample))
    path = draw(st.sampled_from(paths(copy)))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return copy


def translates_or_refuses(module: Any, topic: str, payload: Any) -> None:
    try:
        commands = module.translate(1, topic, payload)
    except MalformedPayload:
        return
    assert isinstance(commands, list)


@FAST
@given(topic=st.sampled_from(sorted(shopify.TOPICS)) | st.text(max_size=15), payload=json_values)
def test_shopify_arbitrary_json(topic: str, payload: Any) -> None:
    translates_or_refuses(shopify, topic, payload)


@FAST
@given(data=st.data(), topic=st.sampled_from(sorted(SHOPIFY)))
def test_shopify_mutated_samples(data: st.DataObject, topic: str) -> None:
    translates_or_refuses(shopify, topic, data.draw(mutated(SHOPIFY[topic])))


@FAST
@given(topic=st.sampled_from(sorted(woocommerce.TOPICS)) | st.text(max_size=15), payload=json_values)
def test_woocommerce_arbitrary_json(topic: str, payload: Any) -> None:
    translates_or_refuses(woocommerce, topic, payload)


@FAST
@given(data=st.data(), topic=st.sampled_from(sorted(WOOCOMMERCE)))
def test_woocommerce_mutated_samples(data: st.DataObject, topic: str) -> None:
    translates_or_refuses(woocommerce, topic, data.draw(mutated(WOOCOMMERCE[topic])))


def test_the_unmutated_samples_translate() -> None:
    """The base of the mutations is valid, so the properties above explore the edges of real payloads."""
    for topic, payload in SHOPIFY.items():
        assert shopify.translate(1, topic, payload), topic
    for topic, payload in WOOCOMMERCE.items():
        assert woocommerce.translate(1, topic, payload) or topic == "order.deleted", topic  # a deletion: no command

"""shopify.app.toml subscribes to exactly the topics the connector translates, at the pinned version."""

from __future__ import annotations

import tomllib
from pathlib import Path

from connectors.shopify.client import API_VERSION
from connectors.shopify.translate import TOPICS


def test_toml_declares_every_translated_topic_and_the_compliance_ones() -> None:
    config = tomllib.loads((Path(__file__).parents[2] / "shopify.app.toml").read_text())
    declared: set[str] = set()
    for sub in config["webhooks"]["subscriptions"]:
        declared |= set(sub.get("topics", [])) | set(sub.get("compliance_topics", []))
        assert sub["uri"] == "/webhooks/shopify"
    assert declared == set(TOPICS)
    assert {"customers/data_request", "customers/redact", "shop/redact"} <= declared
    assert config["webhooks"]["api_version"] == API_VERSION

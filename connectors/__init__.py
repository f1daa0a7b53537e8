"""Platform connectors. The core asks for "the connector of this shop's platform", never a vendor by name."""

from __future__ import annotations

from connectors.base import Connector
from connectors.shopify import SHOPIFY
from connectors.woocommerce import WOOCOMMERCE

REGISTRY: dict[str, Connector] = {"shopify": SHOPIFY, "woocommerce": WOOCOMMERCE}

__all__ = ["REGISTRY", "Connector"]

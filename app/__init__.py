"""Encore: post-purchase journeys, loyalty and referrals for Shopify and WooCommerce stores."""

from app.factory import create_app

__all__ = ["create_app"]

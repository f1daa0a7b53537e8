"""Blueprints: webhooks (the one entry for store events), admin, and the JSON API behind it."""

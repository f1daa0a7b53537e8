"""Analytics: numerics on numpy arrays (numpy and scipy), and the SQL aggregates that feed them (SQLAlchemy Core:
history, refresh, lift). No Flask, RQ, requests or connectors here."""

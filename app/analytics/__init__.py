"""Analytics: pure numerics on numpy arrays (numpy and scipy). No Flask, SQLAlchemy, RQ, requests or connectors here."""

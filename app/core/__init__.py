"""The pure core: standard library only. No Flask, SQLAlchemy, RQ, requests or connectors here."""

"""Fixtures: a real database (PostgreSQL when DATABASE_URL points at one, else a SQLite file), the app,
and the Shopify store simulator over real HTTP."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from werkzeug.serving import make_server

from app import create_app
from app.bootstrap import Container, bootstrap
from app.config import Settings, _normalise_db_url
from app.db.engine import make_engine
from app.db.models import Base
from app.migrate import upgrade
from app.queue import InProcessQueue
from app.simulator.shopify import ShopifySimulator
from app.simulator.woocommerce import WooCommerceSimulator
from tests.fakes import FakeStorePlatform

API_KEY, API_SECRET = "test-api-key", "shpss_test_0123456789abcdef0123456789abcdef"
PG_URL = os.environ.get("DATABASE_URL", "")
USE_PG = PG_URL.startswith(("postgres://", "postgresql"))


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str | None]:
    if not USE_PG:
        yield None
        return
    schema = f"encore_test_{uuid.uuid4().hex[:8]}"
    admin = make_engine(_normalise_db_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(_normalise_db_url(PG_URL), connect_args={"options": f"-csearch_path={schema}"})
    upgrade(engine)
    engine.dispose()
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def engine_options(schema: str | None) -> dict[str, Any]:
    return {"connect_args": {"options": f"-csearch_path={schema}"}} if schema else {}


@pytest.fixture
def settings(tmp_path: Path, pg_schema: str | None) -> Settings:
    url = _normalise_db_url(PG_URL) if USE_PG else f"sqlite:///{tmp_path / 'encore.db'}"
    return Settings(
        env="test", database_url=url, redis_url=None, secret_key="test", encryption_keys=(Fernet.generate_key().decode(),),
        shopify_api_key=API_KEY, shopify_api_secrets=(API_SECRET,), app_url="http://127.0.0.1:1",
        sweep_interval_s=3600,
        # Tests post a form many times a minute; tests/integration/test_public_rate_limits.py runs the real limits.
        rate_limit_pages="100000/minute", rate_limit_writes="100000/minute",
    )


def reset(engine: Engine, schema: str | None) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    for attempt in range(1, 6):
        try:
            with engine.begin() as conn:
                if schema:
                    conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    for name in tables:
                        conn.execute(text(f"DELETE FROM {name}"))
            return
        except OperationalError:
            # A process the last test killed with SIGKILL (tests/drills) can leave its server backend finishing a
            # statement for a moment; PostgreSQL may pick the TRUNCATE as the deadlock victim. Once more, later.
            if attempt == 5:
                raise
            time.sleep(0.5 * attempt)


@pytest.fixture
def make_container(pg_schema: str | None) -> Iterator[Any]:
    made: list[Container] = []

    def build(settings: Settings, queue: Any = None) -> Container:
        c = bootstrap(settings, engine_options=engine_options(pg_schema), queue=queue or InProcessQueue(sweep_every=3600))
        if pg_schema is None:
            upgrade(c.engine)
        else:
            reset(c.engine, pg_schema)
        made.append(c)
        return c

    yield build
    for c in made:
        if isinstance(c.queue, InProcessQueue):
            # A job still running (say, the history import an install queued) must end before the pools go:
            # a connection it returned to a disposed pool would stay open until garbage-collected.
            c.queue.drain(30)
            c.queue.stop(wait=30)
        c.engine.dispose()
        c.intake.dispose()


@pytest.fixture
def container(settings: Settings, make_container: Any) -> Container:
    c: Container = make_container(settings)
    return c


@pytest.fixture
def app(settings: Settings, container: Container) -> Flask:
    return create_app(settings, container=container)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture
def live(settings: Settings, make_container: Any) -> Iterator[tuple[LiveServer, ShopifySimulator, Container]]:
    """Encore served over HTTP on a free port, beside a Shopify simulator that points at it."""
    sim = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://placeholder")
    sim.start()
    settings = settings.with_(shopify_shop_origin=sim.shop_origin_template, shopify_admin_origin=sim.origin,
                              app_bridge_url=f"{sim.origin}/app-bridge.js")
    c = make_container(settings)
    server = LiveServer(create_app(settings, container=c))
    sim.app_url = server.url
    c.settings = settings.with_(app_url=server.url)
    yield server, sim, c
    server.stop()
    sim.stop()


@pytest.fixture
def woocommerce_store() -> Iterator[WooCommerceSimulator]:
    """A WooCommerce store simulator over real HTTP on a free port."""
    simulator = WooCommerceSimulator()
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def shopify_store() -> Iterator[ShopifySimulator]:
    """A Shopify store simulator over real HTTP, shared by a module's tests (no Encore behind it)."""
    simulator = ShopifySimulator(api_key=API_KEY, api_secret=API_SECRET, app_url="http://127.0.0.1:1")
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStorePlatform:
    """The store platform every shop talks to in this test: a fake that records discounts written."""
    fake = FakeStorePlatform()
    monkeypatch.setattr("app.shops.store_platform", lambda c, shop_id: fake)
    return fake


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault drills' figures (tests/drills): what each did, and the lost / duplicated / recovered counts."""
    from tests.drills.report import REPORTS, write_json

    if not REPORTS:
        return
    terminalreporter.section("fault drills")
    for entry in REPORTS:
        terminalreporter.write_line(entry.line())
    write_json()

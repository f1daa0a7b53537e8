"""The one place where ports are wired to real adapters: database, queue, platform clients, clock."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.engine import make_engine, make_intake_engine, session_factory
from app.inbox import ShopDirectory
from app.queue import InProcessQueue, JobQueue, RQQueue
from app.vault import Vault
from connectors.shopify.client import ShopifyClient


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Container:
    settings: Settings
    engine: Engine
    intake: Engine  # autocommit, for the webhook intake's single INSERT
    sessions: sessionmaker[Session]
    queue: JobQueue
    vault: Vault
    shopify: ShopifyClient
    clock: SystemClock = field(default_factory=SystemClock)
    shops: ShopDirectory = field(init=False)

    def __post_init__(self) -> None:
        self.shops = ShopDirectory(self)


_current: Container | None = None
_fork_hook = False


def _after_fork_in_child() -> None:
    """An RQ worker forks a child per job: the child must not touch the parent's pooled connections (two
    processes on one PostgreSQL connection corrupt each other's transactions), so it starts with new pools."""
    if _current is not None:
        _current.engine.dispose(close=False)
        _current.intake.dispose(close=False)


def bootstrap(settings: Settings, *, queue: JobQueue | None = None, engine_options: dict[str, Any] | None = None
              ) -> Container:
    """Build the container and make it the one jobs use in this process."""
    global _current
    options = engine_options or {}
    engine = make_engine(settings.database_url, **options)
    if queue is None:
        queue = RQQueue(settings.redis_url, settings.queue_name, settings.queue_shards) if settings.redis_url else InProcessQueue(
            settings.sweep_interval_s)
    container = Container(
        settings=settings, engine=engine, intake=make_intake_engine(settings.database_url, engine, **options),
        sessions=session_factory(engine), queue=queue,
        vault=Vault(settings.encryption_keys),
        shopify=ShopifyClient(api_key=settings.shopify_api_key, api_secret=settings.shopify_api_secrets[0],
                              shop_origin=settings.shopify_shop_origin),
    )
    _current = container
    global _fork_hook
    if not _fork_hook:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook = True
    return container


def current() -> Container:
    """The container of this process; a worker process builds it from the environment on first use."""
    global _current
    if _current is None:
        bootstrap(Settings.from_env())
    assert _current is not None
    return _current

"""The SQLAlchemy unit of work: one session, one transaction, the repositories the core asks for."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.core import ports
from app.db import repositories as r
from app.db.journeys import Journeys
from app.db.loyalty import Loyalty


class SqlUnitOfWork:
    orders: ports.OrderRepository
    customers: ports.CustomerRepository
    checkouts: ports.CheckoutRepository
    events: ports.EventLog
    shops: ports.ShopRepository
    exports: ports.ExportRepository
    journeys: ports.JourneyRepository
    loyalty: ports.LoyaltyRepository

    def __init__(self, sessions: sessionmaker[Session], on_commit: Callable[[Session], None] | None = None,
                 on_begin: Callable[[Session], None] | None = None) -> None:
        self._sessions = sessions
        self._on_commit, self._on_begin = on_commit, on_begin
        self.session: Session | None = None

    def __enter__(self) -> SqlUnitOfWork:
        self.session = s = self._sessions()
        if self._on_begin is not None:
            self._on_begin(s)
        self.orders = r.Orders(s)
        self.customers = r.Customers(s)
        self.checkouts = r.Checkouts(s)
        self.events = r.Events(s)
        self.shops = r.Shops(s)
        self.exports = r.Exports(s)
        self.journeys = Journeys(s)
        self.loyalty = Loyalty(s)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.session is not None
        self.session.rollback()
        self.session.close()
        self.session = None

    def commit(self) -> None:
        """Commit; the on_commit hook (e.g. marking the inbox row done) joins the same transaction."""
        assert self.session is not None
        if self._on_commit is not None:
            self._on_commit(self.session)
        self.session.commit()

    def rollback(self) -> None:
        assert self.session is not None
        self.session.rollback()

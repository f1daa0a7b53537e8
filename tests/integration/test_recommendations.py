"""The one product a thank-you recommends: counted per message by a query (`recommendations`), or picked from
the shop's bought-together counts the dispatcher keeps for ten minutes (`bought_together` +
`recommendations_from`). Both must pick the same product, title and price for any basket."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from app import message_context as mc
from app.bootstrap import Container
from app.core import commands as cmd
from app.core.model import OrderLine
from app.db import models as t
from tests.journeys import T0, Clock, customer, journey_shop, observe, order

PRODUCTS = [f"p{n}" for n in range(1, 10)]


def test_kept_counts_pick_what_the_query_picks(container: Container) -> None:
    shop = journey_shop(container, frozenset())
    clock = Clock(T0)
    rng = random.Random(7)
    for n in range(60):
        picked = rng.sample(PRODUCTS, rng.randint(1, 4))
        lines = tuple(OrderLine(str(i), f"Product {p} {'A' if rng.random() < 0.5 else 'B'}", 1,
                                Decimal(rng.choice(["4.00", "9.50", "12.00"])), product_id=p)
                      for i, p in enumerate(picked, 1))
        observe(container, clock, shop, cmd.ObserveOrder(
            shop, order(str(5000 + n), lines=lines, at=T0 + timedelta(minutes=n)), customer()))
    with container.sessions() as s:
        row = s.get(t.Shop, shop)
        assert row is not None
        together = mc.bought_together(s, shop)
        compared = 0
        for size in (1, 2, 3):
            for _ in range(25):
                basket = sorted(rng.sample(PRODUCTS, size))
                for limit in (1, 3):
                    expected = mc.recommendations(s, row, basket, limit)
                    assert mc.recommendations_from(together, row, basket, limit) == expected, (basket, limit)
                    compared += bool(expected)
        assert compared > 100  # most baskets have something bought with them
        assert mc.recommendations_from(together, row, [], 1) == () == mc.recommendations(s, row, [], 1)
        assert mc.recommendations_from(together, row, ["unknown"], 1) == ()

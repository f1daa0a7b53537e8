"""A WooCommerce store's past customers and orders through paginated REST.

Pages are read oldest id first (orderby=id, order=asc), so what is created during the import lands on later
pages instead of shifting the pages already read. A page that fails is retried by the client and, if it
still fails, the import stops with its cursor on that page: it is read again later, never skipped. When the
store's count shrinks between two pages (orders deleted meanwhile), the items after them moved up; the source
steps back far enough to read them again, since reading something twice is harmless.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from typing import Any

from app.core import commands as c
from app.core.model import CustomerRecord, OrderRecord
from connectors.base import HistoryPage, MalformedPayload
from connectors.payload import without_nul
from connectors.woocommerce import translate
from connectors.woocommerce.client import PER_PAGE, WooCommerceClient

PATHS: dict[str, tuple[str, dict[str, str]]] = {"customers": ("customers", {}), "orders": ("orders", {})}


class WooCommerceHistory:
    def __init__(self, client: WooCommerceClient, shop_id: int, *, per_page: int = PER_PAGE) -> None:
        self.client, self.shop_id, self.per_page = client, shop_id, per_page

    def pages(self, phase: str, cursor: Mapping[str, Any]) -> Generator[HistoryPage, None, None]:
        """REST pages, handed on five at a time (one transaction for ~500 orders rather than one per 100)."""
        group: list[HistoryPage] = []
        for page in self._rest_pages(phase, cursor):
            group.append(page)
            if len(group) == 5:
                yield _joined(group)
                group = []
        if group:
            yield _joined(group)

    def _rest_pages(self, phase: str, cursor: Mapping[str, Any]) -> Generator[HistoryPage, None, None]:
        path, extra = PATHS[phase]
        params = {**extra, "orderby": "id", "order": "asc", "per_page": self.per_page}
        page, seen_total = int(cursor.get("page", 1)), cursor.get("total")
        while True:
            items, total, last_page = self.client.page(path, params, page)
            if seen_total is not None and total is not None and total < seen_total and page > 1:
                page = max(1, page - math.ceil((seen_total - total) / self.per_page))
                seen_total = total
                continue  # read again from where the deleted items' successors now are
            seen_total = total if total is not None else seen_total
            customers, orders, skipped = self._read(phase, items)
            done = not items or (last_page is not None and page >= last_page) or (
                last_page is None and len(items) < self.per_page)
            yield HistoryPage(cursor={"page": page + 1, "total": seen_total}, customers=customers, orders=orders,
                              read=len(items), total=total, skipped=skipped)
            if done:
                return
            page += 1

    def _read(self, phase: str, items: list[dict[str, Any]]) -> tuple[
            tuple[CustomerRecord, ...], tuple[tuple[OrderRecord, CustomerRecord | None], ...], tuple[str, ...]]:
        customers: list[CustomerRecord] = []
        orders: list[tuple[OrderRecord, CustomerRecord | None]] = []
        skipped: list[str] = []
        for item in items:
            try:
                if phase == "customers":
                    customers.append(translate.customer(without_nul(item)))
                    continue
                for cmd in translate.translate(self.shop_id, "order.updated", item):  # [] for checkout-draft
                    if isinstance(cmd, c.ObserveOrder):
                        orders.append((cmd.order, cmd.customer))
            except MalformedPayload as exc:
                skipped.append(f"{phase[:-1]} {item.get('id') if isinstance(item, dict) else '?'}: {exc}")
        return tuple(customers), tuple(orders), tuple(skipped)


def _joined(pages: list[HistoryPage]) -> HistoryPage:
    """Several pages as one, resuming after the last."""
    return HistoryPage(cursor=pages[-1].cursor, customers=tuple(c for p in pages for c in p.customers),
                       orders=tuple(o for p in pages for o in p.orders), read=sum(p.read for p in pages),
                       total=pages[-1].total, skipped=tuple(x for p in pages for x in p.skipped))

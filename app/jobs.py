"""RQ entry points: ids in, a few lines each; the work lives in the modules they call.

Each runs under `job_context`, so every line it logs carries the job's name and id."""

from __future__ import annotations

from app import connections, daterules, feedback, imports, inbox, loyalty, referrals, rewards, shops
from app.analytics import refresh
from app.bootstrap import current
from app.log import job_context


@job_context
def process_inbox(*inbox_ids: int) -> list[str]:
    """Inbox rows, one after another in the order given (the relay hands a queue's rows over in batches: RQ forks
    a work horse per job, and one fork per row would cost more than most rows take)."""
    c = current()
    return [inbox.process(c, int(row_id)) for row_id in inbox_ids]


@job_context
def ensure_woocommerce_webhooks(shop_id: int) -> dict[str, int]:
    return connections.ensure_webhooks(current(), int(shop_id))


@job_context
def reconcile_woocommerce(shop_id: int) -> int:
    c = current()
    count = connections.reconcile(c, int(shop_id))
    connections.estimate_deliveries(c, int(shop_id))
    return count


@job_context
def run_import(import_id: int) -> str:
    c = current()
    return imports.run(c, int(import_id), slice_s=c.settings.import_slice_s)


@job_context
def date_rules() -> dict[str, int]:
    c = current()
    return daterules.run(c, c.clock.now())


@job_context
def issue_rewards() -> int:
    """Reward codes the store was too busy for, and those a killed worker left: written now."""
    c = current()
    return rewards.issue_due(c, c.clock.now(), lambda shop_id: shops.store_platform(c, shop_id))


@job_context
def loyalty_sweep() -> int:
    c = current()
    return loyalty.sweep_due(c, c.clock.now()) + referrals.sweep(
        c, c.clock.now(), lambda shop_id: shops.store_platform(c, shop_id))


@job_context
def refresh_analytics(shop_id: int) -> bool:
    """One shop's nightly analytics refresh (nothing when another run holds the shop or it is no longer due)."""
    c = current()
    return refresh.refresh(c, int(shop_id), c.clock.now(), due_only=True) is not None


@job_context
def deliver_feedback_alerts() -> int:
    c = current()
    return feedback.deliver_due(c, c.clock.now())


@job_context
def relay() -> int:
    return inbox.relay(current())


@job_context
def sweep() -> int:
    c = current()
    shops.keep_alive(c)
    shops.forget_spent_nonces(c)
    for shop_id in connections.due_for_reconciling(c):
        c.queue.enqueue("reconcile_woocommerce", shop_id)
    daterules.run(c, c.clock.now())
    rewards.issue_due(c, c.clock.now(), lambda shop_id: shops.store_platform(c, shop_id))
    loyalty_sweep()
    feedback.deliver_due(c, c.clock.now())
    for shop_id in refresh.due(c, c.clock.now()):  # a run holds its shop by a lease: a second enqueue does nothing
        c.queue.enqueue("refresh_analytics", shop_id)
    imports.relay(c)
    return inbox.relay(c)

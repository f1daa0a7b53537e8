"""The `encore` command: run, demo, worker, db upgrade, relay, rotate-keys."""

from __future__ import annotations

import threading
import time
from typing import Any

import click
import structlog

from app.config import Settings

log = structlog.get_logger(__name__)


@click.group()
def main() -> None:
    """Encore: post-purchase journeys, loyalty and referrals."""
    from app import log

    # Every command logs as the web app does: one JSON object per line, secrets redacted (app/log.py). Without
    # this, `encore worker` logged through structlog's development console, with multi-page tracebacks that
    # list local variables; slow to write while the database was down, and a work horse forked meanwhile
    # inherited the held output lock and hung (the PostgreSQL-restart drill caught it).
    log.configure(Settings.from_env().log_level)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration to the configured database."""
    from app.db.engine import make_engine
    from app.migrate import upgrade

    settings = Settings.from_env()
    upgrade(make_engine(settings.database_url))
    click.echo("database is at the newest revision")


@main.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
def run(host: str, port: int) -> None:
    """Serve Encore (development server; production uses gunicorn wsgi:app)."""
    from app import create_app
    from app.db.engine import make_engine
    from app.migrate import upgrade

    settings = Settings.from_env()
    upgrade(make_engine(settings.database_url))
    app = create_app(settings)
    if not settings.redis_url:  # the embedded default: the dispatcher runs in this process too
        from app import dispatch

        dispatch.start_thread(app.extensions["encore"])
    app.run(host=host, port=port, threaded=True)


@main.command()
@click.option("--port", default=8000, type=int, help="Encore's port; the store simulator takes the next one.")
@click.option("--orders-every", default=4.0, type=float, help="Seconds between demo orders.")
def demo(port: int, orders_every: float) -> None:
    """Run Encore on the embedded default beside a simulated Shopify store that keeps placing orders."""
    from app.demo import run_demo

    run_demo(port=port, orders_every=orders_every)


@main.command()
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--batch", default=200, type=int, help="Messages claimed at a time.")
def dispatch(once: bool, batch: int) -> None:
    """The journeys dispatcher on its own (as many as you like: they never share a message). It claims due
    messages, checks consent, quiet hours and the frequency cap, renders and sends them, and recovers what a
    dispatcher that died was holding."""
    from app import dispatch as dispatching
    from app.bootstrap import bootstrap

    c = bootstrap(Settings.from_env())
    dispatcher = dispatching.build(c, batch=batch)
    if once:
        dispatcher.recover()
        total = dispatching.Stats()
        while (stats := dispatcher.run_once()).claimed:
            total.add(stats)
        click.echo(f"sent {total.sent}, skipped {total.skipped}, deferred {total.deferred}, retried {total.retried}, "
                   f"failed {total.failed}, parked {total.parked}, cancelled {total.cancelled}")
        return
    stop = threading.Event()
    try:
        dispatcher.loop(stop)
    except KeyboardInterrupt:
        stop.set()


@main.command()
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
@click.option("--dispatch/--no-dispatch", "dispatching", default=True,
              help="Also run the journeys dispatcher in this process (on by default).")
@click.option("--shard", "shards", type=int, multiple=True,
              help="With ENCORE_QUEUE_SHARDS above 1: the shard queues this worker takes (repeatable; default all). "
                   "Give each shard to one worker at a time, and its shops' events run one at a time, in order.")
def worker(burst: bool, dispatching: bool, shards: tuple[int, ...]) -> None:
    """An RQ worker (with the scheduler) beside the relay: every 250 ms it enqueues the inbox rows that are
    due (new, retried, lost or left by a dead worker); every minute it schedules the WooCommerce stores due
    for reconciling, re-queues history imports that are due or were lost, and looks for the birthdays,
    anniversaries, run-outs and win-backs that came due (each shop hourly); every 15 minutes it keeps quiet
    shops' tokens alive and forgets spent install and sign-in nonces. Besides its shards (all by default) it
    takes the shared queue's jobs."""
    from redis.exceptions import RedisError
    from rq import Worker
    from rq.serializers import JSONSerializer
    from sqlalchemy.orm import configure_mappers

    from app import connections, feedback, imports, inbox, shops
    from app.analytics import refresh
    from app.bootstrap import bootstrap
    from app.queue import RQQueue

    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.UsageError("REDIS_URL is not set: the embedded default runs its worker inside `encore run`")
    c = bootstrap(settings)
    assert isinstance(c.queue, RQQueue)
    try:
        queues = c.queue.queues(shards or None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    # What every job needs is imported and SQLAlchemy's mappers configured here, before the relay thread starts and
    # before RQ forks its first work horse: a horse forked while the thread held SQLAlchemy's configure lock would
    # wait on that lock forever (seen as a job timing out in `_configure_registries`).
    import app.jobs  # noqa: F401

    configure_mappers()
    stop = threading.Event()

    class EncoreWorker(Worker):
        """RQ's worker, remembering that it was asked to stop (SIGTERM or SIGINT, RQ's request_stop), so that the
        loop below ends then instead of starting RQ's loop again."""

        asked_to_stop = False

        def request_stop(self, signum: Any, frame: Any) -> None:
            self.asked_to_stop = True
            super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def relay() -> None:
        last_keep_alive = last_reconcile = last_alerts = 0.0
        while not stop.wait(0.25):
            try:
                inbox.relay(c)
                if time.monotonic() - last_alerts > 5:
                    last_alerts = time.monotonic()
                    if feedback.any_due(c, c.clock.now()):  # a low survey answer reaches the merchant at once
                        c.queue.enqueue("deliver_feedback_alerts")
                if time.monotonic() - last_reconcile > 60:
                    last_reconcile = time.monotonic()
                    for shop_id in connections.due_for_reconciling(c):
                        c.queue.enqueue("reconcile_woocommerce", shop_id)
                    imports.relay(c)
                    c.queue.enqueue("date_rules")  # each shop at most hourly, whoever runs it
                    c.queue.enqueue("issue_rewards")  # reward codes the store was too busy for
                    c.queue.enqueue("loyalty_sweep")  # returns windows and expiry, each shop at most hourly
                    for shop_id in refresh.due(c, c.clock.now()):  # nightly, one job per shop, held by a lease
                        c.queue.enqueue("refresh_analytics", shop_id)
                if time.monotonic() - last_keep_alive > 900:
                    last_keep_alive = time.monotonic()
                    shops.keep_alive(c)
                    shops.forget_spent_nonces(c)
            except Exception:  # the database restarting must not end the relay
                log.exception("relay_failed")

    threading.Thread(target=relay, name="encore-relay", daemon=True).start()
    if dispatching and not burst:
        from app import dispatch

        dispatch.start_thread(c)
    try:
        while True:
            rq_worker = None
            try:
                rq_worker = EncoreWorker(queues, connection=c.queue.redis, serializer=JSONSerializer)
                rq_worker.work(burst=burst, with_scheduler=not burst)
            except RedisError:  # Redis unreachable at start, or at the teardown after RQ's loop quit
                log.exception("worker_redis_unreachable")
            if burst or (rq_worker is not None and rq_worker.asked_to_stop):
                break
            # RQ's loop quits on any error it meets outside a job, such as Redis restarting: start it again (the
            # relay and the dispatcher went on meanwhile; the relay re-enqueues what Redis lost).
            log.warning("worker_restarting")
            time.sleep(1)
    finally:
        stop.set()


@main.command()
def relay() -> None:
    """Enqueue every inbox row that is due now (new, retried, lost, or left by a dead worker)."""
    from app import inbox
    from app.bootstrap import bootstrap

    c, total = bootstrap(Settings.from_env()), 0
    while count := inbox.relay(c):
        total += count
    click.echo(f"enqueued {total} rows")


@main.command("import")
@click.argument("shop")
@click.option("--platform", type=click.Choice(["shopify", "woocommerce"]), default=None,
              help="Needed only when two platforms have a shop of that name.")
def import_history(shop: str, platform: str | None) -> None:
    """Import SHOP's past customers and orders (a myshopify domain or a WooCommerce store URL) in the
    foreground, with a progress bar; resumes an import that stopped. If a worker is running it, watch it."""
    from sqlalchemy import select

    from app import imports
    from app.bootstrap import bootstrap
    from app.db.models import Shop

    c = bootstrap(Settings.from_env())
    with c.sessions() as s:
        q = select(Shop.id, Shop.platform).where(Shop.domain == shop.rstrip("/"))
        found = s.execute(q.where(Shop.platform == platform) if platform else q).all()
    if len(found) != 1:
        raise click.UsageError(f"{len(found)} shops match {shop!r}" + (" (name the --platform)" if found else ""))
    shop_id = found[0].id
    import_id = imports.start(c, shop_id, enqueue=False)
    with click.progressbar(length=1, label="customers", show_pos=True, item_show_func=lambda x: x) as bar:
        def show(p: imports.Progress) -> None:
            total = p.total_orders if p.phase in ("orders", "done") else p.total_customers
            done = p.orders if p.phase in ("orders", "done") else p.customers
            bar.label = p.phase
            bar.length = max(total or 0, done, 1)
            bar.update(done - bar.pos)

        outcome = imports.run(c, import_id, on_progress=show)
        while outcome == "skipped":  # a worker holds it: follow its progress
            progress = imports.latest(c, shop_id)
            assert progress is not None
            show(progress)
            if progress.status not in imports.ACTIVE:
                outcome = progress.status
                break
            time.sleep(1.0)
    final = imports.latest(c, shop_id)
    assert final is not None
    click.echo(f"{outcome}: {final.customers} customers, {final.orders} orders read"
               + (f", {final.skipped} skipped" if final.skipped else "") + (f" ({final.error})" if final.error else ""))
    if outcome not in ("done",):
        raise SystemExit(1)


@main.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored token under the first key of ENCORE_ENCRYPTION_KEYS."""
    from app.bootstrap import bootstrap
    from app.shops import rotate_keys as rotate

    click.echo(f"re-sealed tokens of {rotate(bootstrap(Settings.from_env()))} shops")


if __name__ == "__main__":
    main()

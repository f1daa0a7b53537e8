"""The `encore` command: run, demo, worker, db upgrade, sweep, rotate-keys."""

from __future__ import annotations

import threading

import click

from app.config import Settings


@click.group()
def main() -> None:
    """Encore: post-purchase journeys, loyalty and referrals."""


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
    create_app(settings).run(host=host, port=port, threaded=True)


@main.command()
@click.option("--port", default=8000, type=int, help="Encore's port; the store simulator takes the next one.")
@click.option("--orders-every", default=4.0, type=float, help="Seconds between demo orders.")
def demo(port: int, orders_every: float) -> None:
    """Run Encore on the embedded default beside a simulated Shopify store that keeps placing orders."""
    from app.demo import run_demo

    run_demo(port=port, orders_every=orders_every)


@main.command()
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
def worker(burst: bool) -> None:
    """An RQ worker (with the scheduler) and a sweeper thread that re-enqueues what was lost."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    from app import inbox
    from app.bootstrap import bootstrap
    from app.queue import RQQueue

    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.UsageError("REDIS_URL is not set: the embedded default runs its worker inside `encore run`")
    c = bootstrap(settings)
    assert isinstance(c.queue, RQQueue)
    stop = threading.Event()

    def sweeper() -> None:
        while not stop.wait(settings.sweep_interval_s):
            inbox.sweep(c)

    inbox.sweep(c)
    threading.Thread(target=sweeper, daemon=True).start()
    try:
        Worker([c.queue.rq], connection=c.queue.redis, serializer=JSONSerializer).work(
            burst=burst, with_scheduler=not burst)
    finally:
        stop.set()


@main.command()
def sweep() -> None:
    """Enqueue every inbox row a lost job or a dead worker left behind."""
    from app import inbox
    from app.bootstrap import bootstrap

    click.echo(f"re-enqueued {inbox.sweep(bootstrap(Settings.from_env()))} rows")


@main.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored token under the first key of ENCORE_ENCRYPTION_KEYS."""
    from app.bootstrap import bootstrap
    from app.shops import rotate_keys as rotate

    click.echo(f"re-sealed tokens of {rotate(bootstrap(Settings.from_env()))} shops")

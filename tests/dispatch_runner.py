"""A dispatcher in a process of its own, for the crash drills (tests/drills/test_delivery_drills.py):
`python -m tests.dispatch_runner <database url> <schema or -> <channel> [--slow S]` where channel is
`sink:<journal path>` or `smtp:<port>`. It runs the real polling loop until killed."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from cryptography.fernet import Fernet

from app.bootstrap import bootstrap
from app.channels.email import EmailConfig, SmtpEmailChannel
from app.channels.sink import SinkChannel
from app.config import Settings
from app.core.ports import Channel, OutboundMessage, SendResult
from app.dispatch import Dispatcher
from app.queue import InProcessQueue


class Slow:
    """The channel, taking a little longer per message (so that a kill lands in the middle of a batch)."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner, self.seconds, self.name = inner, seconds, inner.name
        if hasattr(inner, "delivered"):
            self.delivered = inner.delivered

    def send(self, message: OutboundMessage) -> SendResult:
        time.sleep(self.seconds)
        result: SendResult = self.inner.send(message)
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("schema")
    parser.add_argument("channel")
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    settings = Settings(env="test", database_url=args.database_url, redis_url=None, secret_key="test",
                        encryption_keys=(Fernet.generate_key().decode(),), app_url="http://127.0.0.1:1")
    options = {"connect_args": {"options": f"-csearch_path={args.schema}"}} if args.schema != "-" else {}
    c = bootstrap(settings, engine_options=options, queue=InProcessQueue(autostart=False))
    kind, _, where = args.channel.partition(":")
    inner: Any = SinkChannel(where) if kind == "sink" else SmtpEmailChannel(
        EmailConfig(host="127.0.0.1", port=int(where), security="none", require_https_unsubscribe=False))
    channel: Channel = Slow(inner, args.slow) if args.slow else inner
    dispatcher = Dispatcher(c, {"email": channel}, batch=args.batch, lease_s=args.lease)
    print("ready", flush=True)
    dispatcher.loop(threading.Event(), poll_s=0.05, recover_every_s=0.5)


if __name__ == "__main__":
    main()

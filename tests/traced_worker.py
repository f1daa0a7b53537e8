"""`encore worker` with every inbox job traced, for tests/integration/test_shop_queues.py:
`python -m tests.traced_worker <trace file> <label> <seconds per job> [worker options...]`.

Each processed row appends one line to the trace file (O_APPEND: whole lines from every work horse):
`label shop_id row_id outcome start_ns end_ns`. The job also takes `seconds per job` longer, so two jobs that
ran at the same time would overlap visibly."""

from __future__ import annotations

import os
import sys
import time

from app import inbox
from app.bootstrap import Container


def main() -> None:
    trace, label, delay, *options = sys.argv[1:]
    original = inbox.process

    def traced(c: Container, row_id: int) -> str:
        start = time.time_ns()
        time.sleep(float(delay))
        outcome = original(c, row_id)
        with c.sessions() as s:
            row = s.get(inbox.InboxRow, row_id)
            shop_id = row.shop_id if row else -1
        line = f"{label} {shop_id} {row_id} {outcome} {start} {time.time_ns()}\n".encode()
        fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return outcome

    inbox.process = traced  # type: ignore[assignment]  # RQ forks its work horses from this process
    from app.cli import main as cli

    cli(["worker", "--no-dispatch", *options])


if __name__ == "__main__":
    main()

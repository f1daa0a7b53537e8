"""Structured JSON logs bound to shop_id, platform, job and job_id, request_id; secrets never written.

Ids travel in structlog's contextvars: the web layer binds `request_id` for a request (app/web/ops.py), and
`job_context` binds `job` and `job_id` for a job run, so every line logged underneath carries them without
being passed down. Lines go to whatever sys.stderr is when written (not when configured), so a process that
swaps its stderr (a test capturing output, a supervisor) still gets every line.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import structlog

SECRET_KEYS = re.compile(r"token|secret|password|authorization|hmac|api_key|key$", re.I)

P = ParamSpec("P")
R = TypeVar("R")
log = structlog.get_logger(__name__)


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and SECRET_KEYS.search(key):
            event[key] = "[redacted]"
    return event


class _Stderr:
    """structlog's logger: each rendered line to sys.stderr as it is at that moment (tests swap it), with no lock
    of its own. structlog's PrintLogger keeps a lock per file; a work horse that RQ forks while another thread
    holds it would wait on it forever at its first log line."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warning = warn = error = err = critical = fatal = exception = failure = msg


_STDERR = _Stderr()


def configure(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper(), force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _STDERR,
        cache_logger_on_first_use=True,
    )


def new_id() -> str:
    """A fresh request or job id: 32 hex digits."""
    return uuid.uuid4().hex


@contextmanager
def job_ids(job: str, job_id: str | None = None) -> Iterator[str]:
    """Bind `job` and `job_id` (the one given, or a new one) for the lines logged inside; yields the id."""
    job_id = job_id or new_id()
    with structlog.contextvars.bound_contextvars(job=job, job_id=job_id):
        yield job_id


def _rq_job_id() -> str | None:
    from rq import get_current_job

    current = get_current_job()
    return None if current is None else str(current.id)


def job_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a job entry point with `job` (its name) and `job_id` (RQ's id in an RQ worker, else a new one) bound,
    and log its failure with them. Inside a run that already bound them (the in-process worker, or one job
    calling another), it changes nothing: the outer run's ids stay and the outer run logs the failure."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if "job_id" in structlog.contextvars.get_contextvars():
            return fn(*args, **kwargs)
        with job_ids(fn.__name__, _rq_job_id()):
            try:
                return fn(*args, **kwargs)
            except Exception:
                log.exception("job_failed", args=args)
                raise

    return run

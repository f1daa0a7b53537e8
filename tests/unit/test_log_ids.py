"""Job ids in the logs: every job run logs with `job` and `job_id`, through RQ and through the in-process worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from redis import Redis
from rq.job import Job

from app import jobs, log
from app.queue import InProcessQueue

logger = structlog.get_logger("test.jobs")


@pytest.fixture(autouse=True)
def configured() -> Iterator[None]:
    log.configure("INFO")
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


def lines(capsys: Any) -> list[dict[str, Any]]:
    return [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]


@log.job_context
def inner_job(n: int) -> int:
    logger.info("inner_step", n=n)
    return n


@log.job_context
def outer_job(n: int) -> int:
    logger.info("outer_step")
    return inner_job(n) + 1


@log.job_context
def failing_job() -> None:
    raise RuntimeError("boom")


def test_a_job_run_directly_gets_its_name_and_a_new_id(capsys: Any) -> None:
    capsys.readouterr()
    assert outer_job(3) == 4
    assert outer_job(3) == 4
    found = lines(capsys)
    assert [x["event"] for x in found] == ["outer_step", "inner_step"] * 2
    assert {x["job"] for x in found} == {"outer_job"}  # a job called by a job logs under the outer one
    first, second = found[0]["job_id"], found[2]["job_id"]
    assert first != second and len(first) == 32
    assert found[1]["job_id"] == first


def test_a_failing_job_logs_its_failure_with_its_ids_and_raises(capsys: Any) -> None:
    capsys.readouterr()
    with pytest.raises(RuntimeError):
        failing_job()
    [line] = lines(capsys)
    assert (line["event"], line["job"], len(line["job_id"])) == ("job_failed", "failing_job", 32)
    assert "boom" in line["exception"]
    assert structlog.contextvars.get_contextvars() == {}


def test_under_rq_the_job_id_is_rqs(capsys: Any) -> None:
    job = Job.create(inner_job, args=(7,), connection=Redis(), id="rq-job-42")  # never connects: not enqueued
    capsys.readouterr()
    assert job.perform() == 7
    [line] = lines(capsys)
    assert (line["job"], line["job_id"], line["n"]) == ("inner_job", "rq-job-42", 7)


def test_every_job_entry_point_is_wrapped() -> None:
    entry_points = [getattr(jobs, name) for name in dir(jobs)
                    if callable(getattr(jobs, name)) and getattr(getattr(jobs, name), "__module__", "") == "app.jobs"]
    assert len(entry_points) >= 10
    assert all(hasattr(fn, "__wrapped__") for fn in entry_points)


def test_the_in_process_worker_binds_the_job_and_a_new_id_per_run(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(jobs, "probe", lambda n: logger.info("probe_ran", n=n), raising=False)
    monkeypatch.setattr(jobs, "broken", lambda: 1 / 0, raising=False)
    queue = InProcessQueue(sweep_every=3600)
    capsys.readouterr()
    try:
        queue.enqueue("probe", 1)
        queue.enqueue("probe", 2)
        queue.enqueue("broken")
        assert queue.drain(10)
    finally:
        queue.stop(wait=5)
    found = lines(capsys)
    ran = [x for x in found if x["event"] == "probe_ran"]
    assert [(x["job"], x["n"]) for x in ran] == [("probe", 1), ("probe", 2)]
    assert ran[0]["job_id"] != ran[1]["job_id"]
    [failed] = [x for x in found if x["event"] == "job_failed"]
    assert failed["job"] == "broken" and len(failed["job_id"]) == 32 and "ZeroDivisionError" in failed["exception"]

"""Encore's own processes for the fault drills: the web tier under gunicorn and `encore worker`, started with the
test's database schema and queue, killed with SIGKILL (the whole process group: master, workers, work horses)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import requests

from app.bootstrap import Container
from tests.conftest import API_KEY, API_SECRET

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def encore_env(c: Container, schema: str | None, *, database_url: str | None = None, redis_url: str | None = None,
               queue: str | None = None, **extra: str) -> dict[str, str]:
    """The environment an Encore process needs to share the test's database (and schema), Redis and keys."""
    url = (database_url or c.settings.database_url).replace("postgresql+psycopg://", "postgresql://")
    if schema:
        url += ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}")
    env = {**os.environ, "DATABASE_URL": url, "ENCORE_ENV": "test", "SHOPIFY_API_KEY": API_KEY,
           "SHOPIFY_API_SECRET": API_SECRET, "ENCORE_ENCRYPTION_KEYS": ",".join(c.settings.encryption_keys),
           "ENCORE_SECRET_KEY": c.settings.secret_key, "ENCORE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    if redis_url or c.settings.redis_url:
        env["REDIS_URL"] = redis_url or c.settings.redis_url or ""
    if queue or c.settings.queue_name:
        env["ENCORE_QUEUE"] = queue or c.settings.queue_name
    env.update(extra)
    return env


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Proc:
    """A child process in a process group of its own, so that SIGKILL takes all of it at once."""

    def __init__(self, argv: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)

    def kill9(self) -> int:
        """SIGKILL to the process group and every process below it: no goodbye, requests and jobs in flight, leases
        held. RQ puts each work horse in a process group of its own (os.setpgrp() after the fork), so the group
        alone would let a horse outlive its worker and finish its job. The group is stopped first, so that it
        cannot fork a new horse between the look and the kill. Returns how many lived outside the group."""
        pid = self.popen.pid
        outside = 0
        try:
            os.killpg(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
        for child in descendants(pid):
            try:
                outside += os.getpgid(child) != pid
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)
        return outside

    def alive(self) -> bool:
        return self.popen.poll() is None

    def restart(self) -> Proc:
        return type(self)(self.argv, self.env, self.log)


class Web(Proc):
    """Encore's web tier: gunicorn serving wsgi:app on a port of its own (the same port across restarts)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        super().__init__(argv, env, log)
        self.url = env["_ENCORE_DRILL_URL"]
        if not wait_for(self.ready, timeout=60):
            self.kill9()
            raise RuntimeError(f"gunicorn did not answer on {self.url}; see {log.name}")

    def ready(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"gunicorn exited with {self.popen.returncode}; see {self.log.name}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False


def start_web(env: dict[str, str], log: IO[bytes], *, workers: int = 2, threads: int = 4,
              port: int | None = None) -> Web:
    port = port or free_port()
    argv = [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--threads", str(threads), "--worker-class", "gthread", "--timeout", "30", "--no-control-socket", "wsgi:app"]
    return Web(argv, {**env, "ENCORE_APP_URL": f"http://127.0.0.1:{port}", "_ENCORE_DRILL_URL": f"http://127.0.0.1:{port}"},
               log)


def start_worker(env: dict[str, str], log: IO[bytes], *args: str) -> Proc:
    """`encore worker` (the RQ worker with its scheduler, the relay and the dispatcher) with extra CLI args."""
    return Proc([sys.executable, "-m", "app.cli", "worker", *args], env, log)

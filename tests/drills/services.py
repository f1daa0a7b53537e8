"""Private services for the destructive drills: a redis-server and a PostgreSQL cluster of their own, on free
ports, that a drill may kill, empty and restart without touching the shared ones other tests use."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import psycopg
import redis

from tests.drills.procs import free_port, wait_for


class PrivateRedis:
    """`redis-server` on a free port, keeping nothing on disk: killed, its data is gone for good."""

    def __init__(self, log: IO[bytes]) -> None:
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.port, self.log = free_port(), log
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """A new, empty server on the same port."""
        assert self.exe
        self.popen = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--daemonize", "no"], stdout=self.log, stderr=self.log,
                                      start_new_session=True)
        if not wait_for(self.answers, timeout=30):
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=1) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def keys(self) -> int:
        with redis.Redis(port=self.port, socket_timeout=5) as r:
            return int(r.dbsize())

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        self.kill9()


def _as_postgres(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """Run a PostgreSQL tool as the `postgres` OS user (initdb and postgres refuse to run as root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120, **kwargs)  # type: ignore[call-overload,no-any-return]


def postgres_tools() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    missing = [name for name in ("initdb", "pg_ctl") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to become the postgres user"
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary folder the postgres user owns), trust auth, no fsync."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="encore-drill-pg-"))
        self.data, self.logfile = self.root / "data", self.root / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        _as_postgres(shutil.which("initdb") or "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                     "-E", "UTF8", "--no-sync")
        self.start()

    def _ctl(self, *args: str) -> None:
        _as_postgres(shutil.which("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), *args)

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.root}' "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._ctl("-w", "-t", "60", "-o", options, "start")
        if not wait_for(self.answers, timeout=30):
            raise RuntimeError(f"the private PostgreSQL did not answer; see {self.logfile}")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-t", "60", "-m", mode, "stop")

    def crash_restart(self) -> None:
        """`pg_ctl restart -m immediate`: every backend killed without a checkpoint, crash recovery on start."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.root}' "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._ctl("-w", "-t", "60", "-m", "immediate", "-o", options, "restart")

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.SubprocessError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                shutil.rmtree(self.root)
                return
            except OSError:
                time.sleep(0.2)

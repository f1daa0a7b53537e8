"""bench/load.py for a few seconds, so the load drill cannot rot: Encore's real tiers (gunicorn, two `encore worker`
processes) on a schema and a queue of its own, webhooks and widget reads in an open loop, a small backlog for the
dispatcher; every check it makes must pass and its figures must add up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import USE_PG

REDIS_URL = os.environ.get("REDIS_URL")
pytestmark = pytest.mark.skipif(not (REDIS_URL and USE_PG),
                                reason="the load drill runs Encore's tiers on PostgreSQL and Redis: needs "
                                       "REDIS_URL and a PostgreSQL DATABASE_URL")
ROOT = Path(__file__).resolve().parents[2]


def test_a_short_load_drill_passes_its_checks(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    argv = [sys.executable, str(ROOT / "bench" / "load.py"), "--minutes", "0.1", "--rate", "3", "--widget-rate", "10",
            "--backlog", "100", "--pending", "500", "--customers", "400", "--baseline", "2", "--settle", "60",
            "--connections", "4", "--widget-connections", "4", "--output", str(out), "--logs", str(tmp_path)]
    done = subprocess.run(argv, cwd=ROOT, env={**os.environ, "REDIS_URL": REDIS_URL or ""}, capture_output=True,
                          text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["problems"] == []
    hooks, widget, pipe = res["load"]["webhooks"], res["load"]["widget"], res["pipeline"]
    assert hooks["scheduled"] == 18 and hooks["ok_2xx"] == 18 and hooks["errors"] == 0
    assert widget["scheduled"] == 60 and widget["ok_2xx"] == 60 and widget["wrong"] == 0
    assert pipe["inbox_rows"] == pipe["webhooks_2xx"] == 18
    assert pipe["inbox_status"] == {"done": 18} and pipe["parked"] == 0
    assert pipe["messages"]["backlog_status"] == {"sent": 100}
    creates = hooks["topics"]["orders/create"]
    assert pipe["messages"]["drill_thank_yous"] == {"sent": creates}
    assert pipe["orders_earning_points"] == creates
    assert pipe["messages"]["journal_lines"] >= 100 + creates
    assert res["baseline"]["webhooks"]["ok_2xx"] == res["baseline"]["webhooks"]["inbox_rows"] == 6
    assert "Load drill:" in done.stdout and "every 2xx webhook stored once and processed" in done.stdout

"""Every variable Settings.from_env reads is documented in config.ENVIRONMENT, and nothing documented is unread."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from app import config
from app.config import ENVIRONMENT, Settings, environment_reference


def read_variables() -> set[str]:
    source = inspect.getsource(Settings.from_env) + inspect.getsource(config._channel_settings)
    return set(re.findall(r'(?:env\.get\(|need\(|_positive_int\(env,)\s*"([A-Z][A-Z0-9_]+)"', source))


def test_every_variable_read_is_documented_and_every_documented_one_is_read() -> None:
    read = read_variables()
    assert len(read) > 30  # the pattern still finds the reads
    assert read - ENVIRONMENT.keys() == set(), "document these in app/config.py ENVIRONMENT"
    assert ENVIRONMENT.keys() - read == set(), "documented but no longer read"


def test_each_documented_variable_names_a_real_setting_and_a_meaning() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name, (field, meaning) in ENVIRONMENT.items():
        assert field == "" or field in fields, name
        assert len(meaning) > 10, name


def test_the_metrics_token_is_read_from_the_environment() -> None:
    env = {"ENCORE_METRICS_TOKEN": "scrape-me", "ENCORE_READY_TIMEOUT": "0.5", "ENCORE_SECRET_KEY": "k",
           "ENCORE_ENCRYPTION_KEYS": "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="}
    s = Settings.from_env(env)
    assert (s.metrics_token, s.ready_timeout_s) == ("scrape-me", 0.5)
    assert Settings.from_env({k: v for k, v in env.items() if k.startswith("ENCORE_E") or k == "ENCORE_SECRET_KEY"}
                             ).metrics_token == ""


def test_the_reference_table_has_a_row_per_variable_with_its_default() -> None:
    table = environment_reference().splitlines()
    assert len(table) == 2 + len(ENVIRONMENT)
    assert "| `ENCORE_QUEUE` | `encore` |" in "\n".join(table)
    assert "| `ENCORE_SECRET_KEY` |  |" in "\n".join(table)  # a secret has no default shown


def test_queue_shards_and_inbox_timings_are_read_and_checked() -> None:
    env = {"ENCORE_SECRET_KEY": "k", "ENCORE_ENCRYPTION_KEYS": "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=",
           "ENCORE_QUEUE_SHARDS": "4", "ENCORE_INBOX_LEASE": "5", "ENCORE_INBOX_LOST_AFTER": "2.5"}
    s = Settings.from_env(env)
    assert (s.queue_shards, s.inbox_lease_s, s.inbox_lost_after_s) == (4, 5, 2.5)
    defaults = Settings.from_env({k: v for k, v in env.items() if not k.startswith(("ENCORE_Q", "ENCORE_I"))})
    assert (defaults.queue_shards, defaults.inbox_lease_s, defaults.inbox_lost_after_s) == (1, 60, 60.0)
    with pytest.raises(ValueError, match="ENCORE_QUEUE_SHARDS must be a whole number of at least 1"):
        Settings.from_env({**env, "ENCORE_QUEUE_SHARDS": "0"})

"""`encore rotate-keys`: every encrypted column (Shopify's tokens, WooCommerce's keys and webhook secret) is re-sealed
under the first key, so the old key can be retired; running it again changes nothing a reader sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import bootstrap as bootstrapping
from app import shops
from app.bootstrap import Container, bootstrap
from app.cli import main
from app.config import Settings
from app.db import models as t
from app.migrate import upgrade
from app.queue import InProcessQueue
from app.vault import Vault

COLUMNS = ("access_token", "refresh_token", "api_key", "api_secret", "webhook_secret")
PLAIN = {"access_token": "shpat_a", "refresh_token": "shprt_b", "api_key": "ck_c", "api_secret": "cs_d",
         "webhook_secret": "whsec_e"}


def seed(c: Container) -> None:
    with c.sessions() as s, s.begin():
        s.add(t.Shop(platform="shopify", domain="a.myshopify.com", access_token=c.vault.seal(PLAIN["access_token"]),
                     refresh_token=c.vault.seal(PLAIN["refresh_token"])))
        s.add(t.Shop(platform="woocommerce", domain="https://b.example", api_key=c.vault.seal(PLAIN["api_key"]),
                     api_secret=c.vault.seal(PLAIN["api_secret"]), webhook_secret=c.vault.seal(PLAIN["webhook_secret"])))


def sealed(c: Container) -> dict[tuple[str, str], bytes]:
    with c.sessions() as s:
        return {(shop.domain, col): getattr(shop, col) for shop in s.scalars(select(t.Shop))
                for col in COLUMNS if getattr(shop, col) is not None}


def opened(stored: dict[tuple[str, str], bytes], vault: Vault) -> dict[str, str | None]:
    return {col: vault.open(value) for (_, col), value in stored.items()}


def test_rotation_reseals_every_encrypted_column_and_is_idempotent(settings: Settings, make_container: Any) -> None:
    old_key, new_key = settings.encryption_keys[0], Fernet.generate_key().decode()
    c: Container = make_container(settings)
    seed(c)
    before = sealed(c)
    assert len(before) == 5
    c.vault = Vault((new_key, old_key))
    assert shops.rotate_keys(c) == 2
    after = sealed(c)
    assert all(after[k] != before[k] for k in before)
    assert opened(after, Vault((new_key,))) == PLAIN  # the old key can go
    for value in after.values():
        with pytest.raises(ValueError):
            Vault((old_key,)).open(value)
    assert shops.rotate_keys(c) == 2  # again: still readable under the new key alone
    assert opened(sealed(c), Vault((new_key,))) == PLAIN


def test_the_command_rotates_under_the_environments_keys(tmp_path: Path) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'rotate.db'}", "ENCORE_ENV": "test", "ENCORE_SECRET_KEY": "s",
           "ENCORE_INSTANCE": str(tmp_path), "REDIS_URL": "", "ENCORE_SWEEP_INTERVAL": "3600"}
    c = bootstrap(Settings.from_env({**env, "ENCORE_ENCRYPTION_KEYS": old_key}), queue=InProcessQueue(autostart=False))
    upgrade(c.engine)
    seed(c)
    try:
        result = CliRunner().invoke(main, ["rotate-keys"], env={**env, "ENCORE_ENCRYPTION_KEYS": f"{new_key},{old_key}"})
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "re-sealed tokens of 2 shops"
        assert opened(sealed(c), Vault((new_key,))) == PLAIN
    finally:
        used = bootstrapping.current()
        if isinstance(used.queue, InProcessQueue):
            used.queue.stop()
        for container in {id(c): c, id(used): used}.values():
            container.engine.dispose()
            container.intake.dispose()


def test_every_command_logs_one_json_object_a_line_with_secrets_redacted(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`encore worker` and every other command log as the web app does (app/log.py), not through structlog's
    development console: that printed multi-page tracebacks listing local variables, and a work horse forked
    while one was being written hung on the inherited output lock."""
    import json

    import structlog

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}", "ENCORE_ENV": "test", "ENCORE_SECRET_KEY": "s",
           "ENCORE_INSTANCE": str(tmp_path), "REDIS_URL": ""}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    try:
        raise RuntimeError("the database went away")
    except RuntimeError:
        structlog.get_logger("probe").exception("relay_failed", api_secret="s3cr3t-value")
    [line] = [x for x in capsys.readouterr().err.splitlines() if "relay_failed" in x]
    record = json.loads(line)
    assert (record["event"], record["level"], record["api_secret"]) == ("relay_failed", "error", "[redacted]")
    assert "RuntimeError: the database went away" in record["exception"] and "s3cr3t-value" not in line

"""A real headless Chromium for the browser tests: Debian's /usr/bin/chromium, never a downloaded browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("ENCORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (make system-deps) to run the browser tests")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)  # the admin polls every 3 s; leave room for two polls and a slow CI
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def console() -> list[str]:
    """Every console message and page error of the test's page, any frame, as "type: text @ url"."""
    return []


@pytest.fixture
def page(browser: Any, console: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text} @ {m.location.get('url', '')}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    yield page
    context.close()

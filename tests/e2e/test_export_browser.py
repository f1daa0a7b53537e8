"""The admin's "Export all my data" control in a real headless Chromium, framed by the simulated Shopify admin:
choosing JSON Lines and clicking downloads the shop's ZIP (fetched with App Bridge's session token), whose
manifest counts the order the store sent."""

from __future__ import annotations

import json
import re
import zipfile
from typing import Any

import pytest

pytestmark = pytest.mark.browser
SHOP = "export-store.myshopify.com"


def test_export_all_my_data_downloads_the_shops_zip(live: Any, page: Any, console: list[str]) -> None:
    from playwright.sync_api import expect

    _server, sim, c = live
    sim.add_store(SHOP, name="Export Store", currency="USD", timezone="UTC", locale="en")
    page.goto(sim.admin_url(SHOP))
    app = page.frame_locator("#app")
    expect(app.locator('#health dd[data-k="received"]')).to_have_text(re.compile(r"^\d+$"))
    sim.place_order(SHOP)
    assert c.queue.drain(10)
    app.locator("#export-format").select_option("json")
    with page.expect_download() as info:
        app.locator("#export-download").click()
    download = info.value
    assert download.suggested_filename == "encore-export-json.zip"
    with zipfile.ZipFile(download.path()) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        rows = {f["table"]: f["rows"] for f in manifest["files"]}
        assert manifest["format"] == "json" and manifest["shop"]["domain"] == SHOP
        assert rows["orders"] == 1 and rows["shops"] == 1
        assert json.loads(archive.read("orders.jsonl").decode().splitlines()[0])["currency"] == "USD"
    expect(app.locator("#export-status")).to_have_text("")
    expect(app.locator("#export-download")).to_be_enabled()

"""The sync badge follows the order of sync attempts, not the wall clock (libfaketime).

The laptop syncs with central once, central goes away, and the laptop app then runs as a
process whose clock is an hour back (a corrected clock, a restart with another time):
every attempt now fails at a wall-clock time before the last success. The badge in
Chromium and `sync-status --json` say offline, not "synced".
"""
from __future__ import annotations

import json
import re
import socket
import time

from playwright.sync_api import expect

from lapsync.devkit.clocked import ClockedLaptop, clock_spec
from lapsync.devkit.faultproxy import FaultProxy
from lapsync.devkit.lappage import log_in
from lapsync.devkit.laptops import PASSWORD, prepare_database
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import connect
from sync.devices import register_device


def closed_url() -> str:
    """Return the URL of a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_with_the_clock_an_hour_back_a_failing_sync_shows_offline(
        browser, live_central, central_db, tmp_path):
    token = register_device(central_db, "laptop-a", manage_users=True, manage_roster=True)
    proxy = FaultProxy(live_central)
    path = prepare_database(tmp_path, runners=3)
    db = connect(path)
    try:
        assert sync_once(db, Central(proxy.url, token, 2, 10), force=True).error is None
    finally:
        db.close()
    proxy.upstream = closed_url()                       # central goes away
    laptop = ClockedLaptop(path, tmp_path, {
        "LAPSYNC_CENTRAL_URL": proxy.url, "LAPSYNC_CENTRAL_TOKEN": token,
        "LAPSYNC_SYNC_INTERVAL": "1", "LAPSYNC_SYNC_CONNECT_TIMEOUT": "1"})
    laptop.set_clock(clock_spec(time.time() - 3600))   # its clock an hour back
    page = browser.new_page()
    try:
        laptop.start()
        log_in(page, laptop.url, "tom", PASSWORD)
        badge = page.locator("#sync-status")
        expect(badge).to_have_attribute("data-state", "offline", timeout=8_000)
        expect(badge).to_have_text(re.compile(r"^offline – nothing waiting$"))
        expect(badge).to_have_class(re.compile(r"\bsync-calm\b"))
        done = laptop.flask("sync-status", "--json")
        assert done.returncode == 0, done.stderr[-2000:]
        status = json.loads(done.stdout)
        assert status["state"] == "offline" and status["failures"] >= 1, status
        assert "central cannot be reached" in status["last_error"], status
        assert status["last_error_ms"] < status["last_success_ms"]   # by the clocks: "synced"
    finally:
        page.close()
        laptop.kill()
        proxy.close()

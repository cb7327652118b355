"""Central's Logs page: the latest refused pushes and pulls and refused changes, per device.

Laptops push over real HTTP to central on a loopback port (a seq gap, a user made on a
device not trusted with users, a revoked token); the organiser reads the page in Chromium.
"""
from __future__ import annotations

import logging
import re

import requests
from playwright.sync_api import expect

from lapsync.devkit.browser import type_login_to
from sync.devices import revoke_device
from tests.pg import CENTRAL_PASSWORD, Outbox, register
from tests.web import scroll_width


def push(url: str, token: str, body: dict) -> requests.Response:
    """POST a push body with a device token."""
    return requests.post(f"{url}/api/v1/push", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {token}"})


def test_the_logs_page_lists_each_devices_refused_requests_and_changes(
        live_central, central_db, central_users, browser, caplog):
    gym, old = register(central_db, "gym"), register(central_db, "old-laptop")
    outbox = Outbox()
    outbox.runner(17, "Cleo Dahl")
    outbox.user("eve")  # a user from a device not trusted with users: refused item by item
    caplog.set_level(logging.WARNING, logger="sync.sync_log")
    answer = push(live_central, gym, outbox.body())
    assert answer.status_code == 200 and [r["error"] for r in answer.json()["rejected"]]
    outbox.runner(18, "Dan Eck")
    outbox.runner(19, "Eva Fink")
    gap = push(live_central, gym, outbox.body(first=4))  # seq 3 never sent: a gap
    assert gap.status_code == 409, gap.text
    revoke_device(central_db, "old-laptop")
    assert push(live_central, old, Outbox().body()).status_code == 401
    logged = caplog.text
    assert "push from device 'gym' refused (409 seq_gap)" in logged
    assert "push from device 'gym': 1 change(s) refused: seq 2" in logged
    assert "push from device 'old-laptop' refused (401 revoked_token)" in logged

    viewer = requests.Session()
    token = re.search(r'name="csrf-token" content="([^"]+)"',
                      viewer.get(f"{live_central}/login").text).group(1)
    viewer.post(f"{live_central}/login", data={"name": "vic", "password": CENTRAL_PASSWORD,
                                                "csrf_token": token})
    assert viewer.get(f"{live_central}/logs/").status_code == 403  # admins only

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{live_central}/logs/")
        expect(page).to_have_url(re.compile(r"/login"))
        page.get_by_label("Name").press_sequentially("ada", delay=10)
        page.get_by_label("Password").press_sequentially(CENTRAL_PASSWORD, delay=10)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/logs/"))
        expect(page.get_by_role("heading", name="Sync log")).to_be_visible()
        gym_log = page.locator('section[data-device="gym"]')
        expect(gym_log.locator('tr.failure[data-error="seq_gap"]')).to_contain_text("push (409)")
        expect(gym_log.locator("tr.refused")).to_have_count(1)
        expect(gym_log.locator("tr.refused")).to_contain_text("user")
        old_log = page.locator('section[data-device="old-laptop"]')
        expect(old_log.get_by_role("heading")).to_contain_text("revoked")
        expect(old_log.locator('tr.failure[data-error="revoked_token"]')).to_contain_text("push (401)")
    finally:
        context.close()


def test_the_logs_page_says_why_a_request_was_refused_in_german(
        live_central, central_db, central_users, browser):
    gym = register(central_db, "gym")
    assert push(live_central, gym, Outbox().body()).status_code == 200     # binds gym's laptop
    stranger = push(live_central, gym, Outbox().body())                   # another laptop
    assert stranger.status_code == 403 and stranger.json()["error"] == "device_mismatch"
    context = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        type_login_to(page, live_central, "/logs/", "ada", CENTRAL_PASSWORD)
        failure = page.locator('section[data-device="gym"] tr.failure[data-error="device_mismatch"]')
        expect(failure).to_contain_text("Das Gerät 'gym' gehört zu einem anderen Laptop: "
                                        "Registrieren Sie für diesen ein eigenes Gerät.")
        assert scroll_width(page) <= 390
    finally:
        context.close()

"""The rights an admin gives a device, in real Chromium on central's devices page: register a
laptop trusted with the roster, see what it may and may not do (central's admins cannot log in
on a laptop not trusted to manage users), take the right back, and see the refused edit that
follows in the list of changes refused from laptops. Central runs on a real loopback port."""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.pg import CENTRAL_PASSWORD, Outbox, add_helper


@pytest.fixture
def page(browser, live_central, central_users):
    """A fresh context logged in to central as its admin ada, on the devices page."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(8_000)
    page = context.new_page()
    page.goto(f"{live_central}/devices/")
    page.get_by_label("Name").press_sequentially("ada", delay=20)
    page.get_by_label("Password").press_sequentially(CENTRAL_PASSWORD, delay=5)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/devices/$"))
    yield page
    context.close()


def test_an_admin_trusts_a_laptop_with_the_roster_takes_it_back_and_sees_its_refused_edit(
        page, live_central, central_db):
    page.get_by_label("Device name").press_sequentially("Gym laptop", delay=20)
    page.get_by_label(re.compile("Trust it with the roster")).check()
    page.get_by_role("button", name="Register and show its token").click()
    token = page.locator("#token").inner_text().strip()
    row = page.locator("tr[data-device]", has_text="Gym laptop")
    expect(row.locator("td[data-manage-roster]")).to_have_text("yes, any runner")
    expect(row.locator("td[data-manage-users]")).to_have_text(
        "no: users come from central; central admins cannot log in on it")
    row.get_by_role("button", name="Stop it managing the roster").click()
    expect(page.get_by_text("Gym laptop may no longer manage the roster")).to_be_visible()
    row = page.locator("tr[data-device]", has_text="Gym laptop")
    expect(row.locator("td[data-manage-roster]")).to_have_text("no: only runners it added")
    # The laptop then renames a runner central made: refused, and listed here.
    add_helper(central_db)
    central_db.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin, "
                       "change_id) VALUES ('rosarunner0000000000', 5, 'Rosa', '5a', 5, "
                       "'1700000000000.0000', 'central0000000000000', nextval('change_id_seq'))")
    box = Outbox()
    box.runner(5, "Mallory", "5a", 5, runner_id="rosarunner0000000000")
    answer = requests.post(f"{live_central}/api/v1/push", json=box.body(), timeout=30,
                           headers={"Authorization": f"Bearer {token}"}).json()
    assert [r["error"] for r in answer["rejected"]] == ["roster_only_at_central"]
    page.reload()
    refused = page.locator("#refused-changes tr[data-error='roster_only_at_central']")
    expect(refused).to_have_count(1)
    expect(refused).to_contain_text("Gym laptop")
    expect(refused).to_contain_text("This device edits only runners it created")
    log = page.context.new_page()
    log.goto(f"{live_central}/review/")
    expect(log.get_by_text("Registered device Gym laptop, trusted to manage the roster.")
           ).to_be_visible()
    expect(log.get_by_text("Device Gym laptop may no longer manage the roster.")).to_be_visible()

"""The review queue in Chromium: a long queue of suspected double counts comes in pages.

Headless Debian Chromium driven by Playwright (never `playwright install`), one browser for
the module and a fresh context per test; central is served on a loopback port.
"""
from __future__ import annotations

from playwright.sync_api import expect

from lapsync.devkit.browser import type_login
from lapsync.protocol import validate_push
from sync.devices import find_device
from sync.push import push
from sync.review import PAIRS_PER_PAGE
from tests.pg import CENTRAL_PASSWORD, Outbox, register

T = 1_700_000_000_000


def test_an_admin_pages_through_a_long_queue_and_decides_on_its_second_page(
        central_users, live_central, central_db, page):
    box = Outbox(clock_ms=T)
    runners = [box.runner(n, f"Runner {n}") for n in range(1, PAIRS_PER_PAGE + 3)]
    seconds = {}
    for index, runner in enumerate(runners):  # the closest pairs come first: runner 1's
        box.lap(runner, time=T)
        seconds[runner] = box.lap(runner, time=T + 1_000 + index * 100)
    push(central_db, find_device(central_db, register(central_db, "laptop-a")),
         validate_push(box.body()), T + 60_000)
    type_login(page, live_central, "ada", CENTRAL_PASSWORD)
    page.goto(f"{live_central}/review/")
    pairs = page.locator("#doubles article.pair")
    expect(pairs).to_have_count(PAIRS_PER_PAGE)
    expect(pairs.first.locator("h3")).to_contain_text("1 Runner 1")
    expect(page.locator("#doubles nav.pages")).to_contain_text("Page 1 of 2")
    page.locator("#doubles").get_by_role("link", name="Next page").click()
    expect(pairs).to_have_count(2)
    expect(pairs.first.locator("h3")).to_contain_text(f"{PAIRS_PER_PAGE + 1} Runner")
    expect(page.locator("#doubles nav.pages")).to_contain_text("Page 2 of 2")
    last = runners[-1]
    page.locator(f'#doubles tr[data-lap="{seconds[last]}"]').get_by_role(
        "button", name="Void this lap").click()
    expect(page.locator(".flash")).to_contain_text("The lap was voided")
    page.locator("#doubles").get_by_role("link", name="Next page").click()
    expect(pairs).to_have_count(1)
    page.locator("#doubles").get_by_role("link", name="Previous page").click()
    expect(pairs).to_have_count(PAIRS_PER_PAGE)
    answer = page.goto(f"{live_central}/review/?page=zwei")
    assert answer.status == 400
    expect(page.locator("#review-error")).to_contain_text("The page must be a whole number")
    expect(pairs).to_have_count(PAIRS_PER_PAGE)

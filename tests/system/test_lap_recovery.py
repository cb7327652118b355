"""A lap whose answer is lost is never "not recorded": the page checks, then says what happened.

The laptop app runs as its own process (real HTTP) behind the fault proxy; the helper types
in real Chromium. The proxy lets the app record a lap, then kills the app and drops the
answer: the page shows the lap as "checking…", numbers typed meanwhile wait behind it,
and once the restarted app answers, the page sends the same request (same client key)
again: the lap counts once and the page says so. A lost answer for a number nobody has
is the other case: the app says it recorded nothing, and only then does the page say so.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from lapsync.devkit.clocked import ClockedLaptop
from lapsync.devkit.faultproxy import Fault, FaultProxy
from lapsync.devkit.lappage import counted_numbers, log_in, wait_answered
from lapsync.devkit.laptops import PASSWORD, prepare_database
from lapsync.laptop.db import connect

# What the feedback area said, each change in order (what the helper saw, moment by moment).
FEEDBACK_LOG = """() => {
  const feedback = document.getElementById('feedback');
  window.__said = [];
  new MutationObserver(() => window.__said.push(feedback.className + ': ' + feedback.textContent))
    .observe(feedback, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture
def laptop(tmp_path):
    """The laptop app as a process (no sync) behind the fault proxy; both stopped at the end."""
    app = ClockedLaptop(prepare_database(tmp_path, runners=5), tmp_path,
                        {"LAPSYNC_SYNC_ENABLED": "false", "LAPSYNC_MIN_LAP_SECONDS": "60"})
    app.start()
    proxy = FaultProxy(app.url)
    yield app, proxy
    proxy.close()
    app.kill()


def typed(page, number: str) -> None:
    """Type a number and Enter as a person does."""
    page.keyboard.type(number, delay=30)
    page.keyboard.press("Enter")


def said(page) -> list[str]:
    """Return what the feedback area showed so far."""
    return page.evaluate("window.__said")


def lap_column(database, column: str) -> list:
    """Return one column (client_key, time) of the laps, in recording order."""
    db = connect(database)
    try:
        return [row[0] for row in db.execute(f"SELECT {column} FROM lap ORDER BY rowid")]
    finally:
        db.close()


def test_a_lap_whose_answer_died_with_the_app_is_checked_and_counted_once(browser, laptop):
    app, proxy = laptop
    page = browser.new_page()
    try:
        log_in(page, proxy.url, "tom", PASSWORD)
        page.evaluate(FEEDBACK_LOG)
        typed(page, "1")
        expect(page.locator("#feedback.good")).to_contain_text("Runner 1")
        # The app records lap 2, then dies before its answer reaches the page.
        proxy.path_faults["POST /laps"] = [Fault(respond="drop", answered=lambda _: app.kill())]
        typed(page, "2")
        checking = page.locator("#recent tr.checking")
        expect(checking).to_contain_text("checking…")
        expect(page.locator("#feedback")).to_contain_text("Checking lap 2 …")
        typed(page, "3")                     # typed while the app is down: it waits its turn
        expect(page.locator("#feedback")).to_contain_text("sent in this order after it: 3")
        expect(page.locator("#sync-status")).to_have_text("The laptop app is not answering")
        assert counted_numbers(app.database) == ["1", "2"]  # 2 is recorded; the page knows not yet

        proxy.upstream = app.start()         # the helper starts the app again
        wait_answered(page, 20_000)
        expect(checking).to_have_count(0)
        expect(page.locator("#recent tbody tr td:nth-child(2)")).to_have_text(["3", "2", "1"])
        assert counted_numbers(app.database) == ["1", "2", "3"]  # 2 once, then 3
        keys = lap_column(app.database, "client_key")
        assert len(set(keys)) == 3
        shown = said(page)
        assert any("Checked after the laptop app answered again: lap 2 is recorded, once." in s
                   and s.startswith("feedback good") for s in shown), shown
        assert not any("NOT recorded" in s and "lap 2" in s for s in shown), shown
        expect(page.locator("#feedback.good")).to_contain_text("Runner 3")

        # A lost answer while the app runs: checked at once. For a number nobody has, the
        # app's answer is that nothing was recorded, and the page says so now.
        proxy.path_faults["POST /laps"] = [Fault(respond="drop"), Fault(), Fault(respond="drop")]
        typed(page, "4")
        expect(page.locator("#feedback.good")).to_contain_text(
            "Checked after the laptop app answered again: lap 4 is recorded, once.")
        typed(page, "99")
        expect(page.locator("#feedback.bad")).to_contain_text(
            re.compile(r"Checked after the laptop app answered again: lap 99 was NOT recorded\. "
                       r"No runner has start number 99\."))
        wait_answered(page, 10_000)
        assert counted_numbers(app.database) == ["1", "2", "3", "4"]
    finally:
        page.close()


def test_numbers_typed_while_the_app_is_down_count_at_the_time_they_were_typed(browser, tmp_path):
    app = ClockedLaptop(prepare_database(tmp_path, runners=5), tmp_path,
                        {"LAPSYNC_SYNC_ENABLED": "false", "LAPSYNC_MIN_LAP_SECONDS": "2"})
    app.start()
    proxy, page = FaultProxy(app.url), browser.new_page()
    try:
        log_in(page, proxy.url, "tom", PASSWORD)
        app.kill()                           # the app dies; the helper goes on typing
        first_typed = time.monotonic()
        typed(page, "1")
        expect(page.locator("#sync-status")).to_have_text("The laptop app is not answering")
        page.wait_for_timeout(2_500)         # the runner's next lap, more than 2 s later
        second_typed = time.monotonic()
        typed(page, "1")
        page.wait_for_timeout(2_500)         # both wait on the page longer than WAITED_MS
        proxy.upstream = app.start()
        wait_answered(page, 20_000)
        assert counted_numbers(app.database) == ["1", "1"]     # neither is "too soon"
        first, second = lap_column(app.database, "time")
        typed_apart_ms = (second_typed - first_typed) * 1000    # as typed, not as sent
        assert typed_apart_ms - 300 <= second - first <= typed_apart_ms + 300
        expect(page.locator("#recent tbody tr td:nth-child(2)")).to_have_text(["1", "1"])
    finally:
        page.close()
        proxy.close()
        app.kill()

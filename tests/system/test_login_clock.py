"""A laptop clock set forward by hours ends no login; one set back lengthens none (libfaketime).

The laptop app runs as a process whose wall clock the test sets (lapsync.devkit.clocked);
its boot clock stays real, as on a laptop whose clock someone corrects. The helper types
in real Chromium. Set forward by 10 h (a correction when a network appears), every login
ended at once: each login's ends were compared with the wall clock as it reads after the
jump. Set back by 5 h, a login lived 5 h longer than its time.
"""
from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import requests
from playwright.sync_api import expect

from lapsync.devkit.clocked import ClockedLaptop, clock_spec
from lapsync.devkit.lappage import counted_numbers, log_in, wait_answered
from lapsync.devkit.laptops import PASSWORD, prepare_database
from lapsync.laptop.db import connect

HOUR = 3600


def typed(page, number: str) -> None:
    """Type a number and Enter as a person does."""
    page.keyboard.type(number, delay=40)
    page.keyboard.press("Enter")


def laptop_clock(laptop: ClockedLaptop) -> float:
    """Return the laptop app's wall clock (epoch s, whole seconds): its answer's Date header."""
    answer = requests.get(f"{laptop.url}/sync/status", headers={"Accept": "application/json"},
                          timeout=10)
    return parsedate_to_datetime(answer.headers["Date"]).timestamp()


def logins(laptop: ClockedLaptop) -> list[tuple[int, int]]:
    """Return each login's idle end and cap (epoch ms of the laptop's clock)."""
    db = connect(laptop.database)
    try:
        return db.execute("SELECT valid_until, ends_at FROM user_session").fetchall()
    finally:
        db.close()


def jumps(laptop: ClockedLaptop) -> list[int]:
    """Return the clock jumps the laptop kept (ms), in order."""
    db = connect(laptop.database)
    try:
        return [row[0] for row in db.execute("SELECT jump_ms FROM clock_jump ORDER BY rowid")]
    finally:
        db.close()


def test_a_clock_set_forward_ends_no_login_and_one_set_back_lengthens_none(browser, tmp_path):
    laptop = ClockedLaptop(prepare_database(tmp_path, runners=5), tmp_path,
                           {"LAPSYNC_SYNC_ENABLED": "false"})
    laptop.set_clock(clock_spec(time.time()))
    page = browser.new_page()
    try:
        laptop.start()
        log_in(page, laptop.url, "tom", PASSWORD)
        typed(page, "1")
        expect(page.locator("#feedback.good")).to_contain_text("Runner 1")
        [(_, cap)] = logins(laptop)

        laptop.set_clock(clock_spec(laptop_clock(laptop) + 10 * HOUR))   # a correction
        page.wait_for_timeout(4_000)          # the page's poll asks meanwhile
        expect(page.locator("#feedback")).not_to_contain_text("Log in again")
        typed(page, "2")
        expect(page.locator("#feedback.good")).to_contain_text("Runner 2")
        wait_answered(page, 10_000)
        assert counted_numbers(laptop.database) == ["1", "2"]
        [jump] = jumps(laptop)
        assert abs(jump - 10 * HOUR * 1000) < 5_000, jump
        assert logins(laptop)[0][1] == cap + jump     # the cap moved with the clock

        # The login's last seconds (its 8 h since the last lap almost over), then the
        # clock goes 5 h back: it ends in those seconds, not 5 h later.
        now = laptop_clock(laptop)
        db = connect(laptop.database)
        try:
            db.execute("UPDATE user_session SET valid_until = ?", [int((now + 6) * 1000)])
        finally:
            db.close()
        laptop.set_clock(clock_spec(now - 5 * HOUR))
        expect(page.locator("#feedback.bad")).to_contain_text(
            "Log in again before the next number", timeout=15_000)   # the page's poll
        assert len(jumps(laptop)) == 2 and abs(jumps(laptop)[1] + 5 * HOUR * 1000) < 5_000
        typed(page, "3")
        expect(page.locator("#feedback.bad")).to_contain_text("Not counted: 3.")
        assert counted_numbers(laptop.database) == ["1", "2"]
    finally:
        page.close()
        laptop.kill()

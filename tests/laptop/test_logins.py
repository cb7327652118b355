"""How long a login lives on the laptop (lapsync/laptop/logins.py): 8 h after the helper's
last action (a lap, a void, a page opened), not 8 h after the login; a page's poll keeps
no login alive; 7 days at most; a clock jump neither ends a login nor lengthens one.

The laptop's two clocks are the test's, as in test_clock_change.py: the wall clock (which
people set) and the boot clock (which nobody sets).
"""
from __future__ import annotations

import threading

import pytest

from lapsync.laptop import auth, clockwatch, logins
from lapsync.laptop import laps as laps_module
from lapsync.laptop.db import connect
from tests.conftest import login
from tests.laptop.test_clock_change import Clocks

JSON = {"Accept": "application/json"}
HOUR = 3600 * 1000
IDLE = 8 * HOUR


@pytest.fixture
def clocks(monkeypatch) -> Clocks:
    """Both clocks under the test's control (set before the login), no watch readings yet."""
    clocks = Clocks()
    for module in (auth, logins, clockwatch, laps_module):
        monkeypatch.setattr(module, "now_ms", lambda: clocks.wall)
    monkeypatch.setattr(clockwatch, "boot_ms", lambda: clocks.boot)
    monkeypatch.setattr(clockwatch, "WATCH", clockwatch.ClockWatch())
    return clocks


@pytest.fixture
def helper(client, runners, clocks):
    """A teacher logged in at the test's clock; `.csrf` holds the page's token."""
    client.csrf = login(client, "tom")
    return client


def lap(client, number: str = "1") -> int:
    """Post a lap as the page's script does (the fast path, confirmed); return the status."""
    return client.post("/laps", data={"start_number": number, "confirm": "1"},
                       headers={**JSON, "X-CSRFToken": client.csrf}).status_code


def poll(client) -> int:
    """Fetch the recent laps as the lap page's list does every 3 s; return the status."""
    return client.get("/laps/recent", headers=JSON).status_code


def ends(db) -> tuple[int, int]:
    """Return the login's idle end and cap (the test has one login)."""
    return db.execute("SELECT valid_until, ends_at FROM user_session").fetchone()


def test_a_helper_who_keeps_typing_stays_logged_in_through_a_24_hour_relay(helper, clocks):
    for hour in range(1, 25):
        clocks.wait(HOUR)
        assert lap(helper, ("1", "2")[hour % 2]) == 201, f"hour {hour}"
    clocks.wait(IDLE - 1000)               # then nobody types: 8 h after the last lap ...
    assert poll(helper) == 200
    clocks.wait(2000)                      # ... the login ends
    assert poll(helper) == 401
    assert lap(helper) == 401
    assert helper.get("/").status_code == 302


def test_laps_write_the_login_at_most_every_few_minutes(helper, clocks, db):
    login_end = ends(db)[0]
    for _ in range(30):                    # a lap every 5 s: no write of the login
        clocks.wait(5000)
        assert lap(helper) == 201
    assert ends(db)[0] == login_end
    clocks.wait(logins.RENEW_MS)           # once it is due, the next lap moves it on
    assert lap(helper) == 201
    assert ends(db)[0] == clocks.wall + IDLE
    renewed = ends(db)[0]
    clocks.wait(60_000)
    assert lap(helper) == 201 and ends(db)[0] == renewed


def test_a_page_s_poll_keeps_no_login_alive_a_page_opened_or_a_void_does(helper, clocks, db):
    clocks.wait(IDLE - 60_000)
    before = ends(db)
    for _ in range(5):                     # the list's poll on an unattended laptop
        clocks.wait(10_000)
        assert poll(helper) == 200
        assert helper.get("/big/laps", headers=JSON).status_code == 200   # the big screen
    assert ends(db) == before
    assert helper.get("/").status_code == 200      # the helper opens the lap page
    assert ends(db)[0] == clocks.wall + IDLE
    clocks.wait(IDLE - 60_000)
    lap_id = helper.post("/laps", data={"start_number": "2"},
                         headers={**JSON, "X-CSRFToken": helper.csrf}).get_json()["lap"]["id"]
    clocks.wait(IDLE - 60_000)             # a lap, then a void just before its 8 h ran out
    voided = helper.post(f"/laps/{lap_id}/void", headers={**JSON, "X-CSRFToken": helper.csrf})
    assert voided.status_code == 200
    assert ends(db)[0] == clocks.wall + IDLE
    clocks.wait(IDLE + 1000)
    assert poll(helper) == 401


def test_a_login_in_use_ends_7_days_after_it_at_the_latest(helper, clocks, db):
    logged_in = clocks.wall
    assert ends(db)[1] == logged_in + logins.MAX_MS
    while clocks.wall + 4 * HOUR < logged_in + logins.MAX_MS:
        clocks.wait(4 * HOUR)              # in use around the clock, never 8 h idle
        assert lap(helper) == 201
    clocks.wait(logged_in + logins.MAX_MS - clocks.wall)
    assert lap(helper) == 401 and poll(helper) == 401
    assert helper.get("/").status_code == 302


def test_a_clock_set_forward_by_hours_ends_no_login(helper, clocks, db):
    clocks.wait(2 * HOUR)
    assert lap(helper) == 201
    idle_end, cap = ends(db)
    clocks.wait(HOUR)
    clocks.set_wall(10 * HOUR)             # a correction when a network appears
    assert poll(helper) == 200             # the page's poll notices it: no action, no renewal
    assert ends(db) == (idle_end + 10 * HOUR, cap + 10 * HOUR)
    assert db.execute("SELECT count(*) FROM clock_jump").fetchone()[0] == 1
    clocks.wait(HOUR)
    clocks.set_wall(12 * HOUR)             # the next lap's batch notices this one first
    assert lap(helper) == 201
    assert ends(db) == (clocks.wall + IDLE, cap + 22 * HOUR)
    assert helper.get("/").status_code == 200


def test_a_clock_set_back_lengthens_no_login(helper, clocks, db):
    clocks.wait(7 * HOUR)                  # logged in, then only the page's poll
    clocks.set_wall(-5 * HOUR)
    assert poll(helper) == 200
    clocks.wait(HOUR - 60_000)             # 8 h less a minute after the login
    assert poll(helper) == 200
    clocks.wait(2 * 60_000)                # 8 h and a minute: over, however the clock reads
    assert poll(helper) == 401
    assert ends(db)[0] == clocks.wall - 60_000


def test_a_jump_another_thread_is_keeping_ends_no_login(helper, clocks, app):
    """The watch's reading is taken and the shift not yet committed when the poll reads."""
    clocks.wait(HOUR)
    clocks.set_wall(10 * HOUR)
    other = connect(app.config["DATABASE"])
    other.execute("BEGIN IMMEDIATE")
    clockwatch.check(other)                # the reading is taken: no jump is pending now
    assert clockwatch.pending(other) == 0
    committing = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    committing.start()
    try:
        assert poll(helper) == 200
    finally:
        committing.join()
        other.close()

"""A laptop whose clock is changed while laps are typed: the minimum-lap guard, the time
since the last lap, the clock jump (logged, shown once, reported) and the sync badge.

The laptop's two clocks are set by the test (wall clock and boot clock, both epoch-free
ms): the app reads them through lapsync.laptop.db.now_ms and clockwatch.boot_ms.
"""
from __future__ import annotations

import importlib
import json
import logging
import re
import threading

import pytest

from lapsync.laptop import clockwatch
from lapsync.laptop import laps as laps_module
from lapsync.laptop.client.state import record_failure, record_success
from lapsync.laptop.client.status import sync_status
from lapsync.laptop.client.transport import TRANSIENT, SyncError
from lapsync.laptop.db import connect, get_meta

JSON = {"Accept": "application/json"}
MIN = 60_000
# The modules that read the wall clock (client's status view shadows its module's name).
CLOCK_READERS = [laps_module, clockwatch] + [importlib.import_module(f"lapsync.laptop.client.{name}")
                                             for name in ("state", "status")]


class Clocks:
    """The laptop's wall clock (which people set) and its boot clock (which nobody sets)."""

    def __init__(self):
        self.wall, self.boot = 1_750_000_000_000, 5_000_000

    def wait(self, ms: int) -> None:
        """Let time pass: both clocks move."""
        self.wall += ms
        self.boot += ms

    def set_wall(self, by_ms: int) -> None:
        """Someone sets the wall clock by BY_MS (negative: back)."""
        self.wall += by_ms


@pytest.fixture
def clocks(monkeypatch) -> Clocks:
    """Both clocks under the test's control, and a clock watch with no readings yet."""
    clocks = Clocks()
    for module in CLOCK_READERS:
        monkeypatch.setattr(module, "now_ms", lambda: clocks.wall)
    monkeypatch.setattr(clockwatch, "boot_ms", lambda: clocks.boot)
    monkeypatch.setattr(clockwatch, "WATCH", clockwatch.ClockWatch())
    return clocks


def post_lap(client, number: str, **extra):
    """Post a start number the way the page's script does."""
    return client.post("/laps", data={"start_number": number, **extra},
                       headers={**JSON, "X-CSRFToken": client.csrf})


def counted(client, number: str) -> dict:
    """Post a lap that must count; return the answer."""
    answer = post_lap(client, number)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_a_clock_set_back_never_makes_a_lap_too_soon_and_a_real_double_is_still_caught(
        teacher, runners, clocks, caplog):
    counted(teacher, "1")
    clocks.wait(5 * MIN)
    counted(teacher, "2")
    clocks.wait(30_000)
    clocks.set_wall(-10 * MIN)          # someone corrects the clock: ten minutes back
    with caplog.at_level(logging.WARNING, logger="lapsync.laptop.clockwatch"):
        again = counted(teacher, "1")   # 5.5 min after its last lap, though "in the past" now
    assert again["since_previous_ms"] == 5 * MIN + 30_000 and not again["since_unknown"]
    assert "clock jump: this laptop's clock moved -600 s" in caplog.text
    clocks.wait(20_000)
    double = post_lap(teacher, "2")     # 50 s after its last lap: a double entry, caught
    assert double.status_code == 409 and double.get_json()["error"] == "too_soon"
    assert double.get_json()["since_previous_ms"] == 50_000


def test_a_clock_change_not_seen_makes_the_interval_unknown_never_too_soon(
        app, teacher, runners, clocks, monkeypatch):
    counted(teacher, "1")
    counted(teacher, "2")
    clocks.wait(2 * MIN)
    monkeypatch.setattr(clockwatch, "WATCH", clockwatch.ClockWatch())  # the app restarted ...
    clocks.set_wall(-10 * MIN)                                          # ... with another time
    first = counted(teacher, "1")
    assert first["since_previous_ms"] is None and first["since_unknown"]
    assert first["count"] == 2 and not first["previous_elsewhere"]
    clocks.wait(10_000)
    # The next lap of the same runner compares with the lap typed last, not with the
    # latest time: a double entry after the change is caught.
    double = post_lap(teacher, "1")
    assert double.status_code == 409 and double.get_json()["since_previous_ms"] == 10_000
    page = teacher.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    plain = teacher.post("/laps", data={"start_number": "2", "csrf_token": teacher.csrf},
                         headers={"X-CSRFToken": teacher.csrf}, follow_redirects=True)
    assert "time since the last lap unknown: the laptop&#39;s clock was changed" in \
        plain.get_data(as_text=True)


def test_a_jump_is_kept_with_its_place_among_the_laps_shown_until_acknowledged(
        app, teacher, runners, clocks, db):
    counted(teacher, "1")
    counted(teacher, "17")
    clocks.wait(MIN)
    assert teacher.get("/sync/status", headers=JSON).get_json()["clock_jumps"] == []
    clocks.set_wall(-10 * MIN)
    clocks.wait(1000)
    counted(teacher, "2")
    jump = next(db.query("SELECT * FROM clock_jump"))
    last_seq = db.execute("SELECT max(seq) FROM change WHERE entity = 'lap'").fetchone()[0]
    assert jump["jump_ms"] == -10 * MIN and jump["after_seq"] == last_seq - 1
    assert jump["after_lap"] == 2 and jump["shown_at"] is None and jump["reported_at"] is None
    notices = teacher.get("/sync/status", headers=JSON).get_json()["clock_jumps"]
    assert [n["id"] for n in notices] == [jump["id"]]
    assert re.match(r"The laptop's clock was set back by 10 min \(noticed at \d\d:\d\d:\d\d",
                    notices[0]["text"]), notices[0]
    assert "set back by 10 min" in teacher.get("/").get_data(as_text=True)  # on the lap page
    seen = teacher.post("/clock-jumps/seen", data={"ids": jump["id"]},
                        headers={**JSON, "X-CSRFToken": teacher.csrf})
    assert seen.get_json() == {"acknowledged": 1}
    assert teacher.get("/sync/status", headers=JSON).get_json()["clock_jumps"] == []
    assert 'id="clock-notice" class="feedback warn clock-notice" role="alert" hidden' in \
        teacher.get("/").get_data(as_text=True)
    clocks.wait(5000)
    clocks.set_wall(-59_000)  # a small step is no jump
    post_lap(teacher, "17")
    assert db.execute("SELECT count(*) FROM clock_jump").fetchone()[0] == 1


def test_a_jump_noticed_by_a_lap_that_is_refused_as_too_soon_is_kept(
        app, teacher, runners, clocks, db):
    """Regression: the refused lap's rollback took the jump it noticed with it, and the
    clock watch had already moved on: the jump was never kept nor shown."""
    counted(teacher, "1")
    clocks.wait(30_000)
    clocks.set_wall(2 * 3600_000)           # set forward two hours; the same runner at once
    double = post_lap(teacher, "1")
    assert double.status_code == 409 and double.get_json()["since_previous_ms"] == 30_000
    assert [r[0] for r in db.execute("SELECT jump_ms FROM clock_jump")] == [2 * 3600_000]
    notices = teacher.get("/sync/status", headers=JSON).get_json()["clock_jumps"]
    assert len(notices) == 1 and "set forward by 2 h" in notices[0]["text"], notices


def test_a_jump_is_noticed_by_the_sync_attempt_too_and_listed_by_sync_status(
        app, db, clocks):
    assert clockwatch.check_now(db) is None   # the first reading
    clocks.wait(3000)
    clocks.set_wall(2 * 3600_000)             # set forward two hours
    jump = clockwatch.check_now(db)
    assert jump is not None and jump["jump_ms"] == 2 * 3600_000
    out = app.test_cli_runner().invoke(args=["sync-status", "--json"]).output
    assert [j["jump_ms"] for j in json.loads(out)["clock_jumps"]] == [2 * 3600_000]
    text = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert "clock jump:    +7200 s" in text and "not reported to central yet" in text


def test_a_jump_the_sync_attempt_saw_is_not_lost_to_a_lap_written_while_it_waits(
        app, db, clocks):
    """Regression: the sync job took the jumped reading, then waited for the write lock
    a lap held; that lap neither noticed the jump nor found it recorded (too soon)."""
    assert clockwatch.check_now(db) is None   # the first reading
    clocks.wait(3000)
    clocks.set_wall(-10 * MIN)                # set back ten minutes
    writer = connect(app.config["DATABASE"])  # a lap's write transaction holds the lock
    writer.execute("BEGIN IMMEDIATE")
    sync_job = threading.Thread(target=clockwatch.check_now, args=(db,))
    sync_job.start()
    sync_job.join(0.3)                        # it saw the jump and waits for the lock
    assert sync_job.is_alive()
    jump = clockwatch.check(writer)           # the lap's own check, inside its transaction
    writer.execute("COMMIT")
    sync_job.join(10)
    assert jump is not None and jump["jump_ms"] == -10 * MIN
    assert [r[0] for r in db.execute("SELECT jump_ms FROM clock_jump")] == [-10 * MIN]
    writer.close()


def failure(db) -> None:
    """Note a failed sync attempt."""
    record_failure(db, SyncError(TRANSIENT, "central cannot be reached (ConnectionError)"), "fp")


def test_the_badge_follows_the_order_of_attempts_whatever_the_clock_did(app, db, clocks):
    record_success(db)
    clocks.set_wall(-3600_000)          # the clock an hour back: every later attempt fails
    clocks.wait(10_000)
    with app.test_request_context():
        assert sync_status(db, "http://central", "fp")["text"].startswith(
            "synced (the laptop's clock was set back since) – ")
    failure(db)
    with app.test_request_context():
        shown = sync_status(db, "http://central", "fp")
    assert shown["state"] == "offline" and shown["text"].startswith("offline – ")
    assert shown["last_error"].startswith("transient: central cannot be reached")
    failure(db)
    clocks.wait(10_000)
    record_success(db)                  # a success clears the error; it is history now
    with app.test_request_context():
        shown = sync_status(db, "http://central", "fp")
    assert shown["state"] == "synced" and shown["last_error"] is None and shown["failures"] == 0
    assert shown["text"].startswith("synced 0 s ago – ")
    assert [p["failures"] for p in shown["past_errors"]] == [2]
    assert shown["past_errors"][0]["error"].startswith("transient: central cannot be reached")
    assert (shown["attempts"], get_meta(db, "last_success_attempt")) == (4, "4")
    text = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert "last error:    none" in text
    assert "past error:    transient: central cannot be reached" in text
    assert "(cleared by a later success)" in text

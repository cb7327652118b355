"""Clock jumps a laptop reports: sent once with a push, kept at central, shown on the devices
page and as suspect lap times in the review queue; a bad report is refused whole (422)."""
from __future__ import annotations

import pytest

from lapsync.ids import new_id
from lapsync.laptop import clockwatch
from lapsync.laptop.client.push import report_jumps
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central, SyncResult
from lapsync.laptop.db import device_id
from lapsync.protocol import ProtocolError, validate_push
from sync.devices import find_device
from sync.push import push
from tests.pg import Outbox, logged_in, register

T = 1_700_000_000_000
MIN = 60_000


def jump_back(db, minutes: int) -> dict:
    """Let the laptop's clock watch see its wall clock set back by MINUTES."""
    watch = clockwatch.ClockWatch()
    key = clockwatch.database_key(db)
    watch.step(key, T, 1_000)
    original, clockwatch.WATCH = clockwatch.WATCH, watch
    try:
        return clockwatch.check_now(db, T + 5_000 - minutes * MIN, 6_000)
    finally:
        clockwatch.WATCH = original


def stored(conn) -> list[dict]:
    """Return the jumps central keeps."""
    return conn.execute("SELECT laptop_id, id, at, jump_ms, after_seq FROM clock_jump "
                        "ORDER BY at").fetchall()


def test_a_laptop_reports_its_clock_jump_once_and_central_keeps_it(
        db, live_central, central_db):
    jump = jump_back(db, 10)
    central = Central(live_central, register(central_db, "laptop-a"), 2, 10)
    assert sync_once(db, central).error is None
    assert stored(central_db) == [{"laptop_id": device_id(db), "id": jump["id"], "at": jump["at"],
                                   "jump_ms": -10 * MIN, "after_seq": jump["after_seq"]}]
    assert clockwatch.unreported(db, 10) == []
    assert sync_once(db, central, force=True).error is None
    assert len(stored(central_db)) == 1


def test_no_report_goes_to_a_central_that_does_not_take_it(db, live_central, central_db):
    jump_back(db, 3)
    central = Central(live_central, register(central_db, "laptop-a"), 2, 10)
    result = SyncResult()
    report_jumps(db, central, result)            # central announced nothing (yet)
    assert stored(central_db) == [] and len(clockwatch.unreported(db, 10)) == 1


def test_a_replayed_report_changes_nothing(central_db):
    token = register(central_db, "laptop-a")
    box = Outbox(clock_ms=T)
    body = {**box.body(), "clock_jumps": [{"id": new_id(), "at": T, "jump_ms": -MIN - 1,
                                           "after_seq": 0}]}
    device = find_device(central_db, token)
    push(central_db, device, validate_push(body), T + 1000)
    push(central_db, find_device(central_db, token), validate_push(body), T + 2000)
    assert [j["jump_ms"] for j in stored(central_db)] == [-MIN - 1]


@pytest.mark.parametrize("jumps, field", [
    ("x", "clock_jumps"),
    ([{"id": "no", "at": T, "jump_ms": 1, "after_seq": 0}], "id"),
    ([{"id": "a" * 24, "at": -1, "jump_ms": 1, "after_seq": 0}], "at"),
    ([{"id": "a" * 24, "at": T, "jump_ms": 1.5, "after_seq": 0}], "jump_ms"),
    ([{"id": "a" * 24, "at": T, "jump_ms": 1, "after_seq": 0, "more": 1}], "more"),
    ([{"id": "a" * 24, "at": T, "jump_ms": 1}], "after_seq"),
    ([{"id": "a" * 24, "at": T, "jump_ms": 1, "after_seq": 0}] * 101, "clock_jumps"),
])
def test_a_bad_clock_jump_report_is_refused_whole(jumps, field):
    body = {**Outbox(clock_ms=T).body(), "clock_jumps": jumps}
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.status == 422 and refused.value.extra["field"] == field


def test_the_devices_page_and_the_review_queue_show_the_times_near_a_jump_as_suspect(
        central_client, central_db, central_users):
    tokens = {name: register(central_db, name) for name in ("laptop-a", "laptop-b")}
    a, b = Outbox(clock_ms=T), Outbox(clock_ms=T)
    runner = a.runner(17, "Cleo Dahl", "6b", 6)
    near = a.lap(runner, time=T + 2 * MIN)                # just after A's clock went back
    body = {**a.body(device_time=T + 3 * MIN), "clock_jumps": [{"id": new_id(), "at": T, "jump_ms": -10 * MIN,
                                         "after_seq": 1}]}
    push(central_db, find_device(central_db, tokens["laptop-a"]), validate_push(body), T + 3 * MIN)
    far = b.lap(runner, time=T + 3 * MIN - 30_000)        # B's lap, 30 s after A's: a pair
    push(central_db, find_device(central_db, tokens["laptop-b"]),
         validate_push(b.body(device_time=T + 3 * MIN)), T + 3 * MIN)
    logged_in(central_client, central_db, central_users["vic"])
    devices = central_client.get("/devices/").get_data(as_text=True)
    assert 'id="clock-jumps"' in devices and "back by 600 s" in devices
    review = central_client.get("/review/").get_data(as_text=True)
    rows = {lap_id: review.split(f'data-lap="{lap_id}"')[1].split("</tr>")[0] for lap_id in (near, far)}
    assert "clock was set: time uncertain" in rows[near]
    assert "clock was set" not in rows[far]

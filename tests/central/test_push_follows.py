"""A batch sent while the one before it is unanswered (Lapsync-Follows): central waits for
that one instead of refusing a gap, and applies both once, in seq order."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

import sync.push
from lapsync.protocol import ProtocolError, validate_push
from lapsync.protocol.limits import FOLLOWS_HEADER
from sync import derived, review
from sync.devices import find_device
from sync.identity import current_database
from sync.push import push
from sync.settings import save_settings
from tests.central.test_api import checked, post_push
from tests.central.test_derived import add_admin
from tests.pg import Outbox, snapshot


def send(url: str, token: str, body: dict, follows: int | None = None) -> dict:
    """Apply a push body on a connection of its own (as a worker of central would)."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return push(conn, find_device(conn, token), validate_push(body), follows=follows)


def test_a_batch_that_overtook_the_one_before_waits_for_it(pg_url, central_db, device_token):
    box = Outbox()
    runner = box.runner(3, "Ida Lund")
    for _ in range(5):
        box.lap(runner)
    first, second = box.body(1, 3), box.body(4, 6)
    answers = {}
    later = threading.Thread(target=lambda: answers.setdefault(
        "second", send(pg_url, device_token, second, follows=1)))
    later.start()
    time.sleep(0.2)                      # the second batch arrived first and waits
    answers["first"] = send(pg_url, device_token, first)
    later.join(10)
    assert answers["first"]["acked_seq"] == 3 and answers["second"]["acked_seq"] == 6
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 5
    assert central_db.execute("SELECT laps FROM runner_total").fetchone()["laps"] == 5


def test_a_gap_that_is_not_the_batch_before_is_refused_at_once(pg_url, central_db, device_token):
    box = Outbox()
    runner = box.runner(3, "Ida Lund")
    for _ in range(5):
        box.lap(runner)
    send(pg_url, device_token, box.body(1, 2))
    before, started = snapshot(central_db), time.monotonic()
    with pytest.raises(ProtocolError) as refused:   # seq 3 is missing, not the batch from 4
        send(pg_url, device_token, box.body(5, 6), follows=4)
    assert refused.value.code == "seq_gap" and refused.value.extra["resume_from"] == 3
    assert time.monotonic() - started < sync.push.FOLLOW_WAIT_S / 2
    assert snapshot(central_db) == before


def test_a_batch_before_that_never_comes_ends_the_wait_with_a_gap(pg_url, central_db, device_token,
                                                                  monkeypatch):
    monkeypatch.setattr(sync.push, "FOLLOW_WAIT_S", 0.3)
    box = Outbox()
    runner = box.runner(3, "Ida Lund")
    box.lap(runner), box.lap(runner)
    before, started = snapshot(central_db), time.monotonic()
    with pytest.raises(ProtocolError) as refused:
        send(pg_url, device_token, box.body(2, 3), follows=1)
    assert refused.value.code == "seq_gap" and refused.value.extra == {
        "acked_seq": 0, "resume_from": 1, "database_id": current_database(central_db)}
    assert time.monotonic() - started >= 0.3
    assert snapshot(central_db) == before


@pytest.mark.parametrize("value", ["x1", "-1", "1.0", "١", "9" * 19])
def test_a_follows_header_that_is_no_seq_is_refused_and_nothing_applied(
        live_central, central_db, device_token, value):
    box = Outbox()
    box.lap(box.runner(3, "Ida Lund"))
    before = snapshot(central_db)
    refused = checked(post_push(live_central, device_token, box.body(),
                                headers={FOLLOWS_HEADER: value.encode()}))
    assert refused.status_code == 400 and refused.json()["error"] == "malformed_follows"
    assert snapshot(central_db) == before


def test_the_follows_header_over_http_is_taken(live_central, central_db, device_token):
    box = Outbox()
    box.lap(box.runner(3, "Ida Lund"))
    answer = checked(post_push(live_central, device_token, box.body(),
                               headers={FOLLOWS_HEADER: "1"}), request_too=True)
    assert answer.status_code == 200 and answer.json()["acked_seq"] == 2


# ---- laps counted before the write lock ---------------------------------------------------

def counted_at_central(conn) -> dict:
    """Return the totals per runner and per (laptop, runner), and whether the review tables
    equal their computation from scratch."""
    return {"total": {r["runner_id"]: r["laps"] for r in conn.execute(
                "SELECT runner_id, laps FROM runner_total WHERE laps <> 0")},
            "own": {r["runner_id"]: r["laps"] for r in conn.execute(
                "SELECT runner_id, laps FROM device_runner_laps WHERE laps <> 0")},
            "in_step": derived.stored(conn) == derived.reference(conn)}


@pytest.fixture
def count_ahead_used(monkeypatch) -> list[bool]:
    """Record, for each batch, whether its laps counted ahead of the lock were used."""
    used, still = [], sync.push.still_counted

    def spy(*args):
        known = still(*args)
        used.append(known is not None)
        return known

    monkeypatch.setattr(sync.push, "still_counted", spy)
    return used


def laps_of_two_runners(box: Outbox) -> tuple[str, str]:
    """Add two runners with close laps, out of order too (pairs, a late lap); return their ids."""
    ida, ole = box.runner(3, "Ida Lund"), box.runner(4, "Ole Berg")
    for at in (0, 20_000, 130_000, 90_000, 400_000):
        box.lap(ida, time=1_700_000_000_000 + at)
        box.lap(ole, time=1_700_000_000_000 + at * 2)
    return ida, ole


def test_laps_counted_before_the_lock_count_as_under_it(pg_url, central_db, device_token,
                                                         count_ahead_used):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 6))                # counted under the lock
    send(pg_url, device_token, box.body(7, 12), follows=1)    # counted ahead
    assert count_ahead_used == [False, True]
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 5}, "own": {ida: 5, ole: 5},
                                              "in_step": True}


def merge_ida_into_ole(conn, ida: str, ole: str) -> None:
    """Merge runner Ida into Ole at central."""
    admin = add_admin(conn)
    version = {r["id"]: r["change_id"] for r in conn.execute("SELECT id, change_id FROM runner")}
    review.merge(conn, admin, ole, version[ole], ida, version[ida])


@pytest.mark.parametrize("meanwhile", ["merge", "minimum lap time"])
def test_a_change_between_counting_ahead_and_the_lock_counts_the_laps_again(
        pg_url, central_db, device_token, count_ahead_used, monkeypatch, meanwhile):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 4))
    ahead = sync.push.count_ahead

    def then_change(conn, batch, now):
        counted = ahead(conn, batch, now)
        if meanwhile == "merge":
            merge_ida_into_ole(central_db, ida, ole)
        else:
            save_settings(central_db, {"min_lap_seconds": 95}, add_admin(central_db))
        return counted

    monkeypatch.setattr(sync.push, "count_ahead", then_change)
    send(pg_url, device_token, box.body(5, 12), follows=1)
    assert count_ahead_used == [False, False]
    expected = {ole: 10} if meanwhile == "merge" else {ida: 5, ole: 5}
    assert counted_at_central(central_db) == {"total": expected, "own": expected, "in_step": True}


def test_a_replayed_or_voided_lap_is_counted_under_the_lock(pg_url, central_db, device_token,
                                                             count_ahead_used):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)                       # seqs 1-12
    late = box.lap(ida, time=1_700_000_500_000)               # seq 13, voided before it comes
    box.lap(ole, time=1_700_000_900_000)                      # seq 14
    send(pg_url, device_token, box.body(1, 6))
    send(pg_url, device_token, box.body(4, 12), follows=1)    # seqs 4-6 again
    central_db.execute("INSERT INTO lap_void (lap_id, voided, at, by, hlc, origin, change_id) "
                       "VALUES (%s, true, 1, 'u', '1700000000000.0001', 'x', 0)", [late])
    send(pg_url, device_token, box.body(13, 14), follows=7)
    assert count_ahead_used == [False, False, False]
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 6}, "own": {ida: 5, ole: 6},
                                              "in_step": True}

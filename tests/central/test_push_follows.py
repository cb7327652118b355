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
from sync import backup, derived, review
from sync.devices import find_device, revoke_device
from sync.events import start_next_event
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


# ---- laps copied and counted before the write lock ----------------------------------------

def counted_at_central(conn) -> dict:
    """Return the totals per runner and per (laptop, runner), and whether the review tables
    equal their computation from scratch."""
    return {"total": {r["runner_id"]: r["laps"] for r in conn.execute(
                "SELECT runner_id, laps FROM runner_total WHERE laps <> 0")},
            "own": {r["runner_id"]: r["laps"] for r in conn.execute(
                "SELECT runner_id, laps FROM device_runner_laps WHERE laps <> 0")},
            "in_step": derived.stored(conn) == derived.reference(conn)}


PRODUCT_EARLY_FROM = sync.push.EARLY_FROM


@pytest.fixture(autouse=True)
def small_batches_copied_early(monkeypatch) -> None:
    """Copy this file's small batches before the lock, as a backlog's big ones are."""
    monkeypatch.setattr(sync.push, "EARLY_FROM", 1)


@pytest.fixture
def early_used(monkeypatch) -> list[bool]:
    """Record, for each batch that inserts laps, whether they were copied before the lock."""
    used, insert = [], sync.push.insert_laps

    def spy(*args):
        used.append(args[-1] is not None)
        return insert(*args)

    monkeypatch.setattr(sync.push, "insert_laps", spy)
    return used


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


def in_own_transaction(url: str, work) -> None:
    """Run work(conn) on a connection of its own, committed (another worker of central)."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        work(conn)


def test_a_batch_of_laps_is_copied_before_the_lock_and_counts_as_under_it(
        pg_url, central_db, device_token, early_used, monkeypatch):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    copied_at_lock, take = [], sync.push.take_write_lock

    def lock(conn):
        copied_at_lock.append(conn.execute("SELECT count(*) AS n FROM lap").fetchone()["n"])
        take(conn)

    monkeypatch.setattr(sync.push, "take_write_lock", lock)
    send(pg_url, device_token, box.body(1, 2))                # runners: the usual way
    send(pg_url, device_token, box.body(3, 6))                # laps alone: copied early
    send(pg_url, device_token, box.body(7, 12), follows=3)
    assert early_used == [True, True] and copied_at_lock == [0, 4, 10]
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 5}, "own": {ida: 5, ole: 5},
                                              "in_step": True}


def test_a_laptop_keeping_up_with_the_track_pushes_the_usual_way(
        pg_url, central_db, device_token, early_used, monkeypatch):
    monkeypatch.setattr(sync.push, "EARLY_FROM", PRODUCT_EARLY_FROM)
    box = Outbox()
    ida = box.runner(3, "Ida Lund")
    for _ in range(PRODUCT_EARLY_FROM):
        box.lap(ida)
    send(pg_url, device_token, box.body(1, 1))
    send(pg_url, device_token, box.body(2, PRODUCT_EARLY_FROM))       # one lap short
    send(pg_url, device_token, box.body(PRODUCT_EARLY_FROM + 1))      # one lap
    box.lap(ida)
    for _ in range(PRODUCT_EARLY_FROM - 1):
        box.lap(ida)
    send(pg_url, device_token, box.body(PRODUCT_EARLY_FROM + 2))      # a backlog of them
    assert early_used == [False, False, True]
    assert counted_at_central(central_db)["total"] == {ida: 2 * PRODUCT_EARLY_FROM}


def test_a_batch_copies_its_laps_while_the_one_before_holds_the_lock(
        pg_url, central_db, device_token, early_used, monkeypatch):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 2))
    copied, totals = threading.Event(), sync.push.apply_totals

    def slow_totals(conn, deltas):
        if not copied.is_set():                   # the first batch, under the lock
            assert copied.wait(10), "the second batch did not copy while the first held the lock"
        totals(conn, deltas)

    def waiting(conn, device_id, last_seq, deadline):
        copied.set()
        applied(conn, device_id, last_seq, deadline)

    applied = sync.push.wait_applied
    monkeypatch.setattr(sync.push, "apply_totals", slow_totals)
    monkeypatch.setattr(sync.push, "wait_applied", waiting)
    answers = {}
    first = threading.Thread(target=lambda: answers.setdefault(
        "first", send(pg_url, device_token, box.body(3, 7))))
    first.start()
    time.sleep(0.3)
    answers["second"] = send(pg_url, device_token, box.body(8, 12), follows=3)
    first.join(10)
    assert answers["first"]["acked_seq"] == 7 and answers["second"]["acked_seq"] == 12
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 5}, "own": {ida: 5, ole: 5},
                                              "in_step": True}


def merge_ida_into_ole(conn, ida: str, ole: str) -> None:
    """Merge runner Ida into Ole at central."""
    admin = add_admin(conn)
    version = {r["id"]: r["change_id"] for r in conn.execute("SELECT id, change_id FROM runner")}
    review.merge(conn, admin, ole, version[ole], ida, version[ida])


def change_meanwhile(url: str, meanwhile: str, ida: str, ole: str, lap: str) -> None:
    """Make one change at central, committed, as an organiser or another laptop would."""
    def work(conn):
        if meanwhile == "merge":
            merge_ida_into_ole(conn, ida, ole)
        elif meanwhile == "minimum lap time":
            save_settings(conn, {"min_lap_seconds": 95}, add_admin(conn))
        else:  # a void of the batch's lap that came before the lap (another laptop's)
            conn.execute("INSERT INTO lap_void (lap_id, voided, at, by, hlc, origin, change_id) "
                         "VALUES (%s, true, 1, 'u', '1700000000000.0001', 'x', 0)", [lap])
    in_own_transaction(url, work)


@pytest.mark.parametrize("meanwhile", ["merge", "minimum lap time", "void"])
def test_a_change_between_the_early_copy_and_the_lock_counts_the_laps_again(
        pg_url, central_db, device_token, early_used, monkeypatch, meanwhile):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 4))
    applied = sync.push.wait_applied

    def then_change(conn, device_id, last_seq, deadline):
        change_meanwhile(pg_url, meanwhile, ida, ole, box.changes[4]["data"]["id"])
        applied(conn, device_id, last_seq, deadline)

    monkeypatch.setattr(sync.push, "wait_applied", then_change)
    send(pg_url, device_token, box.body(5, 12), follows=5)
    # A merge makes the copy stale (its laps name the merged runner): copied again, after.
    assert early_used == ([False, True, False] if meanwhile == "merge" else [False, True])
    expected = {ole: 10} if meanwhile == "merge" else \
        {ida: 4, ole: 5} if meanwhile == "void" else {ida: 5, ole: 5}
    assert counted_at_central(central_db) == {"total": expected, "own": expected, "in_step": True}
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 10


def test_a_device_revoked_while_its_laps_wait_for_the_lock_applies_nothing(
        pg_url, central_db, device_token, monkeypatch):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 2))
    before, applied = snapshot(central_db), sync.push.wait_applied

    def revoke(conn, device_id, last_seq, deadline):
        in_own_transaction(pg_url, lambda other: revoke_device(other, "laptop-a"))
        applied(conn, device_id, last_seq, deadline)

    monkeypatch.setattr(sync.push, "wait_applied", revoke)
    with pytest.raises(ProtocolError) as refused:
        send(pg_url, device_token, box.body(3, 12))
    assert refused.value.code == "revoked_token"
    after = snapshot(central_db)
    assert after.pop("device") != before.pop("device") and after == before


def test_two_attempts_at_the_same_batch_apply_it_once(pg_url, central_db, device_token):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 2))
    answers = []
    attempts = [threading.Thread(target=lambda: answers.append(
        send(pg_url, device_token, box.body(3, 12)))) for _ in range(3)]
    for attempt in attempts:
        attempt.start()
    for attempt in attempts:
        attempt.join(20)
    assert [a["acked_seq"] for a in answers] == [12, 12, 12]
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 5}, "own": {ida: 5, ole: 5},
                                              "in_step": True}
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 10


def test_a_batch_with_more_than_laps_is_counted_ahead_while_the_one_before_applies(
        pg_url, central_db, device_token, count_ahead_used, early_used):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)
    box.runner(5, "Eva Stern")                                   # seq 13: not laps alone
    send(pg_url, device_token, box.body(1, 2))
    answers = {}
    later = threading.Thread(target=lambda: answers.setdefault(
        "second", send(pg_url, device_token, box.body(8, 13), follows=3)))
    later.start()
    time.sleep(0.2)                      # the second batch arrived first and counts ahead
    answers["first"] = send(pg_url, device_token, box.body(3, 7))
    later.join(10)
    assert answers["second"]["acked_seq"] == 13
    assert early_used == [True, False] and count_ahead_used[-1] is True
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 5}, "own": {ida: 5, ole: 5},
                                              "in_step": True}


def test_a_replayed_lap_is_copied_under_the_lock(pg_url, central_db, device_token, early_used):
    box = Outbox()
    ida, ole = laps_of_two_runners(box)                       # seqs 1-12
    send(pg_url, device_token, box.body(1, 6))
    send(pg_url, device_token, box.body(4, 12), follows=1)    # seqs 4-6 again
    assert early_used == [False, False]
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 5}, "own": {ida: 5, ole: 5},
                                              "in_step": True}


def test_a_new_event_started_while_laps_wait_for_the_lock_does_not_deadlock(
        pg_url, central_db, device_token, monkeypatch, tmp_path):
    box = Outbox()
    laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 2))
    reached, take, applied, dump = (threading.Event(), sync.push.take_write_lock,
                                    sync.push.wait_applied, backup.dump)

    def at_lock(conn):
        reached.set()
        take(conn)

    def copied(conn, device_id, last_seq, deadline):
        reached.set()
        time.sleep(0.5)  # still copying, as far as the new event's TRUNCATE can tell
        applied(conn, device_id, last_seq, deadline)

    def dump_when_the_push_waits(url, path):
        pushing.start()  # the event's start holds the write lock now
        assert reached.wait(10)
        dump(url, path)

    monkeypatch.setattr(sync.push, "take_write_lock", at_lock)
    monkeypatch.setattr(sync.push, "wait_applied", copied)
    monkeypatch.setattr(backup, "dump", dump_when_the_push_waits)
    answers = {}
    pushing = threading.Thread(target=lambda: answers.setdefault(
        "push", send(pg_url, device_token, box.body(3, 12))))
    counts, _ = start_next_event(central_db, pg_url, tmp_path, None, "Lauf 2027", None)
    pushing.join(20)
    assert counts["lap"] == 0 and answers["push"]["acked_seq"] == 12
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 10


def test_laps_copied_early_by_one_attempt_and_under_the_lock_by_another_count_once(
        pg_url, central_db, device_token, monkeypatch):
    monkeypatch.setattr(sync.push, "FOLLOW_WAIT_S", 0.5)
    box = Outbox()
    ida = box.runner(3, "Ida Lund")
    ole = box.runner(4, "Ole Berg")                           # seq 2: not laps alone
    for _ in range(5):
        box.lap(ida), box.lap(ole)
    send(pg_url, device_token, box.body(1, 1))
    copied, applied = threading.Event(), sync.push.wait_applied

    def signal(conn, device_id, last_seq, deadline):
        copied.set()
        applied(conn, device_id, last_seq, deadline)

    monkeypatch.setattr(sync.push, "wait_applied", signal)
    answers = {}
    early = threading.Thread(target=lambda: answers.setdefault(
        "early", send(pg_url, device_token, box.body(3, 12), follows=2)))
    early.start()
    assert copied.wait(10)
    # The same laps again under the lock: its COPY waits for the early copy, which waits
    # for the lock, a deadlock PostgreSQL breaks; push applies the one rolled back again.
    answers["locked"] = send(pg_url, device_token, box.body(2, 12))
    early.join(20)
    assert answers["locked"]["acked_seq"] == answers["early"]["acked_seq"] == 12
    assert counted_at_central(central_db) == {"total": {ida: 5, ole: 5}, "own": {ida: 5, ole: 5},
                                              "in_step": True}
    assert central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"] == 10


def test_a_batch_for_the_last_event_is_refused_without_copying_its_laps(
        pg_url, central_db, device_token, monkeypatch):
    box = Outbox()
    laps_of_two_runners(box)
    send(pg_url, device_token, box.body(1, 2))
    copies, copy = [], sync.push.copy_laps
    monkeypatch.setattr(sync.push, "copy_laps", lambda *args: copies.append(1) or copy(*args))
    before = snapshot(central_db)
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as conn, \
            pytest.raises(ProtocolError) as refused:
        push(conn, find_device(conn, device_token), validate_push(box.body(3, 12)),
             event="last-years-event")
    assert refused.value.code == "event_changed" and copies == []
    assert snapshot(central_db) == before

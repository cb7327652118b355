"""Group commit of laps: laps posted at once share a transaction, each answered for itself."""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from functools import partial

import pytest

from lapsync.errors import InputError
from lapsync.laptop.db import connect
from lapsync.laptop.groupcommit import (CHECKPOINT_LAPS, CHECKPOINT_NICE, Entry, GroupCommit,
                                        write_batch)
from lapsync.laptop.laps import in_this_language, write_lap
from lapsync.laptop.runners import update_runner
from tests.conftest import login

JSON = {"Accept": "application/json"}
MIN_LAP_MS = 60_000


def lap(user_id: str, number: int, **options) -> Entry:
    """Return a queued lap as the lap view makes it."""
    return Entry(partial(write_lap, start_number=number, user_id=user_id, min_lap_ms=MIN_LAP_MS,
                         **options))


def counts(db) -> tuple[int, int]:
    """Return the laps and the pending lap changes in the database."""
    return (db.execute("SELECT count(*) FROM lap").fetchone()[0],
            db.execute("SELECT count(*) FROM change WHERE entity = 'lap' AND pushed_at IS NULL")
            .fetchone()[0])


def user_id(db, name: str = "tom") -> str:
    """Return a user's id."""
    return db.execute("SELECT id FROM user WHERE name = ?", [name]).fetchone()[0]


def test_a_batch_keeps_every_rule_of_a_lap_and_a_refused_lap_fails_alone(app, db, runners):
    tom = user_id(db)
    batch = [lap(tom, 1, client_key="a"), lap(tom, 1, client_key="b"), lap(tom, 99),
             lap(tom, 2, client_key="c"), lap(tom, 1, client_key="a"),
             lap(tom, 1, client_key="d", confirm=True)]
    with app.test_request_context():
        write_batch(db, batch)
    first, too_soon, unknown, other, again, confirmed = batch
    assert all(entry.done for entry in batch)
    assert first.error is None and first.value["count"] == 1
    # The minimum lap time holds against a lap earlier in the same transaction.
    assert isinstance(too_soon.error, InputError) and too_soon.error.code == "too_soon"
    assert isinstance(unknown.error, InputError) and unknown.error.code == "unknown_runner"
    assert other.value["runner"]["start_number"] == 2 and other.value["count"] == 1
    # The same client key within the batch: the same lap, once.
    assert again.value["duplicate"] and again.value["lap"]["id"] == first.value["lap"]["id"]
    assert confirmed.value["count"] == 2 and 0 <= confirmed.value["since_previous_ms"] < 60_000
    assert counts(db) == (3, 3)
    assert not db.conn.in_transaction


def test_a_batch_that_cannot_write_answers_each_request_with_the_error_and_writes_nothing(
        app, db, runners):
    tom = user_id(db)
    blocker = connect(app.config["DATABASE"])
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    db.execute("PRAGMA busy_timeout=0")
    batch = [lap(tom, 1), lap(tom, 2)]
    try:
        with app.test_request_context():
            write_batch(db, batch)
    finally:
        blocker.conn.rollback()
        blocker.close()
    assert all(isinstance(entry.error, sqlite3.OperationalError) for entry in batch)
    assert all(entry.value is None for entry in batch)
    assert counts(db) == (0, 0)
    with app.test_request_context():  # the connection is usable again
        write_batch(db, batch := [lap(tom, 1)])
    assert batch[0].value["count"] == 1 and counts(db) == (1, 1)


def test_work_queued_while_a_leader_writes_is_committed_by_one_leader(app, runners):
    group, release, ran_by = GroupCommit(app.config["DATABASE"], "FULL"), threading.Event(), {}
    writing = threading.Event()

    def work(name: str, db):
        if name == "first":
            writing.set()
            release.wait(10)
        ran_by[name] = threading.current_thread().name
        return db.execute("SELECT count(*) FROM lap").fetchone()[0]
    threads = [threading.Thread(target=group.run, args=(partial(work, name),), name=name)
               for name in ("first", "a", "b", "c")]
    threads[0].start()
    # Inside its work the first leader has taken its batch (the lock alone does not say so).
    assert writing.wait(10)
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group.queued) < 3:  # the three wait while the first leader writes
        assert time.monotonic() < deadline, group.queued
        time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(10)
    group.close()
    assert ran_by["first"] == "first"
    assert len({ran_by[name] for name in "abc"}) == 1  # one leader ran all three


@pytest.mark.parametrize("leader, follower, expected", [
    ("en", "de", "wurde vor 0 s gezählt"), ("de", "en", "was counted 0 s ago")])
def test_a_refusal_run_by_another_request_is_in_the_poster_s_language(
        app, db, runners, leader, follower, expected):
    tom = user_id(db)
    with app.test_request_context():
        write_batch(db, [lap(tom, 1)])
    with app.test_request_context(headers={"Accept-Language": follower}):
        work = in_this_language(partial(write_lap, start_number=1, user_id=tom,
                                        min_lap_ms=MIN_LAP_MS))
    with app.test_request_context(headers={"Accept-Language": leader}):  # the leader runs it
        write_batch(db, batch := [Entry(work)])
    assert batch[0].error.code == "too_soon" and expected in batch[0].error.message
    assert counts(db) == (1, 1)


def test_helpers_posting_at_once_each_get_their_own_lap(app, runners, db):
    clients = []
    for _ in range(4):
        client = app.test_client()
        token = login(client, "tom")
        clients.append((client, token))
    answers: list[dict] = []

    def helper(client, token, helper_no: int, number: str) -> None:
        for i in range(5):
            response = client.post("/laps", headers={**JSON, "X-CSRFToken": token},
                                   data={"start_number": number, "client_key": f"{helper_no}-{i}",
                                         "confirm": "1"})
            answers.append(response.get_json() | {"status": response.status_code})
    threads = [threading.Thread(target=helper, args=(*clients[i], i, number))
               for i, number in enumerate(["1", "2", "17", "1"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a["status"] for a in answers] == [201] * 20
    assert len(answers) == 20 and len({a["lap"]["id"] for a in answers}) == 20
    assert counts(db) == (20, 20)
    # Every count answered is the runner's count right after that lap: 1..10 for number 1.
    ones = sorted(a["count"] for a in answers if a["runner"]["start_number"] == 1)
    assert ones == list(range(1, 11))



def test_a_retried_post_answers_its_lap_even_after_the_runner_got_another_number(
        app, db, runners):
    tom = user_id(db)
    with app.test_request_context():
        write_batch(db, batch := [lap(tom, 17, client_key="k")])
        update_runner(db, runners[17], 18, "Cleo Dahl", "6b", 6)
        write_batch(db, retried := [lap(tom, 17, client_key="k")])
    assert retried[0].error is None and retried[0].value["duplicate"]
    assert retried[0].value["lap"]["id"] == batch[0].value["lap"]["id"]
    assert counts(db) == (1, 1)


def test_the_checkpoint_thread_moves_committed_laps_into_the_database_file(app, db, runners):
    group = GroupCommit(app.config["DATABASE"], "FULL")

    def laps_in_file() -> int:
        """Count the laps in the database file itself, not in its WAL."""
        in_file = sqlite3.connect(f"file:{app.config['DATABASE']}?immutable=1", uri=True)
        try:
            return in_file.execute("SELECT count(*) FROM lap").fetchone()[0]
        finally:
            in_file.close()
    tom = user_id(db)
    with app.test_request_context():
        for i in range(CHECKPOINT_LAPS - 1):
            group.run(partial(write_lap, start_number=17, user_id=tom, min_lap_ms=0,
                              client_key=f"k{i}"))
        assert laps_in_file() == 0  # the commits themselves leave the laps in the WAL
        group.run(partial(write_lap, start_number=17, user_id=tom, min_lap_ms=0))
    deadline = time.monotonic() + 10
    while laps_in_file() < CHECKPOINT_LAPS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert laps_in_file() == CHECKPOINT_LAPS
    checkpointer = group.checkpoints.thread
    if sys.platform.startswith("linux"):  # it yields the core to the helpers' laps
        assert (os.getpriority(os.PRIO_PROCESS, checkpointer.native_id)
                == os.getpriority(os.PRIO_PROCESS, 0) + CHECKPOINT_NICE)
    group.close()

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
from sync.devices import find_device
from sync.push import push
from tests.central.test_api import checked, post_push
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
    assert refused.value.code == "seq_gap" and refused.value.extra == {"acked_seq": 0,
                                                                       "resume_from": 1}
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

"""Pulls: pages by server change id, nothing skipped, a laptop's own changes stay home."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from lapsync.protocol import ProtocolError, validate_push
from sync.devices import find_device, register_device
from sync.pull import parse_paging, pull
from sync.push import push
from tests.pg import Outbox


def send(conn, token: str, box: Outbox) -> dict:
    """Push the whole outbox of box as the device of token."""
    return push(conn, find_device(conn, token), validate_push(box.body()))


def pull_all(conn, token: str, cursor: int = 0, limit: int = 1000) -> tuple[list[dict], int]:
    """Pull pages until more is false; return (changes, final cursor)."""
    changes = []
    while True:
        page = pull(conn, find_device(conn, token), cursor, limit)
        assert page["next_cursor"] >= cursor
        changes += page["changes"]
        cursor = page["next_cursor"]
        if not page["more"]:
            return changes, cursor


def test_pages_follow_the_cursor_and_return_everything_once(central_db):
    writer, reader = register_device(central_db, "writer"), register_device(central_db, "reader")
    box = Outbox()
    runners = [box.runner(n, f"Runner {n}") for n in range(1, 26)]
    send(central_db, writer, box)
    send(central_db, reader, Outbox())
    changes, cursor = pull_all(central_db, reader, limit=4)
    assert sorted(c["id"] for c in changes if c["entity"] == "runner") == sorted(runners)
    cursors = [c["cursor"] for c in changes]
    assert cursors == sorted(set(cursors)) and cursor == cursors[-1]
    again = pull(central_db, find_device(central_db, reader), cursor, 4)
    assert again["changes"] == [] and again["more"] is False and again["next_cursor"] == cursor


def test_a_runner_edited_twice_is_pulled_once_in_its_latest_state(central_db):
    writer, reader = register_device(central_db, "writer"), register_device(central_db, "reader")
    box = Outbox()
    runner = box.runner(7, "Old Name")
    box.runner(8, "New Name", runner_id=runner)
    send(central_db, writer, box)
    changes, _ = pull_all(central_db, reader)
    assert [(c["entity"], c["data"]["name"]) for c in changes] == [("runner", "New Name")]


def test_own_changes_are_not_sent_back_but_the_cursor_moves_past_them(central_db):
    device_token = register_device(central_db, "laptop-a")
    box = Outbox()
    for n in range(1, 6):
        box.runner(n, f"Runner {n}")
    send(central_db, device_token, box)
    page = pull(central_db, find_device(central_db, device_token), 0, 2)
    assert page["changes"] == [] and page["more"] is True and page["next_cursor"] > 0
    changes, cursor = pull_all(central_db, device_token, limit=2)
    last = central_db.execute("SELECT max(change_id) AS m FROM runner").fetchone()["m"]
    assert changes == [] and cursor == last


def test_a_pull_records_the_devices_last_contact(central_db, device_token):
    pull(central_db, find_device(central_db, device_token), 0, 10)
    assert central_db.execute("SELECT last_contact FROM device").fetchone()["last_contact"]


def waiting_for_lock(conn, pid: int) -> bool:
    """Tell whether backend pid waits for a lock."""
    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                       [pid]).fetchone()
    return row is not None and row["wait_event_type"] == "Lock"


def test_the_cursor_skips_nothing_when_transactions_commit_out_of_order(pg_url, central_db):
    """Regression guard for the bigserial trap: a late commit must not hide below a cursor."""
    tokens = {name: register_device(central_db, name) for name in ("a", "b", "reader")}
    boxes = {name: Outbox() for name in ("a", "b")}
    ids = {name: boxes[name].runner(i + 1, f"Runner {name}") for i, name in enumerate(boxes)}
    send(central_db, tokens["reader"], Outbox())
    conn_a = psycopg.connect(pg_url, autocommit=True, row_factory=dict_row)
    conn_b = psycopg.connect(pg_url, autocommit=True, row_factory=dict_row)
    b_applied, release_b, failures = threading.Event(), threading.Event(), []

    def writer_b():
        try:
            with conn_b.transaction():          # B began first ...
                conn_b.execute("SELECT txid_current()")
                began_b.set()
                go_b.wait(10)                    # ... and writes after A took the lock
                push(conn_b, find_device(conn_b, tokens["b"]), validate_push(boxes["b"].body()))
                b_applied.set()
                release_b.wait(10)               # ... and commits last
        except Exception as exc:
            failures.append(exc)

    began_b, go_b = threading.Event(), threading.Event()
    thread = threading.Thread(target=writer_b)
    try:
        with conn_a.transaction():
            thread.start()
            assert began_b.wait(10)
            push(conn_a, find_device(conn_a, tokens["a"]), validate_push(boxes["a"].body()))
            go_b.set()
            deadline = time.monotonic() + 10
            while not waiting_for_lock(central_db, conn_b.info.backend_pid):
                assert time.monotonic() < deadline, "B never waited for the write lock"
                time.sleep(0.01)
            seen, cursor = pull_all(central_db, tokens["reader"])
            assert seen == []                    # nothing committed yet
        assert b_applied.wait(10)                # A committed; B applied, not committed
        seen, cursor = pull_all(central_db, tokens["reader"], cursor)
        assert [c["id"] for c in seen if c["entity"] == "runner"] == [ids["a"]]
        release_b.set()
        thread.join(10)
        seen, cursor = pull_all(central_db, tokens["reader"], cursor)
        assert [c["id"] for c in seen if c["entity"] == "runner"] == [ids["b"]]
        assert failures == []
    finally:
        go_b.set()
        release_b.set()
        thread.join(10)
        conn_a.close()
        conn_b.close()


@pytest.mark.parametrize("cursor,limit,code", [
    ("-1", None, "invalid_cursor"), ("1.5", None, "invalid_cursor"), ("", None, "invalid_cursor"),
    ("9" * 19, None, "invalid_cursor"), ("١", None, "invalid_cursor"),
    (None, "0", "invalid_limit"), (None, "1001", "invalid_limit"), (None, "x", "invalid_limit"),
])
def test_bad_paging_arguments_are_refused(cursor, limit, code):
    with pytest.raises(ProtocolError) as refused:
        parse_paging(cursor, limit)
    assert (refused.value.code, refused.value.status) == (code, 400)


def test_paging_defaults():
    assert parse_paging(None, None) == (0, 1000)
    assert parse_paging("42", "7") == (42, 7)


def plan_nodes(plan: dict) -> list[dict]:
    """Return every node of an EXPLAIN (FORMAT JSON) plan."""
    return [plan] + [node for child in plan.get("Plans", []) for node in plan_nodes(child)]


def seq_scanned(conn, cursor: int, laptop: str) -> set[str]:
    """Return the tables the pull's plan reads whole (Seq Scan) at this cursor."""
    from sync.pull import PULL_SQL
    row = conn.execute("EXPLAIN (FORMAT JSON) " + PULL_SQL,
                       {"cursor": cursor, "limit": 1001, "laptop": laptop, "trusted": False,
                        "withheld": "!withheld"}).fetchone()
    plan = row["QUERY PLAN"][0]["Plan"]
    return {n["Relation Name"] for n in plan_nodes(plan) if n["Node Type"] == "Seq Scan"}


def test_the_pull_plan_reads_by_change_id_even_before_the_first_analyze(new_pg_url):
    """Regression: right after a big push, before autovacuum had analysed runner_total
    (full of dead rows), the pull planned a parallel seq scan of all of it: ~10 ms at
    1M laps (bench/bench_sync_cost.py), growing with the table, for nothing to send."""
    with psycopg.connect(new_pg_url, autocommit=True, row_factory=dict_row) as conn:
        check_pull_plan_before_and_after_analyze(conn)


def check_pull_plan_before_and_after_analyze(central_db) -> None:
    """Fill runner_total with dead rows; the pull must use its change_id index before and after ANALYZE."""
    central_db.execute("INSERT INTO runner_total (runner_id, laps, change_id) SELECT 'r' || n, "
                       "(n % 40 = 0)::int, nextval('change_id_seq') FROM generate_series(1, 200000) n")
    central_db.execute("DELETE FROM runner_total WHERE laps = 0")  # dead rows, as updates leave
    cursor = central_db.execute("SELECT last_value AS c FROM change_id_seq").fetchone()["c"]
    assert central_db.execute("SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                              "WHERE relname = 'runner_total'").fetchone() == \
        {"last_analyze": None, "last_autoanalyze": None}
    assert "runner_total" not in seq_scanned(central_db, cursor, "laptop-x")
    central_db.execute("ANALYZE runner_total")
    assert "runner_total" not in seq_scanned(central_db, cursor, "laptop-x")

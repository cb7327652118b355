"""Totals reach pulls through their log (total_change): once each, at their latest change id,
in change-id order, whatever the paging; the log keeps only rows a total still needs."""
from __future__ import annotations

from sync.db import write_transaction
from sync.devices import find_device, register_device
from sync.ledger import PRUNE_EVERY, TOTALS_PRUNE, Deltas, apply_totals
from sync.pull import pull

RUNNERS = [f"runner{n:02d}" for n in range(30)]


def count(conn, runners: list[str], laptop: str = "laptop-w") -> None:
    """Add one lap for each of runners, as a push's totals do (under the write lock)."""
    deltas = Deltas()
    for runner_id in runners:
        deltas.add(runner_id, laptop, 1)
    with write_transaction(conn):
        apply_totals(conn, deltas)


def pulled_totals(conn, token: str, cursor: int, limit: int) -> list[tuple[int, str, int]]:
    """Pull every page after cursor; return the totals as (cursor, runner, other_laps)."""
    found = []
    while True:
        page = pull(conn, find_device(conn, token), cursor, limit)
        found += [(c["cursor"], c["id"], c["data"]["other_laps"])
                  for c in page["changes"] if c["entity"] == "total"]
        cursor = page["next_cursor"]
        if not page["more"]:
            return found


def stored_totals(conn, after: int = 0) -> list[tuple[int, str, int]]:
    """Return runner_total's rows after a change id as (change_id, runner, laps), by change id."""
    return [(r["change_id"], r["runner_id"], r["laps"]) for r in conn.execute(
        "SELECT change_id, runner_id, laps FROM runner_total WHERE change_id > %s "
        "ORDER BY change_id", [after])]


def test_totals_are_pulled_once_at_their_latest_change_id_in_order(central_db):
    token = register_device(central_db, "reader")
    count(central_db, RUNNERS)            # every runner: rows inserted
    count(central_db, RUNNERS[:10])       # some again: updated
    middle = central_db.execute("SELECT last_value FROM change_id_seq").fetchone()["last_value"]
    count(central_db, RUNNERS[5:15] + ["newcomer"])   # updated and inserted in one batch
    for limit in (1, 4, 7, 1000):
        assert pulled_totals(central_db, token, 0, limit) == stored_totals(central_db)
        assert pulled_totals(central_db, token, middle, limit) == stored_totals(central_db, middle)
    assert [laps for _, _, laps in stored_totals(central_db)][-11:] == [3] * 5 + [2] * 5 + [1]


def last_change_id(conn) -> int:
    """Return the change id handed out last."""
    return conn.execute("SELECT last_value FROM change_id_seq").fetchone()["last_value"]


def next_block(conn, before: int = 0) -> None:
    """Move the change ids to BEFORE ids short of the next block of PRUNE_EVERY."""
    block = last_change_id(conn) // PRUNE_EVERY + 1
    conn.execute("SELECT setval('change_id_seq', %s)", [block * PRUNE_EVERY - before])


def test_the_log_is_pruned_when_change_ids_enter_a_new_block_keeping_what_totals_need(central_db):
    next_block(central_db)                # the test's batches start a block of their own
    count(central_db, RUNNERS)
    for _ in range(5):
        count(central_db, RUNNERS[1:])    # runner00 keeps its first change id
    # Within a block nothing is pruned: rows no total needs wait there (pulls skip them).
    assert central_db.execute("SELECT count(*) FROM total_change").fetchone()["count"] == 7
    next_block(central_db, before=3)
    count(central_db, RUNNERS[1:])        # its change ids enter the next block
    rows = central_db.execute("SELECT first_id, last_id, runner_ids FROM total_change "
                              "ORDER BY last_id").fetchall()
    ids = [change_id for change_id, _, _ in stored_totals(central_db)]
    assert len(rows) == 2   # the first batch's (runner00 is still there) and the newest
    assert all(any(r["first_id"] <= i <= r["last_id"] for r in rows) for i in ids)
    assert "runner00" in rows[0]["runner_ids"]


def test_a_batch_within_a_block_reads_no_total_to_prune(central_db):
    next_block(central_db)
    for _ in range(3):
        count(central_db, RUNNERS)
    with central_db.transaction():
        plan = [row["QUERY PLAN"] for row in central_db.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + TOTALS_PRUNE,
            {"every": PRUNE_EVERY})]
    scans = [line for line in plan if "on runner_total" in line]
    assert scans and all("never executed" in line for line in scans), plan


def test_a_pull_with_nothing_new_reads_no_total(central_db):
    token = register_device(central_db, "reader")
    count(central_db, RUNNERS)
    cursor = central_db.execute("SELECT last_value FROM change_id_seq").fetchone()["last_value"]
    page = pull(central_db, find_device(central_db, token), cursor, 10)
    assert (page["changes"], page["more"], page["next_cursor"]) == ([], False, cursor)

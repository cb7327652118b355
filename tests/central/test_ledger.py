"""Central's ledger on a real PostgreSQL: runner register, lap totals, voids, clashes.

Each function of sync/ledger.py is called directly on a fresh central database
(`central_db`, autocommit, rows as dicts) and the rows it leaves are compared with
the exact values expected.
"""
from __future__ import annotations

import pytest

from sync.ledger import (
    Deltas,
    apply_totals,
    apply_void,
    detect_clashes,
    record_clash,
    upsert_runner,
)

LAPTOP_A, LAPTOP_B = "laptop-aaaa", "laptop-bbbb"


def runner(runner_id: str, start_number: int = 7, name: str = "Anna Berg", class_: str = "5a",
           hlc: str = "1700000000000.0001", origin: str = LAPTOP_A, grade: int = 5) -> dict:
    """Return a runner change as push and roster hand it to the ledger."""
    return {"id": runner_id, "start_number": start_number, "name": name, "class": class_,
            "grade": grade, "hlc": hlc, "origin": origin}


def stored_runner(conn, runner_id: str) -> dict | None:
    """Return the runner row without its change id."""
    return conn.execute("SELECT id, start_number, name, class, grade, hlc, origin "
                        "FROM runner WHERE id = %s", [runner_id]).fetchone()


def add_lap(conn, lap_id: str, runner_id: str, laptop: str = LAPTOP_A) -> None:
    """Insert a lap row the way push does (no totals)."""
    conn.execute("INSERT INTO lap (id, runner_id, created_by, device_time, device_id, pushed_by, "
                 "received_at, clock_offset_ms) VALUES (%s, %s, 'u1', 1, %s, 1, 1, 0)",
                 [lap_id, runner_id, laptop])


def void(lap_id: str, voided: bool = True, hlc: str = "1700000000000.0005",
         origin: str = LAPTOP_A) -> dict:
    """Return a void (or restore) change of a lap."""
    return {"lap_id": lap_id, "voided": voided, "at": 1_700_000_000_000, "by": "u1",
            "reason": "double count" if voided else None, "hlc": hlc, "origin": origin}


def totals(conn) -> dict:
    """Return runner_total as {runner_id: laps}."""
    return {r["runner_id"]: r["laps"] for r in conn.execute("SELECT runner_id, laps FROM runner_total")}


def laptop_totals(conn) -> dict:
    """Return device_runner_laps as {(laptop_id, runner_id): laps}."""
    return {(r["laptop_id"], r["runner_id"]): r["laps"]
            for r in conn.execute("SELECT laptop_id, runner_id, laps FROM device_runner_laps")}


def change_ids(conn) -> dict:
    """Return runner_total's change ids by runner."""
    return {r["runner_id"]: r["change_id"]
            for r in conn.execute("SELECT runner_id, change_id FROM runner_total")}


def clashes(conn) -> list[tuple]:
    """Return every clash as (kind, value, runner_a, runner_b, detected_at, resolved_at)."""
    return [tuple(r.values()) for r in conn.execute(
        "SELECT kind, value, runner_a, runner_b, detected_at, resolved_at FROM clash "
        "ORDER BY kind, value, runner_a")]


# ---- Deltas -----------------------------------------------------------------------

def test_deltas_count_per_runner_and_per_laptop_and_runner():
    deltas = Deltas()
    assert deltas.runner == {} and deltas.laptop == {}
    deltas.add("r1", LAPTOP_A, 1)
    deltas.add("r1", LAPTOP_B, 2)
    deltas.add("r2", LAPTOP_A, -1)
    assert dict(deltas.runner) == {"r1": 3, "r2": -1}
    assert dict(deltas.laptop) == {(LAPTOP_A, "r1"): 1, (LAPTOP_B, "r1"): 2, (LAPTOP_A, "r2"): -1}


def test_merging_deltas_adds_both_counters():
    one, other = Deltas(), Deltas()
    one.add("r1", LAPTOP_A, 2)
    other.add("r1", LAPTOP_A, 3)
    other.add("r2", LAPTOP_B, -1)
    one.merge(other)
    assert dict(one.runner) == {"r1": 5, "r2": -1}
    assert dict(one.laptop) == {(LAPTOP_A, "r1"): 5, (LAPTOP_B, "r2"): -1}
    assert dict(other.runner) == {"r1": 3, "r2": -1}  # the other part is left as it was


@pytest.mark.parametrize("laptops", [[LAPTOP_A] * 4, [LAPTOP_A, LAPTOP_B, LAPTOP_A, LAPTOP_B]])
def test_add_laps_counts_each_pair_once_whether_one_laptop_or_several(laptops):
    deltas = Deltas()
    deltas.add("r1", LAPTOP_A, 1)
    deltas.add_laps(["r1", "r2", "r1", "r1"], laptops)
    assert dict(deltas.runner) == {"r1": 4, "r2": 1}
    expected = {}
    for laptop, runner_id in zip(laptops, ["r1", "r2", "r1", "r1"]):
        expected[(laptop, runner_id)] = expected.get((laptop, runner_id), 0) + 1
    expected[(LAPTOP_A, "r1")] += 1
    assert dict(deltas.laptop) == expected


# ---- apply_totals -------------------------------------------------------------------

def test_apply_totals_inserts_then_adds_with_fresh_change_ids(central_db):
    deltas = Deltas()
    deltas.add_laps(["r1", "r1", "r2"], [LAPTOP_A, LAPTOP_A, LAPTOP_A])
    apply_totals(central_db, deltas)
    assert totals(central_db) == {"r1": 2, "r2": 1}
    assert laptop_totals(central_db) == {(LAPTOP_A, "r1"): 2, (LAPTOP_A, "r2"): 1}
    first = change_ids(central_db)

    more = Deltas()
    more.add("r1", LAPTOP_A, 3)       # existing rows: updated
    more.add("r3", LAPTOP_B, 1)       # new rows in the same batch: inserted
    more.add("r2", LAPTOP_B, -1)      # existing runner, new (laptop, runner) row
    apply_totals(central_db, more)
    assert totals(central_db) == {"r1": 5, "r2": 0, "r3": 1}
    assert laptop_totals(central_db) == {(LAPTOP_A, "r1"): 5, (LAPTOP_A, "r2"): 1,
                                         (LAPTOP_B, "r3"): 1, (LAPTOP_B, "r2"): -1}
    second = change_ids(central_db)
    assert second["r1"] > max(first.values()) and second["r2"] > max(first.values())
    assert len(set(second.values())) == 3  # every changed total gets its own new change id


def test_apply_totals_skips_zero_deltas(central_db):
    deltas = Deltas()
    deltas.add("r1", LAPTOP_A, 1)
    deltas.add("r1", LAPTOP_A, -1)
    deltas.add("r2", LAPTOP_A, 1)
    apply_totals(central_db, deltas)
    assert totals(central_db) == {"r2": 1}
    assert laptop_totals(central_db) == {(LAPTOP_A, "r2"): 1}
    before = change_ids(central_db)
    zero = Deltas()
    zero.add("r2", LAPTOP_A, 0)
    apply_totals(central_db, zero)
    assert change_ids(central_db) == before  # nothing changed: no new change id either


def test_apply_totals_of_many_laptops_of_one_runner(central_db):
    deltas = Deltas()
    deltas.add_laps(["r1", "r1", "r1"], [LAPTOP_A, LAPTOP_B, LAPTOP_B])
    apply_totals(central_db, deltas)
    apply_totals(central_db, deltas)
    assert totals(central_db) == {"r1": 6}
    assert laptop_totals(central_db) == {(LAPTOP_A, "r1"): 2, (LAPTOP_B, "r1"): 4}


def test_apply_totals_with_no_deltas_writes_nothing(central_db):
    apply_totals(central_db, Deltas())
    assert totals(central_db) == {} and laptop_totals(central_db) == {}


# ---- apply_void ---------------------------------------------------------------------

def stored_void(conn, lap_id: str) -> dict | None:
    """Return the lap_void row without its change id."""
    return conn.execute("SELECT lap_id, voided, at, by, reason, hlc, origin FROM lap_void "
                        "WHERE lap_id = %s", [lap_id]).fetchone()


def test_a_void_then_a_restore_move_the_totals_of_the_laps_laptop(central_db):
    add_lap(central_db, "lap1", "r1", LAPTOP_B)
    deltas = Deltas()
    apply_void(central_db, void("lap1", hlc="1700000000000.0005"), deltas)
    assert dict(deltas.runner) == {"r1": -1} and dict(deltas.laptop) == {(LAPTOP_B, "r1"): -1}
    assert stored_void(central_db, "lap1") == {
        "lap_id": "lap1", "voided": True, "at": 1_700_000_000_000, "by": "u1",
        "reason": "double count", "hlc": "1700000000000.0005", "origin": LAPTOP_A}
    apply_void(central_db, void("lap1", voided=False, hlc="1700000000000.0006"), deltas)
    assert dict(deltas.runner) == {"r1": 0} and dict(deltas.laptop) == {(LAPTOP_B, "r1"): 0}
    assert stored_void(central_db, "lap1")["voided"] is False


def test_an_older_void_changes_nothing(central_db):
    add_lap(central_db, "lap1", "r1")
    deltas = Deltas()
    apply_void(central_db, void("lap1", hlc="1700000000000.0005"), deltas)
    apply_void(central_db, void("lap1", voided=False, hlc="1700000000000.0004"), deltas)
    apply_void(central_db, void("lap1", voided=False, hlc="1700000000000.0005"), deltas)  # same
    assert dict(deltas.runner) == {"r1": -1}
    assert stored_void(central_db, "lap1")["voided"] is True


def test_the_same_stamp_is_decided_by_origin(central_db):
    add_lap(central_db, "lap1", "r1")
    deltas = Deltas()
    apply_void(central_db, void("lap1", hlc="1700000000000.0005", origin=LAPTOP_B), deltas)
    apply_void(central_db, void("lap1", voided=False, hlc="1700000000000.0005",
                                origin=LAPTOP_A), deltas)  # LAPTOP_A < LAPTOP_B: loses
    assert stored_void(central_db, "lap1")["voided"] is True
    apply_void(central_db, void("lap1", voided=False, hlc="1700000000000.0005",
                                origin="laptop-cccc"), deltas)  # greater origin wins
    assert stored_void(central_db, "lap1")["voided"] is False
    assert dict(deltas.runner) == {"r1": 0}


def test_a_newer_void_of_a_voided_lap_is_stored_but_counts_once(central_db):
    add_lap(central_db, "lap1", "r1")
    deltas = Deltas()
    apply_void(central_db, void("lap1", hlc="1700000000000.0005"), deltas)
    apply_void(central_db, void("lap1", hlc="1700000000000.0009", origin=LAPTOP_B), deltas)
    assert dict(deltas.runner) == {"r1": -1}
    assert stored_void(central_db, "lap1")["hlc"] == "1700000000000.0009"
    assert stored_void(central_db, "lap1")["origin"] == LAPTOP_B


def test_a_restore_of_a_never_voided_lap_changes_no_total(central_db):
    add_lap(central_db, "lap1", "r1")
    deltas = Deltas()
    apply_void(central_db, void("lap1", voided=False), deltas)
    assert dict(deltas.runner) == {} and dict(deltas.laptop) == {}
    assert stored_void(central_db, "lap1")["voided"] is False


def test_a_void_before_its_lap_is_stored_and_moves_no_total(central_db):
    deltas = Deltas()
    apply_void(central_db, void("lap-later"), deltas)
    assert dict(deltas.runner) == {} and dict(deltas.laptop) == {}
    assert stored_void(central_db, "lap-later")["voided"] is True


# ---- runners ------------------------------------------------------------------------

def test_upsert_runner_newer_only_keeps_the_latest_by_hlc_then_origin(central_db):
    first = upsert_runner(central_db, runner("r1", hlc="1700000000000.0002"), newer_only=True)
    assert first == {"id": "r1", "merged_into": None, "start_number": 7}
    assert upsert_runner(central_db, runner("r1", name="Older", hlc="1700000000000.0001"),
                         newer_only=True) is None
    assert upsert_runner(central_db, runner("r1", name="Same", hlc="1700000000000.0002"),
                         newer_only=True) is None
    assert stored_runner(central_db, "r1")["name"] == "Anna Berg"
    assert upsert_runner(central_db, runner("r1", name="Tie", hlc="1700000000000.0002",
                                            origin=LAPTOP_B), newer_only=True) == {
        "id": "r1", "merged_into": None, "start_number": 7}
    assert stored_runner(central_db, "r1") == {
        "id": "r1", "start_number": 7, "name": "Tie", "class": "5a", "grade": 5,
        "hlc": "1700000000000.0002", "origin": LAPTOP_B}
    newer = runner("r1", start_number=8, name="Ann", class_="6b", grade=6,
                   hlc="1700000000000.0003", origin=LAPTOP_A)
    assert upsert_runner(central_db, newer, newer_only=True) == {"id": "r1", "merged_into": None,
                                                                  "start_number": 8}
    assert stored_runner(central_db, "r1") == {k: v for k, v in newer.items()}


def test_upsert_runner_of_central_applies_whatever_the_stamp(central_db):
    upsert_runner(central_db, runner("r1", hlc="1700000000000.0009"), newer_only=True)
    before = central_db.execute("SELECT change_id FROM runner WHERE id = 'r1'").fetchone()["change_id"]
    older = runner("r1", start_number=9, name="Central", hlc="1700000000000.0001")
    assert upsert_runner(central_db, older, newer_only=False) == {"id": "r1", "merged_into": None,
                                                                   "start_number": 9}
    assert stored_runner(central_db, "r1") == older
    after = central_db.execute("SELECT change_id FROM runner WHERE id = 'r1'").fetchone()["change_id"]
    assert after > before


def test_upsert_runner_returns_merged_into(central_db):
    upsert_runner(central_db, runner("r1"), newer_only=False)
    central_db.execute("UPDATE runner SET merged_into = 'r2' WHERE id = 'r1'")
    assert upsert_runner(central_db, runner("r1", hlc="1700000000000.0002"), newer_only=True) == {
        "id": "r1", "merged_into": "r2", "start_number": 7}


# ---- clashes ------------------------------------------------------------------------

def test_record_clash_orders_the_pair_and_reopens_only_a_resolved_one(central_db):
    record_clash(central_db, "start_number", "7", "r2", "r1", now=100)
    assert clashes(central_db) == [("start_number", "7", "r1", "r2", 100, None)]
    record_clash(central_db, "start_number", "7", "r1", "r2", now=200)  # still open: unchanged
    assert clashes(central_db) == [("start_number", "7", "r1", "r2", 100, None)]
    central_db.execute("UPDATE clash SET resolved_at = 150")
    record_clash(central_db, "start_number", "7", "r2", "r1", now=300)
    assert clashes(central_db) == [("start_number", "7", "r1", "r2", 300, None)]


def write(conn, change: dict, now: int) -> None:
    """Store a runner and detect its clashes, as push does."""
    upsert_runner(conn, change, newer_only=False)
    detect_clashes(conn, change, now)


def test_detect_clashes_of_number_and_of_name_in_class(central_db):
    write(central_db, runner("r1", start_number=7, name="Anna Berg", class_="5a"), now=10)
    assert clashes(central_db) == []  # alone: no clash with itself
    write(central_db, runner("r2", start_number=7, name="Bo Lind", class_="5a"), now=20)
    write(central_db, runner("r3", start_number=8, name="ANNA berg", class_="5A"), now=30)
    write(central_db, runner("r4", start_number=9, name="Anna Berg", class_="6a"), now=40)
    assert clashes(central_db) == [("name", "anna berg / 5a", "r1", "r3", 30, None),
                                   ("start_number", "7", "r1", "r2", 20, None)]


@pytest.mark.parametrize("one, other", [
    (("Lena Fuß", "7a"), ("Lena  Fuss", "7A")),       # ß as ss, spacing, case
    (("Lena Müller", "7a"), ("lena mueller", "7 a")),  # ä as ae, a class typed with a space
    (("Zoë Weiß", "8b"), ("Zoe Weiss", "8B")),
])
def test_one_child_typed_two_ways_in_one_class_is_a_clash(central_db, one, other):
    write(central_db, runner("r1", start_number=1, name=one[0], class_=one[1]), now=10)
    write(central_db, runner("r2", start_number=2, name=other[0], class_=other[1]), now=20)
    assert [(kind, a, b) for kind, _value, a, b, _at, _end in clashes(central_db)] == [("name", "r1", "r2")]
    write(central_db, runner("r2", start_number=2, name="Lena Berg", class_=other[1]), now=30)
    assert [row[5] for row in clashes(central_db)] == [30]  # renamed: the clash is resolved


def test_a_runner_with_both_number_and_name_clashes_twice(central_db):
    write(central_db, runner("r1"), now=10)
    write(central_db, runner("r2"), now=20)
    assert clashes(central_db) == [("name", "anna berg / 5a", "r1", "r2", 20, None),
                                   ("start_number", "7", "r1", "r2", 20, None)]


def test_an_edit_resolves_the_clashes_that_no_longer_hold(central_db):
    write(central_db, runner("r1"), now=10)
    write(central_db, runner("r2", name="Bo Lind"), now=20)
    write(central_db, runner("r3", start_number=3), now=25)  # name clash with r1
    write(central_db, runner("r2", start_number=8, name="Bo Lind"), now=30)
    assert clashes(central_db) == [("name", "anna berg / 5a", "r1", "r3", 25, None),
                                   ("start_number", "7", "r1", "r2", 20, 30)]
    write(central_db, runner("r1", start_number=1, name="Cleo", class_="5a"), now=40)
    assert clashes(central_db) == [("name", "anna berg / 5a", "r1", "r3", 25, 40),
                                   ("start_number", "7", "r1", "r2", 20, 30)]
    write(central_db, runner("r2", start_number=1, name="Bo Lind"), now=50)  # clashes again
    assert clashes(central_db) == [("name", "anna berg / 5a", "r1", "r3", 25, 40),
                                   ("start_number", "1", "r1", "r2", 50, None),
                                   ("start_number", "7", "r1", "r2", 20, 30)]


def test_a_merged_runner_clashes_with_nobody(central_db):
    write(central_db, runner("r1"), now=10)
    central_db.execute("UPDATE runner SET merged_into = 'r9' WHERE id = 'r1'")
    write(central_db, runner("r2"), now=20)
    assert clashes(central_db) == []

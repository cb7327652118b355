"""One count everywhere: lap feedback, "first lap", the recent list and the runners page
count this laptop's laps plus the other laptops' laps as last pulled."""
from __future__ import annotations

from lapsync.laptop.client.pull import apply_change
from lapsync.laptop.db import device_id, transaction
from lapsync.laptop.laps import (LAP_CONTEXT_SQL, known_lap, lap_count, record_lap, recent_laps,
                                 set_void)
from lapsync.laptop.runners import search_runners

JSON = {"Accept": "application/json"}


def pull_total(db, runner_id: str, other_laps: int) -> None:
    """Apply a pulled total: the runner's laps on other laptops."""
    with transaction(db):
        assert apply_change(db, {"entity": "total", "id": runner_id,
                                 "data": {"runner_id": runner_id, "other_laps": other_laps}},
                            device_id(db))


def tom(db) -> str:
    """Return the teacher's user id."""
    return db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]


def lap(db, number: int, **extra) -> dict:
    """Record a lap without a minimum lap time; return lap_result."""
    return record_lap(db, number, tom(db), 0, **extra)


def test_the_first_lap_anywhere_is_the_first_lap(db, runners):
    result = lap(db, 1)
    assert (result["count"], result["own_count"], result["first_lap"]) == (1, 1, True)
    assert (result["since_previous_ms"], result["previous_elsewhere"]) == (None, False)


def test_a_first_lap_here_after_laps_elsewhere_is_not_the_first_lap(db, runners):
    pull_total(db, runners[1], 2)
    result = lap(db, 1)
    assert (result["count"], result["own_count"], result["first_lap"]) == (3, 1, False)
    assert (result["since_previous_ms"], result["previous_elsewhere"]) == (None, True)
    second = lap(db, 1)
    assert (second["count"], second["own_count"], second["previous_elsewhere"]) == (4, 2, False)
    assert second["since_previous_ms"] >= 0


def test_a_voided_own_lap_leaves_the_count_and_the_previous_lap(db, runners):
    first = lap(db, 1)
    set_void(db, first["lap"]["id"], tom(db), True)
    again = lap(db, 1)
    assert (again["count"], again["first_lap"], again["since_previous_ms"]) == (1, True, None)


def test_a_retried_lap_answers_the_same_counts_and_its_own_previous_lap(db, runners):
    lap(db, 1)
    pull_total(db, runners[1], 1)
    second = lap(db, 1, client_key="key-2")
    again = known_lap(db, "key-2")
    assert again["duplicate"] and again["lap"] == second["lap"]
    assert (again["count"], again["own_count"], again["first_lap"]) == (3, 2, False)
    assert again["since_previous_ms"] == second["since_previous_ms"] is not None


def test_the_json_answer_carries_the_counts(teacher, db, runners):
    pull_total(db, runners[17], 4)
    body = teacher.post("/laps", data={"start_number": "17"},
                        headers={**JSON, "X-CSRFToken": teacher.csrf}).get_json()
    assert {k: body[k] for k in ("count", "own_count", "first_lap", "previous_elsewhere")} == {
        "count": 5, "own_count": 1, "first_lap": False, "previous_elsewhere": True}


def test_recent_laps_and_the_runners_page_use_the_same_total(db, teacher, runners):
    pull_total(db, runners[1], 2)
    lap(db, 1)
    lap(db, 2)
    rows = {r["start_number"]: r for r in recent_laps(db)}
    assert (rows[1]["count"], rows[1]["own_count"]) == (3, 1) == (lap_count(db, runners[1]), 1)
    assert (rows[2]["count"], rows[2]["own_count"]) == (1, 1)
    counts = {r["start_number"]: (r["laps"], r["own_laps"]) for r in search_runners(db)}
    assert counts == {1: (3, 1), 2: (1, 1), 17: (0, 0)}
    page = teacher.get("/runners/").get_data(as_text=True)
    assert "Laps (all laptops)" in page
    assert '<td class="laps" data-own="1">3 <span class="hint">(1 on this laptop)</span></td>' in page
    assert '<td class="laps" data-own="1">1</td>' in page


def test_a_runner_counted_only_elsewhere_shows_its_laps_here(db, runners):
    pull_total(db, runners[17], 5)
    assert {r["start_number"]: r["laps"] for r in search_runners(db, "17")} == {17: 5}


def test_a_lap_reads_its_runners_counting_laps_from_an_index_alone(db, runners):
    # ~200 counting laps a runner at 1M laps: a table row read for each cost ~70 µs a lap.
    plan = " ".join(row[3] for row in db.execute(
        f"EXPLAIN QUERY PLAN {LAP_CONTEXT_SQL}", {"number": 1, "key": "k"}))
    assert plan.count("SEARCH l USING COVERING INDEX lap_runner") == 2, plan
    last = " ".join(row[3] for row in db.execute(
        "EXPLAIN QUERY PLAN SELECT rowid, time FROM lap WHERE runner_id = ? "
        "AND voided_at IS NULL AND rowid < ? ORDER BY rowid DESC LIMIT 1", ["r", 5]))
    assert "lap_runner" in last and "TEMP B-TREE" not in last, last

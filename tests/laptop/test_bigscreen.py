"""The big screen's data: the latest counting laps of this laptop, each with the runner's count then."""
from __future__ import annotations

from lapsync.laptop.bigscreen import big_laps
from lapsync.laptop.laps import record_lap, set_void

JSON = {"Accept": "application/json"}


def record(db, number: int) -> str:
    """Record a lap as the teacher, without the minimum lap time; return its id."""
    return record_lap(db, number, teacher_id(db), 0)["lap"]["id"]


def teacher_id(db) -> str:
    """Return the teacher tom's user id."""
    return db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]


def test_big_screen_needs_a_login(client, runners):
    assert client.get("/big/").status_code == 302
    assert client.get("/big/laps", headers=JSON).status_code == 401


def test_each_lap_shows_the_count_its_runner_had_then(teacher, runners, db):
    for number in (1, 2, 1, 17, 1):
        record(db, number)
    laps = teacher.get("/big/laps", headers=JSON).get_json()["laps"]
    assert [(lap["start_number"], lap["count"]) for lap in laps] == [(1, 3), (17, 1), (1, 2), (2, 1), (1, 1)]
    assert set(laps[0]) == {"id", "time", "start_number", "name", "class", "count"}
    assert laps[0]["name"] == "Anna Berg" and laps[0]["class"] == "5a"


def test_voided_laps_leave_the_screen_and_the_counts(runners, db):
    first, second = record(db, 2), record(db, 2)
    set_void(db, first, teacher_id(db), True)
    assert [(lap["id"], lap["count"]) for lap in big_laps(db)] == [(second, 1)]


def test_counts_include_the_other_laptops_laps(runners, db):
    db.execute("INSERT INTO runner_other_laps (runner_id, laps) VALUES (?, 4)", [runners[17]])
    record(db, 17)
    assert big_laps(db)[0]["count"] == 5


def test_only_the_latest_laps_are_shown(runners, db):
    for _ in range(12):
        record(db, 1)
    laps = big_laps(db)
    assert len(laps) == 8 and [lap["count"] for lap in laps] == list(range(12, 4, -1))


def test_big_screen_page_lists_the_laps(teacher, runners, db):
    record(db, 17)
    page = teacher.get("/big/").get_data(as_text=True)
    assert "Cleo Dahl" in page and 'data-url="/big/laps"' in page

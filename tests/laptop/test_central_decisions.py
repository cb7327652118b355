"""Central's decisions on the laptop: a void decided at central (who, why; only central
restores it), runners merged or renumbered at central, and bad decisions set aside."""
from __future__ import annotations

import json

import pytest

from lapsync.errors import InputError
from lapsync.laptop.client.pull import apply_change
from lapsync.laptop.db import device_id, transaction
from lapsync.laptop.laps import recent_laps, set_void
from lapsync.laptop.runners import search_runners, update_runner

JSON = {"Accept": "application/json"}
CENTRAL = "centralnodeeeeeeeeeee"   # central's node id, the origin of its decisions
ADMIN_ID = "centraladminnnnnnnnnn"  # an admin central knows and this laptop does not


def stamp(n: int) -> str:
    """Return the n-th hlc stamp of a far future, beyond any local clock."""
    return f"2900000000000.{n:04d}"


def decision(action: str, **fields) -> dict:
    """Return a decision as central sends it."""
    return {"action": action, "by_name": "ada", "reason": "double count (central review)",
            "at": 1_700_000_000_000, **fields}


def central_void(lap_id: str, n: int = 1, voided: bool = True, **fields) -> dict:
    """Return a pulled void (or restore) an admin decided at central."""
    data = {"lap_id": lap_id, "voided": voided, "at": 1_700_000_000_000, "by": ADMIN_ID,
            "reason": "double count (central review)" if voided else None, "hlc": stamp(n),
            "origin": CENTRAL,
            "decision": decision("void_lap" if voided else "restore_lap",
                                 reason="double count (central review)" if voided else None),
            **fields}
    return {"entity": "lap_void", "id": lap_id, "data": data}


def pulled_runner(runner_id: str, n: int, start_number: int = 5, **fields) -> dict:
    """Return a pulled runner (central's state of it)."""
    data = {"id": runner_id, "start_number": start_number, "name": "Dora Eck", "class": "7c",
            "grade": 7, "hlc": stamp(n), "origin": CENTRAL, **fields}
    return {"entity": "runner", "id": runner_id, "data": data}


def apply(db, change) -> bool:
    """Apply one pulled change as this laptop."""
    with transaction(db):
        return apply_change(db, change, device_id(db))


def tom(db) -> str:
    """Return the teacher's user id."""
    return db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]


@pytest.fixture
def lap(db, runners) -> str:
    """A lap of runner 1 recorded on this laptop."""
    db.execute("INSERT INTO lap (id, runner_id, created_by, time, device_id) "
               "VALUES ('lap1', ?, ?, 1, ?)", [runners[1], tom(db), device_id(db)])
    return "lap1"


def outbox(db) -> int:
    """Return how many changes the outbox holds."""
    return db.execute("SELECT count(*) FROM change").fetchone()[0]


def recent(db, lap_id: str) -> dict:
    """Return the lap's row of the recent list."""
    return next(r for r in recent_laps(db) if r["id"] == lap_id)


def test_a_void_decided_at_central_says_who_and_why_and_is_not_restored_here(db, lap, teacher):
    assert apply(db, central_void(lap)) is True
    row = recent(db, lap)
    assert (row["central_void"], row["voided_by_name"], row["void_reason"]) == (
        True, "ada", "double count (central review)")
    before = outbox(db)
    with pytest.raises(InputError) as refused:
        set_void(db, lap, tom(db), False)
    assert (refused.value.code, refused.value.status) == ("central_decision", 403)
    assert "central" in refused.value.message and "ada" in refused.value.message
    answer = teacher.post(f"/laps/{lap}/restore", headers={**JSON, "X-CSRFToken": teacher.csrf})
    assert answer.status_code == 403 and answer.get_json()["error"] == "central_decision"
    assert recent(db, lap)["voided_at"] is not None and outbox(db) == before
    assert not db.conn.in_transaction


def test_a_teachers_own_void_names_the_teacher_and_stays_restorable(db, lap):
    set_void(db, lap, tom(db), True, "typed the wrong number")
    row = recent(db, lap)
    assert (row["central_void"], row["voided_by_name"], row["void_reason"]) == (
        False, "tom", "typed the wrong number")
    assert set_void(db, lap, tom(db), False)["changed"] is True
    row = recent(db, lap)
    assert (row["voided_at"], row["voided_by_name"], row["void_reason"]) == (None, None, None)


def test_a_restore_decided_at_central_lets_the_teacher_void_and_restore_again(db, lap):
    apply(db, central_void(lap, n=1))
    apply(db, central_void(lap, n=2, voided=False))
    assert recent(db, lap)["voided_at"] is None and recent(db, lap)["central_void"] is False
    set_void(db, lap, tom(db), True)
    assert set_void(db, lap, tom(db), False)["changed"] is True


def test_a_void_of_central_applies_over_a_newer_local_change(db, lap):
    set_void(db, lap, tom(db), True)
    set_void(db, lap, tom(db), False)  # stamped now: later than central's stamp below
    db.execute("UPDATE lap SET void_hlc = ? WHERE id = ?", [stamp(9), lap])
    apply(db, central_void(lap, n=5))  # older stamp, but central's decision: central refused
    assert recent(db, lap)["central_void"] is True  # the laptop's restore, so it stands here


def test_a_plain_pulled_void_replaces_centrals_decision(db, lap):
    apply(db, central_void(lap, n=1))
    plain = central_void(lap, n=2, origin="zzzzzzzzzzzzzzzzzzzzz")
    del plain["data"]["decision"]
    apply(db, plain)
    assert recent(db, lap)["central_void"] is False


BAD_DECISIONS = [
    ({"decision": decision("merge")}, "invalid decision"),
    ({"decision": decision("restore_lap")}, "contradicts"),
    ({"decision": "void_lap"}, "invalid decision"),
    ({"decision": decision("void_lap", by_name="x" * 51)}, "invalid by_name"),
    ({"decision": decision("void_lap", reason="two\nlines")}, "invalid reason"),
    ({"decision": decision("void_lap", at=-1)}, "invalid decision"),
    ({"decision": decision("void_lap", at=True)}, "invalid at"),
]


@pytest.mark.parametrize("fields, error", BAD_DECISIONS)
def test_a_bad_decision_sets_the_item_aside_and_changes_nothing(db, lap, fields, error):
    assert apply(db, central_void(lap, **fields)) is False
    assert recent(db, lap)["voided_at"] is None
    assert db.execute("SELECT count(*) FROM central_decision").fetchone()[0] == 0
    stored = db.execute("SELECT error FROM rejected_pull").fetchone()[0]
    assert error in stored


# ---- runners merged or renumbered at central -----------------------------------------

def test_a_renumber_of_central_shows_on_the_runners_page_and_stays_with_its_number(db, admin,
                                                                                  runners):
    runner = runners[17]
    renumbered = pulled_runner(runner, 1, start_number=40, name="Cleo Dahl", grade=6,
                               **{"class": "6b"}, decision=decision(
                                   "renumber", reason="start number 17 was given twice",
                                   was_start_number=17))
    assert apply(db, renumbered) is True
    row = next(r for r in search_runners(db) if r["id"] == runner)
    assert (row["start_number"], row["decision"], row["decided_by"], row["was_start_number"]) \
        == (40, "renumber", "ada", 17)
    page = admin.get("/runners/").get_data(as_text=True)
    assert "Renumbered at central by ada (was 17): start number 17 was given twice" in page
    with pytest.raises(InputError) as refused:
        update_runner(db, runner, 17, "Cleo Dahl", "6b", 6)
    assert (refused.value.code, refused.value.status) == ("central_decision", 403)
    update_runner(db, runner, 40, "Cleo Dahl-Berg", "6b", 6)  # the number stays: allowed
    assert next(r for r in search_runners(db) if r["id"] == runner)["decision"] == "renumber"


def test_a_later_pulled_edit_without_a_decision_ends_the_renumber_note(db, runners):
    apply(db, pulled_runner("r1", 1, decision=decision("renumber", was_start_number=3)))
    apply(db, pulled_runner("r1", 2, start_number=6))
    assert db.execute("SELECT count(*) FROM central_decision").fetchone()[0] == 0


def test_an_older_pulled_renumber_that_loses_is_not_shown(db, runners):
    apply(db, pulled_runner("r1", 5))
    apply(db, pulled_runner("r1", 4, decision=decision("renumber", was_start_number=3)))
    assert db.execute("SELECT count(*) FROM central_decision").fetchone()[0] == 0


def test_a_merge_of_central_lists_the_runner_with_who_and_why_and_refuses_its_edit(db, admin,
                                                                                   runners):
    survivor, merged = runners[1], runners[2]
    assert apply(db, pulled_runner(merged, 9, start_number=2, name="Ben Cruz", grade=5,
                                   merged_into=survivor, **{"class": "5a"},
                                   decision=decision("merge", reason="the same runner as 1 Anna "
                                                     "Berg (5a)"))) is True
    page = admin.get("/runners/").get_data(as_text=True)
    assert ("2 Ben Cruz (5a) was merged into 1 Anna Berg by ada: the same runner as 1 Anna "
            "Berg (5a)") in page
    with pytest.raises(InputError) as refused:
        update_runner(db, merged, 2, "Ben Cruz", "5a", 5)
    assert refused.value.status == 403 and "merged" in refused.value.message


def test_a_merge_decision_without_merged_into_is_set_aside(db, runners):
    assert apply(db, pulled_runner("r1", 1, decision=decision("merge"))) is False
    stored = json.loads(db.execute("SELECT data FROM rejected_pull").fetchone()[0])
    assert stored["data"]["decision"]["action"] == "merge"
    assert db.execute("SELECT count(*) FROM runner WHERE id = 'r1'").fetchone()[0] == 0

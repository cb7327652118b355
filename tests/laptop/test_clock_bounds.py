"""The laptop bounds clocks too: a pulled stamp far ahead of its clock and central's is set
aside and moves no clock, and a laptop whose clock ran far ahead comes back by itself
(at a pull that shows central's clock, at start when it could make no further stamp, and
for each change central refused as stamped too far ahead)."""
from __future__ import annotations

import pytest

from lapsync import hlc
from lapsync.ids import new_id
from lapsync.laptop import create_app
from lapsync.laptop.client.pull import apply_change
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import PENDING, device_id, get_meta, now_ms, record_change, set_meta, transaction
from lapsync.laptop.laps import record_lap
from lapsync.laptop.runners import add_runner, update_runner
from sync import roster
from tests.laptop.fake_central import TOKEN, FakeCentral

FAR = "9999999999999.9999"
BOUND_MS = hlc.MAX_AHEAD_S * 1000
OTHER = "otherlaptopzzzzzzzzzz"     # another node's origin


@pytest.fixture
def central():
    """A fake central on a real loopback port."""
    server = FakeCentral()
    yield server
    server.close()


def to(server: FakeCentral) -> Central:
    """A client for the fake central."""
    return Central(server.url, TOKEN, 2, 5)


def runner_change(runner_id: str, name: str, stamp: str, number: int = 1) -> dict:
    """A pulled runner change."""
    return {"entity": "runner", "id": runner_id, "data": {
        "id": runner_id, "start_number": number, "name": name, "class": "5a", "grade": 5,
        "hlc": stamp, "origin": OTHER}}


def soon(ms: int = 1000, counter: int = 0) -> str:
    """Return a stamp MS ahead of this laptop's clock."""
    return hlc.format_hlc(now_ms() + ms, counter)


def name_and_stamp(db, runner_id: str) -> tuple:
    """Return a local runner's name and hlc."""
    return db.execute("SELECT name, hlc FROM runner WHERE id = ?", [runner_id]).fetchone()


def rejected_pulls(db) -> list[tuple]:
    """Return the pulled items set aside: (entity, entity id, error)."""
    return db.execute("SELECT entity, entity_id, error FROM rejected_pull ORDER BY cursor").fetchall()


def test_pulled_far_future_stamps_are_set_aside_and_move_no_clock(app, db, runners, central):
    lap = record_lap(db, 1, db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0],
                     0)["lap"]["id"]
    clock_before, anna_before = get_meta(db, "hlc"), name_and_stamp(db, runners[1])
    user = new_id()
    central.pull_changes += [
        runner_change(runners[1], "Mallory", FAR),
        {"entity": "user", "id": user, "data": {
            "id": user, "name": "mallory", "password_hash": "$argon2id$x", "role": "teacher",
            "created_at": 0, "hlc": FAR, "origin": OTHER}},
        {"entity": "lap_void", "id": lap, "data": {
            "lap_id": lap, "voided": True, "at": 5, "by": user, "reason": "x", "hlc": FAR,
            "origin": OTHER}},
        runner_change(runners[2], "Ben Cruz-Weg", soon(), 2),            # the rest applies
    ]
    result = sync_once(db, to(central))
    assert result.error is None and result.pulled == {"not applied": 3, "runner": 1}
    assert name_and_stamp(db, runners[1]) == anna_before
    assert name_and_stamp(db, runners[2])[0] == "Ben Cruz-Weg"
    assert db.execute("SELECT voided_at FROM lap WHERE id = ?", [lap]).fetchone()[0] is None
    assert db.execute("SELECT 1 FROM user WHERE id = ?", [user]).fetchone() is None
    assert clock_before < get_meta(db, "hlc") == name_and_stamp(db, runners[2])[1]  # not FAR
    assert [(e, i) for e, i, _ in rejected_pulls(db)] == [
        ("runner", runners[1]), ("user", user), ("lap_void", lap)]
    assert rejected_pulls(db)[0][2].startswith(
        f"ValueError: clock_ahead: the stamp {FAR} lies ")
    assert "ahead of this laptop's and central's clock (at most 5 min are taken)" in \
        rejected_pulls(db)[0][2]
    status = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert "rejected:      3" in status and f"pull 1 runner {runners[1]}: ValueError: clock_ahead" \
        in status


def test_a_laptop_behind_central_takes_centrals_stamps_up_to_the_bound_of_centrals_clock(
        db, runners, central):
    central.clock_offset_ms = 3_600_000                      # this laptop is an hour behind
    central.pull_changes += [runner_change(runners[1], "Anna Berg-Neu", soon(3_000_000)),
                             runner_change(runners[2], "Ben Cruz-Neu", soon(3_900_000 + BOUND_MS), 2)]
    assert sync_once(db, to(central)).error is None
    assert name_and_stamp(db, runners[1])[0] == "Anna Berg-Neu"
    assert name_and_stamp(db, runners[2])[0] == "Ben Cruz"
    assert [(e, i) for e, i, _ in rejected_pulls(db)] == [("runner", runners[2])]


def outbox(db) -> list[tuple]:
    """Return the outbox: (seq, entity, entity id, payload hlc, pushed)."""
    return db.execute("SELECT seq, entity, entity_id, json_extract(payload, '$.hlc'), "
                      f"NOT ({PENDING}) FROM change ORDER BY seq").fetchall()


def test_a_poisoned_laptop_comes_back_at_its_next_pull_and_its_edits_still_follow(
        db, runners, central):
    """Before stamps were bounded: the laptop took FAR-ish stamps and its clock overflowed."""
    assert sync_once(db, to(central)).error is None           # the roster reached central
    with transaction(db):                                      # an edit central took, 200 s ahead
        set_meta(db, "hlc", soon(200_000))
    update_runner(db, runners[1], 1, "Anna Berg-Frueh", "5a", 5)
    accepted = name_and_stamp(db, runners[1])[1]
    assert sync_once(db, to(central)).error is None
    with transaction(db):                                      # a pulled stamp near the end ...
        assert apply_change(db, runner_change(runners[2], "Ben Cruz", "9999999999999.0001", 2),
                            device_id(db))
    update_runner(db, runners[1], 1, "Anna Berg-Spaet", "5a", 5)   # ... made its own edits FAR
    lap = record_lap(db, 17, db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0],
                     0)["lap"]["id"]
    with transaction(db):                                      # and, past the last stamp, 14 digits
        db.execute("UPDATE lap SET voided_at = 1, void_hlc = '10000000000000.0000' WHERE id = ?",
                   [lap])
        record_change(db, "lap_void", lap, {"lap_id": lap, "voided": True, "at": 1,
                                            "by": db.execute("SELECT id FROM user LIMIT 1").fetchone()[0],
                                            "reason": "double", "hlc": "10000000000000.0000",
                                            "origin": device_id(db)})
        set_meta(db, "hlc", "10000000000000.0000")
    wedged = sync_once(db, to(central))           # central refuses the batch; the pull repairs
    assert wedged.error is not None and "422" in wedged.error.message
    pending = [row for row in outbox(db) if not row[4]]
    assert [(e, i) for _, e, i, _, _ in pending] == [("runner", runners[1]), ("lap", lap),
                                                     ("lap_void", lap)]
    fresh = [stamp for _, entity, _, stamp, _ in pending if entity != "lap"]
    assert all(hlc.is_stamp(s) and accepted < s for s in fresh) and fresh == sorted(fresh)
    assert not any(hlc.too_far_ahead(s, now_ms(), BOUND_MS) for s in fresh)
    assert name_and_stamp(db, runners[1]) == ("Anna Berg-Spaet", fresh[0])       # its own, kept
    assert db.execute("SELECT void_hlc FROM lap WHERE id = ?", [lap]).fetchone()[0] == fresh[1]
    assert name_and_stamp(db, runners[2])[1] == hlc.ZERO      # another's FAR: central's wins
    assert get_meta(db, "hlc") == fresh[-1]
    assert sync_once(db, to(central), force=True).error is None             # not wedged now
    assert [c["data"].get("hlc") for c in central.received[-3:]] == [fresh[0], None, fresh[1]]
    central.pull_changes.append(runner_change(runners[2], "Ben Cruz-Weg", soon(), 2))
    assert sync_once(db, to(central), force=True).error is None
    assert name_and_stamp(db, runners[2])[0] == "Ben Cruz-Weg"


@pytest.mark.parametrize("stored", ["10000000000000.0000", FAR])
def test_a_clock_that_can_make_no_further_stamp_is_brought_back_at_start(app, db, stored):
    runner = add_runner(db, 5, "Eva Fink", "5a", 5)
    with transaction(db):
        set_meta(db, "hlc", stored)
        db.execute("UPDATE runner SET hlc = ? WHERE id = ?", [stored, runner])
        db.execute("UPDATE change SET payload = json_set(payload, '$.hlc', ?) "
                   "WHERE entity = 'runner'", [stored])
    create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": app.config["DATABASE"]})
    stamp = get_meta(db, "hlc")
    assert hlc.is_stamp(stamp) and not hlc.too_far_ahead(stamp, now_ms(), BOUND_MS)
    assert outbox(db)[-1][3] == stamp == name_and_stamp(db, runner)[1]  # the unpushed edit, re-stamped
    add_runner(db, 6, "Finn Gross", "5a", 5)                            # the clock works again
    assert get_meta(db, "hlc") > stamp


def test_a_healthy_clock_is_left_alone_at_start(app, db, runners):
    before = (get_meta(db, "hlc"), outbox(db))
    create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": app.config["DATABASE"]})
    assert (get_meta(db, "hlc"), outbox(db)) == before


def test_a_change_central_refused_as_ahead_gives_way_to_centrals_version(
        app, db, runners, live_central, central_app, central_db, device_token):
    central = Central(live_central, device_token, 2, 10)
    assert sync_once(db, central).error is None
    with transaction(db):                                      # this laptop's clock: a day ahead
        set_meta(db, "hlc", soon(88_200_000))
    update_runner(db, runners[17], 17, "Cleo Day-Ahead", "6b", 6)
    result = sync_once(db, central)
    assert result.error is None and result.rejected == 1
    assert name_and_stamp(db, runners[17]) == ("Cleo Day-Ahead", hlc.ZERO)  # central's wins next
    assert not hlc.too_far_ahead(get_meta(db, "hlc"), now_ms(), BOUND_MS)  # the pull brought it back
    refused = db.execute("SELECT entity, entity_id, error, message FROM rejected_change "
                         "WHERE error = 'clock_ahead'").fetchone()
    assert refused[:3] == ("runner", runners[17], "clock_ahead")
    assert "lies 24 h ahead of central's clock" in refused[3]
    stored = central_db.execute("SELECT name, change_id FROM runner WHERE id = %s",
                                [runners[17]]).fetchone()
    assert stored["name"] == "Cleo Dahl"
    with central_app.app_context():                            # a later edit at central
        roster.edit_runner(central_db, runners[17], stored["change_id"], 17, "Cleo Dahl-Berg",
                           "6b", 6)
    assert sync_once(db, central).error is None
    assert name_and_stamp(db, runners[17])[0] == "Cleo Dahl-Berg"
    seq = db.execute("SELECT seq FROM rejected_change WHERE entity = 'runner'").fetchone()[0]
    status = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert f"push {seq} runner {runners[17]}: clock_ahead Refused: the stamp" in status

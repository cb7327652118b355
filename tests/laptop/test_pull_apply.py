"""Applying pulled changes on a real laptop SQLite file: runners, users, voids, settings,
totals, rejected items, pages and the pull loop (central stands in as a list of pages)."""
from __future__ import annotations

import json

import pytest

from lapsync.laptop.client.pull import (
    MAX_PAGES_PER_RUN,
    apply_change,
    apply_page,
    local_origin,
    min_lap_seconds,
    other_laps,
    pull,
    restart_pull,
)
from lapsync.laptop.client.transport import PROTOCOL, REFUSED, SyncError, SyncResult
from lapsync.laptop.db import get_meta, now_ms, set_meta, transaction

ME = "laptopmeeeeeeeeeeeee"       # this laptop, as passed to apply_change
LOW, HIGH = "aaaaaaaaaaaaaaaaaaaa", "zzzzzzzzzzzzzzzzzzzz"  # origins below and above ME
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def stamp(n: int) -> str:
    """Return the n-th hlc stamp of a far future, beyond any local clock."""
    return f"2900000000000.{n:04d}"


def runner_change(runner_id: str, n: int = 1, origin: str = LOW, **fields) -> dict:
    """Return a pulled runner change."""
    data = {"id": runner_id, "start_number": 5, "name": "Dora Eck", "class": "7c", "grade": 7,
            "hlc": stamp(n), "origin": origin, **fields}
    return {"entity": "runner", "id": runner_id, "data": data}


def user_change(user_id: str, n: int = 1, origin: str = LOW, **fields) -> dict:
    """Return a pulled user change."""
    data = {"id": user_id, "name": "una", "password_hash": HASH, "role": "teacher",
            "created_at": 123, "hlc": stamp(n), "origin": origin, **fields}
    return {"entity": "user", "id": user_id, "data": data}


def void_change(lap_id: str, n: int = 1, origin: str = LOW, voided: bool = True, **fields) -> dict:
    """Return a pulled void (or restore) of a lap."""
    data = {"lap_id": lap_id, "voided": voided, "at": 777, "by": None, "reason": "double",
            "hlc": stamp(n), "origin": origin, **fields}
    return {"entity": "lap_void", "id": lap_id, "data": data}


def apply(db, change) -> bool:
    """Apply one pulled change as this laptop inside a transaction."""
    with transaction(db):
        return apply_change(db, change, ME)


def row(db, sql: str, *params):
    """Return one row as a dict (or None)."""
    found = db.execute(sql, list(params)).fetchone()
    return None if found is None else dict(zip([d[0] for d in db.execute(sql, list(params)).description], found))


def runner_row(db, runner_id: str):
    """Return a local runner."""
    return row(db, "SELECT id, start_number, name, class, grade, hlc, origin FROM runner WHERE id = ?",
               runner_id)


def user_id(db, name: str) -> str:
    """Return a local user's id."""
    return db.execute("SELECT id FROM user WHERE name = ?", [name]).fetchone()[0]


def add_lap(db, lap_id: str, runner_id: str) -> None:
    """Insert a lap recorded on this laptop."""
    db.execute("INSERT INTO lap (id, runner_id, created_by, time, device_id) VALUES (?, ?, ?, 1, ?)",
               [lap_id, runner_id, user_id(db, "tom"), ME])


def lap_runner(db, lap_id: str) -> str:
    """Return the runner a lap counts for."""
    return db.execute("SELECT runner_id FROM lap WHERE id = ?", [lap_id]).fetchone()[0]


def rejected(db) -> list[dict]:
    """Return the rejected pulled items."""
    cursor = db.execute("SELECT cursor, entity, entity_id, error, data, rejected_at FROM rejected_pull "
                        "ORDER BY cursor")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


# ---- runners ------------------------------------------------------------------------

def test_a_new_runner_is_inserted_and_moves_the_clock(db):
    assert apply(db, runner_change("r1", n=3)) is True
    assert runner_row(db, "r1") == {"id": "r1", "start_number": 5, "name": "Dora Eck",
                                    "class": "7c", "grade": 7, "hlc": stamp(3), "origin": LOW}
    assert get_meta(db, "hlc") == stamp(3)


def apply_losers_then_winner(db, change, entity_id: str, name_of, kept: str, **winner) -> None:
    """Apply a change stamped 5 from this laptop, then three that must lose to it (an older
    stamp, the same stamp from a lower origin, the same stamp and origin): the name stays
    `kept`. Then the same stamp from a greater origin, with `winner`'s fields."""
    apply(db, change(entity_id, n=5, origin=ME))
    apply(db, change(entity_id, n=4, name="older"))
    apply(db, change(entity_id, n=5, origin=LOW, name="lower origin"))
    apply(db, change(entity_id, n=5, origin=ME, name="same"))
    assert name_of(entity_id) == kept
    apply(db, change(entity_id, n=5, origin=HIGH, **winner))


def test_a_runner_is_replaced_only_by_a_later_hlc_or_the_same_hlc_from_a_greater_origin(db):
    apply_losers_then_winner(db, runner_change, "r1", lambda i: runner_row(db, i)["name"],
                             "Dora Eck", name="Higher origin")
    assert runner_row(db, "r1")["name"] == "Higher origin"
    apply(db, runner_change("r1", n=6, origin=LOW, start_number=9, name="Newer", grade=8,
                            **{"class": "8a"}))
    assert runner_row(db, "r1") == {"id": "r1", "start_number": 9, "name": "Newer", "class": "8a",
                                    "grade": 8, "hlc": stamp(6), "origin": LOW}
    assert get_meta(db, "hlc") == stamp(6)


def test_a_merge_moves_the_laps_once_the_survivor_is_here(db):
    apply(db, runner_change("loser", n=1, start_number=5))
    add_lap(db, "lap1", "loser")
    add_lap(db, "lap2", "loser")
    # The merge arrives before its survivor: recorded, laps wait.
    apply(db, runner_change("loser", n=2, merged_into="winner"))
    assert row(db, "SELECT runner_id, merged_into FROM runner_merge") == {
        "runner_id": "loser", "merged_into": "winner"}
    assert lap_runner(db, "lap1") == "loser"
    apply(db, runner_change("winner", n=3, start_number=6))
    assert (lap_runner(db, "lap1"), lap_runner(db, "lap2")) == ("winner", "winner")


def test_a_merge_is_final_even_in_an_older_runner_change(db):
    apply(db, runner_change("winner", n=1, start_number=6))
    apply(db, runner_change("loser", n=5, start_number=5))
    add_lap(db, "lap1", "loser")
    apply(db, runner_change("loser", n=2, merged_into="winner", name="Older"))
    assert runner_row(db, "loser")["name"] == "Dora Eck"   # the register keeps the newer
    assert lap_runner(db, "lap1") == "winner"               # the merge applies anyway
    apply(db, runner_change("loser", n=6, merged_into="other"))
    assert row(db, "SELECT merged_into FROM runner_merge WHERE runner_id = 'loser'") == {
        "merged_into": "other"}


def test_laps_of_other_merged_runners_move_only_when_it_is_their_turn(db):
    apply(db, runner_change("a", n=1))
    apply(db, runner_change("b", n=1))
    add_lap(db, "lap-a", "a")
    add_lap(db, "lap-b", "b")
    db.execute("INSERT INTO runner_merge (runner_id, merged_into) VALUES ('b', 'later')")
    apply(db, runner_change("a", n=2, merged_into="b"))
    assert lap_runner(db, "lap-a") == "b" and lap_runner(db, "lap-b") == "b"


def test_a_runner_merged_into_itself_is_rejected(db):
    assert apply(db, runner_change("r1", merged_into="r1")) is False
    assert runner_row(db, "r1") is None
    assert rejected(db)[0]["error"] == "ValueError: runner merged into itself"


# ---- users --------------------------------------------------------------------------

def test_a_new_user_is_inserted_with_its_origin_remembered(db):
    assert apply(db, user_change("u1", n=2)) is True
    assert row(db, "SELECT id, name, password_hash, role, created_at, hlc FROM user WHERE id = 'u1'") == {
        "id": "u1", "name": "una", "password_hash": HASH, "role": "teacher", "created_at": 123,
        "hlc": stamp(2)}
    assert local_origin(db, "user", "u1", stamp(2), ME) == LOW
    assert get_meta(db, "hlc") == stamp(2)


def test_a_user_is_replaced_only_by_a_later_stamp_or_origin(db):
    # A user's name never changes (below): its role tells which version won.
    apply(db, user_change("u1", n=5, origin=ME))
    apply(db, user_change("u1", n=4, role="admin"))
    apply(db, user_change("u1", n=5, origin=LOW, role="admin"))
    apply(db, user_change("u1", n=5, origin=ME, role="admin"))  # the same version: only its hash
    assert row(db, "SELECT role FROM user WHERE id = 'u1'") == {"role": "teacher"}
    apply(db, user_change("u1", n=5, origin=HIGH, role="viewer", password_hash="$argon2id$other"))
    assert row(db, "SELECT name, role, password_hash, created_at FROM user WHERE id = 'u1'") == {
        "name": "una", "role": "viewer", "password_hash": "$argon2id$other", "created_at": 123}
    apply(db, user_change("u1", n=5, origin=LOW, role="admin"))
    assert row(db, "SELECT role FROM user WHERE id = 'u1'") == {"role": "viewer"}


def test_a_pulled_user_never_renames_a_user_here(db):
    apply(db, user_change("u1", n=1))
    renamed = {**user_change("u1", n=2, name="mallory"), "cursor": 7}
    assert apply(db, renamed) is False
    assert row(db, "SELECT name, hlc FROM user WHERE id = 'u1'") == {"name": "una",
                                                                      "hlc": stamp(1)}
    assert row(db, "SELECT error FROM rejected_pull WHERE cursor = 7") == {
        "error": "ValueError: user id 'u1' is 'una' on this laptop: a user id is never reused "
                 "for another name"}


@pytest.mark.parametrize("outbox", ["refused", "pending"])
def test_a_user_made_here_that_central_never_accepted_is_never_changed_by_a_pull(db, outbox):
    ada = user_id(db, "ada")                               # this laptop's own admin
    before = row(db, "SELECT * FROM user WHERE id = ?", ada)
    seq = db.execute("SELECT seq FROM change WHERE entity = 'user' AND entity_id = ?",
                     [ada]).fetchone()[0]
    with transaction(db):
        if outbox == "refused":
            db.execute("UPDATE change SET pushed_at = 1 WHERE seq = ?", [seq])
            db.execute("INSERT INTO rejected_change (seq, entity, entity_id, error, message, "
                       "rejected_at) VALUES (?, 'user', ?, 'users_only_at_central', '', 1)",
                       [seq, ada])
    takeover = user_change(ada, n=9, origin=HIGH, name="ada", role="teacher",
                           password_hash="$argon2id$mallory")
    assert apply(db, takeover) is False
    assert row(db, "SELECT * FROM user WHERE id = ?", ada) == before
    with transaction(db):                                  # once central took it, pulls apply
        db.execute("UPDATE change SET pushed_at = 1 WHERE seq = ?", [seq])
        db.execute("DELETE FROM rejected_change")
    assert apply(db, takeover) is True
    assert row(db, "SELECT role FROM user WHERE id = ?", ada) == {"role": "teacher"}


def test_the_same_user_version_again_takes_its_hash_given_or_withheld(db):
    apply(db, user_change("u1", n=3, origin=HIGH, role="admin", password_hash="!withheld"))
    apply(db, user_change("u1", n=3, origin=HIGH, role="admin"))    # the device trusted since
    assert row(db, "SELECT password_hash FROM user WHERE id = 'u1'") == {"password_hash": HASH}
    apply(db, user_change("u1", n=3, origin=HIGH, role="admin", password_hash="!withheld"))
    assert row(db, "SELECT password_hash FROM user WHERE id = 'u1'") == {
        "password_hash": "!withheld"}                                  # and no longer


def test_a_local_user_of_the_same_stamp_wins_over_a_lower_origin(db):
    tom = user_id(db, "tom")
    local = db.execute("SELECT hlc FROM user WHERE id = ?", [tom]).fetchone()[0]
    assert local_origin(db, "user", tom, local, ME) == ME  # no pulled write: ours
    apply(db, user_change(tom, origin=LOW, name="renamed", hlc=local))
    assert row(db, "SELECT name FROM user WHERE id = ?", tom) == {"name": "tom"}


def test_local_origin_is_the_pulled_writer_only_while_its_stamp_stands(db):
    apply(db, user_change("u1", n=5, origin=HIGH))
    assert local_origin(db, "user", "u1", stamp(5), ME) == HIGH
    assert local_origin(db, "user", "u1", stamp(6), ME) == ME  # edited here since
    assert local_origin(db, "lap_void", "u1", stamp(5), ME) == ME


def test_a_user_whose_name_is_taken_is_rejected_and_leaves_nothing(db):
    before = get_meta(db, "hlc")
    change = user_change("u1", n=9, name="tom")
    change["cursor"] = 41
    assert apply(db, change) is False
    assert row(db, "SELECT id FROM user WHERE id = 'u1'") is None
    assert get_meta(db, "hlc") == before  # the savepoint took back the clock too
    [item] = rejected(db)
    assert item["cursor"] == 41 and item["entity"] == "user" and item["entity_id"] == "u1"
    assert item["error"].startswith("IntegrityError: UNIQUE constraint failed: user.name")
    assert json.loads(item["data"]) == change
    assert abs(item["rejected_at"] - now_ms()) < 60_000


# ---- voids --------------------------------------------------------------------------

def lap_void(db, lap_id: str) -> dict:
    """Return a lap's void columns."""
    return row(db, "SELECT voided_at, voided_by, void_reason, void_hlc FROM lap WHERE id = ?", lap_id)


@pytest.fixture
def lap(db, runners) -> str:
    """A lap of runner 1 recorded on this laptop."""
    add_lap(db, "lap1", runners[1])
    return "lap1"


def test_a_void_of_a_local_lap_by_a_known_user(db, lap):
    ada = user_id(db, "ada")
    assert apply(db, void_change(lap, n=2, by=ada)) is True
    assert lap_void(db, lap) == {"voided_at": 777, "voided_by": ada, "void_reason": "double",
                                 "void_hlc": stamp(2)}
    assert local_origin(db, "lap_void", lap, stamp(2), ME) == LOW
    assert get_meta(db, "hlc") == stamp(2)


@pytest.mark.parametrize("by", [None, "nobody-here", 17])
def test_a_void_by_an_unknown_user_keeps_no_voided_by(db, lap, by):
    assert apply(db, void_change(lap, by=by)) is True
    assert lap_void(db, lap)["voided_by"] is None
    assert lap_void(db, lap)["voided_at"] == 777


@pytest.mark.parametrize("reason, stored", [(None, "voided centrally"), ("", "voided centrally"),
                                            ("x" * 250, "x" * 200), (12, "12")])
def test_a_void_reason_is_defaulted_and_cut(db, lap, reason, stored):
    apply(db, void_change(lap, reason=reason))
    assert lap_void(db, lap)["void_reason"] == stored


def test_a_restore_clears_the_void_and_keeps_its_stamp(db, lap):
    apply(db, void_change(lap, n=1, by=user_id(db, "ada")))
    apply(db, void_change(lap, n=2, voided=False))
    assert lap_void(db, lap) == {"voided_at": None, "voided_by": None, "void_reason": None,
                                 "void_hlc": stamp(2)}


def test_voids_are_last_writer_wins_by_stamp_then_origin(db, lap):
    apply(db, void_change(lap, n=5, origin=HIGH))
    apply(db, void_change(lap, n=4, voided=False))
    apply(db, void_change(lap, n=5, voided=False, origin=LOW))
    apply(db, void_change(lap, n=5, voided=False, origin=HIGH))
    assert lap_void(db, lap)["voided_at"] == 777
    apply(db, void_change(lap, n=5, voided=False, origin="zzzzzzzzzzzzzzzzzzzzz"))
    assert lap_void(db, lap)["voided_at"] is None


def test_a_local_void_of_the_same_stamp_wins_over_a_lower_origin(db, lap):
    db.execute("UPDATE lap SET voided_at = 1, void_hlc = ? WHERE id = ?", [stamp(5), lap])
    apply(db, void_change(lap, n=5, voided=False, origin=LOW))
    assert lap_void(db, lap)["voided_at"] == 1
    apply(db, void_change(lap, n=5, voided=False, origin=HIGH))
    assert lap_void(db, lap)["voided_at"] is None


def test_a_void_of_another_laptops_lap_is_skipped_but_moves_the_clock(db):
    assert apply(db, void_change("not-here", n=7)) is True
    assert get_meta(db, "hlc") == stamp(7)
    assert row(db, "SELECT * FROM lww_origin") is None


@pytest.mark.parametrize("voided", [1, "true", None])
def test_a_void_without_a_boolean_is_rejected(db, lap, voided):
    assert apply(db, void_change(lap, voided=voided)) is False
    assert rejected(db)[0]["error"] == "ValueError: invalid voided"
    assert lap_void(db, lap)["void_hlc"] is None


# ---- settings and totals ------------------------------------------------------------

def setting(key: str, value) -> dict:
    """Return a pulled setting change."""
    return {"entity": "setting", "id": key, "data": {"key": key, "value": value}}


def test_a_setting_is_stored_as_json_in_meta(db):
    assert apply(db, setting("min_lap_seconds", 45)) is True
    assert get_meta(db, "setting:min_lap_seconds") == "45"
    assert min_lap_seconds(db, 60) == 45
    apply(db, setting("metres", {"per_lap": 400}))
    assert get_meta(db, "setting:metres") == '{"per_lap": 400}'


@pytest.mark.parametrize("raw, expected", [
    (None, 60), ("0", 0), ("86400", 86_400), ("12.5", 12.5), ("86401", 60), ("-1", 60),
    ("true", 60), ('"30"', 60), ("not json", 60), ("null", 60)])
def test_min_lap_seconds_takes_only_a_sane_pulled_number(db, raw, expected):
    if raw is not None:
        set_meta(db, "setting:min_lap_seconds", raw)
    value = min_lap_seconds(db, 60)
    assert value == expected and type(value) is type(expected)


def total(runner_id: str, laps) -> dict:
    """Return a pulled total change."""
    return {"entity": "total", "id": runner_id, "data": {"runner_id": runner_id, "other_laps": laps}}


def test_other_laps_are_stored_and_replaced(db):
    assert other_laps(db, "r1") == 0
    assert apply(db, total("r1", 3)) is True
    apply(db, total("r1", 0))
    apply(db, total("r2", 7))
    assert (other_laps(db, "r1"), other_laps(db, "r2")) == (0, 7)


@pytest.mark.parametrize("laps", [-1, True, "3", 2.0])
def test_other_laps_that_are_no_count_are_rejected(db, laps):
    assert apply(db, total("r1", laps)) is False
    assert other_laps(db, "r1") == 0
    assert rejected(db)[0]["error"] == ("ValueError: invalid other_laps")


# ---- unusable items -----------------------------------------------------------------

@pytest.mark.parametrize("change, error, entity, entity_id", [
    ({"entity": "lap", "id": "l1", "data": {}}, "ValueError: unknown entity 'lap'", "lap", "l1"),
    ({"entity": "runner", "id": "r1", "data": [1]}, "ValueError: unknown entity 'runner'",
     "runner", "r1"),
    ({"id": "r1"}, "ValueError: unknown entity None", "None", "r1"),
    (["runner"], "ValueError: unknown entity ['runner']", "None", "None"),
    ({"entity": "runner", "id": "r1", "data": {"id": "r1"}}, "KeyError: 'start_number'",
     "runner", "r1"),
])
def test_an_unusable_item_is_recorded_and_the_next_one_applies(db, change, error, entity, entity_id):
    assert apply(db, change) is False
    assert apply(db, total("r1", 2)) is True
    [item] = rejected(db)
    assert (item["entity"], item["entity_id"], item["error"]) == (entity, entity_id, error)
    assert json.loads(item["data"]) == (change if isinstance(change, dict) else {"data": change})


def test_a_rejected_item_keeps_an_integer_cursor_only_and_cuts_long_fields(db):
    # Without a usable cursor SQLite numbers the row itself (one past the greatest).
    long = {"entity": "e" * 80, "id": "i" * 90, "cursor": True, "data": {}, "pad": "p" * 20_000}
    apply(db, {"entity": "x", "id": "x", "cursor": 12, "data": {}})
    apply(db, long)
    apply(db, {"entity": "x", "id": "y", "cursor": "13", "data": {}})
    second, first, third = rejected(db)
    assert (second["cursor"], first["cursor"], third["cursor"]) == (12, 13, 14)
    assert first["entity"] == "e" * 50 and first["entity_id"] == "i" * 64
    assert len(first["data"]) == 10_000 and first["data"] == json.dumps(long)[:10_000]
    assert first["error"] == f"ValueError: unknown entity {'e' * 80!r}"[:300]
    assert len(first["error"]) == 109
    apply(db, {"entity": "x" * 400, "id": "z", "data": {}})
    assert len(rejected(db)[-1]["error"]) == 300


def test_a_rejected_item_under_a_known_cursor_is_replaced(db):
    apply(db, {"entity": "x", "id": "a", "cursor": 5, "data": {}})
    apply(db, {"entity": "y", "id": "b", "cursor": 5, "data": {}})
    assert [(r["cursor"], r["entity"]) for r in rejected(db)] == [(5, "y")]


# ---- pages and the pull loop --------------------------------------------------------

def test_a_page_is_applied_counted_and_its_cursor_stored(db):
    result = SyncResult()
    changes = [total("r1", 1), total("r2", 2), setting("k", 1), {"entity": "nope", "data": {}}]
    apply_page(db, changes, 42, result)
    assert dict(result.pulled) == {"total": 2, "setting": 1, "not applied": 1}
    assert get_meta(db, "pull_cursor") == "42"
    assert not db.conn.in_transaction


def test_apply_page_hands_apply_change_this_laptops_id(db, lap):
    me, soon = get_meta(db, "device_id"), f"{now_ms() + 60_000:013d}.0005"  # within the bound
    db.execute("UPDATE lap SET voided_at = 1, void_hlc = ? WHERE id = ?", [soon, lap])
    # Same stamp: a pulled write wins only over a lower origin than this laptop's id.
    apply_page(db, [void_change(lap, voided=False, origin=me[:-1], hlc=soon)], 1, SyncResult())
    assert lap_void(db, lap)["voided_at"] == 1
    apply_page(db, [void_change(lap, voided=False, origin=me + "z", hlc=soon)], 2, SyncResult())
    assert lap_void(db, lap)["voided_at"] is None


class Pages:
    """Central's pull answers in order; records the cursors asked for. An empty push (asked
    after central's database was replaced) answers ACKED as central's last applied seq."""

    def __init__(self, *answers, acked: int = 0):
        """Keep (status, page) answers."""
        self.answers, self.cursors, self.acked = list(answers), [], acked

    def push(self, body: bytes, follows: int | None = None) -> tuple[int, dict]:
        """Answer an empty push with the last applied seq."""
        return 200, {"acked_seq": self.acked}

    def pull(self, cursor: int):
        """Return the next answer."""
        self.cursors.append(cursor)
        return self.answers.pop(0)


def page(changes, next_cursor: int, more: bool) -> tuple[int, dict]:
    """Return a 200 pull answer."""
    return 200, {"protocol": 1, "changes": changes, "next_cursor": next_cursor, "more": more}


def test_pull_follows_the_cursor_until_central_has_no_more(db):
    set_meta(db, "pull_cursor", "3")
    central = Pages(page([total("r1", 1)], 10, True), page([], 12, True), page([total("r2", 2)], 15, False))
    result = SyncResult()
    pull(db, central, result)
    assert central.cursors == [3, 10, 12] and central.answers == []
    assert get_meta(db, "pull_cursor") == "15"
    assert dict(result.pulled) == {"total": 2}


def test_pull_starts_at_cursor_zero(db):
    central = Pages(page([], 0, False))
    pull(db, central, SyncResult())
    assert central.cursors == [0] and get_meta(db, "pull_cursor") == "0"


def test_pull_restarts_once_where_central_says_after_its_database_was_replaced(db):
    set_meta(db, "pull_cursor", "900")
    central = Pages((409, {"error": "cursor_ahead", "resume_from": 7}), page([total("r1", 1)], 8, False))
    pull(db, central, SyncResult())
    assert central.cursors == [900, 7] and get_meta(db, "pull_cursor") == "8"


def test_a_second_cursor_ahead_in_one_run_is_refused(db):
    central = Pages((409, {"error": "cursor_ahead", "resume_from": 0}),
                    (409, {"error": "cursor_ahead", "resume_from": 0, "message": "again"}))
    with pytest.raises(SyncError) as raised:
        pull(db, central, SyncResult())
    assert (raised.value.kind, raised.value.status) == (REFUSED, 409)
    assert raised.value.message == "central answered 409 to a pull: again"


def test_restart_pull_refuses_other_conflicts_and_stores_the_new_cursor(db):
    central, result = Pages(), SyncResult()
    with pytest.raises(SyncError) as raised:
        restart_pull(db, central, {"error": "other", "message": "m" * 400}, False, result)
    assert raised.value.kind == REFUSED and len(raised.value.message) == 300
    with pytest.raises(SyncError):
        restart_pull(db, central, {"error": "cursor_ahead", "resume_from": 5}, True, result)
    assert restart_pull(db, central, {"error": "cursor_ahead", "resume_from": 5}, False, result) == 5
    assert get_meta(db, "pull_cursor") == "5"
    with pytest.raises(SyncError) as raised:
        restart_pull(db, central, {"error": "cursor_ahead", "resume_from": -1}, False, result)
    assert raised.value.kind == PROTOCOL


def test_a_replaced_central_that_lost_pushed_changes_gets_them_again(db):
    db.execute("UPDATE outbox_mark SET pushed_seq = 9")   # central had acknowledged up to 9
    result = SyncResult()
    restart_pull(db, Pages(acked=6), {"error": "cursor_ahead", "resume_from": 3}, False, result)
    assert result.resend and db.execute("SELECT pushed_seq FROM outbox_mark").fetchone()[0] == 6
    result = SyncResult()                                 # a central that lost nothing
    restart_pull(db, Pages(acked=6), {"error": "cursor_ahead", "resume_from": 3}, False, result)
    assert not result.resend and db.execute("SELECT pushed_seq FROM outbox_mark").fetchone()[0] == 6


def test_more_without_progress_is_a_protocol_error(db):
    set_meta(db, "pull_cursor", "4")
    central = Pages(page([], 4, True))
    with pytest.raises(SyncError) as raised:
        pull(db, central, SyncResult())
    assert raised.value.kind == PROTOCOL
    assert raised.value.message == "central says there is more after cursor 4 but sends nothing"


def test_more_with_changes_but_the_same_cursor_goes_on(db):
    set_meta(db, "pull_cursor", "4")
    central = Pages(page([total("r1", 1)], 4, True), page([], 4, False))
    pull(db, central, SyncResult())
    assert central.cursors == [4, 4]


def test_a_malformed_page_is_a_protocol_error(db):
    with pytest.raises(SyncError) as raised:
        pull(db, Pages((200, {"protocol": 1, "changes": [], "next_cursor": 0, "more": "no"})),
             SyncResult())
    assert raised.value.kind == PROTOCOL


def test_a_run_ends_after_max_pages(db):
    assert MAX_PAGES_PER_RUN == 10_000

    class Endless:
        calls = 0

        def pull(self, cursor):
            Endless.calls += 1
            return page([], cursor + 1, True)

    db.execute("PRAGMA synchronous=OFF")  # 10,000 commits: no fsync each in a test
    pull(db, Endless(), SyncResult())
    assert Endless.calls == 10_000
    assert get_meta(db, "pull_cursor") == "10000"

"""Central's merge of pushed batches: exactly once, last writer wins, clashes kept."""
from __future__ import annotations

import itertools
import threading

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from lapsync.protocol import ProtocolError, compact_changes, validate_push
from sync.db import now_ms
from sync.devices import find_device
from sync.identity import current_database
from sync.pull import pull
from sync.push import push
from tests.pg import HELPER, Outbox, own_hash, register, snapshot, with_database


def send(conn, token: str, body: dict, now: int | None = None) -> dict:
    """Validate and apply a push body as the device of token."""
    return push(conn, find_device(conn, token), validate_push(body), now)


def totals(conn) -> dict:
    """Return {runner_id: laps that count}."""
    return {r["runner_id"]: r["laps"] for r in conn.execute("SELECT * FROM runner_total")}


def counted_laps(conn) -> dict:
    """Recount laps that count from lap and lap_void (the truth runner_total must match)."""
    rows = conn.execute("SELECT lap.runner_id, count(*) AS n FROM lap LEFT JOIN lap_void v "
                        "ON v.lap_id = lap.id WHERE v.voided IS NOT TRUE "
                        "GROUP BY lap.runner_id").fetchall()
    return {r["runner_id"]: r["n"] for r in rows}


def test_batch_is_applied_once_and_acknowledged(central_db, device_token):
    box = Outbox()
    runner = box.runner(17, "Cleo Dahl")
    laps = [box.lap(runner) for _ in range(3)]
    answer = send(central_db, device_token, box.body(), now=1_700_000_005_000)
    assert answer == {"acked_seq": 4, "server_time": 1_700_000_005_000, "rejected": [],
                      "database_id": current_database(central_db)}
    assert totals(central_db) == {runner: 3}
    stored = central_db.execute("SELECT * FROM lap WHERE id = %s", [laps[0]]).fetchone()
    assert stored["device_time"] == box.clock_ms and stored["received_at"] == 1_700_000_005_000
    assert stored["clock_offset_ms"] == 5_000 and stored["device_id"] == box.laptop_id
    device = central_db.execute("SELECT * FROM device").fetchone()
    assert device["last_seq"] == 4 and device["laps_pushed"] == 3
    assert device["laptop_id"] == box.laptop_id and device["clock_offset_ms"] == 5_000


@pytest.mark.parametrize("first,last", [(1, 6), (1, 3), (2, 5), (6, 6), (4, 6)])
def test_replaying_any_batch_changes_nothing(central_db, device_token, first, last):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    lap = box.lap(runner)
    box.lap(runner)
    box.void(lap)
    box.runner(2, "Anna Berg", runner_id=runner)
    box.user("tina")
    assert send(central_db, device_token, box.body())["acked_seq"] == 6
    before = snapshot(central_db, skip_device_contact=True)
    for _ in range(3):
        assert send(central_db, device_token, box.body(first, last))["acked_seq"] == 6
    assert snapshot(central_db, skip_device_contact=True) == before


def test_a_gap_is_refused_whole_with_the_seq_to_resume_from(central_db, device_token):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    for _ in range(5):
        box.lap(runner)
    send(central_db, device_token, box.body(1, 2))
    before = snapshot(central_db)
    with pytest.raises(ProtocolError) as refused:
        send(central_db, device_token, box.body(4, 6))
    assert refused.value.status == 409 and refused.value.code == "seq_gap"
    assert refused.value.extra == {"acked_seq": 2, "resume_from": 3,
                                   "database_id": current_database(central_db)}
    assert snapshot(central_db) == before
    assert send(central_db, device_token, box.body(2, 6))["acked_seq"] == 6
    assert totals(central_db) == {runner: 5}


def test_an_empty_push_binds_the_laptop_and_applies_nothing(central_db, device_token):
    box = Outbox()
    assert send(central_db, device_token, box.body())["acked_seq"] == 0
    assert central_db.execute("SELECT laptop_id FROM device").fetchone()["laptop_id"] == box.laptop_id


def edits(box: Outbox, runner_id: str) -> list[dict]:
    """Three edits of one runner by one laptop; return the push bodies, one per edit."""
    bodies = []
    for number in (5, 6, 7):
        box.runner(number, f"Name {box.laptop_id[:4]} {number}", runner_id=runner_id)
        bodies.append(box.body(len(box.changes), len(box.changes)))
    return bodies


def test_runner_edits_converge_whatever_the_arrival_order(pg_url, central_db):
    runner_id = Outbox().new_id()
    boxes = [Outbox(clock_ms=1_700_000_000_000 + i) for i in range(3)]
    # Same clock on two laptops: the tie is broken by origin, the same way everywhere.
    boxes[2].clock_ms = boxes[1].clock_ms
    pushes = [(i, body) for i, box in enumerate(boxes) for body in edits(box, runner_id)]
    expected = max((p[1]["changes"][0]["data"] for p in pushes), key=lambda d: (d["hlc"], d["origin"]))
    outcomes = set()
    for order in itertools.islice(itertools.permutations(range(len(pushes))), 0, None, 7919):
        central_db.execute("TRUNCATE runner, device, number_block, clash, runner_total, "
                           "device_runner_laps, lap CASCADE")  # and what refers to them
        # Laptops trusted with the roster: each may edit a runner another one created.
        tokens = [register(central_db, f"laptop-{i}", manage_roster=True) for i in range(3)]
        for index in order:
            i, body = pushes[index]
            # a laptop pushes its own seqs in order; other laptops interleave freely
            send(central_db, tokens[i], boxes[i].body(1, body["changes"][0]["seq"]))
        row = central_db.execute("SELECT * FROM runner WHERE id = %s", [runner_id]).fetchone()
        outcomes.add((row["start_number"], row["name"], row["hlc"], row["origin"]))
    assert outcomes == {(expected["start_number"], expected["name"], expected["hlc"],
                         expected["origin"])}


def test_void_and_restore_last_writer_wins_and_totals_follow(central_db, device_token):
    box = Outbox()
    runner = box.runner(3, "Ben Cruz")
    lap = box.lap(runner)
    box.lap(runner)
    box.void(lap, True, hlc="1700000000000.0010")
    box.void(lap, False, hlc="1700000000000.0020")
    box.void(lap, True, hlc="1700000000000.0015")   # older than the restore: loses
    send(central_db, device_token, box.body())
    assert central_db.execute("SELECT voided FROM lap_void").fetchone()["voided"] is False
    assert totals(central_db) == counted_laps(central_db) == {runner: 2}


def test_a_void_of_a_lap_central_does_not_have_is_refused_and_the_lap_still_counts(
        central_db, device_token):
    box = Outbox()
    runner = box.runner(4, "Dora Eck")
    lap_id = box.new_id()
    box.void(lap_id)                    # no laptop voids a lap it has not recorded
    answer = send(central_db, device_token, box.body())
    assert [(r["seq"], r["error"]) for r in answer["rejected"]] == [(2, "not_own_lap")]
    assert central_db.execute("SELECT * FROM lap_void").fetchall() == []
    box.lap(runner, lap_id=lap_id)
    box.lap(runner)
    assert send(central_db, device_token, box.body(3))["rejected"] == []
    assert totals(central_db) == counted_laps(central_db) == {runner: 2}


def test_a_lap_for_an_unknown_runner_is_kept_and_links_when_the_runner_arrives(central_db):
    a, b = Outbox(), Outbox()
    token_a, token_b = register(central_db, "a"), register(central_db, "b")
    late_runner = b.new_id()
    lap = a.lap(late_runner)
    send(central_db, token_a, a.body())
    assert totals(central_db) == {late_runner: 1}
    b.runner(99, "Late Comer", runner_id=late_runner)
    send(central_db, token_b, b.body())
    linked = central_db.execute("SELECT runner.name FROM lap JOIN runner ON runner.id = "
                                "lap.runner_id WHERE lap.id = %s", [lap]).fetchone()
    assert linked["name"] == "Late Comer"


def test_a_start_number_clash_is_recorded_and_both_runners_keep_their_laps(central_db):
    a, b = Outbox(), Outbox()
    token_a, token_b = register(central_db, "a"), register(central_db, "b")
    anna = a.runner(17, "Anna Berg", "5a")
    ben = b.runner(17, "Ben Cruz", "6b")
    a.lap(anna), a.lap(anna), b.lap(ben)
    send(central_db, token_a, a.body())
    send(central_db, token_b, b.body())
    send(central_db, token_b, b.body())  # a replay records nothing twice
    clashes = central_db.execute("SELECT * FROM clash").fetchall()
    assert [(c["kind"], c["value"], c["resolved_at"]) for c in clashes] == [("start_number", "17", None)]
    assert {clashes[0]["runner_a"], clashes[0]["runner_b"]} == {anna, ben}
    assert totals(central_db) == {anna: 2, ben: 1}
    assert central_db.execute("SELECT count(*) AS n FROM runner").fetchone()["n"] == 2
    b.runner(18, "Ben Cruz", "6b", runner_id=ben)   # the admin's fix, made on laptop b
    send(central_db, token_b, b.body())
    assert central_db.execute("SELECT resolved_at FROM clash").fetchone()["resolved_at"] is not None


def test_the_same_name_in_the_same_class_is_a_clash_too(central_db):
    a, b = Outbox(), Outbox()
    token_a, token_b = register(central_db, "a"), register(central_db, "b")
    a.runner(1, "Anna Berg", "5a")
    b.runner(2, "anna berg", "5A")
    b.runner(3, "Anna Berg", "6a")  # another class: no clash
    send(central_db, token_a, a.body())
    send(central_db, token_b, b.body())
    clashes = central_db.execute("SELECT kind, value FROM clash").fetchall()
    assert clashes == [{"kind": "name", "value": "anna berg / 5a"}]


def test_a_user_whose_name_is_taken_is_rejected_for_good_and_acknowledged(central_db):
    a, b = Outbox(), Outbox()
    token_a, token_b = (register(central_db, name, manage_users=True) for name in ("a", "b"))
    a.user("tom")
    b.user("tom")
    b.user("tina")
    send(central_db, token_a, a.body())
    answer = send(central_db, token_b, b.body())
    assert answer["acked_seq"] == 2
    assert [(r["seq"], r["error"]) for r in answer["rejected"]] == [(1, "duplicate_user")]
    assert send(central_db, token_b, b.body())["rejected"] == answer["rejected"]  # replay: same answer
    names = [r["name"] for r in central_db.execute("SELECT name FROM app_user ORDER BY name")]
    assert names == ["helper", "tina", "tom"]
    kept = central_db.execute("SELECT * FROM rejected_change").fetchone()
    assert kept["laptop_id"] == b.laptop_id and kept["payload"]["name"] == "tom"


def test_other_laps_are_the_total_minus_the_pulling_laptops_own(central_db):
    a, b = Outbox(), Outbox()
    token_a, token_b = register(central_db, "a"), register(central_db, "b")
    runner = a.runner(5, "Eva Fox")
    for _ in range(3):
        a.lap(runner)
    b.lap(runner)
    send(central_db, token_a, a.body())
    send(central_db, token_b, b.body())
    seen = {}
    for token in (token_a, token_b):
        page = pull(central_db, find_device(central_db, token), 0, 100)
        seen[token] = [c["data"]["other_laps"] for c in page["changes"] if c["entity"] == "total"]
    assert seen == {token_a: [1], token_b: [3]}


def test_a_void_of_another_laptops_lap_is_refused_and_moves_nothing(central_db):
    a, b = Outbox(), Outbox()
    token_a, token_b = register(central_db, "a"), register(central_db, "b")
    runner = a.runner(6, "Finn Gold")
    lap = a.lap(runner)
    send(central_db, token_a, a.body())
    b.void(lap)  # b learnt of the lap somehow: only the laptop that recorded it voids it
    answer = send(central_db, token_b, b.body())
    assert [(r["seq"], r["error"]) for r in answer["rejected"]] == [(1, "not_own_lap")]
    assert totals(central_db) == counted_laps(central_db) == {runner: 1}
    page = pull(central_db, find_device(central_db, token_a), 0, 100)
    assert [c["entity"] for c in page["changes"]].count("lap_void") == 0


def test_a_real_laptop_outbox_is_merged_and_moves_centrals_clock(db, runners, central_db):
    import json as _json

    from lapsync.laptop.db import device_id
    from lapsync.laptop.laps import record_lap, set_void

    user = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    kept = record_lap(db, 17, user, 0)["lap"]["id"]
    voided = record_lap(db, 17, user, 0)["lap"]["id"]
    set_void(db, voided, user, True, "typo")
    rows = db.query("SELECT * FROM change ORDER BY seq")
    body = {"protocol": 1, "device_id": device_id(db), "device_time": 1_700_000_000_000,
            "changes": [{"seq": r["seq"], "entity": r["entity"], "id": r["entity_id"],
                         "data": _json.loads(r["payload"])} for r in rows]}
    # The laptop's own admin ada is in its outbox: a device trusted to manage users.
    answer = send(central_db, register(central_db, "laptop-a", manage_users=True), body)
    assert answer["acked_seq"] == body["changes"][-1]["seq"] and answer["rejected"] == []
    assert totals(central_db) == {runners[17]: 1}
    assert {r["name"] for r in central_db.execute("SELECT name FROM app_user")} == \
        {"ada", "tom", "vic", "helper"}
    assert central_db.execute("SELECT count(*) AS n FROM runner").fetchone()["n"] == 3
    assert central_db.execute("SELECT id FROM lap ORDER BY id").fetchall() == sorted(
        [{"id": kept}, {"id": voided}], key=lambda r: r["id"])
    newest = max(c["data"]["hlc"] for c in body["changes"] if "hlc" in c["data"])
    assert central_db.execute("SELECT value FROM meta WHERE key = 'hlc'").fetchone()["value"] == newest


def test_a_lap_id_central_has_already_is_not_counted_again_under_a_new_seq(central_db,
                                                                          device_token):
    box = Outbox()
    runner = box.runner(9, "Ida Jung")
    lap = box.lap(runner)
    send(central_db, device_token, box.body())
    box.lap(runner, lap_id=lap)        # the same lap again under seq 3 (a copied outbox)
    fresh = box.lap(runner)
    box.lap(runner, lap_id=fresh)      # and twice inside one batch
    answer = send(central_db, device_token, box.body(3))
    assert answer["acked_seq"] == 5 and answer["rejected"] == []
    assert totals(central_db) == counted_laps(central_db) == {runner: 2}
    assert central_db.execute("SELECT laps_pushed FROM device").fetchone()["laps_pushed"] == 2


# ---- users are central's: only a device trusted to manage users changes them -------------

HASH = own_hash("central-password")          # the app's own argon2 parameters (tests/pg.py)
OTHER_HASH = own_hash("another-password")
HOSTILE = "'); DROP TABLE app_user;--"


def later() -> int:
    """Return a laptop clock a second ahead of central's: its user changes win LWW."""
    return now_ms() + 1000


def central_users_of(conn, **roles: str) -> dict:
    """Create users at central (its clock and origin), name=role; return their rows by name."""
    from lapsync.ids import new_id
    from sync import clock
    from sync.db import write_transaction
    with write_transaction(conn):
        return {name: conn.execute(
            "INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, origin, "
            "change_id) VALUES (%s, %s, %s, %s, 0, %s, %s, nextval('change_id_seq')) RETURNING *",
            [new_id(), name, HASH, role, clock.tick(conn), clock.node_id(conn)]).fetchone()
            for name, role in roles.items()}


def user_change(box: Outbox, user_id: str, name: str, role: str, password_hash: str = HASH) -> dict:
    """Append a user change to a laptop's outbox (a created or an edited user)."""
    return box.add("user", user_id, {"id": user_id, "name": name, "role": role,
                                     "password_hash": password_hash, "created_at": box.clock_ms,
                                     "hlc": box.stamp(), "origin": box.laptop_id})


# Each makes one user change that only a device trusted to manage users may make.
USER_CHANGES = {
    "create an admin": lambda box, u: user_change(box, box.new_id(), "mallory", "admin"),
    "create an admin with a hostile name": lambda box, u: user_change(box, box.new_id(),
                                                                      HOSTILE, "admin"),
    "create a teacher": lambda box, u: user_change(box, box.new_id(), "helga", "teacher"),
    "promote a teacher": lambda box, u: user_change(box, u["tina"]["id"], "tina", "admin"),
    "promote a viewer": lambda box, u: user_change(box, u["vic"]["id"], "vic", "admin"),
    "change a teacher's password": lambda box, u: user_change(box, u["tina"]["id"], "tina",
                                                              "teacher", OTHER_HASH),
    "change an admin's password": lambda box, u: user_change(box, u["ada"]["id"], "ada", "admin",
                                                             OTHER_HASH),
    "demote an admin": lambda box, u: user_change(box, u["ada"]["id"], "ada", "viewer"),
    "demote an admin and take its password": lambda box, u: user_change(
        box, u["ada"]["id"], "ada", "teacher", OTHER_HASH),
}


def without(state: dict, *tables: str) -> dict:
    """Return a snapshot without some tables."""
    return {table: rows for table, rows in state.items() if table not in tables}


@pytest.mark.parametrize("case", USER_CHANGES)
def test_an_untrusted_device_cannot_make_or_change_users_and_its_queue_moves_on(
        central_db, device_token, case):
    users = central_users_of(central_db, ada="admin", tina="teacher", vic="viewer")
    box = Outbox(clock_ms=later())
    change = USER_CHANGES[case](box, users)
    before = snapshot(central_db)
    answer = send(central_db, device_token, box.body())
    assert answer["acked_seq"] == 1                                   # acknowledged, not wedged
    assert [(r["seq"], r["error"]) for r in answer["rejected"]] == [(1, "users_only_at_central")]
    assert answer["rejected"][0]["message"].startswith("Only central, or a device it trusts")
    assert without(snapshot(central_db), "device", "rejected_change", "laptop_user") == \
        without(before, "device", "rejected_change", "laptop_user")   # not even central's clock
    kept = central_db.execute("SELECT * FROM rejected_change").fetchone()
    assert (kept["seq"], kept["entity"], kept["entity_id"], kept["error"]) == \
        (1, "user", change["id"], "users_only_at_central")
    assert kept["payload"] == change["data"] and kept["laptop_id"] == box.laptop_id
    assert send(central_db, device_token, box.body())["rejected"] == answer["rejected"]  # replay
    runner = box.runner(1, "Anna Berg")
    box.lap(runner)
    later_answer = send(central_db, device_token, box.body(2))        # the next batch applies
    assert later_answer["acked_seq"] == 3 and later_answer["rejected"] == []
    assert totals(central_db) == {runner: 1}
    assert central_db.execute("SELECT * FROM app_user WHERE id <> %s ORDER BY name",
                              [HELPER]).fetchall() == sorted(users.values(),
                                                             key=lambda u: u["name"])


@pytest.mark.parametrize("case", USER_CHANGES)
def test_a_device_trusted_to_manage_users_may_make_and_change_users(central_db, case):
    users = central_users_of(central_db, ada="admin", tina="teacher", vic="viewer")
    box = Outbox(clock_ms=later())
    change = USER_CHANGES[case](box, users)
    answer = send(central_db, register(central_db, "trusted", manage_users=True), box.body())
    assert answer["acked_seq"] == 1 and answer["rejected"] == []
    stored = central_db.execute("SELECT * FROM app_user WHERE id = %s", [change["id"]]).fetchone()
    assert {k: stored[k] for k in ("name", "role", "password_hash", "hlc", "origin")} == \
        {k: change["data"][k] for k in ("name", "role", "password_hash", "hlc", "origin")}


def test_a_user_id_keeps_its_name_even_for_a_trusted_device(central_db):
    users = central_users_of(central_db, ada="admin")
    box = Outbox(clock_ms=later())
    user_change(box, users["ada"]["id"], "ada2", "admin")
    answer = send(central_db, register(central_db, "trusted", manage_users=True), box.body())
    assert [(r["seq"], r["error"]) for r in answer["rejected"]] == [(1, "user_id_taken")]
    assert "is 'ada': a user id is never reused for another name" in answer["rejected"][0]["message"]
    assert central_db.execute("SELECT name FROM app_user WHERE id = %s",
                              [users["ada"]["id"]]).fetchone()["name"] == "ada"


def test_an_unchanged_user_sent_by_an_untrusted_device_is_no_attempt(central_db, device_token):
    users = central_users_of(central_db, ada="admin")
    stale = Outbox(clock_ms=1_000_000_000_000)                       # older than central's stamp
    user_change(stale, users["ada"]["id"], "ada", "teacher", OTHER_HASH)
    assert send(central_db, device_token, stale.body())["rejected"] == []  # loses LWW: a no-op
    same = Outbox(clock_ms=later())                                   # newer, but what central has
    user_change(same, users["ada"]["id"], "ada", "admin")
    assert send(central_db, register(central_db, "b"), same.body())["rejected"] == []
    ada = central_db.execute("SELECT role, password_hash, hlc FROM app_user WHERE id = %s",
                             [users["ada"]["id"]]).fetchone()
    assert ada == {"role": "admin", "password_hash": HASH, "hlc": users["ada"]["hlc"]}


# ---- compact lap runs -------------------------------------------------------------

def compact(body: dict) -> dict:
    """Return the body with its consecutive laps as compact lap runs."""
    return {**body, "changes": compact_changes(body["changes"])}


@pytest.fixture
def second_central(pg_server_url, pg_template):
    """A second fresh central database (a connection), dropped afterwards."""
    name = f"{pg_template}_second"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(pg_template)))
    try:
        with psycopg.connect(with_database(pg_server_url, name), autocommit=True,
                             row_factory=dict_row) as conn:
            yield conn
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_compact_runs_merge_exactly_like_the_same_laps_sent_one_by_one(central_db, second_central):
    box = Outbox()
    runner = box.runner(3, "Carla Ost")
    laps = [box.lap(runner) for _ in range(6)]
    box.void(laps[2])
    box.lap(runner, lap_id=laps[0])    # a re-sent id
    box.lap(box.new_id())              # a runner central does not know
    answer = send(central_db, register(central_db, "a"), compact(box.body()), now=5)
    assert answer == {"acked_seq": 10, "server_time": 5, "rejected": [],
                      "database_id": current_database(central_db)}
    send(second_central, register(second_central, "a"), box.body(), now=5)
    compared = {key: rows for key, rows in snapshot(central_db).items() if key not in ("meta", "device")}
    assert compared == {key: rows for key, rows in snapshot(second_central).items()
                        if key not in ("meta", "device")}
    assert totals(central_db) == counted_laps(central_db)
    assert sum(totals(central_db).values()) == 6


@pytest.mark.parametrize("first,last", [(1, 9), (1, 4), (3, 7), (9, 9), (5, 9)])
def test_replaying_a_compact_batch_or_any_part_changes_nothing(central_db, device_token, first, last):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    for _ in range(8):
        box.lap(runner)
    assert send(central_db, device_token, compact(box.body()))["acked_seq"] == 9
    before = snapshot(central_db, skip_device_contact=True)
    for _ in range(2):
        assert send(central_db, device_token, compact(box.body(first, last)))["acked_seq"] == 9
    assert snapshot(central_db, skip_device_contact=True) == before


def test_a_run_central_has_in_part_applies_only_its_new_laps(central_db, device_token):
    box = Outbox()
    runner = box.runner(2, "Bert Cole")
    laps = [box.lap(runner) for _ in range(8)]
    assert send(central_db, device_token, box.body(1, 4))["acked_seq"] == 4   # laps 1-3
    answer = send(central_db, device_token, compact(box.body(2, 9)))          # one run, seqs 2-9
    assert answer["acked_seq"] == 9
    assert totals(central_db) == counted_laps(central_db) == {runner: 8}
    assert {r["id"] for r in central_db.execute("SELECT id FROM lap")} == set(laps)
    assert central_db.execute("SELECT laps_pushed FROM device").fetchone()["laps_pushed"] == 8
    with pytest.raises(ProtocolError) as refused:                              # a gap, as ever
        box.lap(runner), box.lap(runner)
        send(central_db, device_token, compact(box.body(11, 11)))
    assert refused.value.code == "seq_gap" and refused.value.extra["resume_from"] == 10


# ---- fuzzing the push endpoint -------------------------------------------

import json  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.core.test_protocol import _spec_validator, mutated_bodies  # noqa: E402

ME = "d" * 24                                   # the laptop the fuzzed token is bound to
POOL = [c * 24 for c in "abcefgh"]              # few ids: re-sent laps, voids before laps, clashes
SPEC_PULL = _spec_validator("PullResponse")
_RAW = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"", b"null", b"[]", b"{}", b'"x"', b"1e400", b"NaN", b'{"protocol": 1, "protocol": 1}',
    b"[" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"9" * 5000, b"\xff\xfe{}",
    b'{"protocol": 1, "device_id": "\\ud800"}']))


def _text(low: int, high: int) -> st.SearchStrategy:
    """Names as people type them, and as attackers do: stored and shown verbatim."""
    typed = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=low, max_size=high)
    tricky = st.sampled_from(["Anna Berg", "'; DROP TABLE runner;--", "=1+1", "Zoë", "<b>x</b>",
                              "Robert'); --", "a\u2028b", "\u202eevil", "🏃" * 25])
    return st.one_of(tricky, typed).filter(lambda t: low <= len(t.strip()) <= high)


@st.composite
def valid_change(draw) -> dict:
    """Draw one change a laptop could send (seq is set by valid_batches)."""
    kind = draw(st.sampled_from(["lap", "lap", "laps", "lap_void", "runner", "user"]))
    hlc = f"{draw(st.integers(1_700_000_000_000, 1_700_000_000_003)):013d}.{draw(st.integers(0, 2)):04d}"
    origin, one = draw(st.sampled_from([ME, POOL[0]])), st.sampled_from(POOL)
    time = st.integers(0, 10 ** 14 - 1)
    if kind == "lap":
        lap = {"id": draw(one), "runner_id": draw(one), "created_by": draw(one),
               "time": draw(time), "device_id": draw(st.sampled_from([ME, POOL[1]]))}
        return {"entity": "lap", "id": lap["id"], "data": lap}
    if kind == "laps":
        n = draw(st.integers(1, 4))
        return {"entity": "laps", "data": {
            "id": draw(st.lists(one, min_size=n, max_size=n)),
            "runner_id": draw(st.lists(one, min_size=n, max_size=n)),
            "created_by": [draw(one)] * n, "time": draw(st.lists(time, min_size=n, max_size=n)),
            "device_id": [ME] * n}}
    if kind == "lap_void":
        lap_id = draw(one)
        return {"entity": "lap_void", "id": lap_id, "data": {
            "lap_id": lap_id, "voided": draw(st.booleans()), "at": draw(time), "by": draw(one),
            "reason": draw(st.one_of(st.none(), _text(0, 200))), "hlc": hlc, "origin": origin}}
    if kind == "runner":
        runner_id = draw(one)
        return {"entity": "runner", "id": runner_id, "data": {
            "id": runner_id, "start_number": draw(st.integers(1, 4)), "name": draw(_text(1, 100)),
            "class": draw(st.one_of(st.sampled_from(["5a", "6b"]), _text(1, 20))),
            "grade": draw(st.integers(1, 13)), "hlc": hlc, "origin": origin}}
    user_id = draw(one)
    return {"entity": "user", "id": user_id, "data": {
        "id": user_id, "name": draw(st.one_of(st.sampled_from(["tom", "ada"]), _text(1, 50))),
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "role": draw(st.sampled_from(["admin", "teacher", "viewer"])), "created_at": draw(time),
        "hlc": hlc, "origin": origin}}


@st.composite
def valid_batches(draw) -> dict:
    """Draw a valid push body of ME: seqs from 1, contiguous (a run counts its laps)."""
    changes, seq = [], 1
    for change in draw(st.lists(valid_change(), max_size=8)):
        changes.append({"seq": seq, **change})
        seq += len(change["data"]["id"]) if change["entity"] == "laps" else 1
    return {"protocol": 1, "device_id": ME, "device_time": draw(st.integers(0, 10 ** 14 - 1)),
            "changes": changes}


def shifted(body: object, by: int) -> object:
    """Move every integer seq of a body's changes up by `by` (each example a new batch)."""
    if isinstance(body, dict) and isinstance(body.get("changes"), list):
        for change in body["changes"]:
            if isinstance(change, dict) and type(change.get("seq")) is int:
                change["seq"] += by
    return body


def post_push(client, token: str, data: bytes, media: str = "application/json"):
    """POST raw bytes to the push endpoint as the device of token."""
    return client.post("/api/v1/push", data=data, content_type=media,
                       headers={"Authorization": f"Bearer {token}"})


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind_body=st.one_of(valid_batches().map(lambda b: ("valid", b)),
                           mutated_bodies().map(lambda b: ("mutated", b)),
                           _RAW.map(lambda b: ("raw", b))),
       media=st.sampled_from(["application/json"] * 6 + ["text/plain", "application/json; charset=utf-8"]))
def test_any_push_body_is_applied_or_refused_with_a_4xx_and_a_refusal_writes_nothing(
        central_client, central_db, device_token, kind_body, media):
    kind, body = kind_body
    bind = {"protocol": 1, "device_id": ME, "device_time": 0, "changes": []}
    assert post_push(central_client, device_token, json.dumps(bind).encode()).status_code == 200
    acked = central_db.execute("SELECT last_seq FROM device").fetchone()["last_seq"]
    data = body if kind == "raw" else json.dumps(shifted(body, acked)).encode()
    before = snapshot(central_db, skip_device_contact=True)
    response = post_push(central_client, device_token, data, media)
    answer = response.get_json()
    assert response.status_code in (200, 400, 403, 409, 413, 415, 422), answer
    if kind == "valid" and media != "text/plain":
        assert response.status_code == 200, answer          # what a laptop sends is taken
    if response.status_code != 200:
        assert isinstance(answer["error"], str) and isinstance(answer["message"], str)
        assert snapshot(central_db, skip_device_contact=True) == before
        return
    assert answer["acked_seq"] >= acked
    kept = totals(central_db)                                # a runner with every lap voided: 0
    assert min(kept.values(), default=0) >= 0
    assert {runner: n for runner, n in kept.items() if n} == counted_laps(central_db)
    page = pull(central_db, {"id": 0, "laptop_id": POOL[-1]}, 0, 1000)  # what others pull
    SPEC_PULL.validate(json.loads(json.dumps(page)))        # stored data pulls as the spec says


# ---- the catch-up push: pushed_by, COPY in chunks, voids first, gzip -----

import gzip  # noqa: E402

from lapsync import protocol  # noqa: E402
from sync import push as push_module  # noqa: E402
from sync.devices import revoke_device  # noqa: E402


def test_every_laps_pushed_by_names_the_device_that_delivered_it(central_db, device_token):
    # lap.pushed_by has no foreign key (sync/schema.sql says why): push writes the id of
    # the device row it locked, for every device, a revoked token's successor included.
    box, other = Outbox(), Outbox()
    runner = box.runner(1, "Anna Berg")
    first = [box.lap(runner), box.lap(runner)]
    send(central_db, device_token, compact(box.body()))
    revoke_device(central_db, "laptop-a")
    successor = register(central_db, "laptop-a2")
    later = box.lap(runner)
    send(central_db, successor, box.body(4, 4))
    theirs = other.lap(runner)
    send(central_db, register(central_db, "laptop-b"), other.body())
    rows = central_db.execute("SELECT l.id, d.name FROM lap l LEFT JOIN device d "
                              "ON d.id = l.pushed_by").fetchall()
    assert {r["id"]: r["name"] for r in rows} == {
        first[0]: "laptop-a", first[1]: "laptop-a", later: "laptop-a2", theirs: "laptop-b"}


def test_a_batch_of_many_copy_chunks_arrives_whole_and_once(central_db, device_token, monkeypatch):
    monkeypatch.setattr(push_module, "COPY_CHUNK", 3)  # 10 laps: four COPY writes
    box = Outbox()
    runner, other = box.runner(1, "Anna Berg"), box.runner(2, "Bert Cole")
    laps = [box.lap(runner if i % 3 else other) for i in range(7)]
    send(central_db, device_token, compact(box.body(1, 5)))
    box.lap(runner, lap_id=laps[1])                      # a lap id central has: COPY retried
    laps += [box.lap(other) for _ in range(3)]
    assert send(central_db, device_token, compact(box.body(6)))["acked_seq"] == 13
    assert sorted(r["id"] for r in central_db.execute("SELECT id FROM lap")) == sorted(laps)
    assert totals(central_db) == counted_laps(central_db) == {runner: 4, other: 6}
    assert central_db.execute("SELECT laps_pushed FROM device").fetchone()["laps_pushed"] == 10


def test_voids_and_restores_before_their_laps_in_one_batch_count_right_in_a_run(central_db,
                                                                               device_token):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    ids = [box.new_id() for _ in range(5)]
    box.void(ids[0])                                     # voided before it, in the same batch
    box.void(ids[1]), box.void(ids[1], voided=False)     # voided, then restored
    box.void(box.new_id())                               # a void whose lap never comes
    for lap_id in ids:
        box.lap(runner, lap_id=lap_id)
    answer = send(central_db, device_token, compact(box.body()))
    assert [(r["seq"], r["error"]) for r in answer["rejected"]] == [(5, "not_own_lap")]
    assert totals(central_db) == counted_laps(central_db) == {runner: 4}


def post_raw(client, token: str, data: bytes, encoding: str | None = None):
    """POST a push body as it is, with a Content-Encoding if given."""
    headers = {"Authorization": f"Bearer {token}"}
    if encoding:
        headers["Content-Encoding"] = encoding
    return client.post("/api/v1/push", data=data, content_type="application/json", headers=headers)


def test_a_gzip_push_applies_like_its_json_and_its_replay_changes_nothing(central_client, central_db,
                                                                        device_token):
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    for _ in range(5):
        box.lap(runner)
    packed = gzip.compress(json.dumps(compact(box.body())).encode())
    answer = post_raw(central_client, device_token, packed, "gzip")
    assert answer.status_code == 200 and answer.json["acked_seq"] == 6
    assert answer.json["content_encodings"] == ["gzip"] and answer.json["encodings"] == ["laps", "clock_jumps"]
    assert type(answer.json["apply_ms"]) is int and answer.json["apply_ms"] >= 0
    assert totals(central_db) == {runner: 5}
    before = snapshot(central_db, skip_device_contact=True)
    assert post_raw(central_client, device_token, packed, "GZip").json["acked_seq"] == 6
    assert snapshot(central_db, skip_device_contact=True) == before


@pytest.mark.parametrize("case,status,code", [
    ("not gzip", 400, "malformed_gzip"), ("cut short", 400, "malformed_gzip"),
    ("data after its end", 400, "malformed_gzip"), ("unpacks too large", 413, "batch_too_large"),
    ("another encoding", 415, "unsupported_media_type")])
def test_a_bad_compressed_body_is_refused_and_changes_nothing(central_client, central_db, device_token,
                                                              monkeypatch, case, status, code):
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_BYTES", 4_000)  # the limit after decompression
    box = Outbox()
    box.lap(box.runner(1, "Anna Berg"))
    raw = json.dumps(box.body()).encode()
    packed = gzip.compress(raw)
    data, encoding = {
        "not gzip": (raw, "gzip"), "cut short": (packed[:-9], "gzip"),
        "data after its end": (packed + packed, "gzip"),
        "unpacks too large": (gzip.compress(raw[:-2] + b" " * 5_000 + b"]}"), "gzip"),
        "another encoding": (packed, "br")}[case]
    before = snapshot(central_db)
    answer = post_raw(central_client, device_token, data, encoding)
    assert (answer.status_code, answer.json["error"]) == (status, code)
    assert answer.json["message"]
    assert snapshot(central_db) == before


@pytest.mark.parametrize("voids_at_once", [10_000, 1])
def test_a_lap_central_holds_a_void_for_arrives_voided_whether_voids_are_few_or_many(
        central_db, device_token, monkeypatch, voids_at_once):
    # Few voids at central: the batch's ids are checked in Python; more: by a join in SQL.
    monkeypatch.setattr(push_module, "VOIDS_AT_ONCE", voids_at_once)
    box = Outbox()
    runner = box.runner(1, "Anna Berg")
    ids = [box.new_id() for _ in range(4)]
    for lap_id, voided in ((ids[0], True), (ids[1], True), (ids[2], False), (box.new_id(), True)):
        central_db.execute("INSERT INTO lap_void (lap_id, voided, at, by, hlc, origin, change_id) "
                           "VALUES (%s, %s, 1, 'u', '1700000000000.0001', 'x', 0)", [lap_id, voided])
    for lap_id in ids:
        box.lap(runner, lap_id=lap_id)
    send(central_db, device_token, compact(box.body()))
    assert totals(central_db) == counted_laps(central_db) == {runner: 2}


def test_a_big_batch_after_many_small_ones_is_planned_for_its_own_size(central_db, device_token):
    box = Outbox()
    runners = [box.runner(i, f"Runner {i}") for i in range(1, 41)]
    send(central_db, device_token, box.body())
    for round_ in range(14):
        first = len(box.changes) + 1
        for runner in runners[:3] if round_ < 13 else runners:
            box.lap(runner)
        send(central_db, device_token, box.body(first))
    plans = central_db.execute(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE '%%UPDATE runner_total%%' OR statement LIKE '%%UPDATE device_runner_laps%%'"
    ).fetchall()
    assert len(plans) == 2 and all(p["custom_plans"] >= 8 for p in plans), plans
    assert [p["generic_plans"] for p in plans] == [0, 0]
    assert totals(central_db) == counted_laps(central_db)
    assert totals(central_db)[runners[-1]] == 1 and totals(central_db)[runners[0]] == 14


def heap_reads(conn) -> dict:
    """Return the heap pages read so far from runner_total and device_runner_laps."""
    conn.execute("SELECT pg_stat_force_next_flush()")   # this session's counts, now
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return {r["relname"]: r["heap_blks_hit"] + r["heap_blks_read"] for r in conn.execute(
        "SELECT relname, heap_blks_hit, heap_blks_read FROM pg_statio_user_tables "
        "WHERE relname IN ('runner_total', 'device_runner_laps')")}


def test_a_first_batch_into_totals_analysed_empty_reads_them_once_per_row(central_db, device_token):
    for table in ("runner_total", "device_runner_laps"):
        central_db.execute(f"VACUUM ANALYZE {table}")   # as autovacuum leaves an emptied table
    box = Outbox()
    for _ in range(1_500):
        box.lap(box.new_id())
    before = heap_reads(central_db)
    send(central_db, device_token, box.body())
    after = heap_reads(central_db)
    # About one page read per row inserted; a plan that scans the table it fills once per
    # row reads ~15 times as many.
    assert {table: after[table] - before[table] for table in after} \
        == {table: pytest.approx(1_550, rel=0.3) for table in after}
    assert totals(central_db) == counted_laps(central_db) and len(totals(central_db)) == 1_500
    laptop = central_db.execute("SELECT count(*) AS n, sum(laps) AS laps FROM device_runner_laps").fetchone()
    assert (laptop["n"], laptop["laps"]) == (1_500, 1_500)


def test_a_batch_of_known_and_new_runners_adds_to_the_one_and_inserts_the_other(central_db, device_token):
    first, second = Outbox(), Outbox()
    known, also_known, new = first.new_id(), first.new_id(), first.new_id()
    for runner in (known, also_known, known):
        first.lap(runner)
    send(central_db, device_token, first.body())
    token_b = register(central_db, "laptop-b")
    for runner in (known, new, new):
        second.lap(runner)
    send(central_db, token_b, second.body())
    for runner in (also_known, known):   # laptop-b's first lap of also_known
        second.lap(runner)
    send(central_db, token_b, second.body(4))
    assert totals(central_db) == {known: 4, also_known: 2, new: 2} == counted_laps(central_db)
    per_laptop = {(r["laptop_id"], r["runner_id"]): r["laps"]
                  for r in central_db.execute("SELECT * FROM device_runner_laps")}
    assert per_laptop == {(first.laptop_id, known): 2, (first.laptop_id, also_known): 1,
                          (second.laptop_id, known): 2, (second.laptop_id, new): 2,
                          (second.laptop_id, also_known): 1}
    page = pull(central_db, find_device(central_db, device_token), 0, 100)
    others = {c["id"]: c["data"]["other_laps"] for c in page["changes"] if c["entity"] == "total"}
    assert others == {known: 2, also_known: 1, new: 2}   # laptop-a's own laps not counted


def answered(work, conn, url: str, seconds: float = 60):
    """Run work on conn in a thread; return its result. Fail if it has not answered in
    seconds, after ending conn's session (so that the test's teardown does not wait)."""
    done: list = []
    thread = threading.Thread(target=lambda: done.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    if not done:
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        thread.join(10)
    assert done, f"no answer within {seconds} s (a statement stuck half sent?)"
    return done[0]


def test_pushes_and_a_void_among_thousands_of_close_laps_answer(central_db, device_token,
                                                                pg_url):
    """Two laptops counting every lap of a runner give a close pair a lap: a batch's pairs,
    and a void's re-read of them all, are statements of megabytes in one pipeline."""
    box = Outbox()
    runner = box.runner(17, "Cleo Dahl")
    laps = [box.lap(runner, time=box.clock_ms + i) for i in range(40_000)]
    answer = answered(lambda: send(central_db, device_token, box.body()), central_db, pg_url)
    assert answer["acked_seq"] == 40_001 and answer["rejected"] == []
    pairs = "SELECT count(*) AS n FROM close_lap_pair"
    assert central_db.execute(pairs).fetchone()["n"] == 39_999
    box.void(laps[20_000])
    answered(lambda: send(central_db, device_token, box.body(first=40_002)), central_db, pg_url)
    assert totals(central_db) == {runner: 39_999}
    assert central_db.execute(pairs).fetchone()["n"] == 39_998

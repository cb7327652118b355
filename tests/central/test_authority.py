"""A device speaks only for itself, and users are central's: every attack a device token can
make on central, over real HTTP (central on a loopback port, real device tokens, real laptops
syncing with the real client), is refused item by item and changes nothing else.

docs/SECURITY.md lists each attack with the test here that guards it.
"""
from __future__ import annotations

import re

import pytest
import requests

from lapsync.ids import new_id
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import PENDING
from lapsync.laptop.laps import record_lap
from lapsync.laptop.runners import update_runner
from sync.db import now_ms
from sync.users import create_user
from tests.pg import HELPER, Outbox, own_hash, register, snapshot

ARGON = own_hash().rsplit("$", 2)[0]     # "$argon2id$v=19$m=...,t=...,p=..." of this process


def push(base: str, token: str, body: dict) -> dict:
    """Push a body over HTTP; it must be answered 200; return the answer."""
    response = requests.post(f"{base}/api/v1/push", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def pull(base: str, token: str) -> list[dict]:
    """Pull every change from cursor 0 over HTTP."""
    response = requests.get(f"{base}/api/v1/pull", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()["changes"]


def refused(answer: dict) -> list[tuple[int, str]]:
    """Return (seq, error) of each change the answer refused."""
    return [(r["seq"], r["error"]) for r in answer["rejected"]]


def state(conn) -> dict:
    """Central's data, without what every push moves (the device's seq, the refusals kept)."""
    return {table: rows for table, rows in snapshot(conn).items()
            if table not in ("device", "rejected_change")}


def totals(conn) -> dict:
    """Return {runner_id: laps that count}."""
    return {r["runner_id"]: r["laps"] for r in conn.execute("SELECT * FROM runner_total")}


@pytest.fixture
def field(live_central, central_db, central_users) -> dict:
    """Laptop B counted two laps of its runner Cleo; A and B are plain devices, T is trusted
    to manage users. Central has admin ada, viewer vic and the teacher helper."""
    tokens = {"a": register(central_db, "laptop-a"), "b": register(central_db, "laptop-b"),
              "t": register(central_db, "trusted", manage_users=True)}
    boxes = {name: Outbox() for name in tokens}
    cleo = boxes["b"].runner(17, "Cleo Dahl", "6b", 6)
    laps = [boxes["b"].lap(cleo), boxes["b"].lap(cleo)]
    for name, token in tokens.items():
        assert push(live_central, token, boxes[name].body())["rejected"] == []
    return {"url": live_central, "tokens": tokens, "boxes": boxes, "cleo": cleo, "laps": laps,
            "acked": {name: len(box.changes) for name, box in boxes.items()}, **central_users}


def send(field: dict, name: str, body: dict | None = None) -> dict:
    """Push device NAME's changes after those central acknowledged (or BODY); return the answer."""
    box = field["boxes"][name]
    answer = push(field["url"], field["tokens"][name], body or box.body(field["acked"][name] + 1))
    field["acked"][name] = answer["acked_seq"]
    return answer


# ---- laps: only the pushing laptop's, by users it knows --------------------------------------

def test_a_lap_naming_another_laptop_is_refused_and_the_rest_of_the_batch_applies(field,
                                                                                  central_db):
    a, b = field["boxes"]["a"], field["boxes"]["b"]
    before = state(central_db)
    forged = a.lap(field["cleo"])
    a.changes[-1]["data"]["device_id"] = b.laptop_id       # "B recorded it"
    answer = send(field, "a")
    assert refused(answer) == [(1, "not_this_laptop")] and answer["acked_seq"] == 1
    assert "a device pushes only its own laps" in answer["rejected"][0]["message"]
    assert state(central_db) == before
    assert not central_db.execute("SELECT 1 FROM lap WHERE id = %s", [forged]).fetchone()
    own = a.lap(field["cleo"])                             # the queue moved on
    assert send(field, "a")["rejected"] == []
    assert central_db.execute("SELECT device_id FROM lap WHERE id = %s",
                              [own]).fetchone()["device_id"] == a.laptop_id
    assert totals(central_db) == {field["cleo"]: 3}
    others = {c["data"]["runner_id"]: c["data"]["other_laps"]
              for c in pull(field["url"], field["tokens"]["b"]) if c["entity"] == "total"}
    assert others == {field["cleo"]: 1}                    # B still counts its own two itself


def test_a_compact_run_of_forged_laps_is_refused_lap_by_lap(field, central_db):
    a = field["boxes"]["a"]
    for i in range(6):
        a.lap(field["cleo"])
        if i % 2:
            a.changes[-1]["data"]["device_id"] = field["boxes"]["b"].laptop_id
    run = {"protocol": 1, "device_id": a.laptop_id, "device_time": a.clock_ms, "changes": [
        {"seq": 1, "entity": "laps", "data": {k: [c["data"][k] for c in a.changes]
                                              for k in a.changes[0]["data"]}}]}
    answer = send(field, "a", run)
    assert refused(answer) == [(2, "not_this_laptop"), (4, "not_this_laptop"),
                               (6, "not_this_laptop")] and answer["acked_seq"] == 6
    assert totals(central_db) == {field["cleo"]: 5}


@pytest.mark.parametrize("recorder", ["central admin", "unknown", "another laptop's user"])
def test_a_lap_recorded_by_a_user_the_device_does_not_know_is_refused(field, central_db,
                                                                      recorder):
    b = field["boxes"]["b"]
    if recorder == "another laptop's user":                # B's own user, refused at central
        user = b.user("bea")
        assert refused(send(field, "b")) == [(4, "users_only_at_central")]
    else:
        user = field["ada"] if recorder == "central admin" else new_id()
    a = field["boxes"]["a"]
    before = state(central_db)
    a.lap(field["cleo"])
    a.changes[-1]["data"]["created_by"] = user
    answer = send(field, "a")
    assert refused(answer) == [(1, "unknown_user")] and state(central_db) == before
    assert "a user this laptop does not know" in answer["rejected"][0]["message"]


def test_a_device_may_name_users_it_made_or_pulled_and_a_trusted_one_central_admins(field,
                                                                                     central_db):
    a, t = field["boxes"]["a"], field["boxes"]["t"]
    own = a.user("anton")                                  # refused at central, kept on A
    a.lap(field["cleo"])
    a.changes[-1]["data"]["created_by"] = own
    a.lap(field["cleo"])                                   # central's teacher helper
    assert refused(send(field, "a")) == [(1, "users_only_at_central")]
    t.lap(field["cleo"])
    t.changes[-1]["data"]["created_by"] = field["ada"]     # ada may log in on a trusted laptop
    assert send(field, "t")["rejected"] == []
    recorders = [r["created_by"] for r in central_db.execute(
        "SELECT created_by FROM lap WHERE device_id <> %s ORDER BY received_at, id",
        [field["boxes"]["b"].laptop_id])]
    assert sorted(recorders) == sorted([own, HELPER, field["ada"]])


# ---- voids: only of the laptop's own laps ----------------------------------------------------

@pytest.mark.parametrize("voided", [True, False])
def test_a_device_voids_or_restores_only_laps_it_recorded(field, central_db, voided):
    a = field["boxes"]["a"]
    before = state(central_db)
    a.void(field["laps"][0], voided=voided)
    a.changes[-1]["data"]["origin"] = field["boxes"]["b"].laptop_id  # "B voided it"
    answer = send(field, "a")
    assert refused(answer) == [(1, "not_own_lap")] and state(central_db) == before
    assert "A device voids or restores only laps it recorded" in answer["rejected"][0]["message"]
    assert [c for c in pull(field["url"], field["tokens"]["b"]) if c["entity"] == "lap_void"] == []
    assert totals(central_db) == {field["cleo"]: 2}


def test_a_void_by_a_user_the_laptop_does_not_know_is_refused(field, central_db):
    b = field["boxes"]["b"]
    before = state(central_db)
    b.void(field["laps"][0])
    b.changes[-1]["data"]["by"] = field["ada"]             # central's admin, on an untrusted laptop
    assert refused(send(field, "b")) == [(4, "unknown_user")] and state(central_db) == before
    b.void(field["laps"][0])                               # the helper may
    assert send(field, "b")["rejected"] == [] and totals(central_db) == {field["cleo"]: 1}


def test_central_sets_a_changes_origin_to_the_pushing_laptop(field, central_db):
    b = field["boxes"]["b"]
    runner = b.runner(40, "Ida Jung")
    b.changes[-1]["data"]["origin"] = field["boxes"]["a"].laptop_id
    assert send(field, "b")["rejected"] == []
    stored = central_db.execute("SELECT origin, created_on FROM runner WHERE id = %s",
                                [runner]).fetchone()
    assert stored == {"origin": b.laptop_id, "created_on": b.laptop_id}


# ---- runners: a device edits those it created, unless trusted with the roster ----------------

def test_a_device_edits_only_runners_it_created_unless_trusted_with_the_roster(
        field, central_db, central_app, central_admin):
    assert central_admin.post("/runners/new", data={
        "start_number": "5", "name": "Rosa Roster", "class": "5a", "grade": "5",
        "csrf_token": central_admin.csrf}).status_code == 302
    rosa = central_db.execute("SELECT id FROM runner WHERE start_number = 5").fetchone()["id"]
    a = field["boxes"]["a"]
    before = state(central_db)
    a.runner(5, "Mallory", "5a", 5, runner_id=rosa)        # central's roster
    a.runner(99, "Cleo Dahl", "6b", 6, runner_id=field["cleo"])  # laptop B's late runner
    answer = send(field, "a")
    assert refused(answer) == [(1, "roster_only_at_central"), (2, "roster_only_at_central")]
    assert state(central_db) == before
    own = a.runner(41, "Jan Kurz")
    a.runner(42, "Jan Kurz", runner_id=own)                # its own: as it likes
    assert send(field, "a")["rejected"] == []
    cli = central_app.test_cli_runner().invoke(args=["set-device", "laptop-a", "--manage-roster"])
    assert cli.exit_code == 0 and "may manage the roster" in cli.output
    a.clock_ms = now_ms() + 1000                           # later than central's own edit
    a.runner(5, "Rosa Roster-Ost", "5a", 5, runner_id=rosa)
    assert send(field, "a")["rejected"] == []
    names = {r["id"]: (r["start_number"], r["name"]) for r in central_db.execute(
        "SELECT id, start_number, name FROM runner")}
    assert names[rosa] == (5, "Rosa Roster-Ost") and names[own] == (42, "Jan Kurz")
    assert names[field["cleo"]] == (17, "Cleo Dahl")


@pytest.mark.parametrize("field_name, value", [("name", "Anna\u202eBerg"), ("name", "An\u200bna"),
                                               ("name", "Anna\u2028Berg"), ("class", "5\u2066a"),
                                               ("class", "\ufeff5a")])
def test_runner_names_with_invisible_characters_are_refused(field, central_db, field_name, value):
    b = field["boxes"]["b"]
    before = state(central_db)
    runner = b.runner(50, "Anna Berg", "5a")
    b.changes[-1]["data"][field_name] = value
    answer = send(field, "b")
    assert refused(answer) == [(4, "invalid_name")] and state(central_db) == before
    assert "invisible character U+" in answer["rejected"][0]["message"]
    assert not central_db.execute("SELECT 1 FROM runner WHERE id = %s", [runner]).fetchone()


def test_runner_names_are_stored_nfc_normalised(field, central_db):
    b = field["boxes"]["b"]
    runner = b.runner(51, "Zoe\u0308 Ha\u0308nsel", "5a")
    assert send(field, "b")["rejected"] == []
    assert central_db.execute("SELECT name FROM runner WHERE id = %s",
                              [runner]).fetchone()["name"] == "Zoë Hänsel"


# ---- users are central's -------------------------------------------------------------------

def test_an_untrusted_device_changes_no_teachers_password(field, central_db):
    tina = create_user(central_db, "tina", "teacher", "tinas-password")
    a = field["boxes"]["a"]
    before = state(central_db)
    a.add("user", tina, {"id": tina, "name": "tina", "role": "teacher",
                         "password_hash": own_hash("mallorys-password"), "created_at": 0,
                         "hlc": f"{now_ms() + 1000:013d}.0000", "origin": a.laptop_id})
    assert refused(send(field, "a")) == [(1, "users_only_at_central")]
    assert state(central_db) == before


def test_another_laptops_local_admin_cannot_be_taken_over(field, central_db, app, db):
    # Laptop B, the real app: its own admin ada (and tom, vic) stay on it, refused at central.
    b_token = register(central_db, "laptop-b2")
    b = Central(field["url"], b_token)
    assert sync_once(db, b, force=True).error is None
    ada = db.execute("SELECT id, role, password_hash, hlc FROM user WHERE name = 'ada'").fetchone()
    shown = central_db.execute("SELECT error FROM rejected_change WHERE entity_id = %s",
                               [ada[0]]).fetchone()
    assert shown == {"error": "users_only_at_central"}    # and its id is on the devices page
    # A trusted device pushes a teacher with ada's id and its own password hash.
    t = field["boxes"]["t"]
    for name in ("ada", "mallory"):
        t.add("user", ada[0], {"id": ada[0], "name": name, "role": "teacher",
                               "password_hash": own_hash("mallorys-password"), "created_at": 0,
                               "hlc": f"{now_ms() + 1000:013d}.0000", "origin": t.laptop_id})
    before = state(central_db)
    answer = send(field, "t")
    assert refused(answer) == [(1, "user_id_taken"), (2, "user_id_taken")]
    assert "a user another laptop created" in answer["rejected"][0]["message"]
    assert state(central_db) == before
    # A central that took such a user anyway (say, before this rule): B keeps its admin.
    central_db.execute("UPDATE app_user SET name = 'ada-central' WHERE name = 'ada'")
    central_db.execute(
        "INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, origin, change_id) "
        "VALUES (%s, 'ada', %s, 'teacher', 0, %s, %s, nextval('change_id_seq'))",
        [ada[0], own_hash("mallorys-password"), f"{now_ms() + 1000:013d}.0000", t.laptop_id])
    assert sync_once(db, b, force=True).error is None
    assert db.execute("SELECT id, role, password_hash, hlc FROM user WHERE name = 'ada'"
                      ).fetchone() == ada
    kept = dict(db.execute("SELECT entity_id, error FROM rejected_pull").fetchall())
    assert kept[ada[0]] == ("ValueError: user 'ada' was made on this laptop and central never "
                            "accepted it: no pull changes it")
    status = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert f"user {ada[0]}: ValueError: user 'ada' was made on this laptop" in status, status


@pytest.mark.parametrize("password_hash", [
    "$argon2id$v=19$m=262144,t=16,p=4$c2FsdHNhbHRzYWx0c2FsdA$" + "a" * 43,    # its own cost
    "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + "a" * 43,    # 4 GiB
    ARGON.replace("argon2id", "argon2i") + "$c2FsdHNhbHRzYWx0c2FsdA$" + "a" * 43,
    ARGON.replace(",t=", ",t=0") + "$c2FsdHNhbHRzYWx0c2FsdA$" + "a" * 43,     # t=01
    ARGON + "$c2FsdHNhbHRzYWx0c2FsdHNhbHQ$" + "a" * 43,                     # a longer salt
    ARGON + "$c2FsdHNhbHRzYWx0c2FsdA$" + "a" * 86,                          # a longer hash
    ARGON + "$c2FsdHNhbHRzYWx0c2FsdA$" + "a" * 43 + "$" + "a" * 43,          # a third part
    "$argon2id$x",
])
def test_a_pushed_password_hash_must_use_the_apps_own_parameters(field, central_db,
                                                                 password_hash):
    t = field["boxes"]["t"]
    before = state(central_db)
    t.user("olga")
    t.changes[-1]["data"]["password_hash"] = password_hash
    answer = send(field, "t")
    assert refused(answer) == [(1, "foreign_password_hash")] and state(central_db) == before
    assert "must use this app's own parameters (argon2id, m=" in answer["rejected"][0]["message"]
    t.user("olga")                                         # the app's own hash: taken
    assert send(field, "t")["rejected"] == []


@pytest.mark.parametrize("name", ["to\nm", "tom\x1b[2J", "\u202etom", "t\u200bom", "to\u2028m",
                                  "to\u0085m", "\u2066tom\u2069"])
def test_pushed_user_names_are_one_line_without_invisible_characters(field, central_db, name):
    t = field["boxes"]["t"]
    before = state(central_db)
    t.user(name)
    assert refused(send(field, "t")) == [(1, "invalid_name")] and state(central_db) == before


def test_a_new_user_name_confusable_with_another_is_refused_pushed_or_made_at_central(
        field, central_db, central_app):
    t = field["boxes"]["t"]
    before = state(central_db)
    for name in ("\u0430da", "ADA", "v\u0456c", "he1per"):  # Cyrillic а and і; case; 1 for l
        t.user(name)
    answer = send(field, "t")
    assert refused(answer) == [(1, "confusable_name"), (2, "confusable_name"),
                               (3, "confusable_name"), (4, "confusable_name")]
    assert "'аda' looks like the name of user 'ada' at central" in answer["rejected"][0]["message"]
    assert state(central_db) == before
    cli = central_app.test_cli_runner().invoke(args=["create-user", "\u0430da", "--role", "admin",
                                                     "--password", "a-long-password"])
    assert cli.exit_code == 1 and "looks like the name of user 'ada'" in cli.output
    assert state(central_db) == before
    t.user("Ada Lovelace")                                 # a name of its own is welcome
    assert send(field, "t")["rejected"] == []


# ---- secrets: admins' hashes only for trusted devices --------------------------------------

def test_admin_hashes_go_only_to_trusted_devices_and_follow_the_trust(field, central_db,
                                                                      central_app, app, db):
    ada_hash = central_db.execute("SELECT password_hash FROM app_user WHERE id = %s",
                                  [field["ada"]]).fetchone()["password_hash"]
    pulled = {name: {c["data"]["name"]: c["data"]["password_hash"]
                     for c in pull(field["url"], token) if c["entity"] == "user"}
              for name, token in field["tokens"].items()}
    assert pulled["a"]["ada"] == pulled["b"]["ada"] == "!withheld"
    assert pulled["t"]["ada"] == ada_hash and pulled["a"]["vic"] == pulled["t"]["vic"]
    token = register(central_db, "laptop-c")
    laptop = Central(field["url"], token)
    laptop_login = app.test_client()

    def logs_in() -> bool:
        """Tell whether central's ada logs in on the laptop."""
        assert sync_once(db, laptop, force=True).error is None
        return laptop_login.post("/login", data={"name": "ada", "password": "central-secret"},
                                 headers={"Accept": "application/json"}).status_code == 200

    app.config["WTF_CSRF_ENABLED"] = False
    db.execute("DELETE FROM user WHERE name = 'ada'")      # the laptop's own ada makes way
    db.conn.commit()
    assert not logs_in()
    cli = central_app.test_cli_runner()
    assert cli.invoke(args=["set-device", "laptop-c", "--manage-users"]).exit_code == 0
    assert logs_in()
    assert cli.invoke(args=["set-device", "laptop-c", "--no-manage-users"]).exit_code == 0
    assert not logs_in()
    assert db.execute("SELECT password_hash FROM user WHERE id = ?",
                      [field["ada"]]).fetchone()[0] == "!withheld"


# ---- what the laptop shows ------------------------------------------------------------------

def test_a_refused_edit_never_wedges_the_laptops_queue_and_sync_status_says_why(
        field, central_db, app, db):
    # The real laptop edits a runner laptop B made; its laps still reach central.
    token = register(central_db, "laptop-d")
    laptop = Central(field["url"], token)
    assert sync_once(db, laptop, force=True).error is None
    update_runner(db, field["cleo"], 17, "Cleo Mallory", "6b", 6)
    tom = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]  # made on it
    record_lap(db, 17, tom, 0)
    result = sync_once(db, laptop, force=True)
    assert result.error is None and result.rejected == 1
    assert db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone()[0] == 0
    assert totals(central_db) == {field["cleo"]: 3}
    assert central_db.execute("SELECT name FROM runner WHERE id = %s",
                              [field["cleo"]]).fetchone()["name"] == "Cleo Dahl"
    status = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert re.search(r"runner \w+: roster_only_at_central This device edits only runners it "
                     r"created", status), status
    record_lap(db, 17, tom, 0, confirm=True)               # and the next lap goes as usual
    assert sync_once(db, laptop, force=True).rejected == 0
    assert totals(central_db) == {field["cleo"]: 4}


def test_the_devices_page_gives_and_takes_the_roster_right_and_logs_it(field, central_db,
                                                                       central_admin):
    device = central_db.execute("SELECT id FROM device WHERE name = 'laptop-a'").fetchone()["id"]
    page = central_admin.get("/devices/").get_data(as_text=True)
    row = re.search(rf'<tr data-device="{device}".*?</tr>', page, re.S).group(0)
    assert 'data-manage-roster="no"' in row and "only runners it added" in row
    assert "central admins cannot log in on it" in row
    for value, shown in (("yes", "yes, any runner"), ("no", "only runners it added")):
        answer = central_admin.post(f"/devices/{device}/manage-roster",
                                    data={"manage_roster": value, "csrf_token": central_admin.csrf})
        assert answer.status_code == 302
        row = re.search(rf'<tr data-device="{device}".*?</tr>',
                        central_admin.get("/devices/").get_data(as_text=True), re.S).group(0)
        assert shown in row
    bad = central_admin.post(f"/devices/{device}/manage-roster",
                             data={"manage_roster": "maybe", "csrf_token": central_admin.csrf})
    assert bad.status_code == 400 and "may manage the roster is yes or no" in bad.get_data(
        as_text=True)
    log = central_admin.get("/review/").get_data(as_text=True)
    assert "Let device laptop-a manage the roster" in log
    assert "Device laptop-a may no longer manage the roster." in log
    made = central_admin.post("/devices/register", data={
        "name": "office", "manage_roster": "yes", "csrf_token": central_admin.csrf})
    assert made.status_code == 201
    assert central_db.execute("SELECT manage_roster, manage_users FROM device WHERE name = "
                              "'office'").fetchone() == {"manage_roster": True,
                                                          "manage_users": False}


def test_register_device_takes_the_roster_right_on_the_command_line(central_app, central_db):
    cli = central_app.test_cli_runner()
    made = cli.invoke(args=["register-device", "gym", "--manage-roster"])
    assert made.exit_code == 0 and "It may manage the roster." in made.output
    assert "manage_users=no manage_roster=yes" in cli.invoke(args=["list-devices"]).output
    assert cli.invoke(args=["set-device", "gym"]).exit_code != 0
    assert "may not manage the roster" in cli.invoke(
        args=["set-device", "gym", "--no-manage-roster"]).output


def test_an_upgraded_central_knows_which_laptop_made_what_and_resends_the_admins(
        field, central_db, central_app):
    b = field["boxes"]["b"]
    mine = b.user("bea")                                    # refused before the upgrade, too
    send(field, "b")
    central_db.execute("DROP TABLE laptop_user")            # a central from before
    central_db.execute("ALTER TABLE runner DROP COLUMN created_on")
    central_db.execute("DROP TABLE schema_migration")       # made before numbered migrations
    admins = central_db.execute("SELECT change_id FROM app_user WHERE role = 'admin'").fetchone()
    assert central_app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    assert central_db.execute("SELECT laptop_id, name FROM laptop_user WHERE user_id = %s",
                              [mine]).fetchone() == {"laptop_id": b.laptop_id, "name": "bea"}
    assert central_db.execute("SELECT created_on FROM runner WHERE id = %s",
                              [field["cleo"]]).fetchone() == {"created_on": b.laptop_id}
    assert central_db.execute("SELECT change_id FROM app_user WHERE role = 'admin'"
                              ).fetchone()["change_id"] > admins["change_id"]
    assert central_app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0  # once only
    b.lap(field["cleo"])
    b.changes[-1]["data"]["created_by"] = mine
    assert send(field, "b")["rejected"] == []

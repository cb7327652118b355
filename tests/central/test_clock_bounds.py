"""Central bounds the clocks of devices: a pushed stamp far ahead of its clock is refused
item by item (the rest of the batch applies, central's clock never takes it), and
`flask --app sync repair-clock` brings back a database that took such stamps before."""
from __future__ import annotations

import pytest

from lapsync import hlc
from lapsync.ids import new_id
from lapsync.protocol import validate_push
from sync import clock
from sync.db import now_ms, write_transaction
from sync.devices import find_device
from sync.ledger import upsert_runner
from sync.pull import pull
from sync.push import push
from tests.pg import Outbox, snapshot

FAR = "9999999999999.9999"          # the stamp of the attack: the clock's very last one
OVERFLOWED = "10000000000000.0000"  # what central's clock made after it (before the bound)
BOUND_MS = hlc.MAX_AHEAD_S * 1000


def send(conn, token: str, body: dict) -> dict:
    """Validate and apply a push body as the device of token (central's default bound)."""
    return push(conn, find_device(conn, token), validate_push(body))


def clock_value(conn) -> str | None:
    """Return central's stored clock."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'hlc'").fetchone()
    return row and row["value"]


def counted(conn) -> dict:
    """Return {runner id: laps that count}."""
    return {r["runner_id"]: r["laps"] for r in conn.execute("SELECT * FROM runner_total")
            if r["laps"]}


def test_far_future_stamps_are_refused_item_by_item_and_the_rest_applies(central_db,
                                                                          device_token):
    box = Outbox(clock_ms=now_ms())
    anna = box.runner(1, "Anna Berg")
    first, second = box.lap(anna), box.lap(anna)
    box.void(first)
    assert send(central_db, device_token, box.body())["rejected"] == []
    before = snapshot(central_db, skip_device_contact=True)
    box.runner(1, "Mallory", runner_id=anna, hlc=FAR)       # seq 5: a runner edit
    box.void(first, voided=False, hlc=FAR)                   # seq 6: a restore
    box.void(second, hlc=FAR)                                # seq 7: a void
    ben = box.runner(2, "Ben Cruz")                          # seq 8, 9: the device's other items
    box.lap(ben)
    answer = send(central_db, device_token, box.body(5))
    assert answer["acked_seq"] == 9                                          # not wedged
    assert [(r["seq"], r["error"]) for r in answer["rejected"]] == [
        (5, "clock_ahead"), (6, "clock_ahead"), (7, "clock_ahead")]
    assert "ahead of central's clock (at most 5 min are taken)" in answer["rejected"][0]["message"]
    assert "correct its date and time" in answer["rejected"][0]["message"]
    after = snapshot(central_db, skip_device_contact=True)
    assert [r for r in after["runner"] if r["id"] == anna] == before["runner"]  # Anna as she was
    assert after["lap_void"] == before["lap_void"]                  # first voided, second counts
    assert counted(central_db) == {anna: 1, ben: 1}
    assert clock_value(central_db) == max(r["hlc"] for r in after["runner"])  # Ben's stamp, not FAR
    with write_transaction(central_db):
        assert clock.tick(central_db) < hlc.ceiling(now_ms(), BOUND_MS)
    kept = central_db.execute("SELECT seq, entity, error, payload FROM rejected_change "
                              "ORDER BY seq").fetchall()
    assert [(k["seq"], k["entity"], k["error"]) for k in kept] == [
        (5, "runner", "clock_ahead"), (6, "lap_void", "clock_ahead"), (7, "lap_void", "clock_ahead")]
    assert kept[0]["payload"]["hlc"] == FAR
    assert send(central_db, device_token, box.body(5))["rejected"] == answer["rejected"]  # replay


def test_the_bound_is_a_setting_and_applies_to_centrals_clock_over_http(central_app, central_db,
                                                                       central_client, device_token):
    central_app.config["MAX_CLOCK_AHEAD_S"] = 60
    box = Outbox(clock_ms=now_ms())
    near = hlc.format_hlc(now_ms() + 30_000, 0)
    box.runner(1, "Anna Berg", hlc=near)
    box.runner(2, "Ben Cruz", hlc=hlc.format_hlc(now_ms() + 200_000, 0))
    response = central_client.post("/api/v1/push", json=box.body(),
                                   headers={"Authorization": f"Bearer {device_token}"})
    assert response.status_code == 200
    rejected = response.get_json()["rejected"]
    assert [(r["seq"], r["error"]) for r in rejected] == [(2, "clock_ahead")]
    assert "lies 3 min ahead of central's clock (at most 60 s are taken)" in rejected[0]["message"]
    assert [r["name"] for r in central_db.execute("SELECT name FROM runner")] == ["Anna Berg"]
    assert clock_value(central_db) == near


def test_a_device_whose_reported_clock_is_far_ahead_gets_no_wider_bound(central_db, device_token):
    """The bound is to central's clock: device_time in the body is the device's word only."""
    year = 365 * 86_400_000 + 43_200_000
    box = Outbox(clock_ms=now_ms() + year)
    box.runner(1, "Anna Berg")
    answer = send(central_db, device_token, box.body())
    assert [r["error"] for r in answer["rejected"]] == ["clock_ahead"]
    assert "lies 365 days ahead" in answer["rejected"][0]["message"]
    assert central_db.execute("SELECT count(*) AS n FROM runner").fetchone()["n"] == 0


@pytest.mark.parametrize("stored", [FAR, OVERFLOWED])
def test_a_clock_that_can_make_no_further_stamp_says_how_to_repair_it(central_db, stored):
    central_db.execute("INSERT INTO meta (key, value) VALUES ('hlc', %s) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value", [stored])
    with pytest.raises(hlc.ClockError, match="run `flask --app sync repair-clock`"):
        with write_transaction(central_db):
            clock.tick(central_db)
    assert clock_value(central_db) == stored


def poison(conn) -> dict:
    """Write what central held after the attack, before stamps were bounded; return the ids."""
    ids = {name: new_id() for name in ("attacked", "edited", "sane", "user", "lap")}
    device, node = new_id(), clock.node_id(conn)
    sane = hlc.format_hlc(now_ms() - 60_000, 7)
    runners = [(ids["attacked"], 1, "Mallory", FAR, device),       # the attacker's edit
               (ids["edited"], 2, "Ben Cruz", OVERFLOWED, node),   # central's edit after it
               (ids["sane"], 3, "Cleo Dahl", sane, device)]
    with write_transaction(conn):
        for runner_id, number, name, stamp, origin in runners:
            conn.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin, "
                         "change_id) VALUES (%s, %s, %s, '5a', 5, %s, %s, "
                         "nextval('change_id_seq'))", [runner_id, number, name, stamp, origin])
        conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, origin, "
                     "change_id) VALUES (%s, 'tina', '$argon2id$x', 'teacher', 0, %s, %s, "
                     "nextval('change_id_seq'))", [ids["user"], FAR, device])
        conn.execute("INSERT INTO lap_void (lap_id, voided, at, by, reason, hlc, origin, change_id) "
                     "VALUES (%s, false, 0, %s, NULL, %s, %s, nextval('change_id_seq'))",
                     [ids["lap"], ids["user"], FAR, device])
        conn.execute("INSERT INTO meta (key, value) VALUES ('hlc', %s) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value", [OVERFLOWED])
    return {**ids, "sane_stamp": sane}


def stamps(conn) -> dict:
    """Return {id: (hlc, origin, change_id)} of every register row."""
    rows = [*conn.execute("SELECT id, hlc, origin, change_id FROM runner"),
            *conn.execute("SELECT id, hlc, origin, change_id FROM app_user"),
            *conn.execute("SELECT lap_id AS id, hlc, origin, change_id FROM lap_void")]
    return {r["id"]: (r["hlc"], r["origin"], r["change_id"]) for r in rows}


def test_repair_clock_restamps_poisoned_rows_resets_the_clock_and_is_safe_twice(
        central_app, central_db, device_token):
    ids = poison(central_db)
    before, cursor = stamps(central_db), central_db.execute(
        "SELECT last_value FROM change_id_seq").fetchone()["last_value"]
    started = now_ms()
    result = central_app.test_cli_runner().invoke(args=["repair-clock"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"clock: {OVERFLOWED} -> {ids['sane_stamp']}"  # the latest stamp within the bound
    assert {line.split(":")[0] for line in lines[1:-1]} == {
        f"runner {ids['attacked']}", f"runner {ids['edited']}", f"app_user {ids['user']}",
        f"lap_void {ids['lap']}"}
    assert lines[-1] == "Repaired: 4 rows re-stamped."
    after, node = stamps(central_db), clock.node_id(central_db)
    assert after[ids["sane"]] == before[ids["sane"]]                   # untouched
    for key in ("attacked", "edited", "user", "lap"):
        stamp, origin, change_id = after[ids[key]]
        assert hlc.is_stamp(stamp) and hlc.ahead_ms(stamp, started) >= 0
        assert not hlc.too_far_ahead(stamp, now_ms(), 0)               # a fresh stamp of central
        assert origin == node and change_id > cursor                   # every laptop pulls it
    assert clock_value(central_db) == max(after[ids[k]][0] for k in ("attacked", "edited", "user", "lap"))
    # Laptops pull the re-stamped rows; any later edit wins over them again.
    device = find_device(central_db, device_token)
    assert {ids["attacked"], ids["edited"], ids["user"], ids["lap"]} <= {
        c["id"] for c in pull(central_db, device, cursor, 100)["changes"]}
    later = hlc.format_hlc(now_ms() + 1000, 0)
    with write_transaction(central_db):
        for key, name in (("attacked", "Anna Berg"), ("edited", "Ben Cruz-Weg")):
            assert upsert_runner(central_db, {"id": ids[key], "start_number": 1, "name": name,
                                              "class": "5a", "grade": 5, "hlc": later,
                                              "origin": new_id()}, newer_only=True)
    state = snapshot(central_db)
    again = central_app.test_cli_runner().invoke(args=["repair-clock"])
    assert again.exit_code == 0 and again.output.startswith("Nothing to repair"), again.output
    assert snapshot(central_db) == state


def test_repair_clock_on_a_healthy_database_changes_nothing(central_app, central_db, device_token):
    box = Outbox(clock_ms=now_ms())
    box.runner(1, "Anna Berg")
    send(central_db, device_token, box.body())
    state = snapshot(central_db)
    result = central_app.test_cli_runner().invoke(args=["repair-clock"])
    assert result.output == ("Nothing to repair: central's clock and every stamp are within "
                             "5 min of its wall clock.\n")
    assert snapshot(central_db) == state

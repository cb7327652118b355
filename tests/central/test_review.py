"""Review queue at central: double counts and clashes, every decision logged and pulled."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect
from openapi_core import OpenAPI
from openapi_core.contrib.requests import (
    RequestsOpenAPIRequest,
    RequestsOpenAPIResponse,
)

from lapsync.errors import InputError
from lapsync.i18n import recorded_text
from lapsync.ids import new_id
from lapsync.laptop.client.pull import apply_page
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central, SyncResult
from lapsync.laptop.db import connect, device_id, now_ms, set_meta
from lapsync.laptop.laps import lap_count, pick_runner, record_lap
from lapsync.laptop.runners import add_runner, search_runners
from lapsync.protocol import validate_push
from sync import clock, review
from sync.devices import find_device
from sync.pull import pull
from sync.push import push
from tests.conftest import PASSWORD
from tests.pg import CENTRAL_PASSWORD, Outbox, logged_in, register, snapshot
from tests.web import served

T = 1_700_000_000_000
JSON = {"Accept": "application/json"}
SPEC = OpenAPI.from_file_path(str(Path(__file__).resolve().parents[2] / "sync" / "openapi.yaml"))


# ---- helpers ---------------------------------------------------------------------

def send(conn, token: str, box: Outbox, now: int, device_time: int) -> dict:
    """Push everything of an outbox as the device of token, at central time NOW."""
    return push(conn, find_device(conn, token), validate_push(box.body(device_time=device_time)),
                now)


def totals(conn) -> dict:
    """Return {runner_id: laps} of runner_total (zeros left out)."""
    return {r["runner_id"]: r["laps"] for r in conn.execute("SELECT * FROM runner_total")
            if r["laps"]}


def per_laptop(conn) -> dict:
    """Return {(laptop, runner): laps} of device_runner_laps (zeros left out)."""
    return {(r["laptop_id"], r["runner_id"]): r["laps"]
            for r in conn.execute("SELECT * FROM device_runner_laps") if r["laps"]}


def recount(conn) -> tuple[dict, dict]:
    """Count laps that count from lap and lap_void: what both total tables must hold."""
    rows = conn.execute("SELECT l.device_id, l.runner_id, count(*) AS n FROM lap l LEFT JOIN "
                        "lap_void v ON v.lap_id = l.id WHERE v.voided IS NOT TRUE "
                        "GROUP BY 1, 2").fetchall()
    by_runner: dict = {}
    for r in rows:
        by_runner[r["runner_id"]] = by_runner.get(r["runner_id"], 0) + r["n"]
    return by_runner, {(r["device_id"], r["runner_id"]): r["n"] for r in rows}


def assert_totals_exact(conn) -> None:
    """runner_total and device_runner_laps equal a recount from the lap table."""
    assert (totals(conn), per_laptop(conn)) == recount(conn)


def logged(conn) -> list[tuple]:
    """Return (action, subject_ids) of every decision, oldest first."""
    return [(r["action"], r["subject_ids"]) for r in
            conn.execute("SELECT action, subject_ids FROM decision ORDER BY id")]


def post(client, path: str, **form):
    """Post a form with the client's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **form})


def pulled(conn, token: str, cursor: int = 0) -> list[dict]:
    """Return the changes a device pulls after cursor."""
    return pull(conn, find_device(conn, token), cursor, 1000)["changes"]


def last_change(conn) -> int:
    """Return the latest change id handed out."""
    return conn.execute("SELECT last_value FROM change_id_seq").fetchone()["last_value"]


def session_login(client, conn, user_id: str):
    """Log a test client in with a session row; `.csrf` holds its token."""
    logged_in(client, conn, user_id)
    page = client.get("/review/").get_data(as_text=True)
    client.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client


@pytest.fixture
def admin(central_client, central_db, central_users):
    """A central test client logged in as the admin ada; `.csrf` holds its token."""
    return session_login(central_client, central_db, central_users["ada"])


@pytest.fixture
def viewer(central_client, central_db, central_users):
    """A central test client logged in as the viewer vic; `.csrf` holds its token."""
    return session_login(central_client, central_db, central_users["vic"])


# ---- a double count from two laptops ----------------------------------------------

@pytest.fixture
def doubles(central_db):
    """Runner 17 counted on laptop A and, 8 s later in real time, on laptop B.

    A's clock is 5 s behind central, B's 2 min behind. A was offline: its two laps,
    5 min apart, arrive in one push (one receipt time). Only device times corrected
    by each laptop's offset find the double: receipt times would pair A's two laps,
    raw device times would put B's lap 107 s away.
    """
    tokens = {name: register(central_db, name) for name in ("laptop-a", "laptop-b")}
    a, b = Outbox(clock_ms=T), Outbox(clock_ms=T)
    runner = a.runner(17, "Cleo Dahl", "6b", 6)
    first, later = a.lap(runner, time=T), a.lap(runner, time=T + 300_000)
    send(central_db, tokens["laptop-a"], a, now=T + 305_000, device_time=T + 300_000)
    second = b.lap(runner, time=T + 13_000 - 120_000)
    send(central_db, tokens["laptop-b"], b, now=T + 20_000, device_time=T + 20_000 - 120_000)
    return {"tokens": tokens, "a": a, "b": b, "runner": runner, "first": first,
            "later": later, "second": second}


def test_a_pair_is_found_by_corrected_device_times(central_db, doubles):
    pairs = review.suspected_doubles(central_db)
    assert [(p["first_id"], p["second_id"]) for p in pairs] == [(doubles["first"], doubles["second"])]
    pair = pairs[0]
    assert pair["gap_ms"] == 8_000 and pair["two_laptops"] is True
    assert pair["runner"]["start_number"] == 17
    assert (pair["first"]["device_name"], pair["second"]["device_name"]) == ("laptop-a", "laptop-b")
    assert pair["first"]["central_time"] == T + 5_000 and pair["second"]["central_time"] == T + 13_000


def test_the_minimum_lap_time_setting_decides_what_is_close(central_db, doubles):
    from sync.settings import set_setting
    set_setting(central_db, "min_lap_seconds", 8)
    assert review.suspected_doubles(central_db) == []
    set_setting(central_db, "min_lap_seconds", 9)
    assert len(review.suspected_doubles(central_db)) == 1


def test_review_page_shows_the_pair_with_devices_helpers_and_times(admin, doubles):
    page = admin.get("/review/").get_data(as_text=True)
    assert admin.get("/review/").status_code == 200
    assert f'data-first="{doubles["first"]}"' in page and "laptop-b" in page
    assert "two laptops" in page and "8.0 s apart" in page
    assert page.count('action="/review/void"') == 2 and 'action="/review/keep-laps"' in page


def test_a_viewer_sees_the_queue_without_actions(viewer, doubles):
    page = viewer.get("/review/").get_data(as_text=True)
    assert f'data-first="{doubles["first"]}"' in page
    assert "/review/void" not in page and "/review/keep-laps" not in page


def test_anonymous_users_go_to_login(central_client, central_users):
    response = central_client.get("/review/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_void_this_one_voids_by_lww_adjusts_totals_logs_and_is_pulled(central_db, admin,
                                                                       central_users, doubles):
    runner, second = doubles["runner"], doubles["second"]
    cursor = last_change(central_db)
    response = post(admin, "/review/void", lap_id=second, version=0,
                    other_id=doubles["first"])
    assert response.status_code == 302
    void = central_db.execute("SELECT * FROM lap_void WHERE lap_id = %s", [second]).fetchone()
    assert void["voided"] and void["by"] == central_users["ada"]
    assert void["origin"] == clock.node_id(central_db)
    assert void["hlc"] > doubles["b"].stamp()  # later than anything the laptops stamped
    assert totals(central_db) == {runner: 2}
    assert_totals_exact(central_db)
    assert review.suspected_doubles(central_db) == []
    assert logged(central_db) == [("void_lap", [second, doubles["first"]])]
    changes = pulled(central_db, doubles["tokens"]["laptop-b"], cursor)
    assert [(c["entity"], c["id"]) for c in changes] == [("lap_void", second), ("total", runner)]
    assert changes[0]["data"]["voided"] is True
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "The lap was voided" in page and "Voided a lap of 17 Cleo Dahl (6b) recorded on laptop-b" in page


def test_keep_both_takes_the_pair_out_of_the_queue_and_changes_no_count(central_db, admin,
                                                                        doubles):
    before, cursor = totals(central_db), last_change(central_db)
    response = admin.post("/review/keep-laps", headers=JSON, data={
        "csrf_token": admin.csrf, "first_id": doubles["first"], "first_version": 0,
        "second_id": doubles["second"], "second_version": 0})
    assert response.status_code == 200 and response.get_json()["ok"] is True
    assert review.suspected_doubles(central_db) == []
    assert totals(central_db) == before and last_change(central_db) == cursor
    assert logged(central_db) == [("keep_laps", sorted([doubles["first"], doubles["second"]]))]
    kept = central_db.execute("SELECT lap_a, lap_b FROM kept_lap_pair").fetchall()
    assert kept == [dict(zip(("lap_a", "lap_b"), sorted([doubles["first"], doubles["second"]])))]


def test_a_lap_voided_and_restored_meanwhile_is_refused_as_stale(central_db, admin, doubles):
    shown = review.suspected_doubles(central_db)[0]["second"]["version"]
    b = doubles["b"]
    b.void(doubles["second"])
    b.void(doubles["second"], voided=False)
    send(central_db, doubles["tokens"]["laptop-b"], b, now=T + 30_000, device_time=T + 30_000 - 120_000)
    before = snapshot(central_db)
    for path, form in [("/review/void", {"lap_id": doubles["second"], "version": shown}),
                       ("/review/keep-laps", {"first_id": doubles["first"], "first_version": 0,
                                              "second_id": doubles["second"],
                                              "second_version": shown})]:
        response = post(admin, path, **form)
        assert response.status_code == 409
        assert "changed since this page was loaded" in response.get_data(as_text=True)
    assert snapshot(central_db) == before and logged(central_db) == []
    answer = admin.post("/review/void", headers=JSON, data={
        "csrf_token": admin.csrf, "lap_id": doubles["second"], "version": shown})
    assert answer.status_code == 409 and answer.get_json()["error"] == "stale"


@pytest.mark.parametrize("path,form,status,code", [
    ("/review/void", {"lap_id": "zzzzzzzzzzzzzzzzzzzzzzzz", "version": "0"}, 404, "unknown_lap"),
    ("/review/void", {"lap_id": "not an id", "version": "0"}, 404, "unknown_lap"),
    ("/review/void", {"lap_id": "FIRST", "version": "x"}, 400, "invalid_version"),
    ("/review/void", {"lap_id": "FIRST"}, 400, "invalid_version"),
    ("/review/void", {"lap_id": "FIRST", "version": "-1"}, 400, "invalid_version"),
    ("/review/keep-laps", {"first_id": "FIRST", "first_version": "0", "second_id": "FIRST",
                           "second_version": "0"}, 400, "same_lap"),
    ("/review/keep-laps", {"first_id": "FIRST", "first_version": "0",
                           "second_id": "zzzzzzzzzzzzzzzzzzzzzzzz", "second_version": "0"},
     404, "unknown_lap"),
    ("/review/keep-laps", {"first_id": "FIRST", "first_version": "0", "second_id": "OTHER",
                           "second_version": "0"}, 400, "not_a_pair"),
    ("/review/keep-laps", {}, 400, "invalid_version"),
])
def test_bad_lap_decisions_get_a_clear_4xx_and_change_nothing(central_db, admin, doubles,
                                                              path, form, status, code):
    other_box = doubles["a"]
    other_box.lap(other_box.runner(18, "Dora Ernst"), time=T + 400_000)
    send(central_db, doubles["tokens"]["laptop-a"], other_box, now=T + 405_000,
         device_time=T + 400_000)
    other = other_box.changes[-1]["id"]
    form = {k: {"FIRST": doubles["first"], "OTHER": other}.get(v, v) for k, v in form.items()}
    before = snapshot(central_db)
    page = post(admin, path, **form)
    assert page.status_code == status and 'role="alert"' in page.get_data(as_text=True)
    answer = admin.post(path, headers=JSON, data={"csrf_token": admin.csrf, **form})
    assert (answer.status_code, answer.get_json()["error"]) == (status, code)
    assert snapshot(central_db) == before and logged(central_db) == []


def test_voiding_both_laps_of_a_pair_from_two_tabs_leaves_one(central_db, admin, doubles):
    first, second, runner = doubles["first"], doubles["second"], doubles["runner"]
    # Both tabs show the pair with version 0; one voids the second lap, the other the first.
    assert post(admin, "/review/void", lap_id=second, version=0, other_id=first).status_code == 302
    before = snapshot(central_db)
    late = post(admin, "/review/void", lap_id=first, version=0, other_id=second)
    assert late.status_code == 409
    assert "The other lap of this pair was voided meanwhile" in late.get_data(as_text=True)
    assert snapshot(central_db) == before and totals(central_db) == {runner: 2}


def test_voiding_a_voided_lap_is_refused(central_db, admin, doubles):
    assert post(admin, "/review/void", lap_id=doubles["second"], version=0).status_code == 302
    version = central_db.execute("SELECT change_id FROM lap_void").fetchone()["change_id"]
    again = post(admin, "/review/void", lap_id=doubles["second"], version=version)
    assert again.status_code == 409 and "voided already" in again.get_data(as_text=True)


ACTIONS = ["/review/void", "/review/keep-laps", "/review/renumber", "/review/merge",
           "/review/keep-runners"]


@pytest.mark.parametrize("path", ACTIONS)
def test_a_viewer_gets_403_for_every_action(central_db, viewer, doubles, path):
    before = snapshot(central_db)
    response = post(viewer, path, lap_id=doubles["second"], version=0)
    assert response.status_code == 403
    assert snapshot(central_db) == before


@pytest.mark.parametrize("path", ACTIONS)
def test_anonymous_posts_are_refused(central_client, central_users, path):
    assert central_client.post(path, data={}).status_code in (400, 401)  # no CSRF / no login


def test_a_post_without_csrf_token_is_refused(central_db, admin, doubles):
    response = admin.post("/review/void", data={"lap_id": doubles["second"], "version": 0})
    assert response.status_code == 400
    assert central_db.execute("SELECT count(*) AS n FROM lap_void").fetchone()["n"] == 0


# ---- clashes -------------------------------------------------------------------------

@pytest.fixture
def clash(central_db):
    """Start number 17 given to two runners on two laptops; a lap each."""
    tokens = {name: register(central_db, name) for name in ("laptop-a", "laptop-b")}
    a, b = Outbox(clock_ms=T), Outbox(clock_ms=T)
    cleo, dora = a.runner(17, "Cleo Dahl", "6b", 6), b.runner(17, "Dora Ernst", "7c", 7)
    a.lap(cleo)
    b.lap(dora)
    b.lap(dora, time=T + 120_000)
    send(central_db, tokens["laptop-a"], a, now=T, device_time=T)
    send(central_db, tokens["laptop-b"], b, now=T + 120_000, device_time=T + 120_000)
    return {"tokens": tokens, "a": a, "b": b, "cleo": cleo, "dora": dora}


def version(conn, runner_id: str) -> int:
    """Return a runner's change id (the version a form carries)."""
    return conn.execute("SELECT change_id FROM runner WHERE id = %s", [runner_id]).fetchone()["change_id"]


def test_clashes_are_listed_with_both_runners(central_db, admin, clash):
    clashes = review.open_clashes(central_db)
    assert [(c["kind"], c["value"]) for c in clashes] == [("start_number", "17")]
    assert {clashes[0]["a"]["id"], clashes[0]["b"]["id"]} == {clash["cleo"], clash["dora"]}
    page = admin.get("/review/").get_data(as_text=True)
    assert "Start number 17 is given twice" in page and "Dora Ernst" in page
    assert page.count('action="/review/renumber"') == 2 and page.count('action="/review/merge"') == 2
    assert ("Merge: keep Cleo Dahl (17, class 6b), move the laps of Dora Ernst (17, class 7c) to it"
            in page)                                  # two runners of one number told apart
    assert "Merge: keep Dora Ernst (17, class 7c), move the laps of Cleo Dahl (17, class 6b)" in page


def test_renumber_resolves_the_clash_logs_and_reaches_both_laptops(central_db, admin, clash):
    cursor = last_change(central_db)
    response = post(admin, "/review/renumber", runner_id=clash["dora"],
                    version=version(central_db, clash["dora"]), start_number=" 18 ")
    assert response.status_code == 302
    dora = central_db.execute("SELECT * FROM runner WHERE id = %s", [clash["dora"]]).fetchone()
    assert dora["start_number"] == 18 and dora["origin"] == clock.node_id(central_db)
    assert review.open_clashes(central_db) == []
    assert logged(central_db) == [("renumber", [clash["dora"]])]
    for token in clash["tokens"].values():  # laptop B made Dora, but central's edit is news to it
        changes = pulled(central_db, token, cursor)
        assert [(c["entity"], c["data"]["start_number"]) for c in changes] == [("runner", 18)]
    assert "Gave Dora Ernst start number 18 (was 17)" in \
        admin.get("/review/").get_data(as_text=True)


def test_a_laptops_edit_with_the_number_before_the_renumber_keeps_centrals_number(
        central_db, admin, clash):
    post(admin, "/review/renumber", runner_id=clash["dora"],
         version=version(central_db, clash["dora"]), start_number="18")
    b, token = clash["b"], clash["tokens"]["laptop-b"]
    b.clock_ms = now_ms() + 1_000      # laptop B renames Dora before it pulls the renumber
    b.runner(17, "Dora Ernst-Fink", "7c", 7, runner_id=clash["dora"])
    answer = send(central_db, token, b, now=b.clock_ms, device_time=b.clock_ms)
    assert answer["rejected"] == []
    dora = central_db.execute("SELECT * FROM runner WHERE id = %s", [clash["dora"]]).fetchone()
    assert (dora["start_number"], dora["name"]) == (18, "Dora Ernst-Fink")
    assert dora["decision"]["action"] == "renumber" and dora["decision"]["was_start_number"] == 17
    assert review.open_clashes(central_db) == []
    b.runner(19, "Dora Ernst-Fink", "7c", 7, runner_id=clash["dora"])   # a new number: hers
    send(central_db, token, b, now=b.clock_ms, device_time=b.clock_ms)
    dora = central_db.execute("SELECT * FROM runner WHERE id = %s", [clash["dora"]]).fetchone()
    assert dora["start_number"] == 19 and dora["decision"] is None


@pytest.mark.parametrize("number,status,code", [
    ("0", 400, "invalid_start_number"), ("1000000", 400, "invalid_start_number"),
    ("abc", 400, "invalid_start_number"), ("", 400, "invalid_start_number"),
    ("+5", 400, "invalid_start_number"), ("١٨", 400, "invalid_start_number"),
    ("17", 400, "same_start_number"), ("5", 409, "start_number_taken"),
])
def test_renumber_refuses_bad_and_taken_numbers(central_db, admin, clash, number, status,
                                                code):
    other = clash["a"]
    other.runner(5, "Emil Fox", "7c", 7)
    send(central_db, clash["tokens"]["laptop-a"], other, now=T + 200_000, device_time=T + 200_000)
    before = snapshot(central_db)
    form = {"runner_id": clash["dora"], "version": version(central_db, clash["dora"]),
            "start_number": number}
    page = post(admin, "/review/renumber", **form)
    assert page.status_code == status
    if code == "start_number_taken":
        assert "Start number 5 belongs to Emil Fox" in page.get_data(as_text=True)
    answer = admin.post("/review/renumber", headers=JSON,
                                data={"csrf_token": admin.csrf, **form})
    assert (answer.status_code, answer.get_json()["error"]) == (status, code)
    assert snapshot(central_db) == before


def test_renumber_of_an_unknown_or_changed_runner_is_refused(central_db, admin, clash):
    shown = version(central_db, clash["dora"])
    unknown = post(admin, "/review/renumber", runner_id=new_id(), version=1, start_number=18)
    assert unknown.status_code == 404
    b = clash["b"]
    b.runner(17, "Dora Ernst-Weg", "7c", 7, runner_id=clash["dora"])  # renamed on laptop B
    send(central_db, clash["tokens"]["laptop-b"], b, now=T + 200_000, device_time=T + 200_000)
    before = snapshot(central_db)
    stale = post(admin, "/review/renumber", runner_id=clash["dora"], version=shown,
                 start_number=18)
    assert stale.status_code == 409 and "changed since" in stale.get_data(as_text=True)
    assert snapshot(central_db) == before


def test_keep_both_runners_dismisses_the_clash_for_good(central_db, admin, clash):
    row = central_db.execute("SELECT id FROM clash").fetchone()
    form = {"clash_id": row["id"], "version_a": version(central_db, min(clash["cleo"], clash["dora"])),
            "version_b": version(central_db, max(clash["cleo"], clash["dora"]))}
    assert post(admin, "/review/keep-runners", **form).status_code == 302
    assert review.open_clashes(central_db) == []
    assert logged(central_db) == [("keep_runners", sorted([clash["cleo"], clash["dora"]]))]
    b = clash["b"]  # a later edit of one of them does not bring the clash back
    b.runner(17, "Dora Ernst", "7c", 8, runner_id=clash["dora"])
    send(central_db, clash["tokens"]["laptop-b"], b, now=T + 200_000, device_time=T + 200_000)
    assert review.open_clashes(central_db) == []
    again = post(admin, "/review/keep-runners", clash_id=row["id"],
                 version_a=version(central_db, min(clash["cleo"], clash["dora"])),
                 version_b=version(central_db, max(clash["cleo"], clash["dora"])))
    assert again.status_code == 409


@pytest.mark.parametrize("form,status,code", [
    ({"clash_id": "999999", "version_a": "1", "version_b": "1"}, 404, "unknown_clash"),
    ({"clash_id": "x", "version_a": "1", "version_b": "1"}, 404, "unknown_clash"),
    ({"clash_id": "CLASH", "version_a": "1", "version_b": "1"}, 409, "stale"),
    ({"clash_id": "CLASH"}, 400, "invalid_version"),
])
def test_bad_keep_runners_decisions_are_refused(central_db, admin, clash, form, status, code):
    clash_id = str(central_db.execute("SELECT id FROM clash").fetchone()["id"])
    form = {k: clash_id if v == "CLASH" else v for k, v in form.items()}
    before = snapshot(central_db)
    answer = admin.post("/review/keep-runners", headers=JSON,
                                data={"csrf_token": admin.csrf, **form})
    assert (answer.status_code, answer.get_json()["error"]) == (status, code)
    assert snapshot(central_db) == before


# ---- merge ---------------------------------------------------------------------------

def merge_form(conn, survivor: str, merged: str) -> dict:
    """The form of 'keep survivor, move the laps of merged'."""
    return {"survivor_id": survivor, "survivor_version": version(conn, survivor),
            "merged_id": merged, "merged_version": version(conn, merged)}


def test_merge_moves_laps_keeps_totals_exact_hides_the_runner_and_is_pulled(central_db, central_app,
                                                                             admin, clash):
    cleo, dora = clash["cleo"], clash["dora"]
    cursor = last_change(central_db)
    response = post(admin, "/review/merge", **merge_form(central_db, cleo, dora))
    assert response.status_code == 302
    assert {r["runner_id"] for r in central_db.execute("SELECT runner_id FROM lap")} == {cleo}
    assert totals(central_db) == {cleo: 3}
    assert per_laptop(central_db) == {(clash["a"].laptop_id, cleo): 1, (clash["b"].laptop_id, cleo): 2}
    assert_totals_exact(central_db)
    merged = central_db.execute("SELECT * FROM runner WHERE id = %s", [dora]).fetchone()
    assert merged["merged_into"] == cleo and merged["origin"] == clock.node_id(central_db)
    assert review.open_clashes(central_db) == []
    assert logged(central_db) == [("merge", [cleo, dora])]
    changes = pulled(central_db, clash["tokens"]["laptop-b"], cursor)
    runner_changes = [c for c in changes if c["entity"] == "runner"]
    assert [c["data"].get("merged_into") for c in runner_changes] == [cleo]
    other = {c["data"]["runner_id"]: c["data"]["other_laps"] for c in changes if c["entity"] == "total"}
    assert other == {cleo: 1, dora: 0}  # B's own 2 laps now count for Cleo, plus A's one
    assert "Merged 17 Dora Ernst (7c) into 17 Cleo Dahl (6b): 2 laps moved." in \
        admin.get("/review/").get_data(as_text=True)
    # The reason goes to the laptops in English; each shows it in its helper's language.
    reason = runner_changes[-1]["data"]["decision"]["reason"]
    with central_app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert recorded_text(reason) == "derselbe Läufer wie 17 Cleo Dahl (6b)"
        assert recorded_text(review.VOID_REASON) == "doppelt gezählt (Prüfung in der Zentrale)"


def test_after_a_merge_late_laps_count_for_the_survivor_and_the_merge_sticks(central_db,
                                                                             admin, clash):
    cleo, dora = clash["cleo"], clash["dora"]
    post(admin, "/review/merge", **merge_form(central_db, cleo, dora))
    b = clash["b"]  # laptop B, not synced since, counts Dora again and renames her
    b.lap(dora, time=T + 400_000)
    b.runner(17, "Dora Ernst-Weg", "7c", 7, runner_id=dora, hlc=f"{now_ms() + 60_000:013d}.0000")
    cursor = last_change(central_db)
    send(central_db, clash["tokens"]["laptop-b"], b, now=T + 400_000, device_time=T + 400_000)
    assert totals(central_db) == {cleo: 4}
    assert_totals_exact(central_db)
    row = central_db.execute("SELECT name, merged_into, origin FROM runner WHERE id = %s", [dora]).fetchone()
    assert row["merged_into"] == cleo and row["origin"] == b.laptop_id
    assert review.open_clashes(central_db) == []
    # B's own edit won the register, but B must still learn the merge from its pull.
    changes = pulled(central_db, clash["tokens"]["laptop-b"], cursor)
    assert [c["data"]["merged_into"] for c in changes if c["entity"] == "runner"] == [cleo]


def test_a_runner_merged_into_one_that_is_merged_later_follows_to_the_survivor(central_db,
                                                                              admin, clash):
    cleo, dora = clash["cleo"], clash["dora"]
    a = clash["a"]
    emil = a.runner(5, "Emil Fox", "7c", 7)
    a.lap(emil)
    send(central_db, clash["tokens"]["laptop-a"], a, now=T + 200_000, device_time=T + 200_000)
    assert post(admin, "/review/merge", **merge_form(central_db, dora, emil)).status_code == 302
    assert post(admin, "/review/merge", **merge_form(central_db, cleo, dora)).status_code == 302
    rows = {r["id"]: r["merged_into"] for r in central_db.execute("SELECT id, merged_into FROM runner")}
    assert rows == {cleo: None, dora: cleo, emil: cleo}
    assert totals(central_db) == {cleo: 4}
    assert_totals_exact(central_db)


@pytest.mark.parametrize("case,status,code", [
    ("itself", 400, "same_runner"), ("unknown", 404, "unknown_runner"),
    ("stale", 409, "stale"), ("merged", 409, "merged_runner"), ("no_version", 400, "invalid_version"),
])
def test_bad_merges_are_refused_and_change_nothing(central_db, admin, clash, case, status,
                                                   code):
    cleo, dora = clash["cleo"], clash["dora"]
    form = merge_form(central_db, cleo, dora)
    if case == "itself":
        form = merge_form(central_db, cleo, cleo)
    elif case == "unknown":
        form["merged_id"] = new_id()
    elif case == "stale":
        form["merged_version"] = form["merged_version"] - 1
    elif case == "no_version":
        del form["survivor_version"]
    elif case == "merged":
        a = clash["a"]
        emil = a.runner(5, "Emil Fox", "7c", 7)
        send(central_db, clash["tokens"]["laptop-a"], a, now=T + 200_000, device_time=T + 200_000)
        post(admin, "/review/merge", **merge_form(central_db, cleo, emil))
        form = {**merge_form(central_db, dora, cleo), "merged_id": emil,
                "merged_version": version(central_db, emil)}
    before = snapshot(central_db)
    decisions = logged(central_db)
    page = post(admin, "/review/merge", **form)
    assert page.status_code == status and 'role="alert"' in page.get_data(as_text=True)
    answer = admin.post("/review/merge", headers=JSON,
                                data={"csrf_token": admin.csrf, **form})
    assert (answer.status_code, answer.get_json()["error"]) == (status, code)
    assert snapshot(central_db) == before and logged(central_db) == decisions


def test_the_decision_log_names_who_and_when(central_db, admin, central_users, clash):
    post(admin, "/review/renumber", runner_id=clash["dora"],
         version=version(central_db, clash["dora"]), start_number=18)
    row = central_db.execute("SELECT * FROM decision").fetchone()
    assert row["user_id"] == central_users["ada"] and row["at"] > T
    assert row["details"] == {"name": "Dora Ernst", "from": 17, "to": 18}
    page = admin.get("/review/").get_data(as_text=True)
    assert re.search(r'data-action="renumber"><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td><td>ada</td>', page)


# ---- end to end: real laptops pull the decisions over HTTP ------------------------------

@pytest.fixture
def laptops(tmp_path, users_template):
    """Make real laptop databases (the users of tests/conftest.py), each its own device."""
    opened = []

    def make(name: str):
        path = tmp_path / f"{name}.sqlite"
        shutil.copyfile(users_template, path)
        db = connect(path)
        set_meta(db, "device_id", new_id())
        opened.append(db)
        return db
    yield make
    for db in opened:
        db.close()


def tom(db) -> str:
    """Return the laptop teacher's user id."""
    return db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]


def sync(db, url: str, token: str) -> None:
    """Run one real sync of a laptop against central over HTTP; it must succeed."""
    result = sync_once(db, Central(url, token, 2, 10), force=True)
    assert result.error is None, result.error.message


def test_a_central_void_changes_the_laptops_count_after_its_next_pull(laptops, live_central,
                                                                      central_db, admin):
    a, b = laptops("a"), laptops("b")
    # Laptops copied from one users file share their users: trusted with users, their
    # users reach central, and each laptop's laps by tom are laps of a known user.
    tokens = {name: register(central_db, name, manage_users=True)
              for name in ("laptop-a", "laptop-b")}
    add_runner(a, 17, "Cleo Dahl", "6b", 6)
    sync(a, live_central, tokens["laptop-a"])
    sync(b, live_central, tokens["laptop-b"])
    runner = pick_runner(b, 17, None)["id"]
    record_lap(a, 17, tom(a), 0)
    lap_b = record_lap(b, 17, tom(b), 0)["lap"]["id"]  # the same pass, typed on both laptops
    sync(a, live_central, tokens["laptop-a"])
    sync(b, live_central, tokens["laptop-b"])
    sync(a, live_central, tokens["laptop-a"])
    assert lap_count(a, runner) == lap_count(b, runner) == 2
    pair = review.suspected_doubles(central_db)[0]
    assert pair["two_laptops"] and {pair["first_id"], pair["second_id"]} >= {lap_b}
    assert post(admin, "/review/void", lap_id=lap_b, version=0).status_code == 302
    sync(b, live_central, tokens["laptop-b"])
    sync(a, live_central, tokens["laptop-a"])
    assert b.execute("SELECT voided_at IS NOT NULL, void_reason FROM lap WHERE id = ?",
                     [lap_b]).fetchone() == (1, review.VOID_REASON)
    assert lap_count(b, runner) == lap_count(a, runner) == 1
    assert_totals_exact(central_db)


def test_after_a_merge_the_laptop_counts_the_survivors_laps_and_hides_the_merged(
        laptops, live_central, central_db, admin):
    a, b = laptops("a"), laptops("b")
    # Laptops copied from one users file share their users: trusted with users, their
    # users reach central, and each laptop's laps by tom are laps of a known user.
    tokens = {name: register(central_db, name, manage_users=True)
              for name in ("laptop-a", "laptop-b")}
    add_runner(a, 17, "Cleo Dahl", "6b", 6)   # the same girl, entered on both laptops offline
    add_runner(b, 18, "Cleo Dahl", "6b", 6)
    record_lap(a, 17, tom(a), 0)
    for _ in range(2):
        record_lap(b, 18, tom(b), 0, confirm=True)
    sync(a, live_central, tokens["laptop-a"])
    sync(b, live_central, tokens["laptop-b"])
    survivor, merged = pick_runner(a, 17, None)["id"], pick_runner(b, 18, None)["id"]
    assert [c["kind"] for c in review.open_clashes(central_db)] == ["name"]
    record_lap(b, 18, tom(b), 0, confirm=True)  # B counts once more before it hears of the merge
    assert post(admin, "/review/merge",
                **merge_form(central_db, survivor, merged)).status_code == 302
    for db, name in [(b, "laptop-b"), (a, "laptop-a"), (b, "laptop-b")]:
        sync(db, live_central, tokens[name])
    for db in (a, b):
        assert lap_count(db, survivor) == 4 and lap_count(db, merged) == 0
        assert [r["start_number"] for r in search_runners(db, "Cleo")] == [17]
        assert pick_runner(db, 18, None)["id"] == survivor   # the merged bib counts for Cleo
    assert b.execute("SELECT count(*) FROM lap WHERE runner_id = ?", [survivor]).fetchone()[0] == 3
    assert totals(central_db) == {survivor: 4}
    assert_totals_exact(central_db)
    record_lap(b, 17, tom(b), 0, confirm=True)  # lap entry now counts for the survivor
    record_lap(a, 18, tom(a), 0, confirm=True)  # also by the merged runner's bib
    sync(b, live_central, tokens["laptop-b"])
    sync(a, live_central, tokens["laptop-a"])
    sync(b, live_central, tokens["laptop-b"])
    assert lap_count(a, survivor) == lap_count(b, survivor) == 6
    assert device_id(b) in {r["laptop_id"] for r in central_db.execute("SELECT laptop_id FROM device")}


def test_a_pulled_merge_matches_the_openapi_spec(laptops, live_central, central_db, admin):
    a = laptops("a")
    token = register(central_db, "laptop-a")
    box = Outbox()
    keep, drop = box.runner(17, "Cleo Dahl", "6b", 6), box.runner(18, "Cleo Dahl", "6b", 6)
    send(central_db, register(central_db, "laptop-x"), box, now=T, device_time=T)
    post(admin, "/review/merge", **merge_form(central_db, keep, drop))
    sync(a, live_central, token)  # binds the token, so the raw pull below is a laptop's
    response = requests.get(f"{live_central}/api/v1/pull", params={"cursor": 0},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    SPEC.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    runners = {c["id"]: c["data"] for c in response.json()["changes"] if c["entity"] == "runner"}
    assert runners[drop]["merged_into"] == keep and "merged_into" not in runners[keep]


def runner_change(runner_id: str, number: int, name: str, merged_into: str | None = None) -> dict:
    """A pulled runner change as central sends it (central's stamp, an optional merge)."""
    data = {"id": runner_id, "start_number": number, "name": name, "class": "6b", "grade": 6,
            "hlc": f"{now_ms():013d}.0000", "origin": new_id()}
    return {"cursor": 1, "entity": "runner", "id": runner_id,
            "data": {**data, "merged_into": merged_into} if merged_into else data}


def test_a_merge_pulled_before_its_survivor_applies_when_the_survivor_arrives(laptops):
    db = laptops("a")
    merged = add_runner(db, 18, "Cleo Dahl", "6b", 6)
    laps = [record_lap(db, 18, tom(db), 0, confirm=True)["lap"]["id"] for _ in range(2)]
    survivor = new_id()
    result = SyncResult()
    apply_page(db, [runner_change(merged, 18, "Cleo Dahl", survivor)], 1, result)
    assert result.pulled == {"runner": 1}
    assert lap_count(db, merged) == 2  # the survivor is not here yet: the laps wait
    with pytest.raises(InputError):
        pick_runner(db, 18, None)  # but the merged runner is hidden already
    apply_page(db, [runner_change(survivor, 17, "Cleo Dahl")], 2, result)
    assert lap_count(db, survivor) == 2 and lap_count(db, merged) == 0
    assert {r[0] for r in db.execute("SELECT runner_id FROM lap")} == {survivor}
    assert [r["id"] for r in search_runners(db)] == [survivor]
    assert db.execute("SELECT count(*) FROM change WHERE entity = 'lap'").fetchone()[0] == len(laps)


@pytest.mark.parametrize("merged_into", ["SELF", 42, "", "x" * 65])
def test_a_malformed_merge_is_set_aside_not_applied(laptops, merged_into):
    db = laptops("a")
    runner = add_runner(db, 18, "Cleo Dahl", "6b", 6)
    record_lap(db, 18, tom(db), 0)
    change = runner_change(runner, 18, "Cleo Dahl", "placeholder")
    change["data"]["merged_into"] = runner if merged_into == "SELF" else merged_into
    result = SyncResult()
    apply_page(db, [change], 1, result)
    assert result.pulled == {"not applied": 1}
    assert pick_runner(db, 18, None)["id"] == runner and lap_count(db, runner) == 1
    assert db.execute("SELECT count(*) FROM rejected_pull").fetchone()[0] == 1


# ---- in a real browser ------------------------------------------------------------------

@pytest.fixture
def served_laptop(app):
    """The laptop app of tests/conftest.py served on a free loopback port; yields its URL.

    On 127.0.0.2, not central's 127.0.0.1: cookies are per host, not per port, and
    both apps call their session cookie "session".
    """
    with served(app, "127.0.0.2") as url:
        yield url


def test_resolving_a_double_count_in_the_browser_changes_the_laptops_count(
        served_laptop, db, laptops, live_central, central_db, central_users, browser):
    a, b = laptops("a"), db  # b: the laptop served to the browser
    # Laptops copied from one users file share their users: trusted with users, their
    # users reach central, and each laptop's laps by tom are laps of a known user.
    tokens = {name: register(central_db, name, manage_users=True)
              for name in ("laptop-a", "laptop-b")}
    add_runner(a, 17, "Cleo Dahl", "6b", 6)
    sync(a, live_central, tokens["laptop-a"])
    sync(b, live_central, tokens["laptop-b"])
    record_lap(a, 17, tom(a), 0)
    lap_b = record_lap(b, 17, tom(b), 0)["lap"]["id"]  # the same pass, typed on both laptops
    sync(a, live_central, tokens["laptop-a"])
    sync(b, live_central, tokens["laptop-b"])
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{served_laptop}/login")
        page.fill("input[name=name]", "tom")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{served_laptop}/runners/")
        laps_cell = page.locator("tr", has_text="Cleo Dahl").locator("td.laps")
        expect(laps_cell).to_have_text("2 (1 on this laptop)")  # every laptop's laps

        page.goto(f"{live_central}/login")
        page.fill("input[name=name]", "ada")
        page.fill("input[name=password]", CENTRAL_PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{live_central}/review/")
        pair = page.locator("#doubles article.pair")
        expect(pair).to_have_count(1)
        expect(pair).to_contain_text("two laptops")
        pair.locator(f'tr[data-lap="{lap_b}"] button').click()
        expect(page.locator(".flash")).to_contain_text("The lap was voided")
        expect(page.locator("#doubles article.pair")).to_have_count(0)
        expect(page.locator("#decision-log tr[data-action=void_lap]")).to_contain_text("ada")

        sync(b, live_central, tokens["laptop-b"])  # the laptop's next sync pulls the void
        page.goto(f"{served_laptop}/runners/")
        expect(laps_cell).to_have_text("1 (0 on this laptop)")
    finally:
        context.close()
    assert lap_count(b, pick_runner(b, 17, None)["id"]) == 1  # A's lap still counts

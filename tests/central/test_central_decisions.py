"""Central's decisions belong to central: a void, renumber or merge made on the review page
is pulled with who and why, a device cannot restore a void central decided, and only an
admin at central restores it (from the decision log)."""
from __future__ import annotations

import re

import pytest
import requests
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from lapsync.protocol import validate_push
from sync import clock
from sync.db import now_ms
from sync.devices import find_device
from sync.push import push
from tests.central import test_review
from tests.central.test_review import (
    SPEC,
    T,
    assert_totals_exact,
    last_change,
    merge_form,
    post,
    pulled,
    send,
    totals,
    version,
    session_login,
)

# test_review's fixtures, found by pytest under these names (bound, not imported: the
# tests' parameters of the same names are these fixtures, not redefinitions).
admin, clash, doubles = test_review.admin, test_review.clash, test_review.doubles

REASON = "double count (central review)"


def ahead(counter: int = 0) -> str:
    """Return a stamp a minute ahead of central's clock: later than its decisions, within its bound."""
    return f"{now_ms() + 60_000:013d}.{counter:04d}"


@pytest.fixture
def viewer(central_app, central_db, central_users):
    """A second central client, logged in as the viewer vic (admin has the first)."""
    return session_login(central_app.test_client(), central_db, central_users["vic"])


def void_second(admin, doubles) -> str:
    """Void laptop B's lap of the double count at central; return its id."""
    response = post(admin, "/review/void", lap_id=doubles["second"], version=0,
                    other_id=doubles["first"])
    assert response.status_code == 302
    return doubles["second"]


def lap_void(conn, lap_id: str) -> dict:
    """Return central's void row of a lap."""
    return conn.execute("SELECT voided, central, by, hlc, change_id FROM lap_void "
                        "WHERE lap_id = %s", [lap_id]).fetchone()


def push_void(conn, doubles, lap_id: str, voided: bool, hlc: str) -> dict:
    """Push laptop B's void (or restore) of a lap stamped hlc; return central's answer."""
    box = doubles["b"]
    box.void(lap_id, voided=voided, hlc=hlc)
    return push(conn, find_device(conn, doubles["tokens"]["laptop-b"]),
                validate_push(box.body(device_time=T)), T + 60_000)


def test_a_void_of_central_is_pulled_with_who_and_why(central_db, admin, doubles):
    cursor = last_change(central_db)
    lap = void_second(admin, doubles)
    data = pulled(central_db, doubles["tokens"]["laptop-b"], cursor)[0]["data"]
    assert data["lap_id"] == lap and data["decision"] == {
        "action": "void_lap", "by_name": "ada", "reason": REASON, "at": data["at"]}
    assert lap_void(central_db, lap)["central"] is True


def test_a_laptops_own_void_is_pulled_without_a_decision(central_db, doubles):
    answer = push_void(central_db, doubles, doubles["second"], True, "1700000000001.0000")
    assert answer["rejected"] == []
    change = next(c for c in pulled(central_db, doubles["tokens"]["laptop-a"])
                  if c["entity"] == "lap_void")
    assert "decision" not in change["data"]


def test_a_devices_restore_of_a_central_void_is_refused_and_changes_nothing(central_db, admin,
                                                                             doubles):
    lap = void_second(admin, doubles)
    before, counted = lap_void(central_db, lap), totals(central_db)
    stamp = ahead()
    answer = push_void(central_db, doubles, lap, False, stamp)  # later than central's void
    assert [r["error"] for r in answer["rejected"]] == ["central_decision"]
    assert "only central can restore it" in answer["rejected"][0]["message"]
    assert lap_void(central_db, lap) == before and totals(central_db) == counted
    assert clock.tick(central_db) < stamp  # a refused stamp moves no clock
    stored = central_db.execute("SELECT error FROM rejected_change").fetchone()
    assert stored["error"] == "central_decision"


def test_a_devices_later_void_leaves_centrals_void_and_an_older_restore_is_no_attempt(
        central_db, admin, doubles):
    lap = void_second(admin, doubles)
    before = lap_void(central_db, lap)
    answer = push_void(central_db, doubles, lap, True, ahead())
    assert answer["rejected"] == [] and lap_void(central_db, lap) == before
    answer = push_void(central_db, doubles, lap, False, "1600000000000.0000")  # older: loses
    assert answer["rejected"] == [] and lap_void(central_db, lap) == before
    assert_totals_exact(central_db)


def undo_forms(page: str) -> list[tuple[str, str]]:
    """Return (lap id, version) of every undo form of the decision log."""
    forms = re.findall(r'<form method="post" action="/review/restore".*?</form>', page, re.S)
    return [(re.search(r'name="lap_id" value="([^"]+)"', f).group(1),
             re.search(r'name="version" value="([^"]+)"', f).group(1)) for f in forms]


def test_an_admin_restores_a_central_void_from_the_decision_log(central_db, admin, viewer,
                                                                 doubles):
    lap = void_second(admin, doubles)
    runner = doubles["runner"]
    forms = undo_forms(admin.get("/review/").get_data(as_text=True))
    assert forms == [(lap, str(lap_void(central_db, lap)["change_id"]))]
    assert undo_forms(viewer.get("/review/").get_data(as_text=True)) == []
    cursor = last_change(central_db)
    response = post(admin, "/review/restore", lap_id=lap, version=forms[0][1])
    assert response.status_code == 302
    assert totals(central_db) == {runner: 3}
    assert_totals_exact(central_db)
    changes = pulled(central_db, doubles["tokens"]["laptop-b"], cursor)
    void = next(c["data"] for c in changes if c["entity"] == "lap_void")
    assert (void["voided"], void["decision"]["action"], void["decision"]["by_name"]) == (
        False, "restore_lap", "ada")
    page = admin.get("/review/").get_data(as_text=True)
    assert "The lap counts again" in page and undo_forms(page) == []
    assert "Restored a lap of 17 Cleo Dahl (6b) that central had voided." in page
    answer = push_void(central_db, doubles, lap, True, ahead())
    assert answer["rejected"] == [] and lap_void(central_db, lap)["central"] is False


def test_restore_is_refused_for_a_laptops_void_a_stale_form_and_a_viewer(central_db, admin,
                                                                          viewer, doubles):
    push_void(central_db, doubles, doubles["second"], True, "1700000000001.0000")
    own = lap_void(central_db, doubles["second"])
    refused = post(admin, "/review/restore", lap_id=doubles["second"], version=own["change_id"])
    assert refused.status_code == 409 and "Only a lap voided at central" in \
        refused.get_data(as_text=True)
    lap = doubles["first"]
    assert post(admin, "/review/void", lap_id=lap, version=0).status_code == 302  # its pair is voided
    assert post(admin, "/review/restore", lap_id=lap, version=0).status_code == 409
    current = lap_void(central_db, lap)["change_id"]
    assert post(viewer, "/review/restore", lap_id=lap, version=current).status_code == 403
    assert post(admin, "/review/restore", lap_id="nope", version=current).status_code == 404
    assert lap_void(central_db, lap)["voided"] is True


def test_a_renumber_is_pulled_with_who_why_and_the_old_number_while_it_stands(central_db,
                                                                              admin, clash):
    dora, cursor = clash["dora"], last_change(central_db)
    post(admin, "/review/renumber", runner_id=dora, version=version(central_db, dora),
         start_number="18")
    data = next(c["data"] for c in pulled(central_db, clash["tokens"]["laptop-b"], cursor)
                if c["id"] == dora)
    assert data["start_number"] == 18 and data["decision"] == {
        "action": "renumber", "by_name": "ada", "reason": "start number 17 was given twice",
        "at": data["decision"]["at"], "was_start_number": 17}
    box = clash["b"]
    box.runner(18, "Dora Ernst-Berg", "7c", 7, runner_id=dora,  # a later edit, same number
               hlc=ahead(1))
    send(central_db, clash["tokens"]["laptop-b"], box, now=T + 200_000, device_time=T + 200_000)
    assert pulled_runner(central_db, clash, dora)["decision"]["action"] == "renumber"
    box.runner(19, "Dora Ernst-Berg", "7c", 7, runner_id=dora,  # a new number ends it
               hlc=ahead(2))
    send(central_db, clash["tokens"]["laptop-b"], box, now=T + 300_000, device_time=T + 300_000)
    assert "decision" not in pulled_runner(central_db, clash, dora)


def pulled_runner(conn, clash, runner_id: str) -> dict:
    """Return a runner as laptop A pulls it from scratch."""
    return next(c["data"] for c in pulled(conn, clash["tokens"]["laptop-a"])
                if c["entity"] == "runner" and c["id"] == runner_id)


def test_a_merge_is_pulled_with_its_decision_for_ever(central_db, admin, clash):
    cleo, dora = clash["cleo"], clash["dora"]
    post(admin, "/review/merge", **merge_form(central_db, cleo, dora))
    data = pulled_runner(central_db, clash, dora)
    assert data["merged_into"] == cleo and data["decision"] == {
        "action": "merge", "by_name": "ada", "reason": "the same runner as 17 Cleo Dahl (6b)",
        "at": data["decision"]["at"]}
    box = clash["b"]
    box.runner(21, "Dora Ernst", "7c", 7, runner_id=dora, hlc=ahead())
    send(central_db, clash["tokens"]["laptop-b"], box, now=T + 200_000, device_time=T + 200_000)
    assert pulled_runner(central_db, clash, dora)["decision"]["action"] == "merge"


def test_pulled_decisions_and_the_block_match_the_openapi_spec(central_db, admin, clash,
                                                               live_central):
    cleo, dora = clash["cleo"], clash["dora"]
    post(admin, "/review/renumber", runner_id=dora, version=version(central_db, dora),
         start_number="18")
    lap = central_db.execute("SELECT id FROM lap WHERE runner_id = %s LIMIT 1",
                             [cleo]).fetchone()["id"]
    post(admin, "/review/void", lap_id=lap, version=0)
    response = requests.get(f"{live_central}/api/v1/pull", params={"cursor": 0}, timeout=10,
                            headers={"Authorization": f"Bearer {clash['tokens']['laptop-a']}"})
    SPEC.validate_response(RequestsOpenAPIRequest(response.request),
                           RequestsOpenAPIResponse(response))
    page = response.json()
    assert page["number_block"] == {"first": 9000, "last": 9099}
    decided = {c["entity"]: c["data"]["decision"]["action"] for c in page["changes"]
               if "decision" in c["data"]}
    assert decided == {"runner": "renumber", "lap_void": "void_lap"}

"""End to end with central on a real loopback port and real laptops: late runners numbered
from each laptop's block never share a number, central's decisions reach the laptops and
stay central's, and every laptop counts every laptop's laps."""
from __future__ import annotations

import re

import pytest

from lapsync.laptop.laps import recent_laps
from lapsync.laptop.numbers import number_source
from sync.devices import register_device
from tests.pg import logged_in
from tests.system import test_integration
from tests.system.test_integration import JSON, roster

# test_integration's fixture, found by pytest under this name (bound, not imported: the
# tests' parameters of the same name are this fixture, not redefinitions).
laptops = test_integration.laptops


def add_late_runner(laptop, name: str, class_: str = "7c"):
    """Add a runner through the admin's form with the start number left empty."""
    return laptop.admin.post("/runners/new", data={"start_number": "", "name": name,
                                                   "class": class_, "grade": "7"},
                             headers={"X-CSRFToken": laptop.admin.csrf})


def copied(central_db, name: str) -> str:
    """Register a laptop made from the shared users file: trusted with users, so that its
    users (the same ids on every copy) reach central once and every copy's laps name them."""
    return register_device(central_db, name, manage_users=True)


def connected(laptops, live_central, central_db, *names: str) -> list:
    """Return the laptops NAMES, each connected to central with a token of its own."""
    made = [laptops(name) for name in names]
    for laptop in made:
        laptop.connect(live_central, copied(central_db, f"laptop-{laptop.name}"))
    return made


def numbers(rows) -> list[int]:
    """Return the start numbers of roster rows (id, start_number, ...)."""
    return sorted(row[1] for row in rows)


@pytest.fixture
def central_admin(central_app, central_db, central_users):
    """A client of central logged in as its admin ada; `.csrf` holds a form token."""
    client = central_app.test_client()
    logged_in(client, central_db, central_users["ada"])
    page = client.get("/review/").get_data(as_text=True)
    client.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client


def central_post(client, path: str, **form):
    """Post a form to central as its admin."""
    response = client.post(path, data={"csrf_token": client.csrf, **form})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return response


def device_id(central_db, name: str) -> int:
    """Return central's id of a live device."""
    return central_db.execute("SELECT id FROM device WHERE name = %s AND revoked_at IS NULL",
                              [name]).fetchone()["id"]


def test_two_offline_laptops_number_late_runners_from_their_blocks_without_a_clash(
        laptops, live_central, central_app, central_db, central_admin):
    central_app.config["NUMBER_BLOCK_SIZE"] = 3
    a, b, c = laptops("a"), laptops("b"), laptops("c")
    a.connect(live_central, copied(central_db, "laptop-a"))  # online once: a block
    b.connect(live_central, copied(central_db, "laptop-b"))
    assert (number_source(a.db)["first"], number_source(b.db)["first"]) == (9000, 9003)
    # Offline at the track: late registrations on every laptop, numbers left empty.
    for laptop in (a, b):
        for i in range(3):
            assert add_late_runner(laptop, f"Late {laptop.name}{i}").status_code == 302
    used_up = add_late_runner(a, "Late a3")
    assert used_up.status_code == 409 and "are all given out: type a start number" in \
        used_up.get_data(as_text=True)
    assert add_late_runner(c, "Late c0").status_code == 302  # never connected: local range
    for laptop in (b, a, c):
        if laptop is c:
            laptop.connect(live_central, copied(central_db, "laptop-c"))
        else:
            laptop.sync()
    # The admin gives laptop A more numbers; A learns them at its next sync.
    central_post(central_admin, f"/devices/{device_id(central_db, 'laptop-a')}/block",
                 action="extend")
    a.sync()
    assert add_late_runner(a, "Late a3").status_code == 302
    for laptop in (a, b, c, a, b):
        laptop.sync()
    at_central = [(r["id"], r["start_number"]) for r in
                  central_db.execute("SELECT id, start_number FROM runner")]
    assert sorted(n for _id, n in at_central) == [9000, 9001, 9002, 9003, 9004, 9005, 9009,
                                                   90000]
    assert central_db.execute("SELECT count(*) AS n FROM clash").fetchone()["n"] == 0
    for laptop in (a, b, c):
        assert numbers(roster(laptop.db)) == sorted(n for _id, n in at_central), laptop.name


def test_a_void_decided_at_central_stays_centrals_on_the_laptop_even_against_an_offline_restore(
        laptops, live_central, central_db, central_admin):
    a, b = connected(laptops, live_central, central_db, "a", "b")
    a.save_runner(17, "Cleo Dahl", "6b", 6)
    a.sync()
    b.sync()
    first, lap = a.record(17), b.record(17)  # the same pass typed on both laptops
    a.sync()
    b.sync()
    central_post(central_admin, "/review/void", lap_id=lap, version=0, other_id=first)
    # B, still offline, voids its lap and restores it again before it pulls central's void.
    b.void(lap)
    b.void(lap, voided=False)
    output = b.sync()
    assert "central_decision" in b.cli.invoke(args=["sync-status"]).output, output
    row = next(r for r in recent_laps(b.db) if r["id"] == lap)
    assert (row["central_void"], row["voided_by_name"]) == (True, "ada")
    refused = b.teacher.post(f"/laps/{lap}/restore",
                             headers={**JSON, "X-CSRFToken": b.teacher.csrf})
    assert refused.status_code == 403 and refused.get_json()["error"] == "central_decision"
    voided = central_db.execute("SELECT voided, central FROM lap_void WHERE lap_id = %s",
                                [lap]).fetchone()
    assert voided == {"voided": True, "central": True}
    # Only central undoes it: the decision log's undo, then B counts the lap again.
    page = central_admin.get("/review/").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"',
                        page[page.index('action="/review/restore"'):]).group(1)
    central_post(central_admin, "/review/restore", lap_id=lap, version=version)
    b.sync()
    row = next(r for r in recent_laps(b.db) if r["id"] == lap)
    assert (row["voided_at"], row["central_void"]) == (None, False)
    assert row["count"] == 2 and row["own_count"] == 1


def test_renumber_and_merge_at_central_show_on_the_laptops_runners_page(
        laptops, live_central, central_db, central_admin):
    a, b = connected(laptops, live_central, central_db, "a", "b")
    cleo = a.save_runner(17, "Cleo Dahl", "6b", 6)
    dora = b.save_runner(17, "Dora Ernst", "7c", 7)  # typed by hand on both: a clash
    eva, eva_too = a.save_runner(30, "Eva Fink", "5a", 5), b.save_runner(31, "Eva Fink", "5a", 5)
    a.record(30)
    b.record(31)  # counts for Eva Fink 30 once central merged 31 into her
    for laptop in (a, b, a):
        laptop.sync()
    versions = {r["id"]: r["change_id"] for r in
                central_db.execute("SELECT id, change_id FROM runner")}
    central_post(central_admin, "/review/renumber", runner_id=dora, version=versions[dora],
                 start_number="18")
    central_post(central_admin, "/review/merge", survivor_id=eva, survivor_version=versions[eva],
                 merged_id=eva_too, merged_version=versions[eva_too])
    a.sync()
    page = a.teacher.get("/runners/").get_data(as_text=True)
    assert "Renumbered at central by ada (was 17): start number 17 was given twice" in page
    assert ("31 Eva Fink (5a) was merged into 30 Eva Fink by ada: the same runner as 30 Eva "
            "Fink (5a)") in page
    laps = re.search(r'<tr data-runner="' + eva + r'">.*?<td class="laps"[^>]*>(.*?)</td>',
                     page, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", laps).split() == ["2", "(1", "on", "this", "laptop)"]
    assert cleo in page
    b.sync()
    refused = b.admin.post(f"/runners/{dora}/edit", data={
        "start_number": "17", "name": "Dora Ernst", "class": "7c", "grade": "7"},
        headers={**JSON, "X-CSRFToken": b.admin.csrf})
    assert refused.status_code == 403 and refused.get_json()["error"] == "central_decision"


def test_every_laptop_counts_every_laptops_laps(laptops, live_central, central_db):
    a, b = connected(laptops, live_central, central_db, "a", "b")
    a.save_runner(5, "Finn Gross", "8a", 8)
    a.sync()
    b.sync()
    a.record(5)
    a.record(5, confirm=True)
    a.sync()
    b.sync()
    answer = b.lap(5)
    assert answer.status_code == 201
    body = answer.get_json()
    assert (body["count"], body["own_count"], body["first_lap"], body["previous_elsewhere"],
            body["since_previous_ms"]) == (3, 1, False, True, None)
    cell = re.search(r'<td class="laps"[^>]*>(.*?)</td>',
                     b.teacher.get("/runners/").get_data(as_text=True), re.S).group(1)
    assert re.sub(r"<[^>]+>", "", cell).split() == ["3", "(1", "on", "this", "laptop)"]

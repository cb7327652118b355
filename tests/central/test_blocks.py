"""Start-number blocks at central: reserved per device, shown and changed on the devices page,
sent in every pull, and kept out of the roster's own numbers."""
from __future__ import annotations

import io
import re
import tempfile

import pytest

from lapsync.protocol import validate_push
from lapsync.roster_csv import RosterError
from sync.blocks import current_block, next_free_number
from sync.db import write_transaction
from sync.devices import find_device, register_device
from sync.push import push
from sync.roster import import_roster
from tests.pg import Outbox, logged_in

JSON = {"Accept": "application/json"}


@pytest.fixture
def admin(central_client, central_db, central_users):
    """A central test client logged in as the admin ada (a session made directly)."""
    logged_in(central_client, central_db, central_users["ada"])
    page = central_client.get("/devices/").get_data(as_text=True)
    central_client.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return central_client


def post(client, path: str, **form):
    """Post a form with the client's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **form})


def register(client, name: str) -> tuple[int, str]:
    """Register a device on the page; return its id and token."""
    html = post(client, "/devices/register", name=name).get_data(as_text=True)
    token = re.search(r'<code class="token" id="token">([^<]+)</code>', html).group(1)
    return int(re.search(rf'<tr data-device="(\d+)"[^>]*>\s*<td>{name}</td>', html).group(1)), token


def block_cell(client, device_id: int) -> str:
    """Return the text of a device's block cell on the devices page."""
    html = client.get("/devices/").get_data(as_text=True)
    row = re.search(rf'<tr data-device="{device_id}".*?</tr>', html, re.S).group(0)
    cell = re.search(r'<td class="number-block"[^>]*>(.*?)(<div|</td>)', row, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", "", cell).split())


def add_runners(conn, *numbers: int) -> None:
    """Push runners with these start numbers from a laptop of its own."""
    box = Outbox()
    for number in numbers:
        box.runner(number, f"Runner {number}")
    push(conn, find_device(conn, register_device(conn, f"pusher-{numbers[0]}")),
         validate_push(box.body()))


def pull_page(client, token: str) -> dict:
    """Pull from cursor 0 through the API as the device of token."""
    response = client.get("/api/v1/pull", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.get_json()


def test_each_registered_device_gets_its_own_block_shown_on_the_page(admin, central_db):
    a, _token_a = register(admin, "laptop-a")
    b, _token_b = register(admin, "laptop-b")
    assert current_block(central_db, a) == {"first": 9000, "last": 9099}
    assert current_block(central_db, b) == {"first": 9100, "last": 9199}
    assert block_cell(admin, a) == "9000–9099 (0 of 100 used)"


def test_a_block_skips_numbers_in_use_and_the_local_range(central_app, admin, central_db):
    add_runners(central_db, 9050)
    a, _ = register(admin, "laptop-a")
    assert current_block(central_db, a) == {"first": 9051, "last": 9150}
    central_app.config.update(NUMBER_BLOCK_BASE=89_950, NUMBER_BLOCK_SIZE=60)
    b, _ = register(admin, "laptop-b")
    assert current_block(central_db, b) == {"first": 91_000, "last": 91_059}


def test_the_cli_registers_a_device_with_a_block_and_lists_it(central_app, central_db):
    cli = central_app.test_cli_runner()
    assert cli.invoke(args=["register-device", "gym-laptop"]).exit_code == 0
    register_device(central_db, "old-laptop")  # registered before blocks: none yet
    listed = cli.invoke(args=["list-devices"]).output.splitlines()
    assert [line.split()[0] + " " + line.split()[-1] for line in listed] == [
        "gym-laptop block=9000-9099", "old-laptop block=-"]


def test_the_pull_sends_the_block_and_gives_an_old_device_one(central_client, central_db):
    token = register_device(central_db, "old-laptop")  # registered without a block
    assert pull_page(central_client, token)["number_block"] == {"first": 9000, "last": 9099}
    assert pull_page(central_client, token)["number_block"] == {"first": 9000, "last": 9099}
    assert central_db.execute("SELECT count(*) AS n FROM number_block").fetchone()["n"] == 1


def test_used_numbers_are_counted_on_the_page(admin, central_db):
    a, token = register(admin, "laptop-a")
    box = Outbox()
    box.runner(9000, "Late Lena")
    box.runner(9001, "Late Leo")
    push(central_db, find_device(central_db, token), validate_push(box.body()))
    assert block_cell(admin, a) == "9000–9099 (2 of 100 used)"


def test_more_numbers_extend_the_block_when_the_following_are_free(admin, central_db):
    a, _ = register(admin, "laptop-a")
    response = post(admin, f"/devices/{a}/block", action="extend")
    assert response.status_code == 302
    assert current_block(central_db, a) == {"first": 9000, "last": 9199}
    assert "laptop-a numbers late runners from 9000–9199 now" in \
        admin.get("/devices/").get_data(as_text=True)
    b, _ = register(admin, "laptop-b")
    post(admin, f"/devices/{a}/block", action="extend")  # 9300.. : after b's block
    assert current_block(central_db, a) == {"first": 9300, "last": 9399}
    assert current_block(central_db, b) == {"first": 9200, "last": 9299}
    logged = central_db.execute("SELECT details FROM decision WHERE action = 'number_block' "
                                "ORDER BY id").fetchall()
    assert [(d["details"]["first"], d["details"]["last"]) for d in logged] == [
        (9000, 9199), (9300, 9399)]


def test_an_admin_sets_a_range_and_the_next_pull_sends_it(admin, central_db, central_client):
    a, token = register(admin, "laptop-a")
    assert post(admin, f"/devices/{a}/block", action="set", first="500",
                last="549").status_code == 302
    assert pull_page(central_client, token)["number_block"] == {"first": 500, "last": 549}
    assert block_cell(admin, a) == "500–549 (0 of 50 used)"


@pytest.mark.parametrize("first, last, status, text", [
    ("", "10", 400, "A block runs from"), ("20", "10", 400, "A block runs from"),
    ("0", "10", 400, "A block runs from"), ("1", "10001", 400, "at most 10000"),
    ("9050", "9150", 409, "The range 9050–9150 overlaps 9100–9199, kept for laptop-b: choose a "
                          "range outside it. Nothing was changed."),
    ("89990", "90010", 409, "kept for laptops that have not synced yet"),
    ("1", "10", 409, "Start number 3 of that range belongs to Runner 3"),
])
def test_a_bad_range_is_refused_and_changes_nothing(admin, central_db, first, last, status, text):
    a, _ = register(admin, "laptop-a")
    register(admin, "laptop-b")
    add_runners(central_db, 3)
    response = post(admin, f"/devices/{a}/block", action="set", first=first, last=last)
    assert response.status_code == status and text in response.get_data(as_text=True)
    assert current_block(central_db, a) == {"first": 9000, "last": 9099}
    assert central_db.execute("SELECT count(*) AS n FROM decision WHERE action = "
                              "'number_block'").fetchone()["n"] == 0


def test_a_range_may_hold_the_devices_own_runners(admin, central_db):
    a, token = register(admin, "laptop-a")
    box = Outbox()
    box.runner(9005, "Late Lena")
    push(central_db, find_device(central_db, token), validate_push(box.body()))
    assert post(admin, f"/devices/{a}/block", action="set", first="9005",
                last="9010").status_code == 302


def test_only_admins_change_blocks_and_revoked_devices_get_none(admin, central_db, central_client,
                                                                central_users):
    a, _ = register(admin, "laptop-a")
    post(admin, f"/devices/{a}/revoke", confirm="yes")
    refused = post(admin, f"/devices/{a}/block", action="extend")
    assert refused.status_code == 409
    logged_in(central_client, central_db, central_users["vic"])
    assert post(central_client, f"/devices/{a}/block", action="extend").status_code == 403
    assert current_block(central_db, a) == {"first": 9000, "last": 9099}


# ---- the roster's own numbers ------------------------------------------------------------

def add(client, **fields):
    """Post central's add-runner form."""
    form = {"start_number": "", "name": "Mia", "class": "5a", "grade": "5", **fields}
    return client.post("/runners/new", data={**form, "csrf_token": client.csrf})


def numbers(conn) -> list[int]:
    """Return central's start numbers in use."""
    return [r["start_number"] for r in conn.execute("SELECT start_number FROM runner ORDER BY 1")]


def test_centrals_next_free_number_skips_blocks_and_the_local_range(admin, central_db):
    register(admin, "laptop-a")
    add_runners(central_db, 1, 2, 9000, 9001)  # 9000 and 9001: laptop-a's late runners
    assert next_free_number(central_db) == 3
    assert "the next free one: 3" in admin.get("/runners/new").get_data(as_text=True)
    add_runners(central_db, 8999)
    assert next_free_number(central_db) == 9100
    add_runners(central_db, 89_999)
    assert next_free_number(central_db) == 91_000
    assert add(admin).status_code == 302 and 91_000 in numbers(central_db)


def test_a_typed_number_in_a_block_is_refused_at_central(admin, central_db):
    register(admin, "laptop-a")
    response = add(admin, start_number="9042")
    assert response.status_code == 409
    assert "9042 is in the block 9000–9099 reserved for device laptop-a" in \
        response.get_data(as_text=True)
    assert add(admin, start_number="90500").status_code == 409
    assert numbers(central_db) == []


def test_an_edit_into_a_block_is_refused_but_a_late_runner_keeps_its_number(admin, central_db):
    a, token = register(admin, "laptop-a")
    box = Outbox()
    late = box.runner(9000, "Late Lena")
    push(central_db, find_device(central_db, token), validate_push(box.body()))
    add(admin, start_number="5")
    five = central_db.execute("SELECT id, change_id FROM runner WHERE start_number = 5").fetchone()
    form = {"name": "Mia", "class": "5a", "grade": "5", "csrf_token": admin.csrf}
    refused = admin.post(f"/runners/{five['id']}/edit", data={
        **form, "start_number": "9001", "version": five["change_id"]})
    assert refused.status_code == 409 and "reserved for device laptop-a" in \
        refused.get_data(as_text=True)
    version = central_db.execute("SELECT change_id FROM runner WHERE id = %s",
                                 [late]).fetchone()["change_id"]
    kept = admin.post(f"/runners/{late}/edit", data={
        **form, "name": "Lena Late", "start_number": "9000", "version": version})
    assert kept.status_code == 302 and numbers(central_db) == [5, 9000]


def upload(client, text: str):
    """Post a roster CSV to central's import form."""
    return client.post("/runners/import", data={
        "file": (io.BytesIO(text.encode()), "roster.csv"), "csrf_token": client.csrf},
        content_type="multipart/form-data")


def test_an_import_numbers_below_the_blocks_and_refuses_rows_in_one(admin, central_db):
    register(admin, "laptop-a")
    add_runners(central_db, 9000)
    assert upload(admin, "Name,Klasse,Jahrgang\nAnna,5a,5\nBen,5a,5\n").status_code == 302
    assert numbers(central_db) == [1, 2, 9000]
    refused = upload(admin, "Name,Klasse,Jahrgang,Startnummer\nCem,5a,5,9050\n")
    assert refused.status_code == 422
    assert "reserved for device laptop-a" in refused.get_data(as_text=True)
    assert numbers(central_db) == [1, 2, 9000]


def test_an_import_that_would_run_into_a_block_is_refused_whole(admin, central_db):
    register(admin, "laptop-a")
    add_runners(central_db, 8998)
    refused = upload(admin, "Name,Klasse,Jahrgang\nAnna,5a,5\nBen,5a,5\nCem,5a,5\n")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "<td>3</td><td>Start number 9000 is in the block 9000–9099 reserved" in html
    assert "<td>4</td><td>Start number 9001 is in the block 9000–9099 reserved" in html
    assert numbers(central_db) == [8998]


def test_a_renumber_into_a_block_is_refused(admin, central_db):
    register(admin, "laptop-a")
    box = Outbox()
    runner = box.runner(17, "Cleo")
    box.runner(17, "Dora")
    push(central_db, find_device(central_db, register_device(central_db, "x")),
         validate_push(box.body()))
    version = central_db.execute("SELECT change_id FROM runner WHERE id = %s",
                                 [runner]).fetchone()["change_id"]
    response = admin.post("/review/renumber", data={"runner_id": runner, "version": version,
                                                    "start_number": "9001",
                                                    "csrf_token": admin.csrf}, headers=JSON)
    assert response.status_code == 409 and response.get_json()["error"] == \
        "start_number_reserved"


def test_blocks_never_overlap_when_reserved_one_after_another(central_db):
    tokens = [register_device(central_db, f"laptop-{i}") for i in range(5)]
    from sync.blocks import reserve_block
    with write_transaction(central_db):
        for token in tokens:
            reserve_block(central_db, find_device(central_db, token)["id"], 9000, 100)
    rows = central_db.execute("SELECT first, last FROM number_block ORDER BY first").fetchall()
    assert [(r["first"], r["last"]) for r in rows] == [
        (9000 + 100 * i, 9099 + 100 * i) for i in range(5)]


def statements_sent(conn, action) -> int:
    """Run action() and return how many statements conn sent to the server meanwhile (libpq's trace)."""
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return sum(1 for line in trace if re.search(r"\tF\t\d+\t(Query|Execute)\b", line))


def test_a_big_import_checks_its_numbers_against_the_blocks_read_once(admin, central_db):
    register(admin, "laptop-a")
    rows = "".join(f"Kind {n},5a,5,{n}\n" for n in range(1, 3001))
    sent = statements_sent(central_db, lambda: import_roster(
        central_db, f"Name,Klasse,Jahrgang,Startnummer\n{rows}".encode()))
    assert numbers(central_db) == list(range(1, 3001))
    # A query a row made a big import slow on a busy server; a few in all now.
    assert sent < 50, sent
    with pytest.raises(RosterError) as refused:
        import_roster(central_db, b"Name,Klasse,Jahrgang,Startnummer\nCem,5a,5,9050\n")
    assert "9050 is in the block 9000–9099" in str(refused.value.problems[0].as_dict())

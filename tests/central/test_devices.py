"""Devices: tokens shown once, stored hashed, revocable; the CLI around them."""
from __future__ import annotations

import datetime
import hashlib
import re

import pytest

from lapsync.errors import InputError
from lapsync.protocol import ProtocolError, validate_push
from sync.devices import (
    authenticate,
    find_device,
    hash_token,
    offset_text,
    register_device,
    revoke_device,
)
from sync.push import push
from tests.pg import Outbox, snapshot


def test_a_token_is_random_and_stored_only_as_its_hash(central_db):
    token = register_device(central_db, "  laptop-1  ")
    other = register_device(central_db, "laptop-2")
    assert token != other and len(token) >= 43
    rows = central_db.execute("SELECT name, token_hash FROM device ORDER BY name").fetchall()
    assert rows[0] == {"name": "laptop-1", "token_hash": hashlib.sha256(token.encode()).hexdigest()}
    assert token not in str(rows)


@pytest.mark.parametrize("name", ["", "   ", "x" * 51, "tab\there", "line\nbreak"])
def test_bad_device_names_are_refused(central_db, name):
    with pytest.raises(InputError) as refused:
        register_device(central_db, name)
    assert refused.value.code == "invalid_device_name"
    assert central_db.execute("SELECT count(*) AS n FROM device").fetchone()["n"] == 0


def test_a_live_name_is_taken_until_revoked(central_db):
    register_device(central_db, "laptop-1")
    with pytest.raises(InputError) as refused:
        register_device(central_db, "laptop-1")
    assert refused.value.status == 409
    assert revoke_device(central_db, "laptop-1") is True
    assert revoke_device(central_db, "laptop-1") is False
    assert register_device(central_db, "laptop-1")


@pytest.mark.parametrize("header,code", [
    (None, "missing_token"), ("", "missing_token"), ("Bearer ", "missing_token"),
    ("Token abc", "missing_token"), ("Bearer wrong", "invalid_token"),
])
def test_authenticate_refuses_without_a_valid_token(central_db, device_token, header, code):
    with pytest.raises(ProtocolError) as refused:
        authenticate(central_db, header)
    assert (refused.value.code, refused.value.status) == (code, 401)


def test_authenticate_accepts_any_case_of_bearer_and_refuses_a_revoked_token(central_db,
                                                                             device_token):
    assert authenticate(central_db, f"bearer {device_token}")["name"] == "laptop-a"
    revoke_device(central_db, "laptop-a")
    with pytest.raises(ProtocolError) as refused:
        authenticate(central_db, f"Bearer {device_token}")
    assert refused.value.code == "revoked_token"


def test_cli_registers_lists_and_revokes(central_app, central_db):
    runner = central_app.test_cli_runner()
    made = runner.invoke(args=["register-device", "gym-laptop"])
    assert made.exit_code == 0
    token = made.output.strip().splitlines()[-1]
    stored = central_db.execute("SELECT token_hash FROM device").fetchone()["token_hash"]
    assert stored == hash_token(token)
    assert "gym-laptop" in runner.invoke(args=["list-devices"]).output
    again = runner.invoke(args=["register-device", "gym-laptop"])
    assert again.exit_code != 0 and "exists already" in again.output
    assert runner.invoke(args=["revoke-device", "gym-laptop"]).exit_code == 0
    assert "revoked" in runner.invoke(args=["list-devices"]).output
    missing = runner.invoke(args=["revoke-device", "nobody"])
    assert missing.exit_code != 0 and "No live device" in missing.output
    assert "token" in runner.invoke(args=["register-device", "--help"]).output


def test_list_devices_shows_last_contact_as_local_time_and_age(central_app, central_db):
    runner = central_app.test_cli_runner()
    runner.invoke(args=["register-device", "gym-laptop"])
    assert "last_contact=never" in runner.invoke(args=["list-devices"]).output
    seen = datetime.datetime(2026, 12, 7, 9, 30, 5)
    central_db.execute("UPDATE device SET last_contact = %s",
                       [int(seen.timestamp() * 1000)])
    listed = runner.invoke(args=["list-devices"]).output
    assert "last_contact=2026-12-07 09:30:05 (" in listed and " ago)" in listed


# ---- the devices page ---------------------------------------------------------------

JSON = {"Accept": "application/json"}


def post(client, path: str, **form):
    """Post a form with the client's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **form})


def decisions(conn) -> list[tuple]:
    """Return (action, subject_ids, details) of every logged decision."""
    return [(r["action"], r["subject_ids"], r["details"]) for r in
            conn.execute("SELECT * FROM decision ORDER BY id")]


def test_the_page_lists_each_laptops_sync_state(central_db, central_viewer, device_token):
    register_device(central_db, "laptop-b")
    box = Outbox(clock_ms=1_700_000_000_000)
    runner = box.runner(1, "Anna Berg")
    box.lap(runner)
    box.lap(runner)
    push(central_db, find_device(central_db, device_token), validate_push(box.body()),
         now=1_700_000_012_300)
    page = central_viewer.get("/devices/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    row = re.search(r'<tr data-device="\d+" class="live">(.*?)</tr>', html, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert cells[0] == "laptop-a" and cells[1] == box.laptop_id
    assert cells[2].startswith("2023-11-14") and cells[3:7] == ["3", "2", "laptop 12.3 s behind", "live"]
    assert "laptop-b" in html and "not bound yet" in html and "never" in html
    assert "/register" not in html and "/revoke" not in html  # a viewer sees, an admin acts


def test_anonymous_users_go_to_login(central_client, central_users):
    response = central_client.get("/devices/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("offset,text", [
    (None, "–"), (0, "in step (0 ms)"), (-999, "in step (-999 ms)"),
    (1_000, "laptop 1.0 s behind"), (-125_400, "laptop 125.4 s ahead"),
])
def test_clock_offsets_read_as_words(offset, text):
    assert offset_text(offset) == text


def test_an_admin_registers_a_device_and_sees_its_token_once(central_db, central_admin,
                                                             central_users):
    response = post(central_admin, "/devices/register", name="  gym-laptop ")
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code class="token" id="token">([^<]+)</code>',
                      response.get_data(as_text=True)).group(1)
    device = find_device(central_db, token)
    assert device["name"] == "gym-laptop" and device["revoked_at"] is None
    assert token not in central_admin.get("/devices/").get_data(as_text=True)
    assert decisions(central_db) == [("register_device", [str(device["id"])], {"name": "gym-laptop"})]
    log = central_db.execute("SELECT user_id FROM decision").fetchone()
    assert log["user_id"] == central_users["ada"]


def test_bad_or_taken_names_re_render_the_page_and_change_nothing(central_db, central_admin,
                                                                 device_token):
    before = snapshot(central_db)
    for name, status in [("", 422), ("x" * 51, 422), ("tab\there", 422), ("laptop-a", 409)]:
        page = post(central_admin, "/devices/register", name=name)
        assert page.status_code == status, name
        html = page.get_data(as_text=True)
        assert 'id="device-error"' in html and 'id="token"' not in html
        answer = central_admin.post("/devices/register", headers=JSON,
                                    data={"csrf_token": central_admin.csrf, "name": name})
        assert answer.status_code == status and answer.get_json()["error"]
    assert snapshot(central_db) == before and decisions(central_db) == []


def test_revoke_asks_first_then_has_the_clis_effect(central_db, central_admin, device_token):
    device = find_device(central_db, device_token)
    path = f"/devices/{device['id']}/revoke"
    ask = post(central_admin, path)
    assert ask.status_code == 200 and 'id="confirm-revoke"' in ask.get_data(as_text=True)
    assert find_device(central_db, device_token)["revoked_at"] is None
    done = post(central_admin, path, confirm="yes")
    assert done.status_code == 302
    with pytest.raises(ProtocolError) as refused:
        authenticate(central_db, f"Bearer {device_token}")
    assert refused.value.code == "revoked_token"
    assert decisions(central_db) == [("revoke_device", [str(device["id"])],
                                      {"name": "laptop-a", "laptop_id": None})]
    page = central_admin.get("/devices/").get_data(as_text=True)
    assert "was revoked" in page and 'class="revoked"' in page
    assert register_device(central_db, "laptop-a")  # the name is free again, as after the CLI


def test_revoking_an_unknown_or_revoked_device_is_refused(central_db, central_admin,
                                                          device_token):
    device = find_device(central_db, device_token)
    revoke_device(central_db, "laptop-a")
    before = snapshot(central_db)
    for confirm in ("", "yes"):  # asking and revoking alike
        for path, status in [(f"/devices/{device['id']}/revoke", 409),
                             ("/devices/999999/revoke", 404)]:
            page = post(central_admin, path, confirm=confirm)
            assert page.status_code == status and 'id="device-error"' in page.get_data(as_text=True)
    assert central_admin.post("/devices/abc/revoke", data={"csrf_token": central_admin.csrf}
                              ).status_code == 404
    assert snapshot(central_db) == before and decisions(central_db) == []


def test_a_viewer_gets_403_for_every_device_action(central_db, central_viewer, device_token):
    device = find_device(central_db, device_token)
    before = snapshot(central_db)
    for path, form in [("/devices/register", {"name": "sneaky"}),
                       (f"/devices/{device['id']}/revoke", {"confirm": "yes"})]:
        assert post(central_viewer, path, **form).status_code == 403
    assert snapshot(central_db) == before


def test_device_forms_need_the_csrf_token(central_db, central_admin, device_token):
    device = find_device(central_db, device_token)
    assert central_admin.post(f"/devices/{device['id']}/revoke", data={"confirm": "yes"}
                              ).status_code == 400
    assert find_device(central_db, device_token)["revoked_at"] is None


# ---- trusted to manage users ---------------------------------------------

def trust(conn, name: str) -> bool:
    """Return whether the live device NAME may manage users."""
    return conn.execute("SELECT manage_users FROM device WHERE name = %s AND revoked_at IS NULL",
                        [name]).fetchone()["manage_users"]


def test_a_device_manages_users_only_when_registered_so(central_db):
    register_device(central_db, "plain")
    register_device(central_db, "trusted", manage_users=True)
    assert (trust(central_db, "plain"), trust(central_db, "trusted")) == (False, True)


def test_cli_registers_a_trusted_device_and_changes_the_flag(central_app, central_db, caplog):
    runner = central_app.test_cli_runner()
    made = runner.invoke(args=["register-device", "office", "--manage-users"])
    assert made.exit_code == 0 and "may manage users" in made.output
    assert find_device(central_db, made.output.strip().splitlines()[-1])["manage_users"] is True
    assert "manage_users=yes" in runner.invoke(args=["list-devices"]).output
    assert any("register_device" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)                                 # a trust given is logged
    off = runner.invoke(args=["set-device", "office", "--no-manage-users"])
    assert off.exit_code == 0 and "may not manage users" in off.output
    assert trust(central_db, "office") is False
    again = runner.invoke(args=["set-device", "office", "--no-manage-users"])
    assert again.exit_code == 0 and "(unchanged)" in again.output
    assert runner.invoke(args=["set-device", "office", "--manage-users"]).exit_code == 0
    assert trust(central_db, "office") is True


def test_cli_refuses_bad_set_device_calls_and_changes_nothing(central_app, central_db):
    register_device(central_db, "office")
    revoke_device(central_db, "office")
    register_device(central_db, "gym")
    before = snapshot(central_db)
    runner = central_app.test_cli_runner()
    for args, text in [(["set-device", "nobody", "--manage-users"], "No live device"),
                       (["set-device", "office", "--manage-users"], "No live device"),  # revoked
                       (["set-device", "gym"], "--manage-users"),                       # no choice
                       (["set-device", "--manage-users"], "NAME")]:
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and text in result.output, args
    assert snapshot(central_db) == before


def test_an_admin_registers_a_trusted_device_with_the_checkbox(central_db, central_admin):
    response = post(central_admin, "/devices/register", name="office", manage_users="yes")
    assert response.status_code == 201
    device = central_db.execute("SELECT id, manage_users FROM device").fetchone()
    assert device["manage_users"] is True
    assert decisions(central_db) == [("register_device", [str(device["id"])],
                                      {"name": "office", "manage_users": True})]
    page = central_admin.get("/devices/").get_data(as_text=True)
    assert 'data-manage-users="yes"' in page and "yes, admins too" in page
    assert 'id="manage-users"' in page                                   # the checkbox


def test_an_admin_trusts_a_device_and_stops_trusting_it_and_both_are_logged(
        central_db, central_admin, device_token):
    device = find_device(central_db, device_token)
    path = f"/devices/{device['id']}/manage-users"
    page = central_admin.get("/devices/").get_data(as_text=True)
    assert 'data-manage-users="no"' in page and f'action="{path}"' in page
    done = post(central_admin, path, manage_users="yes")
    assert done.status_code == 302 and trust(central_db, "laptop-a") is True
    assert "may now manage users" in central_admin.get("/devices/").get_data(as_text=True)
    assert post(central_admin, path, manage_users="yes").status_code == 302  # twice: one entry
    assert post(central_admin, path, manage_users="no").status_code == 302
    assert trust(central_db, "laptop-a") is False
    assert decisions(central_db) == [
        ("device_manage_users", [str(device["id"])], {"name": "laptop-a", "manage_users": True}),
        ("device_manage_users", [str(device["id"])], {"name": "laptop-a", "manage_users": False})]
    log = central_admin.get("/review/").get_data(as_text=True)
    assert "Let device laptop-a manage users" in log and "may no longer manage users" in log


def test_bad_manage_users_forms_are_refused_and_change_nothing(central_db, central_admin,
                                                               device_token):
    device = find_device(central_db, device_token)
    register_device(central_db, "old")
    old = central_db.execute("SELECT id FROM device WHERE name = 'old'").fetchone()["id"]
    revoke_device(central_db, "old")
    before = snapshot(central_db)
    path = f"/devices/{device['id']}/manage-users"
    for url, form, status in [(path, {}, 400), (path, {"manage_users": "maybe"}, 400),
                              (path, {"manage_users": "YES "}, 400),
                              (path, {"manage_users": "on"}, 400),
                              (f"/devices/{old}/manage-users", {"manage_users": "yes"}, 409),
                              ("/devices/999999/manage-users", {"manage_users": "yes"}, 404)]:
        page = post(central_admin, url, **form)
        assert page.status_code == status and 'id="device-error"' in page.get_data(as_text=True)
        answer = central_admin.post(url, headers=JSON, data={"csrf_token": central_admin.csrf, **form})
        assert answer.status_code == status and answer.get_json()["error"], (url, form)
    registered = post(central_admin, "/devices/register", name="x", manage_users="maybe")
    assert registered.status_code == 400 and 'id="token"' not in registered.get_data(as_text=True)
    assert post(central_admin, path + "x", manage_users="yes").status_code == 404
    assert snapshot(central_db) == before and decisions(central_db) == []


def test_trust_is_read_at_each_push_and_refused_changes_are_listed(central_db, central_viewer,
                                                                   device_token):
    device = find_device(central_db, device_token)
    box = Outbox()
    box.user("<b>mallory</b>", "admin")
    answer = push(central_db, device, validate_push(box.body()))
    assert [r["error"] for r in answer["rejected"]] == ["users_only_at_central"]
    central_db.execute("UPDATE device SET manage_users = true")
    box.user("office", "admin")
    assert push(central_db, device, validate_push(box.body(2)))["rejected"] == []
    html = central_viewer.get("/devices/").get_data(as_text=True)
    refused = re.search(r'<table class="list" id="refused-changes">(.*?)</table>', html, re.S).group(1)
    assert refused.count('data-error="users_only_at_central"') == 1
    assert "laptop-a" in refused and "&lt;b&gt;mallory&lt;/b&gt;" in refused
    assert "<b>mallory" not in html and "$argon2" not in html          # escaped; no hash shown
    assert "/manage-users" not in html                                   # a viewer sees, no form


def test_an_old_database_gets_the_flag_from_init_db_or_the_first_sync(central_app, central_db,
                                                                      device_token):
    central_db.execute("ALTER TABLE device DROP COLUMN manage_users")  # as a central from before device rights
    central_db.execute("DROP TABLE schema_migration")  # made before numbered migrations
    assert authenticate(central_db, f"Bearer {device_token}")["manage_users"] is False
    central_db.execute("ALTER TABLE device DROP COLUMN manage_users")
    central_db.execute("DROP TABLE schema_migration")
    assert central_app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    assert find_device(central_db, device_token)["manage_users"] is False

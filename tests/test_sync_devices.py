"""Devices: tokens shown once, stored hashed, revocable; the CLI around them."""
from __future__ import annotations

import hashlib
import re

import pytest

from lapsync.errors import InputError
from lapsync.protocol import ProtocolError, validate_push
from sync.devices import (authenticate, find_device, hash_token, offset_text, register_device,
                          revoke_device)
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

"""Devices: tokens shown once, stored hashed, revocable; the CLI around them."""
from __future__ import annotations

import hashlib

import pytest

from lapsync.errors import InputError
from lapsync.protocol import ProtocolError
from sync.devices import authenticate, hash_token, register_device, revoke_device


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

"""Users created at central reach every laptop (with their argon2 hash) for offline login."""
from __future__ import annotations

import pytest

from lapsync.authcore import check_password
from lapsync.errors import InputError
from sync.devices import find_device
from sync.pull import pull
from sync.users import create_user
from tests.pg import HELPER


def test_a_central_user_is_pulled_with_a_hash_the_laptop_can_check(central_db, device_token):
    user_id = create_user(central_db, " tom ", "teacher", "correct-horse")
    page = pull(central_db, find_device(central_db, device_token), 0, 100)
    [change] = [c for c in page["changes"] if c["entity"] == "user" and c["id"] != HELPER]
    assert change["id"] == user_id and change["data"]["name"] == "tom"
    assert check_password(change["data"]["password_hash"], "correct-horse")
    node = central_db.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()["value"]
    assert change["data"]["origin"] == node


@pytest.mark.parametrize("name,role,password,code", [
    ("", "teacher", "correct-horse", "invalid_name"),
    ("tom", "root", "correct-horse", "invalid_role"),
    ("tom", "teacher", "short", "invalid_password"),
])
def test_bad_users_are_refused_and_nothing_is_stored(central_db, name, role, password, code):
    with pytest.raises(InputError) as refused:
        create_user(central_db, name, role, password)
    assert refused.value.code == code
    assert central_db.execute("SELECT count(*) AS n FROM app_user").fetchone()["n"] == 0


def test_a_taken_name_is_refused(central_db):
    create_user(central_db, "tom", "teacher", "correct-horse")
    with pytest.raises(InputError) as refused:
        create_user(central_db, "tom", "admin", "correct-horse")
    assert refused.value.status == 409


def test_cli_creates_a_user(central_app, central_db):
    runner = central_app.test_cli_runner()
    made = runner.invoke(args=["create-user", "ada", "--role", "admin", "--password", "correct-horse"])
    assert made.exit_code == 0, made.output
    assert central_db.execute("SELECT role FROM app_user WHERE name = 'ada'").fetchone()["role"] == "admin"
    bad = runner.invoke(args=["create-user", "bob", "--role", "admin", "--password", "short"])
    assert bad.exit_code != 0 and "8 to 200" in bad.output

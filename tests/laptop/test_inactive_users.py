"""A user central deactivated cannot log in on a laptop once a pull brings it, and any
session of theirs there ends; a reactivation pulled later lets them in again.

The pulled items are what central sends (sync/pull.py): "active": false with no hash, and
"active": true with the hash again. A laptop also refuses a deactivated user whose item
carries a hash, and takes an item without "active" (an older central) as active.
"""
from __future__ import annotations

import re

import pytest

from lapsync.authcore import hash_password
from lapsync.laptop.client.pull import apply_change
from lapsync.laptop.db import device_id, transaction
from lapsync.protocol.limits import WITHHELD_HASH
from tests.conftest import PASSWORD

CENTRAL = "centralnode000000000000"
UNA = "unaunaunaunaunaunauna0001"


def pulled_una(n: int, **fields) -> dict:
    """Return the n-th version of teacher una as central sends it in a pull."""
    data = {"id": UNA, "name": "una", "password_hash": hash_password(PASSWORD),
            "role": "teacher", "created_at": 1, "hlc": f"1700000000000.{n:04d}",
            "origin": CENTRAL, **fields}
    return {"cursor": n, "entity": "user", "id": UNA, "data": data}


def pull_in(db, change: dict) -> bool:
    """Apply one pulled change inside a transaction, as a pull page does."""
    with transaction(db):
        return apply_change(db, change, device_id(db))


def login(client) -> int:
    """Post the laptop's login form as una; return the status (302: logged in)."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client.post("/login", data={"name": "una", "password": PASSWORD,
                                       "csrf_token": token}).status_code


def test_a_deactivation_pulled_ends_the_session_and_refuses_the_login(app, db):
    assert pull_in(db, pulled_una(1, active=True))
    una = app.test_client()
    assert login(una) == 302 and una.get("/").status_code == 200
    assert pull_in(db, pulled_una(2, active=False, password_hash=WITHHELD_HASH))
    assert una.get("/").status_code == 302                       # sent to the login form
    assert db.execute("SELECT count(*) FROM user_session").fetchone()[0] == 0
    assert login(app.test_client()) == 401
    assert pull_in(db, pulled_una(3, active=True))                # reactivated at central
    assert login(app.test_client()) == 302


def test_a_deactivated_user_with_a_hash_is_refused_all_the_same(app, db):
    assert pull_in(db, pulled_una(1, active=False))
    assert login(app.test_client()) == 401


def test_an_item_without_active_is_an_active_user(app, db):
    assert pull_in(db, pulled_una(1))
    assert login(app.test_client()) == 302


def test_an_older_version_does_not_undo_a_deactivation(app, db):
    assert pull_in(db, pulled_una(5, active=False, password_hash=WITHHELD_HASH))
    assert pull_in(db, pulled_una(4, active=True))               # loses last-writer-wins
    assert login(app.test_client()) == 401


@pytest.mark.parametrize("value", ["no", 0, None, [False]])
def test_a_malformed_active_is_set_aside(db, value):
    assert pull_in(db, pulled_una(1, active=value)) is False
    assert db.execute("SELECT entity, entity_id FROM rejected_pull").fetchall() == [("user", UNA)]
    assert db.execute("SELECT count(*) FROM user WHERE id = ?", [UNA]).fetchone()[0] == 0


def test_the_laptops_users_page_names_a_deactivated_user(admin, db):
    pull_in(db, pulled_una(1, active=False, password_hash=WITHHELD_HASH))
    page = admin.get("/users").get_data(as_text=True)
    assert "deactivated at central: cannot log in" in page

"""The contract between the laptop's outbox and central: every change a laptop
writes passes central's push validator, so no change can wedge the queue."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapsync import protocol
from lapsync.errors import InputError
from lapsync.laptop.auth import create_user
from lapsync.laptop.db import connect
from lapsync.laptop.laps import record_lap, set_void
from lapsync.laptop.runners import add_runner

texts = st.text(max_size=120)
numbers = st.one_of(st.integers(-5, 1_000_005), st.text(max_size=8))


def outbox(db) -> list[dict]:
    """Return the outbox as push changes."""
    return [{"seq": r["seq"], "entity": r["entity"], "id": r["entity_id"], "data": json.loads(r["payload"])}
            for r in db.query("SELECT * FROM change ORDER BY seq")]


def assert_outbox_valid(db) -> None:
    """Validate every outbox row the way central does."""
    for index, change in enumerate(outbox(db)):
        protocol.validate_change(change, index)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start_number=numbers, name=texts, class_=texts, grade=numbers, reason=texts)
def test_whatever_the_laptop_accepts_central_accepts(app, start_number, name, class_, grade, reason):
    db = connect(app.config["DATABASE"])
    try:
        user_id = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
        try:
            add_runner(db, start_number, name, class_, grade)
        except InputError:
            return
        number = db.execute("SELECT start_number FROM runner ORDER BY rowid DESC").fetchone()[0]
        lap = record_lap(db, number, user_id, 0)
        try:
            set_void(db, lap["lap"]["id"], user_id, True, reason)
        except InputError:
            pass
        assert_outbox_valid(db)
    finally:
        db.execute("DELETE FROM lap")
        db.execute("DELETE FROM runner")
        db.execute("DELETE FROM change WHERE entity != 'user'")
        db.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=texts)
def test_users_the_laptop_creates_pass_central(db, name):
    try:
        create_user(db, name, "viewer", "long-enough-pw")
    except InputError:
        return
    assert_outbox_valid(db)

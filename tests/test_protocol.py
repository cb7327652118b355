"""The wire format: what a real laptop outbox holds passes validate_push; the rest does not."""
from __future__ import annotations

import json

import pytest
from cuid2 import is_cuid

from lapsync.db import device_id, new_id
from lapsync.laps import record_lap, set_void
from lapsync.protocol import ProtocolError, is_id, validate_push


def outbox_body(db) -> dict:
    """Build a push body from the laptop's outbox exactly as its rows stand."""
    changes = [{"seq": r["seq"], "entity": r["entity"], "id": r["entity_id"],
                "data": json.loads(r["payload"])}
               for r in db.query("SELECT * FROM change ORDER BY seq")]
    return {"protocol": 1, "device_id": device_id(db), "device_time": 1_700_000_000_000,
            "changes": changes}


def test_a_real_laptop_outbox_passes_validation_unchanged(db, runners):
    user = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    lap = record_lap(db, 17, user, 0)["lap"]["id"]
    set_void(db, lap, user, True, "typo")
    set_void(db, lap, user, False)
    body = outbox_body(db)
    assert {c["entity"] for c in body["changes"]} == {"user", "runner", "lap", "lap_void"}
    assert validate_push(body) == body


@pytest.mark.parametrize("value,ok", [
    (new_id(), True), ("c" + "a1" * 12, True), ("a" * 20, True), ("a" * 32, True),
    ("a" * 23 + "\n", False), ("ä" * 24, False),
    ("a" * 19, False), ("a" * 33, False), ("1" + "a" * 23, False), ("A" * 24, False),
    ("a-" * 12, False), (None, False), (12345678901234567890, False),
])
def test_ids_are_cuids_of_20_to_32_characters(value, ok):
    assert is_id(value) is ok
    assert is_cuid(value, min_length=20, max_length=32) is ok  # the same rule as cuid2's


def test_changes_keep_the_origin_they_were_made_with(db, runners):
    """A laptop file copied from another keeps the other's origin on older changes."""
    body = outbox_body(db)
    origins = {c["data"].get("origin") for c in body["changes"]}
    assert len(origins - {None}) == 2  # users from the fixture's template, runners from here
    assert validate_push(body) == body


def test_a_bad_change_is_named_by_index_seq_and_field(db, runners):
    body = outbox_body(db)
    index = next(i for i, c in enumerate(body["changes"]) if c["entity"] == "runner")
    body["changes"][index]["data"]["grade"] = "5"
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.status == 422 and refused.value.code == "invalid_change"
    assert refused.value.extra == {"index": index, "seq": body["changes"][index]["seq"],
                                   "field": "grade"}
    assert "must be an integer" in refused.value.message


@pytest.mark.parametrize("mutate", [
    lambda c: c.update(extra=1), lambda c: c.pop("id"), lambda c: c.update(id=None),
    lambda c: c["data"].pop("id"), lambda c: c["data"].update(speed=1),
    lambda c: c["data"].update(time=True), lambda c: c["data"].update(time=-1),
    lambda c: c.update(seq=True), lambda c: c["data"].update(runner_id="X" * 24),
    lambda c: c.update(id=new_id()),
])
def test_the_fast_lap_check_lets_no_bad_lap_through(mutate):
    """Regression guard: laps take a fast path; every bad one must still be refused."""
    device = new_id()
    change = {"seq": 1, "entity": "lap", "id": new_id(), "data": {}}
    change["data"] = {"id": change["id"], "runner_id": new_id(), "created_by": new_id(),
                      "time": 1_700_000_000_000, "device_id": device}
    assert validate_push({"protocol": 1, "device_id": device, "device_time": 1,
                          "changes": [json.loads(json.dumps(change))]})
    mutate(change)
    with pytest.raises(ProtocolError) as refused:
        validate_push({"protocol": 1, "device_id": device, "device_time": 1, "changes": [change]})
    assert refused.value.status == 422

"""The wire format: what a real laptop outbox holds passes validate_push; the rest does not."""
from __future__ import annotations

import json

import pytest
from cuid2 import is_cuid
from hypothesis import given, settings
from hypothesis import strategies as st

from lapsync.db import device_id, new_id
from lapsync.laps import record_lap, set_void
from lapsync import protocol
from lapsync.protocol import (ProtocolError, compact_changes, expand_changes, is_id, last_seq,
                              validate_push)


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


# ---- compact lap runs -------------------------------------------------------------

def lap_run_body(laps: int = 4, first_seq: int = 1) -> dict:
    """Return a push body of one compact run of LAPS laps from FIRST_SEQ."""
    device = new_id()
    return {"protocol": 1, "device_id": device, "device_time": 1, "changes": [{
        "seq": first_seq, "entity": "laps", "data": {
            "id": [new_id() for _ in range(laps)], "runner_id": [new_id() for _ in range(laps)],
            "created_by": [new_id()] * laps, "time": [1_700_000_000_000 + i for i in range(laps)],
            "device_id": [device] * laps}}]}


def test_compact_lap_runs_stand_for_their_laps(db, runners):
    user = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    laps = [record_lap(db, n, user, 0)["lap"]["id"] for n in (1, 2, 17)]
    set_void(db, laps[0], user, True, "typo")
    record_lap(db, 2, user, 0)
    verbose = outbox_body(db)
    compact = {**verbose, "changes": compact_changes(verbose["changes"])}
    runs = [c for c in compact["changes"] if c["entity"] == "laps"]
    assert [len(run["data"]["id"]) for run in runs] == [3, 1]
    cleaned = validate_push(json.loads(json.dumps(compact)))
    assert cleaned == compact
    assert expand_changes(cleaned["changes"]) == validate_push(verbose)["changes"]
    assert [last_seq(c) for c in cleaned["changes"]][-1] == verbose["changes"][-1]["seq"]


RUN_FIELDS = ("id", "runner_id", "created_by", "time", "device_id")


@pytest.mark.parametrize("mutate,seq,field", [
    (lambda r: r["data"]["runner_id"].__setitem__(2, "X" * 24), 12, "runner_id"),
    (lambda r: r["data"]["id"].__setitem__(3, None), 13, "id"),
    (lambda r: r["data"]["created_by"].__setitem__(1, "a" * 19), 11, "created_by"),
    (lambda r: r["data"]["device_id"].__setitem__(0, "a" * 33), 10, "device_id"),
    (lambda r: r["data"]["time"].__setitem__(1, True), 11, "time"),
    (lambda r: r["data"]["time"].__setitem__(2, 1.5), 12, "time"),
    (lambda r: r["data"]["time"].__setitem__(3, -1), 13, "time"),
    (lambda r: r["data"]["time"].__setitem__(0, 10 ** 14), 10, "time"),
    (lambda r: r["data"]["time"].__setitem__(0, "1700000000000"), 10, "time"),
    # a newline-joined pair of ids must not pass as two ids of the column
    (lambda r: r["data"]["id"].__setitem__(1, "a" * 24 + "\n" + "b" * 24), 11, "id"),
    (lambda r: r["data"]["runner_id"].pop(), 10, "runner_id"),
    (lambda r: r["data"]["time"].append(1), 10, "time"),
    (lambda r: r["data"].update(device_id="a" * 24), 10, "device_id"),
    # not lists at all: refused as bad input, never a 500 (regression)
    (lambda r: r["data"].update(runner_id=5), 10, "runner_id"),
    (lambda r: r["data"].update(id=None), 10, "id"),
    (lambda r: r["data"].update(time=1_700_000_000_000), 10, "time"),
    (lambda r: r["data"].update(created_by={"a": 1}), 10, "created_by"),
    (lambda r: r["data"].update(id=[], runner_id=[], created_by=[], time=[], device_id=[]), 10, "id"),
    (lambda r: r["data"].pop("created_by"), 10, "created_by"),
    (lambda r: r["data"].update(speed=[1, 2, 3, 4]), 10, "speed"),
    (lambda r: r.update(id=r["data"]["id"][0]), 10, "id"),
    (lambda r: r.pop("data"), 10, "data"),
    (lambda r: r.update(data=[1]), 10, None),
    (lambda r: r.update(seq=True), None, "seq"),
    (lambda r: r.update(seq=0), 0, "seq"),
])
def test_a_bad_compact_run_is_refused_naming_the_lap_and_field(mutate, seq, field):
    body = lap_run_body(4, first_seq=10)
    assert validate_push(json.loads(json.dumps(body)))
    mutate(body["changes"][0])
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.status == 422 and refused.value.code == "invalid_change"
    assert refused.value.extra.get("index") == 0 and refused.value.extra.get("field") == field
    assert refused.value.extra.get("seq") == seq


def test_a_change_after_a_run_must_follow_its_last_lap():
    body = lap_run_body(5, first_seq=3)
    lap = expand_changes(lap_run_body(1)["changes"])[0]
    body["changes"].append({**lap, "seq": 7})          # the run ends at 7
    with pytest.raises(ProtocolError) as refused:
        validate_push(body)
    assert refused.value.extra == {"index": 1, "seq": 7, "field": "seq"}
    body["changes"][1]["seq"] = 8
    assert [last_seq(c) for c in validate_push(body)["changes"]] == [7, 8]


def test_runs_count_their_laps_towards_the_batch_limit(monkeypatch):
    monkeypatch.setattr(protocol, "MAX_BATCH_CHANGES", 10)
    assert validate_push(lap_run_body(10))
    with pytest.raises(ProtocolError) as refused:
        validate_push(lap_run_body(11))
    assert refused.value.status == 413 and refused.value.code == "batch_too_large"



_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 15), st.floats(),
              st.text(max_size=30), st.just(new_id()), st.just("a" * 24 + "\n" + "b" * 24)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(RUN_FIELDS), whole_column=st.booleans(), value=_VALUES)
def test_any_value_in_a_lap_run_is_valid_or_refused_never_a_crash(field, whole_column, value):
    """Regression guard: a column that was not a list raised TypeError (a 500 at central)."""
    body = lap_run_body(3, first_seq=5)
    column = body["changes"][0]["data"][field]
    if whole_column:
        body["changes"][0]["data"][field] = value
    else:
        column[1] = value
    try:
        validate_push(body)
    except ProtocolError as refused:
        assert refused.status == 422 and refused.extra["seq"] in ((5, 6, 7) if whole_column else (6,))
        # a column of another length is named where the lengths part (at 'id' or at field)
        assert refused.extra["field"] in ((field, "runner_id") if whole_column else (field,))

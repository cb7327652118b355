"""A push body as a whole: its version, its top-level fields, its changes' shape and seqs,
and the batch limit, from both sides of every limit.

validate_push(body) returns the body cleaned or raises ProtocolError: 400 for a wrong
protocol version, 413 for too many changes, 422 naming the item (and, for a change,
its index and seq) and the field. The limits are written here as numbers on purpose:
seqs are 1 .. 2**63 - 1 (a PostgreSQL bigint), times 0 .. 10**14 - 1, at most 50,000
changes per push. Seq limits are tried on bodies of ONE change: in a longer body the
gap check would refuse a wrong seq first and hide the limit.
"""
from __future__ import annotations

import copy

import pytest

from lapsync.protocol import ProtocolError, last_seq, validate_change, validate_push
from tests.core.protocol_data import (
    DEVICE,
    HASH,
    NOW,
    RUNNER,
    USER,
    valid_data,
)

TOP_SEQ = 2 ** 63 - 1
ENTITIES = ["lap", "lap_void", "runner", "user", "laps"]


def valid_change(entity: str, seq: int = 1, laps: int = 1) -> dict:
    """Return a valid change of ENTITY at SEQ ("laps": a compact run of LAPS laps)."""
    if entity == "laps":
        return {"seq": seq, "entity": "laps", "data": {
            "id": [f"l{(seq if type(seq) is int else 0) % 10 ** 6:06d}{i:017d}"
                   for i in range(laps)],
            "runner_id": [RUNNER] * laps, "created_by": [USER] * laps,
            "time": [NOW + i for i in range(laps)], "device_id": [DEVICE] * laps}}
    data = valid_data(entity)
    return {"seq": seq, "entity": entity, "id": data["lap_id" if entity == "lap_void" else "id"],
            "data": data}


def body_of(*changes: dict, **top: object) -> dict:
    """Return a push body of these changes (top-level fields overridden by TOP)."""
    return {"protocol": 1, "device_id": DEVICE, "device_time": NOW, "changes": list(changes),
            **top}


def refusal(body: object) -> ProtocolError:
    """Return the ProtocolError validate_push raises for BODY."""
    with pytest.raises(ProtocolError) as caught:
        validate_push(body)
    return caught.value


def assert_body_error(error: ProtocolError, field: str | None, message: str) -> None:
    """Assert a 422 about the body itself (not one of its changes)."""
    assert (error.status, error.code) == (422, "invalid_body")
    assert error.extra == ({"field": field} if field else {})
    assert error.message == f"push body: {message}"


def assert_change_error(error: ProtocolError, extra: dict, message: str) -> None:
    """Assert a 422 about one change: extra names index (seq, field); message in full."""
    assert (error.status, error.code) == (422, "invalid_change")
    assert error.extra == extra
    assert error.message == message


# ---- a valid body ------------------------------------------------------------------

def test_a_valid_body_of_every_kind_comes_back_cleaned():
    body = body_of(*(valid_change(entity, seq) for seq, entity in enumerate(ENTITIES, 1)))
    body["changes"][2]["data"]["name"] = "  Anna Berg \u3000"
    body["changes"][3]["data"]["password_hash"] = " " + HASH + "\u3000"
    body["changes"][1]["data"]["reason"] = "\t typo \n"
    cleaned = validate_push(copy.deepcopy(body))
    expected = copy.deepcopy(body)
    expected["changes"][2]["data"]["name"] = "Anna Berg"
    expected["changes"][3]["data"]["password_hash"] = HASH
    expected["changes"][1]["data"]["reason"] = "typo"
    assert cleaned == expected
    assert [last_seq(c) for c in cleaned["changes"]] == [1, 2, 3, 4, 5]


def test_an_empty_batch_is_valid():
    assert validate_push(body_of()) == body_of()


@pytest.mark.parametrize("device_time", [0, 1, 10 ** 14 - 2, 10 ** 14 - 1])
def test_device_time_at_its_limits_is_accepted(device_time):
    assert validate_push(body_of(device_time=device_time))["device_time"] == device_time


@pytest.mark.parametrize("device_id", ["a" * 20, "z" * 32, "c" + "0" * 23])
def test_device_id_is_an_id(device_id):
    assert validate_push(body_of(device_id=device_id))["device_id"] == device_id


def test_the_cleaned_body_has_exactly_the_four_fields():
    cleaned = validate_push(body_of(valid_change("lap")))
    assert cleaned == {"protocol": 1, "device_id": DEVICE, "device_time": NOW,
                       "changes": [valid_change("lap")]}


# ---- the protocol version ------------------------------------------------------------

@pytest.mark.parametrize("version", [0, 2, -1, 10, True, False, 1.0, "1", "v1", None, [1],
                                     {"version": 1}])
def test_a_body_of_another_protocol_version_is_a_400(version):
    error = refusal(body_of(protocol=version))
    assert (error.status, error.code) == (400, "unsupported_protocol")
    assert error.extra == {"supported": [1]}
    assert error.message == f"This server speaks sync protocol 1, not {version!r}."


def test_the_version_is_checked_before_anything_else():
    error = refusal({"protocol": 2, "speed": 1})
    assert (error.status, error.code) == (400, "unsupported_protocol")


# ---- the body's shape ----------------------------------------------------------------

@pytest.mark.parametrize("body", [None, [], [1], ["protocol"], "protocol", 1, True, 1.5])
def test_a_body_that_is_not_an_object_is_refused(body):
    assert_body_error(refusal(body), None, "must be a JSON object")


@pytest.mark.parametrize("field", ["protocol", "device_id", "device_time", "changes"])
def test_a_missing_top_level_field_is_refused_by_name(field):
    body = body_of()
    del body[field]
    assert_body_error(refusal(body), field, f"missing field '{field}'")


@pytest.mark.parametrize("field", ["speed", "Protocol", "change", "device", "cursor"])
def test_an_unknown_top_level_field_is_refused_by_name(field):
    assert_body_error(refusal(body_of(**{field: 1})), field, f"unknown field '{field}'")


def test_of_unknown_and_missing_fields_the_first_unknown_one_is_named():
    body = body_of(zeta=1, alpha=2)
    del body["device_time"]
    assert_body_error(refusal(body), "alpha", "unknown field 'alpha'")


@pytest.mark.parametrize("device_id", ["a" * 19, "a" * 33, "A" * 24, "1" + "a" * 23, "",
                                       None, 5, "a" * 23 + "\n"])
def test_a_bad_device_id_is_refused(device_id):
    assert_body_error(refusal(body_of(device_id=device_id)), "device_id",
                      "'device_id' must be a cuid (20-32 lowercase letters and digits)")


@pytest.mark.parametrize("device_time", [-1, 10 ** 14, 2 ** 63])
def test_a_device_time_one_past_its_limits_is_refused(device_time):
    assert_body_error(refusal(body_of(device_time=device_time)), "device_time",
                      f"'device_time' must be between 0 and {10 ** 14 - 1}")


@pytest.mark.parametrize("device_time", [True, False, 1.0, float(NOW), "1", None, [1]])
def test_device_time_takes_only_json_integers(device_time):
    assert_body_error(refusal(body_of(device_time=device_time)), "device_time",
                      "'device_time' must be an integer")


@pytest.mark.parametrize("changes", [None, {}, {"seq": 1}, "changes", 1, True, 1.5])
def test_changes_that_are_not_a_list_are_refused(changes):
    assert_body_error(refusal(body_of(changes=changes)), "changes", "'changes' must be a list")


@pytest.mark.parametrize("override, field", [
    ({"device_id": None, "device_time": None, "changes": None}, "device_id"),
    ({"device_time": None, "changes": None}, "device_time"),
    ({"device_time": -1, "changes": [None] * 50_001}, "device_time"),
])
def test_top_level_fields_are_checked_in_order(override, field):
    assert refusal(body_of(**override)).extra == {"field": field}


# ---- the batch limit: 50,000 changes, a compact run counting its laps ----------------

def lap_changes(count: int, first_seq: int = 1) -> list[dict]:
    """Return COUNT valid lap changes with seqs from FIRST_SEQ."""
    changes = []
    for i in range(count):
        lap = f"l{i:023d}"
        changes.append({"seq": first_seq + i, "entity": "lap", "id": lap, "data": {
            "id": lap, "runner_id": RUNNER, "created_by": USER, "time": NOW,
            "device_id": DEVICE}})
    return changes


def assert_too_many(error: ProtocolError, count: int) -> None:
    """Assert the 413 for a batch of COUNT changes."""
    assert (error.status, error.code) == (413, "batch_too_large")
    assert error.extra == {"max_changes": 50_000}
    assert error.message == f"At most 50000 changes per push, not {count}."


def test_a_batch_of_exactly_50000_changes_is_accepted():
    cleaned = validate_push(body_of(*lap_changes(50_000)))
    assert len(cleaned["changes"]) == 50_000 and last_seq(cleaned["changes"][-1]) == 50_000


def test_a_batch_of_50001_changes_is_a_413_before_any_change_is_checked():
    assert_too_many(refusal(body_of(*[None] * 50_001)), 50_001)


@pytest.mark.parametrize("runs, accepted", [
    ([50_000], True), ([50_001], False), ([49_999, 1], True), ([49_999, 2], False),
    ([1, 50_000], False),
])
def test_a_compact_run_counts_its_laps_towards_the_batch_limit(runs, accepted):
    changes, seq = [], 1
    for laps in runs:
        changes.append(valid_change("laps", seq, laps) if laps > 1 else valid_change("lap", seq))
        seq += laps
    if accepted:
        assert validate_push(body_of(*changes))["changes"] == changes
    else:
        assert_too_many(refusal(body_of(*changes)), sum(runs))


def test_the_count_is_checked_after_each_change_before_the_next_is_checked():
    error = refusal(body_of(valid_change("laps", 1, 50_001), None))
    assert_too_many(error, 50_001)
    error = refusal(body_of(valid_change("laps", 1, 50_000), None))
    assert error.extra == {"index": 1, "seq": 50_001}


# ---- seqs: integers 1 .. 2**63 - 1, ascending without gaps inside a batch -------------

@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("seq", [1, 2, 1000, TOP_SEQ - 1, TOP_SEQ])
def test_a_seq_at_its_limits_is_accepted(entity, seq):
    change = valid_change(entity, seq)
    cleaned = validate_push(body_of(copy.deepcopy(change)))["changes"]
    assert cleaned == [change] and last_seq(cleaned[0]) == seq


@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("seq", [0, -1, -TOP_SEQ - 1, TOP_SEQ + 1, 2 ** 64 - 1, 2 ** 64, 10 ** 30])
def test_a_seq_one_past_its_limits_is_refused(entity, seq):
    assert_change_error(refusal(body_of(valid_change(entity, seq))),
                        {"index": 0, "seq": seq, "field": "seq"},
                        f"changes[0] (seq {seq}): 'seq' must be between 1 and {TOP_SEQ}")


@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("seq", [True, False, 1.0, "1", None, [1], {"seq": 1}])
def test_a_seq_that_is_not_an_integer_is_refused_without_naming_it(entity, seq):
    assert_change_error(refusal(body_of(valid_change(entity, seq))),
                        {"index": 0, "field": "seq"},
                        "changes[0] (seq None): 'seq' must be an integer")


@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("seq", [True, 7.0, "7", None])
def test_a_seq_that_is_not_an_integer_is_named_by_the_seq_it_should_have(entity, seq):
    assert_change_error(refusal(body_of(valid_change("runner", 6), valid_change(entity, seq))),
                        {"index": 1, "seq": 7, "field": "seq"},
                        "changes[1] (seq 7): 'seq' must be an integer")


@pytest.mark.parametrize("first", ENTITIES)
@pytest.mark.parametrize("second", ENTITIES)
@pytest.mark.parametrize("offset", [-1, 0, 2, 3])
def test_seqs_must_follow_without_gaps(first, second, offset):
    laps = 3 if first == "laps" else 1
    expected = 5 + laps
    seq = expected - 1 + offset   # offset 1 would be right
    error = refusal(body_of(valid_change(first, 5, laps), valid_change(second, seq, 2)))
    assert_change_error(error, {"index": 1, "seq": seq, "field": "seq"},
                        f"changes[1] (seq {seq}): seqs must ascend without gaps inside a "
                        f"batch: expected {expected}")


@pytest.mark.parametrize("first", ENTITIES)
@pytest.mark.parametrize("second", ENTITIES)
def test_contiguous_seqs_of_any_two_entities_are_accepted(first, second):
    laps = 3 if first == "laps" else 1
    changes = [valid_change(first, 41, laps), valid_change(second, 41 + laps, 2)]
    cleaned = validate_push(body_of(*copy.deepcopy(changes)))["changes"]
    assert cleaned == changes
    assert last_seq(cleaned[1]) == 41 + laps + (1 if second == "laps" else 0)


@pytest.mark.parametrize("entity", ENTITIES)
def test_no_change_may_follow_one_at_the_top_seq(entity):
    """Regression: a lap took a fast path that had no upper bound: a lap at seq 2**63
    (or 10**30) was accepted, though central keeps seqs in a bigint."""
    error = refusal(body_of(valid_change("runner", TOP_SEQ), valid_change(entity, TOP_SEQ + 1)))
    assert_change_error(error, {"index": 1, "seq": TOP_SEQ + 1, "field": "seq"},
                        f"changes[1] (seq {TOP_SEQ + 1}): 'seq' must be between 1 and {TOP_SEQ}")


def test_the_first_change_may_start_at_any_seq():
    changes = [valid_change("runner", TOP_SEQ - 2), valid_change("lap", TOP_SEQ - 1),
               valid_change("user", TOP_SEQ)]
    assert validate_push(body_of(*copy.deepcopy(changes)))["changes"] == changes


# ---- a change's shape ------------------------------------------------------------------

@pytest.mark.parametrize("change", [None, [], ["lap"], "lap", 5, True, 1.5])
def test_a_change_that_is_not_an_object_is_refused(change):
    assert_change_error(refusal(body_of(change)), {"index": 0},
                        "changes[0] (seq None): must be a JSON object")
    assert_change_error(refusal(body_of(valid_change("user", 3), change)),
                        {"index": 1, "seq": 4}, "changes[1] (seq 4): must be a JSON object")


@pytest.mark.parametrize("entity", ["lap", "lap_void", "runner", "user"])
@pytest.mark.parametrize("field", ["entity", "id", "data"])
def test_a_missing_change_field_is_refused_by_name(entity, field):
    change = valid_change(entity, 9)
    del change[field]
    assert_change_error(refusal(body_of(change)), {"index": 0, "seq": 9, "field": field},
                        f"changes[0] (seq 9): missing field '{field}'")


@pytest.mark.parametrize("entity", ENTITIES)
def test_a_change_without_a_seq_is_refused_naming_the_seq_it_should_have(entity):
    change = valid_change(entity, 9)
    del change["seq"]
    assert_change_error(refusal(body_of(change)), {"index": 0, "field": "seq"},
                        "changes[0] (seq None): missing field 'seq'")
    assert_change_error(refusal(body_of(valid_change("runner", 8), change)),
                        {"index": 1, "seq": 9, "field": "seq"},
                        "changes[1] (seq 9): missing field 'seq'")


@pytest.mark.parametrize("entity", ["lap", "lap_void", "runner", "user"])
@pytest.mark.parametrize("field", ["speed", "Seq", "cursor", "origin"])
def test_an_unknown_change_field_is_refused_by_name(entity, field):
    change = valid_change(entity, 9)
    change[field] = 1
    assert_change_error(refusal(body_of(change)), {"index": 0, "seq": 9, "field": field},
                        f"changes[0] (seq 9): unknown field '{field}'")


@pytest.mark.parametrize("entity", ["setting", "total", "Lap", "LAP", "laps ", " lap", "lap ",
                                    "lapvoid", "", None, 5, True, ["lap"]])
def test_an_unknown_entity_is_refused(entity):
    change = valid_change("lap", 3)
    change["entity"] = entity
    assert_change_error(refusal(body_of(change)), {"index": 0, "seq": 3, "field": "entity"},
                        "changes[0] (seq 3): 'entity' must be one of lap, lap_void, runner, user")


def test_the_first_bad_change_is_named_and_the_rest_is_not_looked_at():
    bad = valid_change("runner", 2)
    bad["data"]["grade"] = 14
    error = refusal(body_of(valid_change("lap", 1), bad, None, valid_change("user", 99)))
    assert_change_error(error, {"index": 1, "seq": 2, "field": "grade"},
                        "changes[1] (seq 2, runner): 'grade' must be between 1 and 13")


# ---- the lap fast path -------------------------------------------------------------

@pytest.mark.parametrize("seq, time, ids", [
    (1, 0, 20), (1, 10 ** 14 - 1, 32), (TOP_SEQ, NOW, 24), (2, 1, 21), (7, NOW, 31),
])
def test_a_valid_lap_comes_back_as_the_object_sent(seq, time, ids):
    """Laps are most of a push and take a fast path: a valid one is returned as it is."""
    lap = {"seq": seq, "entity": "lap", "id": "l" * ids, "data": {
        "id": "l" * ids, "runner_id": "r" * ids, "created_by": "u" * ids, "time": time,
        "device_id": "d" * ids}}
    assert validate_change(lap) is lap
    assert validate_change(lap, 3, seq) is lap
    assert validate_push(body_of(lap))["changes"][0] is lap


class Mapping(dict):
    """A dict subclass, as a caller of validate_change may hold a change (not JSON's dict)."""


@pytest.mark.parametrize("seq, time, ids", [(1, 0, 20), (TOP_SEQ, 10 ** 14 - 1, 32)])
@pytest.mark.parametrize("outer, inner", [(Mapping, dict), (dict, Mapping), (Mapping, Mapping)])
def test_a_lap_held_in_a_dict_subclass_comes_back_as_an_equal_plain_dict(seq, time, ids,
                                                                         outer, inner):
    """Not the fast path's shape: checked field by field and rebuilt."""
    data = {"id": "l" * ids, "runner_id": "r" * ids, "created_by": "u" * ids, "time": time,
            "device_id": "d" * ids}
    lap = outer(seq=seq, entity="lap", id="l" * ids, data=inner(data))
    cleaned = validate_change(lap, 0, seq)
    assert cleaned == {"seq": seq, "entity": "lap", "id": "l" * ids, "data": data}
    assert type(cleaned) is dict and type(cleaned["data"]) is dict
    assert list(cleaned["data"]) == ["id", "runner_id", "created_by", "time", "device_id"]


@pytest.mark.parametrize("entity", ["lap_void", "runner", "user"])
def test_other_changes_come_back_as_new_objects(entity):
    change = valid_change(entity)
    cleaned = validate_change(change)
    assert cleaned == change and cleaned is not change and cleaned["data"] is not change["data"]


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c.update(seq=0), "seq"),
    (lambda c: c.update(seq=TOP_SEQ + 1), "seq"),
    (lambda c: c.update(seq=True), "seq"),
    (lambda c: c.update(extra=1), "extra"),
    (lambda c: c.pop("id"), "id"),
    (lambda c: c.update(id="x" * 24), "id"),
    (lambda c: c.update(id=None), "id"),
    (lambda c: c["data"].update(time=-1), "time"),
    (lambda c: c["data"].update(time=10 ** 14), "time"),
    (lambda c: c["data"].update(time=1.0), "time"),
    (lambda c: c["data"].update(time=True), "time"),
    (lambda c: c["data"].update(runner_id="R" * 24), "runner_id"),
    (lambda c: c["data"].update(created_by="a" * 19), "created_by"),
    (lambda c: c["data"].update(device_id="a" * 33), "device_id"),
    (lambda c: c["data"].update(id="L" * 24), "id"),
    (lambda c: c["data"].update(speed=1), "speed"),
    (lambda c: c["data"].pop("device_id"), "device_id"),
    (lambda c: c["data"].pop("time") and c["data"].update(tim=1), "tim"),
])
def test_the_fast_path_lets_no_bad_lap_through(mutate, field):
    change = valid_change("lap", 4)
    mutate(change)
    error = refusal(body_of(change))
    assert error.status == 422 and error.code == "invalid_change"
    assert error.extra["field"] == field and error.extra["index"] == 0


def test_a_lap_with_the_wrong_seq_after_another_change_is_refused():
    error = refusal(body_of(valid_change("runner", 1), valid_change("lap", 3)))
    assert error.extra == {"index": 1, "seq": 3, "field": "seq"}
    assert validate_change(valid_change("lap", 3), 1, 3) == valid_change("lap", 3)
    with pytest.raises(ProtocolError) as caught:
        validate_change(valid_change("lap", 3), 1, 2)
    assert caught.value.extra == {"index": 1, "seq": 3, "field": "seq"}

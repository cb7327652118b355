"""Compact lap runs: n lap changes sent as five columns, {"seq", "entity": "laps", "data"}.

A run stands for the laps seq .. seq + n - 1; every value is checked exactly as in a
lap change, and an error names the lap at fault by its own seq. Also here: the helpers
both ends use to go between runs and lap changes (expand_changes, compact_changes,
last_seq, change_count). Limits are written as numbers, not imported.
"""
from __future__ import annotations

import copy

import pytest

from lapsync.protocol import (ProtocolError, change_count, compact_changes, expand_changes,
                              last_seq, validate_change, validate_push)

DEVICE, RUNNER, USER = "d" * 24, "r" * 24, "u" * 24
NOW = 1_700_000_000_000
TOP_SEQ = 2 ** 63 - 1
COLUMNS = ["id", "runner_id", "created_by", "time", "device_id"]
ID_COLUMNS = ["id", "runner_id", "created_by", "device_id"]


def lap_id(i: int) -> str:
    """Return the i-th lap id (24 characters)."""
    return f"l{i:023d}"


def run(seq: int = 10, laps: int = 4) -> dict:
    """Return a valid compact run of LAPS laps from SEQ (two runners, one user, one laptop)."""
    return {"seq": seq, "entity": "laps", "data": {
        "id": [lap_id(i) for i in range(laps)],
        "runner_id": [RUNNER if i % 2 else "s" * 24 for i in range(laps)],
        "created_by": [USER] * laps, "time": [NOW + i for i in range(laps)],
        "device_id": [DEVICE] * laps}}


def lap(seq: int, i: int = 0, **data: object) -> dict:
    """Return a valid verbose lap change (the i-th lap of run())."""
    fields = {"id": lap_id(i), "runner_id": RUNNER if i % 2 else "s" * 24, "created_by": USER,
              "time": NOW + i, "device_id": DEVICE, **data}
    return {"seq": seq, "entity": "lap", "id": fields["id"], "data": fields}


def body_of(*changes: dict) -> dict:
    """Return a push body of these changes."""
    return {"protocol": 1, "device_id": DEVICE, "device_time": NOW, "changes": list(changes)}


def refusal(*changes: dict) -> ProtocolError:
    """Return the 422 validate_push raises for a body of these changes."""
    with pytest.raises(ProtocolError) as caught:
        validate_push(body_of(*changes))
    assert (caught.value.status, caught.value.code) == (422, "invalid_change")
    return caught.value


# ---- valid runs --------------------------------------------------------------------

@pytest.mark.parametrize("laps", [1, 2, 3, 4, 100])
def test_a_valid_run_comes_back_as_the_object_sent(laps):
    change = run(10, laps)
    assert validate_change(change) is change
    assert validate_change(change, 2, 10) is change
    assert validate_push(body_of(change))["changes"][0] is change
    assert change == run(10, laps)  # and unchanged


@pytest.mark.parametrize("column", ID_COLUMNS)
@pytest.mark.parametrize("value", ["a" * 20, "z" * 32, "a" + "0" * 19, "q" + "9" * 31])
def test_ids_of_20_and_32_characters_are_accepted_in_every_column(column, value):
    for laps, at in [(1, 0), (3, 0), (3, 1), (3, 2)]:
        change = run(10, laps)
        change["data"][column][at] = value
        assert validate_push(body_of(copy.deepcopy(change)))["changes"] == [change]


@pytest.mark.parametrize("value", [0, 1, 10 ** 14 - 2, 10 ** 14 - 1])
@pytest.mark.parametrize("laps, at", [(1, 0), (3, 0), (3, 1), (3, 2)])
def test_times_at_their_limits_are_accepted_in_a_run(value, laps, at):
    change = run(10, laps)
    change["data"]["time"][at] = value
    assert validate_push(body_of(copy.deepcopy(change)))["changes"] == [change]


@pytest.mark.parametrize("times", [[0] * 5, [10 ** 14 - 1] * 5, [5, 4, 3, 2, 1],
                                   [0, 10 ** 14 - 1, 0, 10 ** 14 - 1, 7]])
def test_times_need_not_ascend_nor_differ(times):
    change = run(1, 5)
    change["data"]["time"] = times
    assert validate_push(body_of(copy.deepcopy(change)))["changes"] == [change]


def test_ids_may_repeat_inside_a_run():
    """A lap id twice is not refused here (central inserts a lap id once)."""
    change = run(1, 3)
    change["data"]["id"] = [lap_id(0)] * 3
    assert validate_push(body_of(copy.deepcopy(change)))["changes"] == [change]


@pytest.mark.parametrize("seq, laps", [(1, 1), (TOP_SEQ, 1), (TOP_SEQ - 1, 2), (TOP_SEQ - 2, 3),
                                       (TOP_SEQ - 99, 100)])
def test_a_run_may_end_exactly_at_the_top_seq(seq, laps):
    change = run(seq, laps)
    assert validate_push(body_of(copy.deepcopy(change)))["changes"] == [change]
    assert last_seq(change) == seq + laps - 1


@pytest.mark.parametrize("seq, laps", [(TOP_SEQ, 2), (TOP_SEQ - 1, 3), (TOP_SEQ - 98, 100)])
def test_a_run_that_would_end_past_the_top_seq_is_refused(seq, laps):
    error = refusal(run(seq, laps))
    assert error.extra == {"index": 0, "seq": seq, "field": "seq"}
    assert error.message == f"changes[0] (seq {seq}, lap): the run's last seq is out of range"


@pytest.mark.parametrize("seq, laps, at", [(TOP_SEQ, 1, 0), (TOP_SEQ - 1, 2, 1),
                                           (TOP_SEQ - 1, 2, 0), (TOP_SEQ - 2, 3, 2)])
def test_a_bad_lap_of_a_run_ending_at_the_top_seq_is_named_by_its_seq(seq, laps, at):
    change = run(seq, laps)
    change["data"]["created_by"][at] = "U" * 24
    assert refusal(change).extra == {"index": 0, "seq": seq + at, "field": "created_by"}


def test_the_run_end_is_checked_before_its_laps():
    change = run(TOP_SEQ, 2)
    change["data"]["time"][1] = -1
    assert refusal(change).extra == {"index": 0, "seq": TOP_SEQ, "field": "seq"}


# ---- a bad value names the lap at fault ---------------------------------------------

BAD_IDS = ["a" * 19, "a" * 33, "A" * 24, "1" + "a" * 23, "", "a" * 23 + "\n",
           "a" * 24 + "\n" + "b" * 24, "\n" + "a" * 24, "a" * 23 + "\u0661", None, 5, True,
           ["a" * 24], 1.5]
BAD_TIMES = [-1, 10 ** 14, 2 ** 63, True, False, 1.5, float(NOW), "1", None, [1]]


def expected_message(column: str, value: object) -> str:
    """Return the part of the message after the item's name for a bad VALUE in COLUMN."""
    if column != "time":
        return f"'{column}' must be a cuid (20-32 lowercase letters and digits)"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"'time' must be between 0 and {10 ** 14 - 1}"
    return "'time' must be an integer"


@pytest.mark.parametrize("column, value", [(c, v) for c in ID_COLUMNS for v in BAD_IDS]
                         + [("time", v) for v in BAD_TIMES])
def test_a_bad_value_is_refused_naming_the_lap_by_its_seq(column, value):
    for seq, laps, at in [(10, 1, 0), (10, 4, 0), (10, 4, 1), (1000, 4, 3)]:
        change = run(seq, laps)
        change["data"][column][at] = value
        error = refusal(change)
        assert error.extra == {"index": 0, "seq": seq + at, "field": column}
        assert error.message == \
            f"changes[0] (seq {seq + at}, lap): {expected_message(column, value)}"


@pytest.mark.parametrize("column, value", [(c, v) for c in ID_COLUMNS for v in BAD_IDS[:8]]
                         + [("time", v) for v in BAD_TIMES])
def test_a_column_of_only_bad_values_is_refused_at_its_first_lap(column, value):
    change = run(20, 3)
    change["data"][column] = [value] * 3
    assert refusal(change).extra == {"index": 0, "seq": 20, "field": column}


@pytest.mark.parametrize("column", ID_COLUMNS)
def test_ids_joined_by_a_newline_do_not_pass_as_two(column):
    change = run(1, 2)
    change["data"][column] = ["a" * 24 + "\n" + "b" * 24, "c" * 24]
    assert refusal(change).extra == {"index": 0, "seq": 1, "field": column}
    change["data"][column] = ["c" * 24, "a" * 24 + "\n" + "b" * 24]
    assert refusal(change).extra == {"index": 0, "seq": 2, "field": column}


@pytest.mark.parametrize("column", ["runner_id", "created_by", "device_id"])
def test_a_repeated_bad_value_in_a_column_of_few_values_is_refused(column):
    change = run(1, 4)
    change["data"][column] = ["a" * 24 + "\n" + "b" * 24] * 4
    assert refusal(change).extra == {"index": 0, "seq": 1, "field": column}
    change["data"][column] = [["x" * 24]] * 4   # unhashable values
    assert refusal(change).extra == {"index": 0, "seq": 1, "field": column}


def test_of_several_bad_laps_the_first_is_named_and_in_it_the_first_field():
    change = run(10, 4)
    change["data"]["time"][3] = -1
    change["data"]["time"][1] = -1
    change["data"]["device_id"][1] = None
    change["data"]["runner_id"][2] = None
    assert refusal(change).extra == {"index": 0, "seq": 11, "field": "time"}
    change["data"]["created_by"][1] = None
    assert refusal(change).extra == {"index": 0, "seq": 11, "field": "created_by"}


# ---- the run's shape ----------------------------------------------------------------

@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("value", [None, 5, "a" * 24, {"0": "a" * 24}, [], True])
@pytest.mark.parametrize("laps", [1, 3])
def test_a_column_that_is_not_a_non_empty_list_is_refused(column, value, laps):
    change = run(10, laps)
    change["data"][column] = value
    error = refusal(change)
    assert error.extra == {"index": 0, "seq": 10, "field": column}
    assert error.message == f"changes[0] (seq 10, lap): '{column}' of a lap run must be a " \
                            "non-empty list"


@pytest.mark.parametrize("value", [
    "A" * 24, "a" * 19, "a" * 24 + "\n" + "b" * 24, "a" * 24 + "\n" + "b" * 24 + "\n" + "c" * 24,
])
def test_a_bad_value_in_every_id_column_at_once_is_refused_at_the_first(value):
    """Each id column is checked as a whole; a fault in all of them must not cancel out."""
    change = run(10, 1)
    for column in ID_COLUMNS:
        change["data"][column] = [value]
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": "id"}


def test_every_id_column_an_object_keyed_by_an_id_is_refused():
    change = run(10, 1)
    for column in ID_COLUMNS:
        change["data"][column] = {change["data"][column][0]: 0}
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": "id"}


@pytest.mark.parametrize("length", [2, 4])
def test_columns_all_of_another_length_than_the_ids_are_refused(length):
    change = run(10, 3)
    for column in ("runner_id", "created_by", "device_id"):
        change["data"][column] = [change["data"][column][0]] * length
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": "runner_id"}


@pytest.mark.parametrize("laps", [1, 3])
def test_a_sixth_column_is_refused(laps):
    change = run(10, laps)
    change["data"]["speed"] = [1] * laps
    error = refusal(change)
    assert error.extra == {"index": 0, "seq": 10, "field": "speed"}
    assert error.message == "changes[0] (seq 10, lap): unknown field 'speed'"


def test_five_columns_of_other_names_are_refused():
    change = run(10, 2)
    change["data"] = {"x_" + column: values for column, values in change["data"].items()}
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": "x_created_by"}


@pytest.mark.parametrize("entity", ["lap", "lap_void", "runner", "user", "Laps", "lap_run"])
def test_a_run_under_another_entity_name_is_refused(entity):
    """Only "laps" makes a change a compact run: any other entity needs its id and data."""
    change = run(10, 1)
    change["entity"] = entity
    error = refusal(change)
    assert error.extra == {"index": 0, "seq": 10, "field": "id"}
    assert error.message == "changes[0] (seq 10): missing field 'id'"


@pytest.mark.parametrize("column", ID_COLUMNS)
def test_a_column_that_is_an_object_keyed_by_an_id_is_refused(column):
    change = run(10, 1)
    change["data"][column] = {change["data"][column][0]: 0}
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": column}


def test_five_empty_columns_are_refused_at_the_first():
    change = run(10, 1)
    change["data"] = {column: [] for column in COLUMNS}
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": "id"}


@pytest.mark.parametrize("column", COLUMNS[1:])
@pytest.mark.parametrize("length", [2, 4])
def test_every_column_must_be_as_long_as_the_ids(column, length):
    change = run(10, 3)
    change["data"][column] = (change["data"][column] * 2)[:length]
    error = refusal(change)
    assert error.extra == {"index": 0, "seq": 10, "field": column}
    assert error.message == f"changes[0] (seq 10, lap): '{column}' must have as many values " \
                            "as 'id' (3)"


@pytest.mark.parametrize("length, field", [(2, "runner_id"), (4, "runner_id")])
def test_an_id_column_of_another_length_is_named_at_the_next_column(length, field):
    change = run(10, 3)
    change["data"]["id"] = [lap_id(i) for i in range(length)]
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": field}


@pytest.mark.parametrize("field", ["id", "speed", "cursor"])
def test_an_unknown_field_of_the_run_is_refused(field):
    change = run(10, 2)
    change[field] = lap_id(0)
    error = refusal(change)
    assert error.extra == {"index": 0, "seq": 10, "field": field}
    assert error.message == f"changes[0] (seq 10): unknown field '{field}'"


@pytest.mark.parametrize("field", ["seq", "data"])
def test_a_missing_field_of_the_run_is_refused(field):
    change = run(10, 2)
    del change[field]
    error = refusal(change)
    seq = {} if field == "seq" else {"seq": 10}
    assert error.extra == {"index": 0, **seq, "field": field}
    assert error.message == f"changes[0] (seq {seq.get('seq')}): missing field '{field}'"


@pytest.mark.parametrize("column", COLUMNS)
def test_a_missing_or_unknown_column_is_refused(column):
    change = run(10, 2)
    del change["data"][column]
    error = refusal(change)
    assert error.extra == {"index": 0, "seq": 10, "field": column}
    assert error.message == f"changes[0] (seq 10, lap): missing field '{column}'"
    change["data"]["z" + column] = [1, 2]
    assert refusal(change).extra == {"index": 0, "seq": 10, "field": "z" + column}


@pytest.mark.parametrize("data", [None, [], [["id", lap_id(0)]], "laps", 5])
def test_run_data_that_is_not_an_object_is_refused(data):
    change = run(10, 2)
    change["data"] = data
    error = refusal(change)
    assert error.extra == {"index": 0, "seq": 10}
    assert error.message == "changes[0] (seq 10, lap): must be a JSON object"


def test_a_run_must_follow_the_change_before_it():
    error = refusal(lap(3), run(5, 2))
    assert error.extra == {"index": 1, "seq": 5, "field": "seq"}
    assert error.message == "changes[1] (seq 5): seqs must ascend without gaps inside a " \
                            "batch: expected 4"
    assert validate_push(body_of(lap(3), run(4, 2)))["changes"] == [lap(3), run(4, 2)]
    change = run(4, 2)
    assert validate_change(change, 1, 4) is change


def test_a_change_after_a_run_must_follow_its_last_lap():
    assert refusal(run(3, 5), lap(7, 9)).extra == {"index": 1, "seq": 7, "field": "seq"}
    assert refusal(run(3, 5), run(9, 1)).extra == {"index": 1, "seq": 9, "field": "seq"}
    changes = [run(3, 5), lap(8, 9), run(9, 2)]
    assert validate_push(body_of(*copy.deepcopy(changes)))["changes"] == changes


class Mapping(dict):
    """A dict subclass, as a caller of validate_change may hold a change (not JSON's dict)."""


@pytest.mark.parametrize("seq, laps", [(1, 1), (5, 3), (TOP_SEQ, 1), (TOP_SEQ - 2, 3)])
def test_a_run_held_in_a_dict_subclass_is_checked_as_thoroughly(seq, laps):
    change = Mapping(run(seq, laps))
    assert validate_change(change) is change
    assert validate_change(change, 4, seq) is change
    bad = Mapping(run(seq, laps))
    bad["data"] = {**bad["data"], "time": [-1] * laps}
    with pytest.raises(ProtocolError) as caught:
        validate_change(bad)
    assert caught.value.extra == {"index": 0, "seq": seq, "field": "time"}


@pytest.mark.parametrize("seq, laps", [(TOP_SEQ, 2), (TOP_SEQ - 1, 3)])
def test_a_run_in_a_dict_subclass_past_the_top_seq_is_refused(seq, laps):
    with pytest.raises(ProtocolError) as caught:
        validate_change(Mapping(run(seq, laps)))
    assert caught.value.extra == {"index": 0, "seq": seq, "field": "seq"}


# ---- last_seq, change_count, expand_changes, compact_changes --------------------------

@pytest.mark.parametrize("change, last, count", [
    (lap(7), 7, 1), (run(7, 1), 7, 1), (run(7, 2), 8, 2), (run(7, 100), 106, 100),
    (run(TOP_SEQ - 9, 10), TOP_SEQ, 10),
    ({"seq": 5, "entity": "runner", "id": RUNNER, "data": {}}, 5, 1),
])
def test_last_seq_and_change_count(change, last, count):
    assert last_seq(change) == last
    assert change_count(change) == count


def test_expand_changes_writes_a_run_out_as_its_laps():
    runner = {"seq": 1, "entity": "runner", "id": RUNNER, "data": {"id": RUNNER}}
    expanded = expand_changes([runner, run(2, 3), lap(5, 7)])
    assert expanded == [runner, lap(2, 0), lap(3, 1), lap(4, 2), lap(5, 7)]
    assert expanded[0] is runner
    assert [list(c["data"]) for c in expanded[1:4]] == [COLUMNS] * 3
    assert expand_changes([]) == []


def test_compact_changes_groups_consecutive_laps_into_runs():
    runner = {"seq": 3, "entity": "runner", "id": RUNNER, "data": {"id": RUNNER}}
    changes = [lap(1, 0), lap(2, 1), runner, lap(4, 2), lap(6, 3), lap(7, 4)]
    grouped = compact_changes(copy.deepcopy(changes))
    assert [(c["seq"], c["entity"], change_count(c)) for c in grouped] == [
        (1, "laps", 2), (3, "runner", 1), (4, "laps", 1), (6, "laps", 2)]
    assert grouped[0] == {"seq": 1, "entity": "laps", "data": {
        "id": [lap_id(0), lap_id(1)], "runner_id": ["s" * 24, RUNNER],
        "created_by": [USER] * 2, "time": [NOW, NOW + 1], "device_id": [DEVICE] * 2}}
    assert list(grouped[0]["data"]) == COLUMNS
    assert grouped[1] == runner
    assert expand_changes(grouped) == changes
    assert compact_changes([]) == []


def test_compact_and_expand_are_inverse_and_the_result_validates():
    changes = [lap(i + 1, i) for i in range(6)]
    changes[2] = {"seq": 3, "entity": "lap_void", "id": lap_id(1), "data": {
        "lap_id": lap_id(1), "voided": True, "at": NOW, "by": USER, "reason": None,
        "hlc": "1700000000000.0000", "origin": DEVICE}}
    grouped = compact_changes(copy.deepcopy(changes))
    assert [c["entity"] for c in grouped] == ["laps", "lap_void", "laps"]
    assert validate_push(body_of(*copy.deepcopy(grouped)))["changes"] == grouped
    assert expand_changes(grouped) == validate_push(body_of(*changes))["changes"]

"""The pull's checks of central's decisions and of a device's number block, at their limits."""
from __future__ import annotations

import pytest

from lapsync.protocol import (
    LOCAL_NUMBERS,
    MAX_REASON,
    MAX_START_NUMBER,
    MAX_TIME,
    MAX_USER_NAME,
    pulled_decision,
    pulled_number_block,
)


def decision(**fields) -> dict:
    """Return an item's data with a decision of central."""
    return {"decision": {"action": "renumber", "by_name": "ada", "reason": "clash", "at": 5,
                         **fields}}


def test_an_item_without_a_decision_has_none():
    assert pulled_decision({}, "runner") is None
    assert pulled_decision({"decision": None}, "lap_void") is None


@pytest.mark.parametrize("fields", [
    {}, {"by_name": None, "reason": None}, {"by_name": "a" * MAX_USER_NAME},
    {"reason": "r" * MAX_REASON}, {"at": 0}, {"at": MAX_TIME},
    {"was_start_number": 1}, {"was_start_number": MAX_START_NUMBER}, {"action": "merge"},
])
def test_a_decision_within_the_limits_is_taken_whole(fields):
    taken = pulled_decision(decision(**fields), "runner")
    expected = {"action": "renumber", "by_name": "ada", "reason": "clash", "at": 5,
                "was_start_number": None, **fields}
    assert taken == expected


@pytest.mark.parametrize("entity, fields", [
    ("runner", {"action": "void_lap"}), ("lap_void", {"action": "renumber"}),
    ("runner", {"action": None}), ("runner", {"by_name": "a" * (MAX_USER_NAME + 1)}),
    ("runner", {"by_name": ""}), ("runner", {"by_name": 7}), ("runner", {"by_name": "a\tb"}),
    ("runner", {"reason": "r" * (MAX_REASON + 1)}), ("runner", {"reason": "a\x00b"}),
    ("runner", {"at": -1}), ("runner", {"at": MAX_TIME + 1}), ("runner", {"at": "5"}),
    ("runner", {"at": None}), ("runner", {"was_start_number": 0}),
    ("runner", {"was_start_number": MAX_START_NUMBER + 1}),
    ("runner", {"was_start_number": True}), ("runner", {"was_start_number": 1.0}),
])
def test_a_decision_beyond_the_limits_is_refused(entity, fields):
    with pytest.raises((ValueError, KeyError)):
        pulled_decision(decision(**fields), entity)


@pytest.mark.parametrize("value", ["void_lap", ["void_lap"], 5])
def test_a_decision_that_is_no_object_is_refused(value):
    with pytest.raises(ValueError):
        pulled_decision({"decision": value}, "lap_void")


@pytest.mark.parametrize("value, expected", [
    (None, None), ({"first": 1, "last": 1}, (1, 1)),
    ({"first": 9000, "last": 9099}, (9000, 9099)),
    ({"first": 1, "last": MAX_START_NUMBER}, (1, MAX_START_NUMBER)),
])
def test_a_number_block_within_the_start_numbers_is_taken(value, expected):
    assert pulled_number_block(value) == expected


@pytest.mark.parametrize("value", [
    {"first": 0, "last": 1}, {"first": 2, "last": 1}, {"first": 1, "last": MAX_START_NUMBER + 1},
    {"first": 1.0, "last": 2}, {"first": False, "last": 2}, {"first": 1}, {"last": 1},
    {"first": 1, "last": 2, "size": 2}, [1, 2], "1-2", 5,
])
def test_a_bad_number_block_is_refused(value):
    with pytest.raises(ValueError):
        pulled_number_block(value)


def test_the_local_range_lies_inside_the_start_numbers():
    assert 1 <= LOCAL_NUMBERS.start < LOCAL_NUMBERS.stop - 1 <= MAX_START_NUMBER
    assert (LOCAL_NUMBERS.start, LOCAL_NUMBERS.stop - 1) == (90_000, 90_999)

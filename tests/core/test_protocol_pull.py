"""The pull side of the wire format: event settings (validate_setting, which central runs
on the admin's form and whose values laptops receive as "setting" changes) and the
constants both ends agree on for pulls. protocol.py has no validator for pull pages
themselves; their limits (cursor >= 0, limit 1..1000) are pinned here as the numbers
the other end relies on. Limits are written as numbers, not imported.
"""
from __future__ import annotations

import math

import pytest

from lapsync import protocol
from lapsync.protocol import ProtocolError, validate_setting


def refusal(key: object, value: object) -> ProtocolError:
    """Return the ProtocolError validate_setting raises."""
    with pytest.raises(ProtocolError) as caught:
        validate_setting(key, value)
    return caught.value


def assert_refused(key: str, value: object, message: str) -> None:
    """Assert VALUE is refused for KEY with a 422 naming the setting as the field."""
    error = refusal(key, value)
    assert (error.status, error.code, error.extra) == (422, "invalid_body", {"field": key})
    assert error.message == f"setting {key!r}: {message}"


def test_the_pull_constants_both_ends_rely_on():
    assert protocol.PROTOCOL_VERSION == 1
    assert protocol.API_PREFIX == "/api/v1"
    assert protocol.MAX_PULL_LIMIT == 1000
    assert protocol.PULL_ENTITIES == ("runner", "user", "lap_void", "setting", "total")
    assert protocol.SETTINGS == ("min_lap_seconds", "metres_per_lap", "event_name",
                                 "event_date")
    assert protocol.PUSH_ENCODINGS == ("laps",)
    assert protocol.PUSH_CONTENT_ENCODINGS == ("gzip",)


# ---- which settings there are ---------------------------------------------------------

@pytest.mark.parametrize("key", ["", "min_lap", "MIN_LAP_SECONDS", " event_name", "event_name ",
                                 "event", "setting", "metres", "meters_per_lap", None, 1, True,
                                 ("event_name",)])
def test_an_unknown_setting_is_refused(key):
    error = refusal(key, 60)
    assert (error.status, error.code, error.extra) == (422, "unknown_setting", {})
    assert error.message == "Settings are min_lap_seconds, metres_per_lap, event_name, event_date."


# ---- min_lap_seconds: an integer 0 .. 3600 --------------------------------------------

@pytest.mark.parametrize("value", [0, 1, 60, 3599, 3600])
def test_min_lap_seconds_at_its_limits_is_accepted(value):
    assert validate_setting("min_lap_seconds", value) == value


@pytest.mark.parametrize("value", [-1, 3601, 86_400, -(2 ** 63)])
def test_min_lap_seconds_one_past_its_limits_is_refused(value):
    assert_refused("min_lap_seconds", value, "'min_lap_seconds' must be between 0 and 3600")


@pytest.mark.parametrize("value", [True, False, 60.0, 0.5, "60", None, [60]])
def test_min_lap_seconds_takes_only_json_integers(value):
    assert_refused("min_lap_seconds", value, "'min_lap_seconds' must be an integer")


# ---- metres_per_lap: a number above 0 and at most 100000 -------------------------------

@pytest.mark.parametrize("value", [1, 400, 400.5, 100_000, 100_000.0, 99_999.999, 1e-9, 5e-324,
                                   0.1])
def test_metres_per_lap_within_its_limits_is_accepted_as_sent(value):
    cleaned = validate_setting("metres_per_lap", value)
    assert cleaned == value and type(cleaned) is type(value)


@pytest.mark.parametrize("value", [0, 0.0, -0.0, -1, -1e-9, 100_001, 100_000.00000001, 1e300,
                                   math.nan, math.inf, -math.inf, True, False, "400", None,
                                   [400], {"metres": 400}])
def test_any_other_metres_per_lap_is_refused(value):
    assert_refused("metres_per_lap", value,
                   "'metres_per_lap' must be a number above 0 and at most 100000")


# ---- event_name: text of 1..100 characters on one line ---------------------------------
# (its characters are tried in test_protocol_text.py with every other text field)

@pytest.mark.parametrize("value, cleaned", [("Sponsorenlauf 2025", "Sponsorenlauf 2025"),
                                            ("  Lauf  ", "Lauf"), ("x" * 100, "x" * 100),
                                            (" " + "é" * 100 + " ", "é" * 100), ("L", "L")])
def test_an_event_name_is_trimmed_and_may_have_100_characters(value, cleaned):
    assert validate_setting("event_name", value) == cleaned


@pytest.mark.parametrize("value", ["", "   ", "x" * 101, "é" * 101])
def test_an_event_name_of_0_or_101_characters_is_refused(value):
    assert_refused("event_name", value, "'event_name' must be 1 to 100 characters")


@pytest.mark.parametrize("value", ["Lauf\n2025", "Lauf\t", "\x00Lauf", "Lauf\x1b[31m"])
def test_an_event_name_refuses_control_characters(value):
    assert_refused("event_name", value, "'event_name' must not contain control characters")


@pytest.mark.parametrize("value", [None, 2025, True, ["Lauf"]])
def test_an_event_name_must_be_a_string(value):
    assert_refused("event_name", value, "'event_name' must be a string")


# ---- event_date: YYYY-MM-DD, a real date ---------------------------------------------

@pytest.mark.parametrize("value, cleaned", [
    ("2025-06-27", "2025-06-27"), (" 2025-06-27 ", "2025-06-27"), ("2024-02-29", "2024-02-29"),
    ("0001-01-01", "0001-01-01"), ("9999-12-31", "9999-12-31"), ("2025-12-31", "2025-12-31"),
])
def test_an_event_date_is_a_real_date_written_yyyy_mm_dd(value, cleaned):
    assert validate_setting("event_date", value) == cleaned


@pytest.mark.parametrize("value", [
    "2025-02-29", "2025-02-30", "2025-13-01", "2025-00-10", "2025-06-00", "2025-06-31",
    "0000-01-01", "27.06.2025", "06/27/2025", "2025-6-27", "2025-06-7", "25-06-27",
    "20250627",     # an ISO date the standard library reads, but not YYYY-MM-DD
    "2025-W26-5",   # an ISO week date the standard library reads, 10 characters
    "2025-178",     # an ordinal date
    "\uff12\uff10\uff12\uff15-\uff10\uff16-\uff12\uff17",  # full-width digits
    "\u0662\u0660\u0662\u0665-\u0660\u0666-\u0662\u0667",  # Arabic-Indic digits
    "2025-06-2\u200b", "\u202e2025-06-2", "x",
])
def test_anything_else_is_not_an_event_date(value):
    assert_refused("event_date", value, "'event_date' must be a date like 2025-06-27")


@pytest.mark.parametrize("value", ["", "  ", "2025-06-27x", "2025-06-27T10", " 2025-06-270 "])
def test_an_event_date_of_0_or_more_than_10_characters_is_refused(value):
    assert_refused("event_date", value, "'event_date' must be 1 to 10 characters")


@pytest.mark.parametrize("value", ["2025-06-27\n", "\t2025-06-27", "2025-06\x00-27"])
def test_an_event_date_refuses_control_characters(value):
    assert_refused("event_date", value, "'event_date' must not contain control characters")


@pytest.mark.parametrize("value", [None, 20250627, True, ["2025-06-27"]])
def test_an_event_date_must_be_a_string(value):
    assert_refused("event_date", value, "'event_date' must be a string")

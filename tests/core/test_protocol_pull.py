"""The pull side of the wire format: the laptop's checks of what central answers
(check_pull_page, answer_seq, and the per-field pulled_hlc / pulled_text / pulled_id /
pulled_integer), event settings (validate_setting, which central runs on the admin's
form and whose values laptops receive as "setting" changes) and the constants both ends
agree on. A bad pulled item raises ValueError (the laptop sets it aside); a bad page
raises ProtocolError (the pull stops). Limits are written as numbers, not imported.
"""
from __future__ import annotations

import math

import pytest

from lapsync import protocol
from lapsync.protocol import (ProtocolError, answer_seq, check_pull_page, pulled_hlc, pulled_id,
                              pulled_integer, pulled_text, validate_setting)


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
    assert protocol.PUSH_ENCODINGS == ("laps", "clock_jumps")
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


# ---- a pull page: {"protocol": 1, "next_cursor", "more", "changes", ...} -------------------

def page(**fields: object) -> dict:
    """Return a valid pull page answering cursor 5 (fields overridden)."""
    return {"protocol": 1, "server_time": 1_700_000_000_000, "next_cursor": 9, "more": False,
            "changes": [{"cursor": 9, "entity": "setting", "id": "event_name",
                         "data": {"key": "event_name", "value": "Lauf"}}], **fields}


def page_error(answer: dict, cursor: int = 5) -> ProtocolError:
    """Return the ProtocolError check_pull_page raises."""
    with pytest.raises(ProtocolError) as caught:
        check_pull_page(answer, cursor)
    assert caught.value.status == 422 and caught.value.extra == {}
    return caught.value


@pytest.mark.parametrize("cursor, next_cursor, more", [
    (5, 9, False), (5, 5, False), (5, 6, True), (0, 0, False), (0, 2 ** 63, True),
])
def test_a_pull_page_gives_its_changes_next_cursor_and_more(cursor, next_cursor, more):
    answer = page(next_cursor=next_cursor, more=more)
    changes, got_cursor, got_more = check_pull_page(answer, cursor)
    assert changes is answer["changes"]
    assert (got_cursor, got_more) == (next_cursor, more)


@pytest.mark.parametrize("changes", [[], [1, None, "x"], [{}] * 1001])
def test_a_pull_page_leaves_its_items_and_their_count_to_the_item_checks(changes):
    assert check_pull_page(page(changes=changes), 5)[0] is changes


@pytest.mark.parametrize("version", [0, 2, "1", None, [1], "v1"])
def test_a_pull_page_of_another_protocol_version_is_refused(version):
    error = page_error(page(protocol=version))
    assert error.code == "unsupported_protocol"
    assert error.message == f"central speaks protocol {version!r}, this laptop 1"


def test_a_pull_page_without_a_protocol_is_refused():
    answer = page()
    del answer["protocol"]
    error = page_error(answer)
    assert error.code == "unsupported_protocol"
    assert error.message == "central speaks protocol None, this laptop 1"


@pytest.mark.parametrize("version", [True, 1.0])
def test_a_pull_page_takes_true_and_1_0_for_protocol_1(version):
    """Python equality: unlike a push body, a pull page's version is not type-checked."""
    assert check_pull_page(page(protocol=version), 5)[1] == 9


@pytest.mark.parametrize("next_cursor", [-1, True, False, 9.0, "9", None, [9]])
def test_a_pull_page_without_a_valid_next_cursor_is_refused(next_cursor):
    error = page_error(page(next_cursor=next_cursor))
    assert error.code == "invalid_answer"
    assert error.message == f"central's answer has no valid next_cursor: {next_cursor!r}"


@pytest.mark.parametrize("cursor, next_cursor", [(5, 4), (1, 0), (2 ** 63, 2 ** 63 - 1)])
def test_a_pull_page_may_not_move_the_cursor_back(cursor, next_cursor):
    error = page_error(page(next_cursor=next_cursor), cursor)
    assert (error.code, error.message) == ("invalid_answer", "central's pull answer is malformed")


@pytest.mark.parametrize("fields", [
    {"changes": None}, {"changes": {}}, {"changes": "[]"}, {"changes": ({"cursor": 9},)},
    {"more": None}, {"more": 0}, {"more": 1}, {"more": "false"}, {"more": []},
])
def test_a_pull_page_with_changes_not_a_list_or_more_not_a_boolean_is_refused(fields):
    error = page_error(page(**fields))
    assert (error.code, error.message) == ("invalid_answer", "central's pull answer is malformed")


@pytest.mark.parametrize("missing", ["changes", "more"])
def test_a_pull_page_missing_changes_or_more_is_refused(missing):
    answer = page()
    del answer[missing]
    assert page_error(answer).code == "invalid_answer"


def test_a_pull_page_is_checked_version_first_then_next_cursor():
    assert page_error(page(protocol=2, next_cursor=-1, more=None)).code == "unsupported_protocol"
    assert page_error(page(next_cursor=-1, more=None)).message == \
        "central's answer has no valid next_cursor: -1"


# ---- answer_seq: a seq or cursor of central's answer, an integer >= 0 -----------------

@pytest.mark.parametrize("value", [0, 1, 41, 2 ** 63 - 1, 2 ** 63, 10 ** 30])
def test_an_answer_seq_is_any_integer_from_0(value):
    assert answer_seq(value, "acked_seq") == value


@pytest.mark.parametrize("value", [-1, -(2 ** 63), True, False, 0.0, 1.0, "1", None, [1], {}])
def test_anything_else_is_not_an_answer_seq(value):
    with pytest.raises(ProtocolError) as caught:
        answer_seq(value, "resume_from")
    error = caught.value
    assert (error.status, error.code, error.extra) == (422, "invalid_answer", {})
    assert error.message == f"central's answer has no valid resume_from: {value!r}"


# ---- pulled items: each field checked, a bad one raises ValueError -------------------

@pytest.mark.parametrize("value", ["0000000000000.0000", "9999999999999.9999",
                                   "1700000000000.0001"])
def test_a_pulled_hlc_is_13_digits_a_dot_and_4_digits(value):
    assert pulled_hlc(value) == value


@pytest.mark.parametrize("value", [
    "170000000000.0000", "17000000000000.0000", "1700000000000.000", "1700000000000.00000",
    "1700000000000", " 1700000000000.0000", "1700000000000.0000\n", "1700000000000,0000",
    "\u0661\u0667" + "\u0660" * 11 + ".\u0660\u0660\u0660\u0660", "", None, 17000000000000000,
    1700000000000.0, True, ["1700000000000.0000"],
])
def test_any_other_pulled_hlc_raises_value_error(value):
    with pytest.raises(ValueError) as caught:
        pulled_hlc(value)
    assert str(caught.value) == f"invalid hlc {value!r}"


@pytest.mark.parametrize("limit", [1, 20, 50, 100, 200, 500])
def test_pulled_text_is_1_to_limit_characters_as_sent(limit):
    for value in ("a", "ä" * limit, " " * limit, "x" * (limit - 1) + "\x00"):
        assert pulled_text({"name": value}, "name", limit) == value
    for value in ("", "a" * (limit + 1), "ä" * (limit + 1)):
        with pytest.raises(ValueError) as caught:
            pulled_text({"name": value}, "name", limit)
        assert str(caught.value) == "invalid name"


def test_pulled_text_has_a_default_limit_of_200_characters():
    assert pulled_text({"reason": "r" * 200}, "reason") == "r" * 200
    with pytest.raises(ValueError) as caught:
        pulled_text({"reason": "r" * 201}, "reason")
    assert str(caught.value) == "invalid reason"


@pytest.mark.parametrize("char", ["\x00", "\t", "\n", "\x1b", "\x7f", "\x85", "\u00a0",
                                  "\u200b", "\u202e", "\u2066", "\ufeff", "\u2028", "\ud800"])
def test_pulled_text_takes_every_character_anywhere_untrimmed(char):
    """The laptop trusts central's text as sent: no control, NUL or surrogate check, no trim
    (central checked pushed text; its own edits are its forms' business)."""
    for value in (char + "Anna", "An" + char + "na", "Anna" + char, char):
        assert pulled_text({"name": value}, "name", 100) == value


@pytest.mark.parametrize("value", [None, 5, True, 1.5, ["Anna"], {"name": "Anna"}, b"Anna"])
def test_pulled_text_must_be_a_string(value):
    with pytest.raises(ValueError) as caught:
        pulled_text({"class": value}, "class", 20)
    assert str(caught.value) == "invalid class"


@pytest.mark.parametrize("pull", [pulled_text, pulled_id, pulled_integer])
def test_a_missing_pulled_field_raises_key_error(pull):
    with pytest.raises(KeyError):
        pull({"id": "a" * 24}, "origin")


@pytest.mark.parametrize("value", ["a", "a" * 20, "z" * 32, "a" * 24, "X", "a b", "ä" * 32,
                                   "1" + "a" * 23, "event_name"])
def test_a_pulled_id_is_any_text_of_1_to_32_characters(value):
    """Only the length is checked: central's ids are trusted (cuids from a laptop, or
    central's own)."""
    assert pulled_id({"runner_id": value}, "runner_id") == value


@pytest.mark.parametrize("value", ["", "a" * 33, "a" * 64, None, 12345678901234567890, True,
                                   ["a" * 24]])
def test_a_pulled_id_of_0_or_33_characters_or_not_text_raises_value_error(value):
    with pytest.raises(ValueError) as caught:
        pulled_id({"merged_into": value}, "merged_into")
    assert str(caught.value) == "invalid merged_into"


@pytest.mark.parametrize("value", [0, 1, -1, 999_999, 10 ** 14, -(2 ** 63), 10 ** 30])
def test_a_pulled_integer_is_any_json_integer(value):
    assert pulled_integer({"other_laps": value}, "other_laps") == value


@pytest.mark.parametrize("value", [True, False, 1.0, 0.5, "1", None, [1], {"n": 1}])
def test_a_pulled_integer_must_be_a_json_integer(value):
    with pytest.raises(ValueError) as caught:
        pulled_integer({"grade": value}, "grade")
    assert str(caught.value) == "invalid grade"

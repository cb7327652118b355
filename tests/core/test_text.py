"""Text and number rules of the core (lapsync/text.py), stated from both sides."""
from __future__ import annotations

import pytest
from flask import Flask
from flask_babel import Babel, force_locale

from lapsync.i18n import TRANSLATIONS
from lapsync.text import age, check_start_number, whole_number


@pytest.fixture(scope="module")
def babel_app():
    """A bare Flask app with Babel, so that gettext has a context."""
    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app)
    with app.app_context():
        yield app


@pytest.mark.parametrize("value, expected", [
    (0, 0), (7, 7), (-3, -3), (10**12, 10**12),
    ("0", 0), ("7", 7), (" 42 ", 42), ("007", 7), ("999999999", 999_999_999),
    ("\t12\n", 12),
])
def test_whole_number_takes_ints_and_ascii_digits(value, expected):
    assert whole_number(value) == expected


@pytest.mark.parametrize("value", [
    None, "", "  ", True, False, 1.0, 2.5, "1.0", "+1", "-1", "1_0", "1e3", "0x10",
    "١٢", "²", "1 2", "12a", "a12", "1000000000", "0000000000",
])
def test_whole_number_refuses_anything_else(value):
    with pytest.raises(ValueError):
        whole_number(value)


@pytest.mark.parametrize("ms, text", [
    (-5000, "0 s"), (0, "0 s"), (999, "0 s"), (1000, "1 s"), (59_999, "59 s"),
    (60_000, "1 min"), (3_599_999, "59 min"), (3_600_000, "1 h 0 min"),
    (3_660_000, "1 h 1 min"), (86_399_999, "23 h 59 min"), (86_400_000, "1 d"),
    (3 * 86_400_000 + 5, "3 d"),
])
def test_age_reads_as_seconds_minutes_hours_or_days(babel_app, ms, text):
    with force_locale("en"):
        assert age(ms) == text


def test_whole_number_names_the_refused_text():
    with pytest.raises(ValueError) as refused:
        whole_number(" 1.5 ")
    assert refused.value.args == ("1.5",)
    with pytest.raises(ValueError) as refused:
        whole_number(None)
    assert refused.value.args == ("",)


@pytest.mark.parametrize("value, max_digits", [
    ("1", 1), ("9", 1), ("12", 2), ("123456", 6), ("0000000001", 10), (" 99 ", 2),
])
def test_whole_number_takes_up_to_max_digits(value, max_digits):
    assert whole_number(value, max_digits) == int(value)


@pytest.mark.parametrize("value, max_digits", [
    ("10", 1), ("123", 2), ("1234567", 6), ("00000000001", 10), ("1", 0),
])
def test_whole_number_refuses_one_digit_more(value, max_digits):
    with pytest.raises(ValueError):
        whole_number(value, max_digits)


def test_whole_number_max_digits_does_not_bound_ints():
    assert whole_number(10**20, 2) == 10**20


@pytest.mark.parametrize("value, expected", [
    (1, 1), ("1", 1), (" 2 ", 2), ("0001", 1), (999_999, 999_999), ("999999", 999_999),
    ("000999999", 999_999),
])
def test_check_start_number_takes_1_to_999999(value, expected):
    assert check_start_number(value) == expected


@pytest.mark.parametrize("value", [
    0, "0", -1, 1_000_000, "1000000", "", None, "x", True, "+5", "0000000001",
])
def test_check_start_number_refuses_the_rest(value):
    with pytest.raises(ValueError):
        check_start_number(value)


def test_check_start_number_names_the_refused_value():
    with pytest.raises(ValueError) as refused:
        check_start_number("1000000")
    assert refused.value.args == ("1000000",)
    with pytest.raises(ValueError) as refused:
        check_start_number(0)
    assert refused.value.args == (0,)


@pytest.mark.parametrize("value, max_digits", [("12", 2), ("5", 1), ("999999", 6)])
def test_check_start_number_passes_max_digits_on(value, max_digits):
    assert check_start_number(value, max_digits) == int(value)


@pytest.mark.parametrize("value, max_digits", [("012", 2), ("10", 1), ("0999999", 6)])
def test_check_start_number_refuses_more_digits_than_max_digits(value, max_digits):
    with pytest.raises(ValueError):
        check_start_number(value, max_digits)


@pytest.mark.parametrize("ms, text", [
    (59_000, "59 s"), (61_000, "1 min"), (86_400_000, "1 Tag"), (2 * 86_400_000, "2 Tagen"),
])
def test_age_in_german_counts_days_in_singular_and_plural(babel_app, ms, text):
    with force_locale("de"):
        assert age(ms) == text

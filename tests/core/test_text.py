"""Text and number rules of the core (lapsync/text.py), stated from both sides."""
from __future__ import annotations

import pytest
from flask import Flask
from flask_babel import Babel, force_locale

from lapsync.text import age, whole_number


@pytest.fixture(scope="module")
def babel_app():
    """A bare Flask app with Babel, so that gettext has a context."""
    app = Flask(__name__)
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

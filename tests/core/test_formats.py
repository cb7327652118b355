"""Numbers, dates and recorded messages the reader's way (lapsync/text.py, lapsync/i18n.py)."""
from __future__ import annotations

import time

import pytest
from flask import Flask, render_template_string

from lapsync import i18n
from lapsync.i18n import entity_text, message_pattern, recorded_text
from lapsync.text import date_text, date_time_text, decimal_text, number_text, signed_text

DE = {"Accept-Language": "de-DE,de;q=0.9"}
EN = {"Accept-Language": "en-US,en;q=0.9"}
MOMENT = int(time.mktime((2025, 6, 27, 14, 5, 33, 0, 0, -1)) * 1000)  # local time


@pytest.fixture(scope="module")
def app():
    """A bare app with the two languages and the filters."""
    app = Flask(__name__)
    i18n.init_app(app)
    return app


@pytest.mark.parametrize("headers, expected", [
    (DE, ["1,2", "1,20", "0,80", "1.234,5", "12.345", "+1,5", "-0,3", "+3600,0",
          "27.06.2025 14:05:33", "27.06.2025"]),
    (EN, ["1.2", "1.20", "0.80", "1,234.5", "12,345", "+1.5", "-0.3", "+3600.0",
          "2025-06-27 14:05:33", "2025-06-27"]),
])
def test_numbers_and_dates_follow_the_readers_language(app, headers, expected):
    with app.test_request_context("/", headers=headers):
        assert [decimal_text(1.2), decimal_text(1.2, 2, fixed=True), decimal_text(0.8, 2, True),
                decimal_text(1234.5, 1), number_text(12345), signed_text(1.5), signed_text(-0.3),
                signed_text(3600), date_time_text(MOMENT), date_text("2025-06-27")] == expected


def test_outside_a_request_numbers_are_english(app):
    assert decimal_text(0.8, 2, True) == "0.80" and number_text(10_000) == "10,000"
    assert decimal_text(None) == "–" and number_text(None) == "–" and date_time_text(None) == ""


def test_templates_have_the_filters(app):
    source = ("{{ 1.2 | decimal(2, true) }} km · {{ 12345 | number }} · {{ -2 | signed }} s · "
              "{{ '2025-06-27' | iso_day }} · {{ 'lap_void' | entity }}")
    with app.test_request_context("/", headers=DE):
        assert render_template_string(source) == "1,20 km · 12.345 · -2,0 s · 27.06.2025 · Streichung"
    with app.test_request_context("/", headers=EN):
        assert render_template_string(source) == "1.20 km · 12,345 · -2.0 s · 2025-06-27 · Lap void"


def test_a_message_recorded_in_english_reads_in_german(app):
    recorded = ("Only central, or a device it trusts to manage users, creates or changes users: "
                "'eve' (admin) stays as this laptop has it, and central keeps its own. An admin "
                "at central can let this device manage users.")
    with app.test_request_context("/", headers=DE):
        german = recorded_text(recorded)
        assert german.startswith("Nur die Zentrale oder ein Gerät, dem sie die Benutzerverwaltung")
        assert "'eve' (admin) bleibt auf diesem Laptop" in german
        assert recorded_text("The upload is too large.") == "Die gesendeten Daten sind zu groß."
        assert recorded_text("Something no catalogue knows.") == "Something no catalogue knows."
        assert recorded_text(None) == "" and entity_text("runner") == "Läufer"
        assert entity_text("something_new") == "something_new"
    with app.test_request_context("/", headers=EN):
        assert recorded_text(recorded) == recorded


def test_message_patterns_read_values_back():
    pattern = message_pattern("User id %(id)s is %(name)s, again %(id)s: 100%% sure.")
    found = pattern.fullmatch("User id 'x1' is 'Ann', again 'x1': 100% sure.")
    assert found and found.groupdict() == {"id": "'x1'", "name": "'Ann'"}
    assert pattern.fullmatch("User id 'x1' is 'Ann', again 'x2': 100% sure.") is None

"""Next year's event: central archives and empties the last one, a laptop follows at its next
sync, and nothing of the last event reaches the new one's counts.

A real laptop database and central's real API over HTTP on loopback (live_central).
"""
from __future__ import annotations

import json
import sqlite3

import psycopg
import requests
from playwright.sync_api import expect
from psycopg.rows import dict_row

from lapsync.devkit.browser import served, type_login, type_login_to
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop import new_event
from lapsync.laptop.db import get_meta
from lapsync.laptop.laps import record_lap
from lapsync.protocol.limits import EVENT_HEADER
from sync import backup, roster
from sync.events import current_event, start_next_event
from tests.conftest import PASSWORD
from tests.pg import CENTRAL_PASSWORD, register
from tests.web import scroll_width


def tom(db) -> str:
    """Return the laptop's teacher tom."""
    return db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]


def central_rows(url: str, sql: str) -> list[dict]:
    """Read central's database on a connection of its own."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


def test_a_laptop_follows_centrals_next_event_and_last_years_laps_stay_out(
        app, db, tmp_path, live_central, central_db, central_users, pg_url):
    central = Central(live_central, register(central_db, "laptop-a", manage_users=True))
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    assert sync_once(db, central).error is None
    first_event = get_meta(db, "event_id")
    assert first_event == current_event(central_db)
    for _ in range(2):
        record_lap(db, 1, tom(db), 0, confirm=True)
    assert sync_once(db, central).error is None
    late = record_lap(db, 1, tom(db), 0, confirm=True)["lap"]["id"]   # not sent before the switch

    counts, archive = start_next_event(central_db, pg_url, tmp_path, central_users["ada"],
                                       "Sponsorenlauf 2027", "2027-06-25")
    assert counts == {"runner": 1, "lap": 2, "pledge": 0}
    assert backup.dump_version(pg_url, archive) > 0                    # the last event, whole
    assert central_rows(pg_url, "SELECT count(*) AS n FROM lap")[0]["n"] == 0
    roster.add_runner(central_db, 1, "Ida Neu", "5a", 5)              # this year's number 1

    result = sync_once(db, central)
    assert result.error is None and result.new_event
    assert get_meta(db, "event_id") == current_event(central_db) != first_event
    assert [r[0] for r in db.execute("SELECT name FROM runner")] == ["Ida Neu"]
    assert db.execute("SELECT count(*) FROM lap").fetchone() == (0,)
    assert get_meta(db, "setting:event_name") == '"Sponsorenlauf 2027"'
    kept = list((tmp_path / "backups").glob(f"event-{first_event}-*.sqlite"))
    assert len(kept) == 1                                              # last year, on the laptop
    with sqlite3.connect(kept[0]) as old:
        assert old.execute("SELECT count(*) FROM lap WHERE id = ?", [late]).fetchone() == (1,)

    notice = new_event.notice(db)
    assert "Central started a new event" in notice and "1 change of the last event" in notice
    assert kept[0].name in notice
    status = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert "new event:     Central started a new event" in status
    record_lap(db, 1, tom(db), 0, confirm=True)
    assert sync_once(db, central).error is None
    laps = central_rows(pg_url, "SELECT r.name, t.laps FROM runner_total t "
                                "JOIN runner r ON r.id = t.runner_id")
    assert laps == [{"name": "Ida Neu", "laps": 1}]                    # not Anna's, not the late one
    assert sync_once(db, central).error is None and sync_once(db, central).pushed == 0


def test_a_push_naming_the_last_event_is_refused_and_changes_nothing(
        db, live_central, central_db, tmp_path, pg_url):
    token = register(central_db, "laptop-a", manage_users=True)
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    assert sync_once(db, Central(live_central, token)).error is None
    old = get_meta(db, "event_id")
    start_next_event(central_db, pg_url, tmp_path, None, "Lauf 2027", None)
    record_lap(db, 1, tom(db), 0, confirm=True)
    seq, lap_id, payload = db.execute("SELECT seq, entity_id, payload FROM change "
                                      "WHERE entity = 'lap'").fetchone()
    body = {"protocol": 1, "device_id": get_meta(db, "device_id"), "device_time": 1,
            "changes": [{"seq": seq, "entity": "lap", "id": lap_id, "data": json.loads(payload)}]}
    answer = requests.post(f"{live_central}/api/v1/push", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {token}", EVENT_HEADER: old})
    assert answer.status_code == 409
    assert answer.json()["error"] == "event_changed" and answer.json()["event"] != old
    assert central_rows(pg_url, "SELECT count(*) AS n FROM lap")[0]["n"] == 0


def test_the_organiser_starts_next_years_event_on_the_settings_page_in_german(
        central_app, live_central, central_db, central_users, browser, tmp_path):
    central_app.config["ARCHIVE_DIR"] = str(tmp_path / "archives")
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    context = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        type_login_to(page, live_central, "/settings/", "ada", CENTRAL_PASSWORD)
        form = page.locator("#next-event-form")
        form.get_by_label("Name der nächsten Veranstaltung").press_sequentially(
            "Sponsorenlauf 2027", delay=30)
        form.get_by_role("button", name="Diese Veranstaltung archivieren und die nächste "
                                        "beginnen").click()
        expect(page.locator("#next-event-error")).to_contain_text("Es wurde nichts geändert")
        expect(page.locator("#next-event-error")).to_be_in_viewport()      # not 3,000 px below
        expect(page.locator("#next-confirm-error")).to_be_visible()
        assert central_rows_count(central_db, "runner") == 1
        assert not list((tmp_path / "archives").glob("*.dump"))
        stale = context.new_page()                          # a second window, opened before
        stale.goto(f"{live_central}/settings/")
        form.get_by_label("Ich habe, was ich von dieser Veranstaltung brauche").check()
        form.get_by_role("button", name="Diese Veranstaltung archivieren und die nächste "
                                        "beginnen").click()
        expect(page.locator(".flash")).to_contain_text("Sponsorenlauf 2027 begonnen")
        other = stale.locator("#next-event-form")
        other.get_by_label("Name der nächsten Veranstaltung").press_sequentially("Lauf X", delay=20)
        other.get_by_label("Ich habe, was ich von dieser Veranstaltung brauche").check()
        other.get_by_role("button", name="Diese Veranstaltung archivieren und die nächste "
                                         "beginnen").click()
        expect(stale.locator("main")).to_contain_text("Eine andere Veranstaltung wurde "
                                                      "inzwischen begonnen")
        assert scroll_width(page) <= 390
    finally:
        context.close()
    assert central_rows_count(central_db, "runner") == 0
    assert len(list((tmp_path / "archives").glob("event-*.dump"))) == 1
    assert central_db.execute("SELECT value FROM setting WHERE key = 'event_name'").fetchone()[
        "value"] == "Sponsorenlauf 2027"
    logged = central_db.execute("SELECT action, details FROM decision").fetchall()
    assert [row["action"] for row in logged] == ["new_event"]   # the last event's are archived


def central_rows_count(conn, table: str) -> int:
    """Count a central table's rows."""
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def test_an_open_lap_page_drops_the_last_events_laps_once_the_laptop_follows(
        app, db, live_central, central_db, pg_url, tmp_path, browser):
    central = Central(live_central, register(central_db, "laptop-a", manage_users=True))
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    assert sync_once(db, central).error is None
    context = browser.new_context()
    try:
        page = context.new_page()
        with served(app) as url:
            type_login(page, url, "tom", PASSWORD)
            page.locator("#lap-form[data-pending]").wait_for()
            page.keyboard.type("1", delay=40)
            page.keyboard.press("Enter")
            rows = page.locator("#recent tbody tr[data-lap]")
            expect(rows).to_have_count(1)
            start_next_event(central_db, pg_url, tmp_path, None, "Lauf 2027", None)
            assert sync_once(db, central).new_event
            expect(rows).to_have_count(0, timeout=8_000)    # no Void for a lap that is gone
            page.reload()                                   # the helper is told, until OK
            notice = page.locator("#event-notice")
            expect(notice).to_contain_text("Central started a new event")
            notice.get_by_role("button", name="OK").click()
            expect(page.locator("#event-notice")).to_have_count(0)
            expect(page.locator("#start_number")).to_be_focused()
    finally:
        context.close()

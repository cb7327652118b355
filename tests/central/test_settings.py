"""Event settings set at central and pulled by the laptops."""
from __future__ import annotations

import pytest

from lapsync.errors import InputError
from sync.devices import find_device
from sync.pull import pull
from sync.push import push
from sync.settings import get_settings, set_setting
from tests.pg import Outbox, snapshot

JSON = {"Accept": "application/json"}
GOOD = {"event_name": "Sponsorenlauf 2025", "event_date": "2025-06-27",
        "min_lap_seconds": "45", "metres_per_lap": "400"}


def test_settings_are_stored_and_pulled_in_their_latest_value(central_db, device_token):
    set_setting(central_db, "min_lap_seconds", 60)
    set_setting(central_db, "metres_per_lap", 400.5)
    set_setting(central_db, "min_lap_seconds", 45)
    assert get_settings(central_db) == {"min_lap_seconds": 45, "metres_per_lap": 400.5}
    page = pull(central_db, find_device(central_db, device_token), 0, 100)
    assert [c["data"] for c in page["changes"] if c["entity"] == "setting"] == [
        {"key": "metres_per_lap", "value": 400.5}, {"key": "min_lap_seconds", "value": 45}]


@pytest.mark.parametrize("key,value", [
    ("colour", "red"), ("min_lap_seconds", -1), ("min_lap_seconds", "60"),
    ("min_lap_seconds", True), ("metres_per_lap", 0), ("metres_per_lap", float("nan")),
    ("event_name", ""), ("event_date", "2025-02-30"), ("event_date", "27.06.2025"),
])
def test_bad_settings_are_refused_and_nothing_is_stored(central_db, key, value):
    with pytest.raises(InputError):
        set_setting(central_db, key, value)
    assert get_settings(central_db) == {}


def test_cli_sets_numbers_and_text(central_app, central_db):
    runner = central_app.test_cli_runner()
    assert runner.invoke(args=["set-setting", "min_lap_seconds", "50"]).exit_code == 0
    assert runner.invoke(args=["set-setting", "event_name", "2025"]).exit_code == 0
    assert runner.invoke(args=["set-setting", "event_date", "2025-06-27"]).exit_code == 0
    bad = runner.invoke(args=["set-setting", "metres_per_lap", "far"])
    assert bad.exit_code != 0
    assert get_settings(central_db) == {"min_lap_seconds": 50, "event_name": "2025",
                                        "event_date": "2025-06-27"}


# ---- the settings page -----------------------------------------------------------

def post(client, **form):
    """Post the settings form with the client's CSRF token."""
    return client.post("/settings/", data={"csrf_token": client.csrf, **form})


def pulled_settings(conn, token: str, cursor: int = 0) -> dict:
    """Return {key: value} of the settings a laptop pulls after cursor (a real pull)."""
    device = find_device(conn, token)
    if device["laptop_id"] is None:  # a laptop pushes (binds its token) before it pulls
        push(conn, device, Outbox().body())
        device = find_device(conn, token)
    page = pull(conn, device, cursor, 1000)
    return {c["data"]["key"]: c["data"]["value"] for c in page["changes"] if c["entity"] == "setting"}


def test_an_admin_saves_the_settings_and_laptops_pull_them(central_db, central_admin,
                                                           central_users, device_token):
    response = post(central_admin, **GOOD)
    assert response.status_code == 302
    expected = {"event_name": "Sponsorenlauf 2025", "event_date": "2025-06-27",
                "min_lap_seconds": 45, "metres_per_lap": 400}
    assert get_settings(central_db) == expected
    assert pulled_settings(central_db, device_token) == expected
    decision = central_db.execute("SELECT * FROM decision").fetchone()
    assert decision["action"] == "settings" and decision["user_id"] == central_users["ada"]
    assert decision["details"]["min_lap_seconds"] == {"from": None, "to": 45}
    page = central_admin.get("/settings/").get_data(as_text=True)
    assert "Settings saved" in page and 'value="Sponsorenlauf 2025"' in page


def test_the_decision_log_names_changed_settings_in_the_readers_language(central_db,
                                                                        central_admin):
    post(central_admin, **GOOD)
    central_admin.post("/sponsors/settings", data={"csrf_token": central_admin.csrf,
                                                "currency": "EUR", "certificate_raised": "1"})
    german = central_admin.get("/review/", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    assert "Mindestrundenzeit (Sekunden) = 45" in german and "Meter pro Runde = 400" in german
    assert "Urkunden zeigen das erlaufene Geld = ja" in german
    assert "min_lap_seconds" not in german and "certificate_raised" not in german
    english = central_admin.get("/review/").get_data(as_text=True)
    assert "Minimum lap time (seconds) = 45" in english


def test_only_changed_settings_get_new_change_ids(central_db, central_admin, device_token):
    post(central_admin, **GOOD)
    cursor = central_db.execute("SELECT max(change_id) AS c FROM setting").fetchone()["c"]
    again = post(central_admin, **GOOD)
    assert again.status_code == 302
    assert "Nothing changed" in central_admin.get("/settings/").get_data(as_text=True)
    assert pulled_settings(central_db, device_token, cursor) == {}
    post(central_admin, **{**GOOD, "metres_per_lap": "400,5"})
    assert pulled_settings(central_db, device_token, cursor) == {"metres_per_lap": 400.5}
    assert [r["action"] for r in central_db.execute("SELECT action FROM decision")] == \
        ["settings", "settings"]


def test_new_settings_may_stay_empty_but_stored_ones_not(central_db, central_admin):
    assert post(central_admin, min_lap_seconds="30").status_code == 302
    assert get_settings(central_db) == {"min_lap_seconds": 30}
    cleared = post(central_admin, min_lap_seconds="")
    assert cleared.status_code == 400 and get_settings(central_db) == {"min_lap_seconds": 30}


BAD = [("event_name", ""), ("event_name", "x" * 101), ("event_name", "two\nlines"),
       ("event_date", "2025-02-30"), ("event_date", "27.06.2025"), ("event_date", "tomorrow"),
       ("min_lap_seconds", "-1"), ("min_lap_seconds", "3601"), ("min_lap_seconds", "1.5"),
       ("min_lap_seconds", "abc"), ("min_lap_seconds", "١٢"), ("metres_per_lap", "0"),
       ("metres_per_lap", "-400"), ("metres_per_lap", "far"), ("metres_per_lap", "1e3"),
       ("metres_per_lap", "100001"), ("metres_per_lap", "nan")]


def test_a_bad_field_saves_nothing_and_says_which(central_db, central_admin):
    post(central_admin, **GOOD)
    before = snapshot(central_db)
    for key, value in BAD:
        form = {**GOOD, "event_name": "Changed name", key: value}
        page = post(central_admin, **form)
        assert page.status_code == 400, (key, value)
        html = page.get_data(as_text=True)
        assert 'id="settings-error"' in html and f'id="{key}-error"' in html
        answer = central_admin.post("/settings/", headers=JSON,
                                    data={"csrf_token": central_admin.csrf, **form})
        assert answer.status_code == 400 and answer.get_json()["field"] == key
    assert snapshot(central_db) == before


def test_a_viewer_sees_the_settings_but_cannot_save(central_db, central_viewer):
    set_setting(central_db, "event_name", "Lauf")
    page = central_viewer.get("/settings/").get_data(as_text=True)
    assert "Lauf" in page and 'id="settings-form"' not in page and "not set" in page
    before = snapshot(central_db)
    assert post(central_viewer, **GOOD).status_code == 403
    assert snapshot(central_db) == before


def test_anonymous_users_go_to_login_and_forms_need_csrf(central_client, central_db,
                                                         central_users):
    response = central_client.get("/settings/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert central_client.post("/settings/", data=GOOD).status_code in (400, 401)
    assert get_settings(central_db) == {}

"""Event settings set at central and pulled by the laptops."""
from __future__ import annotations

import pytest

from lapsync.errors import InputError
from sync.devices import find_device
from sync.pull import pull
from sync.settings import get_settings, set_setting


def test_settings_are_stored_and_pulled_in_their_latest_value(central_db, device_token):
    set_setting(central_db, "min_lap_seconds", 60)
    set_setting(central_db, "metres_per_lap", 400.5)
    set_setting(central_db, "min_lap_seconds", 45)
    assert get_settings(central_db) == {"min_lap_seconds": 45, "metres_per_lap": 400.5}
    page = pull(central_db, find_device(central_db, device_token), 0, 100)
    assert [c["data"] for c in page["changes"]] == [
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

"""The next event from the command line: archive, empty, keep users, devices and settings."""
from __future__ import annotations

from sync import roster
from sync.events import current_event
from sync.settings import get_settings, save_settings
from tests.pg import register


def test_new_event_archives_and_empties_the_event_and_keeps_users_devices_and_settings(
        central_app, central_db, central_users, tmp_path):
    central_app.config["ARCHIVE_DIR"] = str(tmp_path)
    register(central_db, "laptop-a")
    save_settings(central_db, {"min_lap_seconds": 45, "event_name": "Lauf 2026",
                               "event_date": "2026-06-26"})
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    before = current_event(central_db)
    cli = central_app.test_cli_runner()
    refused = cli.invoke(args=["new-event", "--name", "Lauf 2027"], input="n\n")
    assert refused.exit_code == 1 and current_event(central_db) == before
    bad = cli.invoke(args=["new-event", "--name", "Lauf 2027", "--date", "soon", "--yes"])
    assert bad.exit_code == 1 and "Error: setting 'event_date'" in bad.output
    assert "Traceback" not in bad.output and current_event(central_db) == before
    assert not list(tmp_path.glob("*.dump"))
    done = cli.invoke(args=["new-event", "--name", "Lauf 2027", "--yes"])
    assert done.exit_code == 0, done.output
    assert "1 runners, 0 laps, 0 pledges" in done.output and "Lauf 2027" in done.output
    assert len(list(tmp_path.glob(f"event-Lauf-2026-*-{before[:8]}.dump"))) == 1   # the last one's
    assert current_event(central_db) != before
    assert central_db.execute("SELECT count(*) AS n FROM runner").fetchone()["n"] == 0
    assert get_settings(central_db) == {"min_lap_seconds": 45, "event_name": "Lauf 2027"}
    assert central_db.execute("SELECT count(*) AS n FROM device").fetchone()["n"] == 1
    assert central_db.execute("SELECT count(*) AS n FROM app_user").fetchone()["n"] >= 2

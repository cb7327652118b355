"""Background sync wiring: where the scheduler starts, the job, nudge after a lap."""
from __future__ import annotations

import time

import click
import pytest

from lapsync.laptop import create_app, scheduler
from lapsync.laptop.auth import create_user
from lapsync.laptop.client.connect import config_file, write_central_config
from lapsync.laptop.db import connect, device_id
from lapsync.laptop.laps import record_lap
from lapsync.laptop.runners import add_runner
from tests.laptop.fake_central import TOKEN, FakeCentral


@pytest.fixture
def central():
    """A fake central on a real loopback port."""
    server = FakeCentral()
    yield server
    server.close()


def live_app(tmp_path, **config):
    """A non-testing app (the scheduler may start) on its own database."""
    settings = {"TESTING": False, "SECRET_KEY": "t", "DATABASE": str(tmp_path / "laptop.sqlite"),
                "INSTANCE_CONFIG_FILE": str(tmp_path / "config.py"), **config}
    app = create_app(settings)
    return app


def run_context(reload=None) -> click.Context:
    """A click context like the one `flask run` gives create_app."""
    command = click.Command("run", params=[click.Option(["--reload/--no-reload"], default=None)])
    ctx = click.Context(command, info_name="run")
    ctx.params["reload"] = reload
    return ctx


def wait_for(predicate, seconds: float = 5.0) -> bool:
    """Poll until predicate() is true or the time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_scheduler_is_not_started_under_tests_and_nudge_is_a_no_op(app):
    assert app.testing and not scheduler.running(app)
    assert scheduler.should_start(app)[0] is False
    scheduler.nudge(app)  # no scheduler: nothing happens, nothing raises
    assert not scheduler.running(app)


def test_nudge_is_a_no_op_for_an_app_without_the_extension():
    from flask import Flask
    scheduler.nudge(Flask(__name__))


def test_not_started_when_disabled_or_without_central(tmp_path, central):
    disabled = live_app(tmp_path, CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN, SYNC_ENABLED=False)
    assert not scheduler.running(disabled)
    assert scheduler.should_start(disabled) == (False, "disabled (testing or SYNC_ENABLED is false)")
    unconnected = live_app(tmp_path, CENTRAL_URL=None)
    assert not scheduler.running(unconnected)
    assert scheduler.should_start(unconnected) == (False, "no CENTRAL_URL configured")


def test_start_decision_under_the_flask_cli(tmp_path, central):
    app = live_app(tmp_path, CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN, SYNC_ENABLED=False)
    app.config["SYNC_ENABLED"] = True
    assert scheduler.should_start(app, {}) == (True, "started")  # gunicorn: no CLI
    with click.Context(click.Command("sync"), info_name="sync"):
        assert scheduler.should_start(app, {})[0] is False
    with run_context(reload=False):
        assert scheduler.should_start(app, {})[0] is True
    with run_context(reload=True):
        assert scheduler.should_start(app, {})[1].startswith("reloader")
        assert scheduler.should_start(app, {"WERKZEUG_RUN_MAIN": "true"})[0] is True


def test_debug_flag_means_reloader(tmp_path, central, monkeypatch):
    app = live_app(tmp_path, CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN, SYNC_ENABLED=False)
    app.config["SYNC_ENABLED"] = True
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with run_context(reload=None):
        assert scheduler.should_start(app, {})[0] is False
        assert scheduler.should_start(app, {"WERKZEUG_RUN_MAIN": "true"})[0] is True


def test_cli_commands_do_not_start_the_scheduler(tmp_path, central):
    app = live_app(tmp_path, CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN, SYNC_ENABLED=False)
    with click.Context(click.Command("init-db"), info_name="init-db"):
        inside = create_app({"TESTING": False, "SECRET_KEY": "t", "DATABASE": app.config["DATABASE"],
                             "CENTRAL_URL": central.url, "CENTRAL_TOKEN": TOKEN})
    assert not scheduler.running(inside)


def test_background_job_syncs_at_start_and_soon_after_a_nudge(tmp_path, central):
    app = live_app(tmp_path, CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN, SYNC_INTERVAL=3600)
    try:
        assert scheduler.running(app)
        db = connect(app.config["DATABASE"])
        assert wait_for(lambda: any(p.endswith("/pull") for p, _ in central.requests))
        user = create_user(db, "tom", "teacher", "correct-horse")
        add_runner(db, 1, "Anna Berg", "5a", 5)
        lap = record_lap(db, 1, user, 0)["lap"]["id"]
        started = time.monotonic()
        scheduler.nudge(app)
        scheduler.nudge(app)  # a second nudge right after is folded into the first
        assert wait_for(lambda: lap in [c["id"] for c in central.received], 5)
        assert time.monotonic() - started < 3  # not the 3600 s interval
        assert central.applied[device_id(db)] == db.execute("SELECT max(seq) FROM change").fetchone()[0]
        db.close()
    finally:
        scheduler.stop(app)
    assert not scheduler.running(app)


def test_job_survives_an_unreachable_central(tmp_path):
    app = live_app(tmp_path, CENTRAL_URL="http://127.0.0.1:9", CENTRAL_TOKEN=TOKEN, SYNC_ENABLED=False)
    job = app.extensions[scheduler.EXTENSION]
    job.run()  # logs, records the error, never raises
    db = connect(app.config["DATABASE"])
    assert "cannot be reached" in db.execute("SELECT value FROM meta WHERE key = 'last_error'").fetchone()[0]
    db.close()


def test_job_takes_a_new_token_from_the_config_file(tmp_path, central):
    app = live_app(tmp_path, CENTRAL_URL=central.url, CENTRAL_TOKEN="old-revoked", SYNC_ENABLED=False)
    job = app.extensions[scheduler.EXTENSION]
    write_central_config(config_file(app), central.url, "old-revoked")
    job.run()
    db = connect(app.config["DATABASE"])
    last_error = "SELECT value FROM meta WHERE key = 'last_error'"
    assert "not authorised" in db.execute(last_error).fetchone()[0]
    write_central_config(config_file(app), central.url, TOKEN)  # `flask connect` elsewhere
    job.run()
    assert app.config["CENTRAL_TOKEN"] == TOKEN
    assert db.execute("SELECT value FROM meta WHERE key = 'last_success_ms'").fetchone() is not None
    db.close()


def test_sync_rounds_start_min_gap_apart_while_laps_keep_arriving(tmp_path, monkeypatch):
    """Regression (bench/bench_load.py): at 50 laps/s every sync saw new laps and went
    round again at once, so syncs ran back to back, each committing (fsync) a few times
    for a handful of laps: nearly one extra commit per lap beside lap entry's own."""
    monkeypatch.setattr(scheduler, "MIN_GAP_S", 0.2)
    app = live_app(tmp_path, SYNC_ENABLED=False)
    job = app.extensions[scheduler.EXTENSION]
    starts: list[float] = []

    def sync() -> None:  # stands in for client.state.sync_app: a lap arrives during every sync
        starts.append(time.monotonic())
        job.again.set()

    monkeypatch.setattr(job, "sync", sync)
    job.run()
    job.run()  # the next run (a nudge or the interval) keeps the gap too
    assert len(starts) == 2 * scheduler.MAX_ROUNDS
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.2 - 0.005, gaps
    assert max(gaps) < 0.2 + 0.15, gaps  # paced, not stalled


def test_serve_runs_the_sync_also_before_the_laptop_is_connected(tmp_path):
    """`flask serve` starts the loop without CENTRAL_URL: /connect later needs no restart."""
    app = live_app(tmp_path, CENTRAL_URL=None, SYNC_ENABLED=False)
    app.config["SYNC_ENABLED"] = True
    assert scheduler.should_start(app, {})[0] is False               # the app factory waits
    assert scheduler.should_start(app, {}, need_central=False) == (True, "started")
    with click.Context(click.Command("serve"), info_name="serve"):
        assert scheduler.should_start(app, {"FLASK_DEBUG": "1"}, need_central=False)[0] is True


def test_the_sync_thread_stops_and_starts_again(tmp_path, central):
    app = live_app(tmp_path, CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN, SYNC_INTERVAL=0.2)
    try:
        assert scheduler.running(app)
        assert wait_for(lambda: sum(p.endswith("/pull") for p, _ in central.requests) >= 2, 5)
        scheduler.stop(app)
        assert not scheduler.running(app)
        seen = len(central.requests)
        time.sleep(0.5)
        assert len(central.requests) == seen  # stopped means no more syncs
        scheduler.start(app)
        assert wait_for(lambda: len(central.requests) > seen, 5)
    finally:
        scheduler.stop(app)

"""The laptop's database module on real SQLite files: connections, transactions, meta,
the outbox (record_change) and the per-app connection pool."""
from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest
from flask import Flask

from lapsync.laptop import create_app, migrate
from lapsync.laptop.db import (
    POOL,
    close_db,
    connect,
    device_id,
    get_db,
    get_meta,
    init_app,
    init_schema,
    now_ms,
    record_change,
    set_meta,
    synchronous_setting,
    transaction,
)


def pragma(db, name: str):
    """Return one PRAGMA's value on this connection."""
    return db.execute(f"PRAGMA {name}").fetchone()[0]


def test_now_ms_is_the_wall_clock_in_milliseconds():
    before = int(time.time() * 1000)
    value = now_ms()
    after = int(time.time() * 1000)
    assert isinstance(value, int) and before - 1 <= value <= after + 1


def test_a_connection_has_every_pragma(tmp_path):
    db = connect(tmp_path / "a.sqlite")
    try:
        assert pragma(db, "journal_mode") == "wal"
        assert pragma(db, "synchronous") == 2  # FULL
        assert pragma(db, "foreign_keys") == 1
        assert pragma(db, "busy_timeout") == 10000
    finally:
        db.close()


@pytest.mark.parametrize("name, level", [("FULL", 2), ("EXTRA", 3), ("NORMAL", 1)])
def test_connect_takes_the_accepted_synchronous_levels(tmp_path, name, level):
    db = connect(tmp_path / "a.sqlite", name)
    try:
        assert pragma(db, "synchronous") == level
    finally:
        db.close()


@pytest.mark.parametrize("name", ["OFF", "full", "0", "FULL; DROP TABLE meta"])
def test_connect_refuses_any_other_synchronous(tmp_path, name):
    with pytest.raises(ValueError) as raised:
        connect(tmp_path / "a.sqlite", name)
    assert str(raised.value) == f"synchronous must be one of FULL, EXTRA, NORMAL, not {name!r}"


def test_a_connection_may_be_used_from_another_thread(tmp_path):
    db = connect(tmp_path / "a.sqlite")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(db.execute("SELECT 41 + 1").fetchone()[0]))
    thread.start()
    thread.join()
    db.close()
    assert seen == [42]


def test_transaction_commits_on_success_and_rolls_back_on_error(db):
    with transaction(db):
        set_meta(db, "k", "kept")
    with pytest.raises(KeyError):
        with transaction(db):
            set_meta(db, "k", "lost")
            raise KeyError("boom")
    assert not db.conn.in_transaction
    assert get_meta(db, "k") == "kept"


def test_transaction_takes_the_write_lock_before_any_write(app, db):
    other = connect(app.config["DATABASE"])
    other.execute("PRAGMA busy_timeout=0")
    try:
        with transaction(db):
            assert db.conn.in_transaction
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


def test_init_schema_makes_a_device_id_once_and_drops_nothing(tmp_path):
    db = connect(tmp_path / "fresh.sqlite")
    try:
        init_schema(db)
        first = device_id(db)
        assert len(first) >= 20
        set_meta(db, "pull_cursor", "17")
        init_schema(db)
        assert device_id(db) == first and get_meta(db, "pull_cursor") == "17"
        assert not db.conn.in_transaction
    finally:
        db.close()


def test_meta_values_default_and_overwrite(db):
    assert get_meta(db, "nothing") is None
    assert get_meta(db, "nothing", "fallback") == "fallback"
    set_meta(db, "k", "one")
    set_meta(db, "k", "two")
    assert get_meta(db, "k") == "two"
    assert get_meta(db, "k", "fallback") == "two"
    assert db.execute("SELECT count(*) FROM meta WHERE key = 'k'").fetchone()[0] == 1


def test_device_id_of_an_uninitialised_database_says_what_to_run(tmp_path):
    db = connect(tmp_path / "bare.sqlite")
    try:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        with pytest.raises(RuntimeError) as raised:
            device_id(db)
        assert str(raised.value) == "database not initialised: run `flask --app app init-db`"
    finally:
        db.close()


def test_record_change_appends_to_the_outbox_with_rising_seqs(db):
    before = now_ms()
    with transaction(db):
        first = record_change(db, "runner", "r1", {"id": "r1", "name": "Anna Berg", "x": [1, 2]})
        second = record_change(db, "lap", "l1", {"id": "l1"})
    rows = [dict(r) for r in db.query("SELECT * FROM change ORDER BY seq")]
    assert [r["seq"] for r in rows][-2:] == [first, second] and second == first + 1
    row = rows[-2]
    assert (row["entity"], row["entity_id"]) == ("runner", "r1")
    assert row["payload"] == '{"id":"r1","name":"Anna Berg","x":[1,2]}'  # compact JSON
    assert json.loads(row["payload"]) == {"id": "r1", "name": "Anna Berg", "x": [1, 2]}
    assert before <= row["created_at"] <= now_ms()
    assert row["pushed_at"] is None


def test_a_change_rolled_back_leaves_no_outbox_row(db):
    count = db.execute("SELECT count(*) FROM change").fetchone()[0]
    with pytest.raises(ValueError):
        with transaction(db):
            record_change(db, "lap", "l1", {"id": "l1"})
            raise ValueError("the lap failed")
    assert db.execute("SELECT count(*) FROM change").fetchone()[0] == count


# ---- the app's connections ----------------------------------------------------------

def test_a_request_reuses_its_connection_and_the_next_request_the_idle_one(app):
    with app.app_context():
        first = get_db()
        assert get_db() is first
    assert app.extensions[POOL].qsize() == 1
    with app.app_context():
        assert get_db() is first
        assert app.extensions[POOL].qsize() == 0
        assert pragma(first, "synchronous") == 2


def test_a_half_done_transaction_is_rolled_back_before_the_connection_is_reused(app):
    with app.app_context():
        db = get_db()
        db.execute("BEGIN IMMEDIATE")
        set_meta(db, "k", "half done")
    assert not db.conn.in_transaction
    with app.app_context():
        assert get_meta(get_db(), "k") is None


def test_at_most_four_idle_connections_are_kept(app):
    contexts = [app.app_context() for _ in range(6)]
    dbs = []
    for ctx in contexts:
        ctx.push()
        dbs.append(get_db())
    assert len({id(d) for d in dbs}) == 6
    for ctx in reversed(contexts):
        ctx.pop()
    assert app.extensions[POOL].qsize() == 4
    with pytest.raises(sqlite3.ProgrammingError):  # the surplus ones are closed
        dbs[0].execute("SELECT 1")
    for db in dbs[2:]:
        assert db.execute("SELECT 1").fetchone()[0] == 1


def test_close_db_without_a_connection_does_nothing(app):
    with app.app_context():
        close_db()
        close_db(None)
    assert app.extensions[POOL].qsize() == 0


def test_a_new_connection_takes_the_apps_synchronous_setting(tmp_path, users_template):
    path = tmp_path / "laptop.sqlite"
    path.write_bytes(users_template.read_bytes())
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(path),
                      "SQLITE_SYNCHRONOUS": "normal"})
    with app.app_context():
        assert pragma(get_db(), "synchronous") == 1


@pytest.mark.parametrize("value, expected", [(None, "FULL"), ("", "FULL"), (" normal ", "NORMAL"),
                                             ("Extra", "EXTRA"), ("FULL", "FULL")])
def test_synchronous_setting_is_checked_and_upper_cased(value, expected):
    app = Flask(__name__)
    if value is not None:
        app.config["SQLITE_SYNCHRONOUS"] = value
    assert synchronous_setting(app) == expected


@pytest.mark.parametrize("value", ["off", "fast", 2])
def test_a_bad_synchronous_setting_is_refused_with_the_value(value):
    app = Flask(__name__)
    app.config["SQLITE_SYNCHRONOUS"] = value
    with pytest.raises(ValueError) as raised:
        synchronous_setting(app)
    assert str(raised.value) == ("config SQLITE_SYNCHRONOUS must be one of FULL, EXTRA, NORMAL, "
                                 f"not {value!r}")


def test_init_app_checks_the_setting_and_registers_pool_teardown_and_command():
    app = Flask(__name__)
    app.config["SQLITE_SYNCHRONOUS"] = "extra"
    init_app(app)
    assert app.config["SQLITE_SYNCHRONOUS"] == "EXTRA"
    assert app.extensions[POOL].qsize() == 0
    assert close_db in app.teardown_appcontext_funcs
    assert "init-db" in app.cli.commands


def test_the_init_db_command_initialises_and_names_the_device(tmp_path):
    path = tmp_path / "cli.sqlite"
    app = Flask(__name__)
    app.config["DATABASE"] = str(path)
    init_app(app)
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    db = connect(path)
    try:
        me = device_id(db)
    finally:
        db.close()
    assert result.output == f"Initialised {path} (device {me}, schema version {migrate.latest()})\n"

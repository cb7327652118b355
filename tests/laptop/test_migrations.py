"""The laptop's schema migrations: a 2026-12-06 database upgraded equals a fresh one, data kept."""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lapsync.devkit.schemas import differences, normal_sql, sqlite_schema
from lapsync.laptop import create_app, migrate
from lapsync.laptop.client.push import first_pending, pending_count
from lapsync.laptop.db import PENDING, SCHEMA, connect, get_meta, init_schema
from tests.release import ROOT, release_file


def release_database(path: Path) -> sqlite3.Connection:
    """Make a laptop database the way the release of 2026-12-06 did (its schema.sql, its device id)."""
    conn = sqlite3.connect(path)
    conn.executescript(release_file("schema.sql"))
    conn.execute("INSERT INTO meta (key, value) VALUES ('device_id', 'releasedevice0000000000a')")
    conn.commit()
    return conn


def test_a_release_database_migrated_has_exactly_the_fresh_schema(tmp_path):
    old = release_database(tmp_path / "old.sqlite")
    applied = migrate.upgrade(old, SCHEMA, "old")
    fresh = sqlite3.connect(tmp_path / "fresh.sqlite")
    migrate.upgrade(fresh, SCHEMA, "fresh")
    assert [m.version for m in applied] == list(range(1, migrate.latest() + 1))
    assert migrate.version(old) == migrate.version(fresh) == migrate.latest() >= 1
    # A column added to a table of the baseline (schema.sql) is named here.
    found = differences(sqlite_schema(old), sqlite_schema(fresh))
    assert not found, "a migrated and a new database differ:\n" + "\n".join(found)


def test_the_comparison_names_a_column_that_lacks_its_migration(tmp_path):
    fresh = sqlite3.connect(":memory:")
    migrate.upgrade(fresh, SCHEMA)
    altered = sqlite3.connect(":memory:")
    migrate.upgrade(altered, SCHEMA)
    altered.execute("ALTER TABLE runner ADD COLUMN nickname TEXT")
    altered.execute("CREATE INDEX runner_nickname ON runner(nickname)")
    found = differences(sqlite_schema(fresh), sqlite_schema(altered))
    assert len(found) == 2 and found[0].startswith("index runner_nickname: in the full schema")
    assert found[1].startswith("table runner: migrated") and "nickname" in found[1]


def test_an_upgrade_keeps_every_row_and_the_device_id(tmp_path):
    path = tmp_path / "laptop.sqlite"
    old = release_database(path)
    old.execute("INSERT INTO user VALUES ('u1', 'tom', 'hash', 'teacher', 1, '0000000000001.0000')")
    old.execute("INSERT INTO runner VALUES ('r1', 7, 'Anna', '5a', 5, '0000000000001.0000', 'x')")
    old.execute("INSERT INTO lap (id, runner_id, created_by, time, device_id) "
                "VALUES ('l1', 'r1', 'u1', 5, 'releasedevice0000000000a')")
    old.execute("INSERT INTO change (entity, entity_id, payload, created_at) "
                "VALUES ('lap', 'l1', '{}', 5)")
    old.commit()
    old.close()
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(path)})
    db = connect(app.config["DATABASE"])
    assert migrate.version(db.conn) == migrate.latest()
    assert get_meta(db, "device_id") == "releasedevice0000000000a"
    assert db.execute("SELECT id, runner_id FROM lap").fetchall() == [("l1", "r1")]
    assert db.execute("SELECT seq, pushed_at FROM change").fetchall() == [(1, None)]
    assert db.execute("SELECT count(*) FROM central_decision").fetchone() == (0,)
    kept = sqlite3.connect(f"{path}.before-v0")  # the database as it was, beside it
    assert migrate.version(kept) == 0 and kept.execute("SELECT id FROM lap").fetchall() == [("l1",)]
    assert os.stat(f"{path}.before-v0").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("pushed, pending", [(2, [3, 4]), (4, []), (0, [1, 2, 3, 4])])
def test_an_upgrade_marks_the_changes_stamped_pushed_and_keeps_the_rest_waiting(
        tmp_path, pushed, pending):
    old = release_database(tmp_path / "laptop.sqlite")
    for seq in range(1, 5):
        old.execute("INSERT INTO change (entity, entity_id, payload, created_at, pushed_at) "
                    "VALUES ('lap', ?, '{}', 5, ?)", [f"l{seq}", 9 if seq <= pushed else None])
    old.commit()
    migrate.upgrade(old, SCHEMA, "old")
    assert old.execute("SELECT pushed_seq FROM outbox_mark").fetchall() == [(pushed,)]
    assert [r[0] for r in old.execute(f"SELECT seq FROM change WHERE {PENDING} ORDER BY seq")] \
        == pending
    db = connect(tmp_path / "laptop.sqlite")
    assert (first_pending(db), pending_count(db)) == (pending[0] if pending else None, len(pending))


def test_a_new_database_is_the_full_schema_stamped_with_the_latest_version(tmp_path):
    db = connect(tmp_path / "new.sqlite")
    assert init_schema(db) == []
    assert migrate.version(db.conn) == migrate.latest()
    assert init_schema(db) == []  # again: nothing to do, nothing changed
    assert db.execute("SELECT count(*) FROM meta WHERE key = 'device_id'").fetchone() == (1,)


def test_a_failing_migration_leaves_the_database_at_the_version_before(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0002_first.sql").write_text("CREATE TABLE first (id INTEGER PRIMARY KEY);\n")
    (folder / "0003_broken.sql").write_text(
        "CREATE TABLE second (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n")
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.commit()
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate.upgrade(conn, SCHEMA, "db", folder)
    assert migrate.version(conn) == 2  # the baseline and 0002
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "first" in tables and "second" not in tables  # 0003 rolled back whole


def test_migration_files_are_numbered_without_gaps_and_never_drop():
    found = migrate.migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    for migration in found:
        # An index may be dropped and made anew: it holds no data of its own.
        sql = re.sub(r"--[^\n]*", "", migration.sql()).upper().replace("DROP INDEX", "")
        assert not re.search(r"\bDROP\b|\bDELETE\b", sql), migration.path.name


def test_a_gap_in_the_numbers_is_refused(tmp_path):
    (tmp_path / "0002_b.sql").write_text("SELECT 1;")
    (tmp_path / "0004_d.sql").write_text("SELECT 1;")
    with pytest.raises(RuntimeError, match="0004_d.sql should be number 0003"):
        migrate.migrations(tmp_path)


def test_a_file_numbered_0001_is_refused_the_baseline_is_migration_1(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    with pytest.raises(RuntimeError, match="0001_a.sql should be number 0002"):
        migrate.migrations(tmp_path)


def test_the_baseline_is_the_release_schema_unchanged():
    # A table added to schema.sql would reach a new database and one of the release, but
    # never one already at a later version: it belongs in a new numbered migration.
    assert normal_sql(SCHEMA.read_text()) == normal_sql(release_file("schema.sql"))


def newer_database(path: Path) -> None:
    """Make a laptop database stamped one version later than this code knows."""
    conn = sqlite3.connect(path)
    migrate.upgrade(conn, SCHEMA)
    conn.execute(f"PRAGMA user_version = {migrate.latest() + 1}")
    conn.close()


def test_a_database_newer_than_the_code_is_refused_at_start(tmp_path):
    path = tmp_path / "newer.sqlite"
    newer_database(path)
    with pytest.raises(migrate.SchemaTooNew, match=f"schema version {migrate.latest() + 1}"):
        create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(path)})
    conn = sqlite3.connect(path)
    assert migrate.version(conn) == migrate.latest() + 1  # untouched


def test_init_db_refuses_a_newer_database_with_a_clear_message(tmp_path):
    path = tmp_path / "newer.sqlite"
    newer_database(path)
    env = {**os.environ, "LAPSYNC_DATABASE": str(path), "LAPSYNC_SYNC_ENABLED": "false"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "init-db"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"Error: The database {path} has schema version {migrate.latest() + 1}" in result.stderr
    assert "newer lapsync" in result.stderr and "Nothing was changed" in result.stderr


def test_a_lap_writes_only_the_indexes_its_readers_need(tmp_path):
    # Each index is a page a lap writes (and a checkpoint copies): the lap's id, its
    # client key (a retried post) and its runner's laps; the outbox is read by its key.
    db = connect(tmp_path / "new.sqlite")
    init_schema(db)
    conn = db.conn
    indexes = {row[0]: row[1] for row in conn.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name IN ('lap', 'change')")}
    assert indexes == {"sqlite_autoindex_lap_1": "lap", "sqlite_autoindex_lap_2": "lap",
                       "lap_runner": "lap"}
    for query in (f"SELECT min(seq) FROM change WHERE {PENDING}",
                  f"SELECT count(*) FROM change WHERE {PENDING}"):
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "SEARCH change USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan

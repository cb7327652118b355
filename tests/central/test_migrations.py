"""Central's schema migrations: a 2026-12-06 database upgraded equals a fresh one, data kept."""
from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.rows import dict_row

from lapsync.devkit.schemas import differences, normal_sql, postgres_schema
from sync import create_app, migrate
from sync.db import SCHEMA, SCHEMA_LOCK, close_pool, init_schema
from sync.pull import PULL_SQL
from tests.databases import empty_database
from tests.release import release_file

LAPTOP = "releaselaptop00000000000"


@pytest.fixture
def empty_url(pg_server_url):
    """Return the URL of a new, empty database, dropped after the test."""
    with empty_database(pg_server_url, "migrate") as url:
        yield url


def release_database(url: str) -> None:
    """Make central's database the way the release of 2026-12-06 did, with a little of everything."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(release_file("sync/schema.sql"))
        conn.execute("INSERT INTO meta (key, value) VALUES ('node_id', 'releasenode0000000000000')")
        conn.execute("INSERT INTO device (name, token_hash, laptop_id, created_at, last_seq) "
                     "VALUES ('laptop-a', 'hash', %s, 1, 3)", [LAPTOP])
        for row in [("u1", "tom", "teacher", LAPTOP), ("u2", "ada", "admin", "releasenode0000000000000")]:
            conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, "
                         "origin, change_id) VALUES (%s, %s, 'h', %s, 1, '0000000000001.0000', %s, "
                         "nextval('change_id_seq'))", row)
        conn.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin, "
                     "change_id) VALUES ('r1', 7, 'Anna', '5a', 5, '0000000000001.0000', %s, "
                     "nextval('change_id_seq'))", [LAPTOP])
        conn.execute("INSERT INTO lap (id, runner_id, created_by, device_time, device_id, pushed_by, "
                     "received_at, clock_offset_ms) VALUES ('l1', 'r1', 'u1', 5, %s, 1, 6, 0)", [LAPTOP])
        conn.execute("INSERT INTO lap_void (lap_id, voided, at, by, hlc, origin, change_id) VALUES "
                     "('l1', true, 7, 'u1', '0000000000002.0000', %s, nextval('change_id_seq'))", [LAPTOP])


def test_a_release_database_migrated_has_exactly_the_fresh_schema(empty_url, pg_url):
    release_database(empty_url)
    with psycopg.connect(empty_url, autocommit=True) as conn:
        applied = init_schema(conn)
        migrated = postgres_schema(conn)
        assert migrate.version(conn) == migrate.latest() >= 1
    with psycopg.connect(pg_url, autocommit=True) as conn:  # made from the full schema
        fresh = postgres_schema(conn)
        assert migrate.version(conn) == migrate.latest()
    assert [m.version for m in applied] == list(range(1, migrate.latest() + 1))
    # A column, constraint or index added to a table of the baseline (sync/schema.sql):
    found = differences(migrated, fresh)
    assert not found, "a migrated and a new database differ:\n" + "\n".join(found)


def test_the_baseline_is_the_release_schema_unchanged():
    # A table added to sync/schema.sql would reach a new database and one of the release,
    # but never one already at a later version: it belongs in a new numbered migration.
    assert normal_sql(SCHEMA.read_text()) == normal_sql(release_file("sync/schema.sql"))


def test_an_upgrade_keeps_every_row_and_fills_what_the_new_columns_need(empty_url):
    release_database(empty_url)
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        before = conn.execute("SELECT max(change_id) AS top FROM app_user").fetchone()["top"]
        init_schema(conn)
        assert conn.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()["value"] \
            == "releasenode0000000000000"
        assert conn.execute("SELECT id, voided, central FROM lap JOIN lap_void ON lap_id = id").fetchall() \
            == [{"id": "l1", "voided": True, "central": False}]
        assert conn.execute("SELECT last_seq, manage_roster FROM device").fetchone() \
            == {"last_seq": 3, "manage_roster": False}
        assert conn.execute("SELECT created_on FROM runner").fetchone() == {"created_on": LAPTOP}
        assert conn.execute("SELECT user_id, laptop_id FROM laptop_user").fetchall() \
            == [{"user_id": "u1", "laptop_id": LAPTOP}]
        # Every laptop pulls the admins again (their hashes now go to trusted devices only).
        assert conn.execute("SELECT change_id FROM app_user WHERE id = 'u2'").fetchone()["change_id"] > before
        rows = conn.execute("SELECT version, name FROM schema_migration ORDER BY version").fetchall()
        assert [r["version"] for r in rows] == list(range(1, migrate.latest() + 1))


def test_a_new_database_is_the_full_schema_stamped_with_every_version(empty_url):
    with psycopg.connect(empty_url, autocommit=True) as conn:
        assert migrate.version(conn) is None
        assert init_schema(conn) == []
        assert migrate.version(conn) == migrate.latest()
        assert init_schema(conn) == []  # again: nothing to do
        assert conn.execute("SELECT count(*) FROM schema_migration").fetchone() == (migrate.latest(),)


def test_migrations_never_drop_data():
    # An index may go (it holds no data); a table, a column or rows never do.
    for migration in migrate.migrations():
        text = re.sub(r"--[^\n]*", "", migration.sql()).upper()
        assert not re.search(r"\bDROP\s+(TABLE|COLUMN|SCHEMA)\b|\bDELETE\s+FROM\b|\bTRUNCATE\b",
                             text), migration.path.name


def test_a_failing_migration_leaves_the_database_at_the_version_before(empty_url, tmp_path):
    (tmp_path / "0002_first.sql").write_text("CREATE TABLE first (id int PRIMARY KEY);")
    (tmp_path / "0003_broken.sql").write_text("CREATE TABLE second (id int);\nSELECT * FROM nowhere;")
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)")
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrate.upgrade(conn, SCHEMA, SCHEMA_LOCK, tmp_path)
        assert migrate.version(conn) == 2  # the baseline and 0002
        assert conn.execute("SELECT to_regclass('first') IS NOT NULL, "
                            "to_regclass('second') IS NULL").fetchone() == (True, True)


def test_central_upgrades_an_older_database_at_its_first_connection(empty_url):
    release_database(empty_url)
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": empty_url})
    try:
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        close_pool(app)
    with psycopg.connect(empty_url, autocommit=True) as conn:
        assert migrate.version(conn) == migrate.latest()


@pytest.fixture
def newer_url(pg_url):
    """A central database stamped one version later than this code knows."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migration VALUES (%s, 'from_the_future', 0)",
                     [migrate.latest() + 1])
    return pg_url


def test_a_newer_database_is_refused_by_init_db_with_a_clear_message(newer_url):
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": newer_url})
    try:
        result = app.test_cli_runner().invoke(args=["init-db"])
    finally:
        close_pool(app)
    assert result.exit_code == 1
    assert f"has schema version {migrate.latest() + 1}" in result.output
    assert "newer lapsync" in result.output and "Nothing was changed" in result.output


def test_a_newer_database_answers_503_with_the_reason_not_a_500(newer_url):
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": newer_url})
    try:
        response = app.test_client().get("/healthz")
        again = app.test_client().post("/api/v1/push", json={})
    finally:
        close_pool(app)
    assert response.status_code == again.status_code == 503
    assert response.json["error"] == "schema_too_new"
    assert "newer lapsync" in response.json["message"]


def test_an_upgrade_logs_the_totals_it_finds_so_that_pulls_still_send_them(empty_url):
    release_database(empty_url)
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO runner_total (runner_id, laps, change_id) "
                     "VALUES ('r1', 4, nextval('change_id_seq'))")
        stored = conn.execute("SELECT change_id FROM runner_total").fetchone()["change_id"]
        init_schema(conn)
        rows = conn.execute(PULL_SQL, {"cursor": 0, "limit": 100, "laptop": LAPTOP,
                                       "trusted": False, "withheld": "-"}).fetchall()
        assert [(r["change_id"], r["id"]) for r in rows if r["entity"] == "total"] == [(stored, "r1")]
        rows = conn.execute(PULL_SQL, {"cursor": stored, "limit": 100, "laptop": LAPTOP,
                                       "trusted": False, "withheld": "-"}).fetchall()
        assert [r for r in rows if r["entity"] == "total"] == []


def database_before(url: str, version: int, tmp_path) -> None:
    """Bring a new database to VERSION with the migrations of this code up to it."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for migration in migrate.migrations()[1:version]:
        (folder / migration.path.name).write_text(migration.sql())
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.upgrade(conn, SCHEMA, SCHEMA_LOCK, folder)
        assert migrate.version(conn) == version


def test_spellings_of_one_class_become_the_one_most_of_its_runners_have(empty_url, tmp_path):
    database_before(empty_url, 12, tmp_path)
    spelled = [(1, "8b"), (2, "8 b"), (3, "8B"), (4, "8B"),   # 8B: two runners of four
               (5, "7A"), (6, "7a"),                          # a tie: the lowest number's
               (7, "9c"), (8, "9C"),                          # 7 is merged into 8: not counted
               (9, "5a")]
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('node_id', 'centralnode0000000000000'), "
                     "('hlc', '1700000000000.0005')")
        for number, class_ in spelled:
            conn.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin, "
                         "change_id) VALUES (%s, %s, 'x', %s, 8, '0000000000001.0000', %s, "
                         "nextval('change_id_seq'))", [f"r{number}", number, class_, LAPTOP])
        conn.execute("UPDATE runner SET merged_into = 'r8' WHERE id = 'r7'")
        for class_, email, updated in [("8b", "old@example.org", 10), ("8 b", "new@example.org", 20),
                                       ("7a", "seven@example.org", 5), ("5a", "five@example.org", 5)]:
            conn.execute("INSERT INTO class_teacher (class_name, email, updated_ms) "
                         "VALUES (%s, %s, %s)", [class_, email, updated])
        conn.execute("INSERT INTO mail_out (to_addr, subject, body_text, kind, class_name, status, "
                     "created_ms) VALUES ('new@example.org', 's', 'b', 'class_list', '8 b', "
                     "'queued', 1)")
        before = {r["id"]: r for r in conn.execute("SELECT * FROM runner")}
        init_schema(conn)
        after = {r["id"]: r for r in conn.execute("SELECT * FROM runner")}
        assert [(after[f"r{n}"]["class"]) for n, _class in spelled] == [
            "8B", "8B", "8B", "8B", "7A", "7A", "9C", "9C", "5a"]
        stamp = conn.execute("SELECT value FROM meta WHERE key = 'hlc'").fetchone()["value"]
        assert stamp > "1700000000000.0005"
        for runner_id, row in after.items():
            if row["class"] == before[runner_id]["class"]:  # untouched
                assert (row["hlc"], row["origin"], row["change_id"]) == (
                    before[runner_id]["hlc"], LAPTOP, before[runner_id]["change_id"])
            else:  # central's edit: every laptop pulls it, the one that made it too
                assert (row["hlc"], row["origin"]) == (stamp, "centralnode0000000000000")
                assert row["change_id"] > max(r["change_id"] for r in before.values())
        assert {r["id"] for r in after.values() if r["origin"] != LAPTOP} == {"r1", "r2", "r6", "r7"}
        assert conn.execute("SELECT class_name, email FROM class_teacher ORDER BY class_name"
                            ).fetchall() == [
            {"class_name": "5a", "email": "five@example.org"},
            {"class_name": "7A", "email": "seven@example.org"},
            {"class_name": "8B", "email": "new@example.org"},   # the latest set moves
            {"class_name": "8b", "email": "old@example.org"}]   # kept, under no class
        assert conn.execute("SELECT class_name FROM mail_out").fetchone() == {"class_name": "8B"}

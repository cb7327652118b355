"""Central's backups: pg_dump and restore through the commands, every table compared."""
from __future__ import annotations

import os
import shutil
import threading
import time

import click
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from lapsync.ids import new_id
from lapsync.laptop.client.push import pending_count
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import connect, set_meta
from lapsync.laptop.laps import record_lap
from lapsync.laptop.runners import add_runner
import sync.push
from sync import backup, create_app, migrate
from sync.db import close_pool
from tests.central.test_push_follows import send
from tests.databases import empty_database
from tests.pg import Outbox, register


def every_table(url: str) -> dict:
    """Return every table's rows (sorted) and every sequence's position.

    The database's identity is set aside under "identity": every restore renews it.
    """
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        state = {t: sorted(conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t)))
                           .fetchall(), key=repr) for t in tables}
        if "meta" in state:
            state["identity"] = [r["value"] for r in state["meta"] if r["key"] == "database_id"]
            state["meta"] = [r for r in state["meta"] if r["key"] != "database_id"]
        for row in conn.execute("SELECT sequencename, last_value FROM pg_sequences "
                                "WHERE schemaname = 'public'").fetchall():
            state[f"sequence {row['sequencename']}"] = row["last_value"]
    return state


@pytest.fixture
def empty_url(pg_server_url):
    """Return the URL of a new, empty database, dropped after the test."""
    with empty_database(pg_server_url, "restore") as url:
        yield url


def central(url: str):
    """Central on the database at url."""
    return create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": url})


def push(client, token: str, outbox: Outbox, first: int = 1):
    """Push the outbox's changes from seq FIRST; return the response."""
    return client.post("/api/v1/push", json=outbox.body(first),
                       headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def busy_central(central_app, central_client, central_db, central_users):
    """Central with users, a device, runners, laps and a void pushed; yields (token, outbox)."""
    token = register(central_db, "laptop-a")
    outbox = Outbox()
    runner = outbox.runner(7, "Anna Berg")
    laps = [outbox.lap(runner) for _ in range(3)]
    outbox.void(laps[0])
    assert push(central_client, token, outbox).status_code == 200
    return token, outbox


def test_a_backup_restored_into_a_fresh_database_holds_every_table_as_it_was(
        central_app, busy_central, pg_url, empty_url, tmp_path):
    file = tmp_path / "central.dump"
    result = central_app.test_cli_runner().invoke(args=["backup", str(file)])
    assert result.exit_code == 0, result.output
    assert file.read_bytes()[:5] == b"PGDMP"  # PostgreSQL's custom format
    assert os.stat(file).st_mode & 0o777 == 0o600  # hashes, the SMTP password: owner-only
    fresh = central(empty_url)
    try:
        result = fresh.test_cli_runner().invoke(args=["restore", "--yes", str(file)])
    finally:
        close_pool(fresh)
    assert result.exit_code == 0, result.output
    before, after = every_table(pg_url), every_table(empty_url)
    assert len(before["lap"]) == 3 and len(before["schema_migration"]) == migrate.latest()
    renewed, kept = after.pop("identity"), before.pop("identity")
    assert len(renewed) == 1 and renewed != kept  # laptops notice the restore by it
    assert after == before


def test_restore_asks_first_and_replaces_everything_written_since(
        central_app, central_client, busy_central, pg_url, tmp_path):
    token, outbox = busy_central
    file = tmp_path / "central.dump"
    runner = central_app.test_cli_runner()
    assert runner.invoke(args=["backup", str(file)]).exit_code == 0
    assert runner.invoke(args=["backup", str(file)]).exit_code == 1  # never overwrites
    before = every_table(pg_url)
    outbox.lap(outbox.changes[0]["id"])
    assert push(central_client, token, outbox, 5).status_code == 200
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE from_a_newer_schema (id int)")
    answer = runner.invoke(args=["restore", str(file)], input="n\n")
    assert answer.exit_code == 1 and "Aborted" in answer.output
    assert len(every_table(pg_url)["lap"]) == 4
    answer = runner.invoke(args=["restore", str(file)], input="y\n")
    assert answer.exit_code == 0, answer.output
    after = every_table(pg_url)
    assert after.pop("identity") != before.pop("identity")  # laptops notice the restore by it
    assert after == before


def test_after_a_restore_a_laptop_sends_again_what_central_lost(
        central_app, central_client, busy_central, pg_url, tmp_path):
    token, outbox = busy_central  # seqs 1-5 pushed
    file = tmp_path / "central.dump"
    backup.dump(pg_url, file)
    runner = outbox.changes[0]["id"]
    later = [outbox.lap(runner), outbox.lap(runner)]  # seqs 6, 7: lost with the restore
    assert push(central_client, token, outbox, 6).status_code == 200
    close_pool(central_app)
    backup.restore(pg_url, file)
    newest = outbox.lap(runner)  # seq 8
    answer = push(central_client, token, outbox, 8)
    assert answer.status_code == 409 and answer.json["resume_from"] == 6
    assert push(central_client, token, outbox, 6).json["acked_seq"] == 8
    with psycopg.connect(pg_url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM lap")]
    assert sorted(ids) == sorted([c["id"] for c in outbox.changes if c["entity"] == "lap"])
    assert set(later + [newest]) <= set(ids)


def test_restore_refuses_a_file_that_is_no_dump(central_app, busy_central, pg_url, tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("not a dump")
    before = every_table(pg_url)
    answer = central_app.test_cli_runner().invoke(args=["restore", "--yes", str(file)])
    assert answer.exit_code == 1 and "pg_restore failed" in answer.output
    assert every_table(pg_url) == before


def test_a_dump_cut_off_halfway_changes_nothing(central_app, busy_central, pg_url, tmp_path):
    whole = backup.dump(pg_url, tmp_path / "whole.dump").read_bytes()
    cut = tmp_path / "cut.dump"
    cut.write_bytes(whole[:len(whole) * 3 // 4])  # its list of contents is whole, its data not
    before = every_table(pg_url)
    close_pool(central_app)
    with pytest.raises(click.ClickException, match="nothing was changed"):
        backup.restore(pg_url, cut)
    assert every_table(pg_url) == before


def test_restore_refuses_a_dump_of_a_newer_schema(central_app, busy_central, pg_url, empty_url,
                                                  tmp_path):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migration VALUES (%s, 'from_the_future', 0)",
                     [migrate.latest() + 1])
    file = backup.dump(pg_url, tmp_path / "newer.dump")
    fresh = central(empty_url)
    try:
        answer = fresh.test_cli_runner().invoke(args=["restore", "--yes", str(file)])
    finally:
        close_pool(fresh)
    assert answer.exit_code == 1 and f"schema version {migrate.latest() + 1}" in answer.output
    assert every_table(empty_url) == {}


def test_the_tools_match_the_servers_version_and_passwords_stay_off_the_command_line(pg_url):
    major = backup.server_major(pg_url)
    assert f"{major}" in os.popen(f"{backup.tool('pg_dump', major)} --version").read().split()[-1]
    conninfo, env = backup.connection("postgresql://ada:s3cret@db.example:5433/lapsync")
    assert "s3cret" not in conninfo and env["PGPASSWORD"] == "s3cret"
    assert "host=db.example" in conninfo and "port=5433" in conninfo


def test_after_a_restore_a_laptop_resends_what_central_lost_at_its_next_sync(
        central_app, live_central, central_db, pg_url, tmp_path, users_template):
    path = tmp_path / "laptop.sqlite"
    shutil.copyfile(users_template, path)
    laptop = connect(path)
    try:
        set_meta(laptop, "device_id", new_id())
        token = register(central_db, "laptop-a", manage_users=True)
        add_runner(laptop, 7, "Anna Berg", "5a", 5)
        tom = laptop.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
        central = Central(live_central, token, 2, 10)

        def laps_at_central() -> int:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                return conn.execute("SELECT count(*) FROM lap").fetchone()[0]

        for _ in range(2):
            record_lap(laptop, 7, tom, 0, confirm=True)
        assert sync_once(laptop, central, force=True).error is None and laps_at_central() == 2
        file = backup.dump(pg_url, tmp_path / "central.dump")
        for _ in range(2):                                # lost with the restore below
            record_lap(laptop, 7, tom, 0, confirm=True)
        assert sync_once(laptop, central, force=True).error is None and laps_at_central() == 4
        close_pool(central_app)
        backup.restore(pg_url, file)
        assert laps_at_central() == 2
        result = sync_once(laptop, central, force=True)   # no lap typed since
        assert result.error is None and result.pushed == 2 and laps_at_central() == 4
        assert pending_count(laptop) == 0
    finally:
        laptop.close()


def test_a_restore_while_a_laptops_laps_wait_for_the_write_lock_does_not_deadlock(
        pg_url, central_db, device_token, monkeypatch, tmp_path):
    monkeypatch.setattr(sync.push, "EARLY_FROM", 1)  # a small batch copied early, as a big one
    box = Outbox()
    ida = box.runner(3, "Ida Lund")
    for _ in range(5):
        box.lap(ida)
    send(pg_url, device_token, box.body(1, 1))
    file = tmp_path / "central.dump"
    backup.dump(pg_url, file)
    copied, applied = threading.Event(), sync.push.wait_applied

    def still_copying(conn, device_id, last_seq, deadline):
        copied.set()
        waiting = "SELECT count(*) AS n FROM pg_locks WHERE NOT granted"
        until = time.monotonic() + 10
        while conn.execute(waiting).fetchone()["n"] == 0 and time.monotonic() < until:
            time.sleep(0.02)  # until the restore waits for a lock (its DROP: for these laps)
        applied(conn, device_id, last_seq, deadline)

    monkeypatch.setattr(sync.push, "wait_applied", still_copying)
    answers = {}
    pushing = threading.Thread(target=lambda: answers.setdefault(
        "push", send(pg_url, device_token, box.body(2, 6))))
    pushing.start()
    assert copied.wait(10)
    backup.restore(pg_url, file)          # waits for the batch, which commits first
    pushing.join(20)
    assert answers["push"]["acked_seq"] == 6
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as dumped: the laps came after
        assert conn.execute("SELECT count(*) FROM lap").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM runner").fetchone()[0] == 1

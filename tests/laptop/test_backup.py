"""Laptop backups: snapshots while laps come in and at stop, the commands, and a restore that
counts every lap exactly once at central."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from lapsync.laptop import backup, create_app, migrate, restore, scheduler
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import PENDING, connect, device_id, get_meta
from lapsync.laptop.laps import record_lap, set_void
from lapsync.laptop.runners import add_runner
from sync import backup as central_backup
from sync.db import close_pool
from tests.pg import register


def user_id(db, name: str = "tom") -> str:
    """Return the id of a user of the test database."""
    return db.execute("SELECT id FROM user WHERE name = ?", [name]).fetchone()[0]


def lap(db, number: int = 1) -> str:
    """Record one lap of start number NUMBER (no minimum lap time); return its id."""
    return record_lap(db, number, user_id(db), 0, confirm=True)["lap"]["id"]


def lap_ids(path: Path) -> set[str]:
    """Return the lap ids in a database file."""
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM lap")}
    finally:
        conn.close()


def snapshots(app) -> list[Path]:
    """Return the app's snapshot files, oldest first."""
    return [path for _, path in backup.numbered(backup.folder(app))]


def wait_for(condition, timeout: float = 10.0) -> None:
    """Wait until condition() is true, or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_snapshot_is_a_whole_private_file_of_what_was_committed(app, db, runners, tmp_path):
    done = lap(db)
    writer = connect(app.config["DATABASE"])
    writer.execute("BEGIN IMMEDIATE")  # a lap half written while the snapshot is taken
    writer.execute("INSERT INTO meta (key, value) VALUES ('half', 'written')")
    target = backup.snapshot(db.conn, tmp_path / "copy.sqlite")
    writer.conn.rollback()
    writer.close()
    assert lap_ids(target) == {done}
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert not Path(f"{target}-wal").exists() and not Path(f"{target}.part").exists()
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("SELECT count(*) FROM meta WHERE key = 'half'").fetchone() == (0,)
    assert migrate.version(copy) == migrate.latest()


def test_the_background_job_snapshots_while_laps_come_in_keeps_the_last_n_and_one_at_stop(
        tmp_path, users_template):
    path = tmp_path / "laptop.sqlite"
    path.write_bytes(users_template.read_bytes())
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(path),
                      "SYNC_INTERVAL": 0.05, "BACKUP_INTERVAL": 0.2, "BACKUP_KEEP": 2})
    db = connect(path)
    add_runner(db, 1, "Anna Berg", "5a", 5)
    scheduler.start(app)  # what `flask serve` does; tests start it by hand
    try:
        wait_for(lambda: len(snapshots(app)) == 1)  # the first: no snapshot on disk yet
        time.sleep(0.4)
        assert len(snapshots(app)) == 1  # nothing changed: no new snapshot
        laps = [lap(db)]
        wait_for(lambda: len(snapshots(app)) == 2 and lap_ids(snapshots(app)[-1]) == set(laps))
        laps.append(lap(db))
        wait_for(lambda: lap_ids(snapshots(app)[-1]) == set(laps))
        assert len(snapshots(app)) == 2  # the oldest went: BACKUP_KEEP
        assert backup.serving(app)
        laps.append(lap(db))
    finally:
        scheduler.stop(app)
    assert lap_ids(snapshots(app)[-1]) == set(laps)  # at stop, whatever the interval
    assert not backup.serving(app)
    numbers = [int(p.name.split("-")[1]) for p in snapshots(app)]
    assert numbers == sorted(numbers) and numbers[-1] == 4


def test_backup_and_restore_commands_ask_first_and_keep_the_database_they_replace(app, db, runners,
                                                                                   tmp_path):
    first = lap(db)
    runner = app.test_cli_runner()
    file = tmp_path / "before.sqlite"
    assert runner.invoke(args=["backup", str(file)]).exit_code == 0
    assert runner.invoke(args=["backup", str(file)]).exit_code == 1  # never overwrites
    second = lap(db)
    answer = runner.invoke(args=["restore", str(file)], input="n\n")
    assert answer.exit_code == 1 and "Aborted" in answer.output
    assert lap_ids(Path(app.config["DATABASE"])) == {first, second}
    answer = runner.invoke(args=["restore", str(file)], input="y\n")
    assert answer.exit_code == 0, answer.output
    assert "laps: 1," in answer.output and "laps: 2," in answer.output
    assert lap_ids(Path(app.config["DATABASE"])) == {first}
    kept = snapshots(app)[-1]  # the database as it was before the restore
    assert lap_ids(kept) == {first, second} and str(kept) in answer.output
    marked = restore.last_seq(sqlite3.connect(file))  # the next sync asks central from here
    assert get_meta(connect(app.config["DATABASE"]), "restored_seq") == str(marked)


def test_restore_refuses_while_the_app_serves(app, db, runners, tmp_path):
    lap(db)
    file = tmp_path / "copy.sqlite"
    backup.snapshot(db.conn, file)
    other = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": app.config["DATABASE"]})
    backup.hold_serving_lock(other)  # as the running app's background job does
    try:
        answer = app.test_cli_runner().invoke(args=["restore", "--yes", str(file)])
    finally:
        backup.at_stop(other)
    assert answer.exit_code == 1 and "running" in answer.output


def test_restore_refuses_another_laptops_backup_over_a_used_database(app, db, runners, tmp_path):
    lap(db)
    file = tmp_path / "other.sqlite"
    backup.snapshot(db.conn, file)
    conn = sqlite3.connect(file)
    conn.execute("UPDATE meta SET value = 'anotherlaptop00000000000' WHERE key = 'device_id'")
    conn.commit()
    conn.close()
    answer = app.test_cli_runner().invoke(args=["restore", "--yes", str(file)])
    assert answer.exit_code == 1 and "anotherlaptop00000000000" in answer.output
    assert "never over another laptop's" in answer.output


@pytest.mark.parametrize("content", ["not a database", "newer"])
def test_restore_refuses_a_damaged_or_newer_file_and_changes_nothing(app, db, runners, tmp_path,
                                                                     content):
    kept = lap(db)
    file = tmp_path / "bad.sqlite"
    if content == "newer":
        backup.snapshot(db.conn, file)
        conn = sqlite3.connect(file)
        conn.execute(f"PRAGMA user_version = {migrate.latest() + 1}")
        conn.close()
    else:
        file.write_text(content * 100)
    answer = app.test_cli_runner().invoke(args=["restore", "--yes", str(file)])
    assert answer.exit_code == 1
    assert ("newer lapsync" if content == "newer" else "not a lapsync laptop database") in answer.output
    assert lap_ids(Path(app.config["DATABASE"])) == {kept}


def central_laps(conn) -> Counter:
    """Return how often each lap id is at central."""
    return Counter(row["id"] for row in conn.execute("SELECT id FROM lap"))


def counting(conn) -> int:
    """Return the laps that count at central (runner_total)."""
    return conn.execute("SELECT coalesce(sum(laps), 0) AS n FROM runner_total").fetchone()["n"]


def test_a_restored_older_snapshot_counts_every_lap_exactly_once_at_central(
        app, db, runners, tmp_path, live_central, central_db):
    token = register(central_db, "laptop-a", manage_users=True)
    central = Central(live_central, token)
    synced = [lap(db), lap(db, 2), lap(db, 17)]
    set_void(db, synced[0], user_id(db), True, "double")
    assert sync_once(db, central).error is None
    in_snapshot = [lap(db), lap(db, 2)]  # not yet at central when the snapshot is taken
    snapshot = backup.snapshot(db.conn, tmp_path / "snapshot.sqlite")
    after = [lap(db), lap(db, 17)]  # made after the snapshot, synced, then lost with the disk
    set_void(db, after[1], user_id(db), True, "double")
    assert sync_once(db, central).error is None
    last_seq = central_db.execute("SELECT last_seq FROM device").fetchone()["last_seq"]
    db.close()

    restore.restore(app, snapshot)
    db = connect(app.config["DATABASE"])
    assert lap_ids(Path(app.config["DATABASE"])) == set(synced + in_snapshot)
    new = [lap(db), lap(db, 2), lap(db, 2)]  # typed after the restore: seqs central has seen
    assert max(r[0] for r in db.execute("SELECT seq FROM change")) <= last_seq
    result = sync_once(db, central)
    assert result.error is None and result.pushed == 3

    every = synced + in_snapshot + after + new
    assert central_laps(central_db) == Counter(every)  # each lap exactly once, none lost
    assert counting(central_db) == len(every) - 2  # the two voids stand
    seqs = [r[0] for r in db.execute("SELECT seq FROM change ORDER BY seq")]
    assert seqs[-3:] == [last_seq + 1, last_seq + 2, last_seq + 3]
    assert db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone() == (0,)
    assert get_meta(db, "restored_seq") is None
    assert central_db.execute("SELECT last_seq FROM device").fetchone()["last_seq"] == last_seq + 3
    again = lap(db, 17)  # and the laptop carries on as before
    assert sync_once(db, central).error is None and central_laps(central_db)[again] == 1
    assert device_id(db) == central_db.execute("SELECT laptop_id FROM device").fetchone()["laptop_id"]


def test_a_restore_with_nothing_newer_at_central_sends_the_snapshots_pending_laps(
        app, db, runners, tmp_path, live_central, central_db):
    central = Central(live_central, register(central_db, "laptop-a", manage_users=True))
    synced = lap(db)
    assert sync_once(db, central).error is None
    pending = [lap(db), lap(db, 2)]
    snapshot = backup.snapshot(db.conn, tmp_path / "snapshot.sqlite")
    db.close()
    restore.restore(app, snapshot)  # central applied nothing after the snapshot
    db = connect(app.config["DATABASE"])
    assert get_meta(db, "restored_seq") == str(restore.last_seq(db.conn))
    assert sync_once(db, central).error is None
    assert central_laps(central_db) == Counter([synced, *pending])


def test_a_snapshot_restored_twice_keeps_its_first_mark(app, db, runners, tmp_path, live_central,
                                                        central_db):
    central = Central(live_central, register(central_db, "laptop-a", manage_users=True))
    lap(db)
    assert sync_once(db, central).error is None
    old = backup.snapshot(db.conn, tmp_path / "old.sqlite")
    lost = [lap(db), lap(db)]
    assert sync_once(db, central).error is None
    db.close()
    restore.restore(app, old)
    db = connect(app.config["DATABASE"])
    offline = lap(db)  # offline after the restore, then backed up and restored again
    newer = backup.snapshot(db.conn, tmp_path / "newer.sqlite")
    db.close()
    restore.restore(app, newer)
    db = connect(app.config["DATABASE"])
    assert sync_once(db, central).error is None
    assert central_laps(central_db)[offline] == 1 and all(central_laps(central_db)[i] == 1 for i in lost)


def test_a_background_sync_during_a_lap_stream_after_restore_loses_nothing(
        app, db, runners, tmp_path, live_central, central_db):
    central = Central(live_central, register(central_db, "laptop-a", manage_users=True))
    lap(db)
    snapshot = backup.snapshot(db.conn, tmp_path / "snapshot.sqlite")
    lap(db, 2)
    assert sync_once(db, central).error is None
    db.close()
    restore.restore(app, snapshot)
    typed, stop = [], threading.Event()

    def helper():
        """Type laps on a connection of its own while the sync runs."""
        own = connect(app.config["DATABASE"])
        while not stop.is_set() and len(typed) < 40:
            typed.append(lap(own, 17))
        own.close()

    thread = threading.Thread(target=helper)
    thread.start()
    db = connect(app.config["DATABASE"])
    try:
        assert sync_once(db, central).error is None
    finally:
        stop.set()
        thread.join()
    assert sync_once(db, central).error is None
    assert all(central_laps(central_db)[i] == 1 for i in typed)
    assert sum(central_laps(central_db).values()) == 2 + len(typed)


def test_a_central_restored_to_before_a_laptops_restore_gets_every_lap_the_laptop_has(
        app, db, runners, tmp_path, live_central, central_db, central_app, pg_url):
    central = Central(live_central, register(central_db, "laptop-a", manage_users=True))
    synced = [lap(db), lap(db, 2)]
    assert sync_once(db, central).error is None
    snapshot = backup.snapshot(db.conn, tmp_path / "snapshot.sqlite")
    dump = central_backup.dump(pg_url, tmp_path / "central.dump")   # central as at the snapshot
    lost = [lap(db), lap(db, 17)]          # synced, then lost with the laptop's disk
    assert sync_once(db, central).error is None
    db.close()
    restore.restore(app, snapshot)
    db = connect(app.config["DATABASE"])
    typed = [lap(db)]
    assert sync_once(db, central).error is None  # moved behind the seqs central has: a hole
    seqs = [row[0] for row in db.execute("SELECT seq FROM change ORDER BY seq")]
    assert seqs[-1] - seqs[0] + 1 > len(seqs)
    close_pool(central_app)
    central_backup.restore(pg_url, dump)   # central loses what came after the snapshot too
    later = [lap(db, 2)]
    result = sync_once(db, central)
    assert result.error is None, result.error
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as conn:
        assert central_laps(conn) == Counter(synced + typed + later)
        assert conn.execute("SELECT last_seq FROM device").fetchone()["last_seq"] == len(seqs) + 1
    seqs = [row[0] for row in db.execute("SELECT seq FROM change ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))      # no hole left
    assert lost and db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone() == (0,)
    assert sync_once(db, central).error is None and lap(db) and sync_once(db, central).error is None

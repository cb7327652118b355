"""The only place that opens and closes the laptop's SQLite database."""
from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import click
import sqlite_utils
from flask import Flask, current_app, g
from flask.cli import with_appcontext

from lapsync.commands import part_file
from lapsync.ids import new_id

from . import migrate

SCHEMA = Path(__file__).resolve().parents[2] / "schema.sql"
POOL = "lapsync_db_idle"  # idle connections kept between requests
POOL_SIZE = 4
# PRAGMA synchronous values the app accepts (config SQLITE_SYNCHRONOUS). OFF is
# not among them: with it a power cut can corrupt the database file itself.
SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL")
DEFAULT_SYNCHRONOUS = "FULL"
OWNER_ONLY = 0o600  # the database holds every user's password hash and the open sessions
SIDE_FILES = ("", "-wal", "-shm", "-journal")


def now_ms() -> int:
    """Return this laptop's clock as epoch milliseconds."""
    return time.time_ns() // 1_000_000


def is_file(path: str | Path) -> bool:
    """Tell whether path names a database file (not :memory: or a file: URI)."""
    return str(path) not in ("", ":memory:") and not str(path).startswith("file:")


def create_private(path: str | Path) -> None:
    """Create a missing database file readable by its owner only."""
    # SQLite gives the -wal and -shm files it makes later the database file's mode.
    # Any other failure (no such folder) is left for sqlite3.connect to report.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY))


def make_private(path: str | Path) -> None:
    """Make the database file and its -wal, -shm and -journal owner-only (older installs)."""
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", OWNER_ONLY)


def connect(path: str | Path, synchronous: str = DEFAULT_SYNCHRONOUS) -> sqlite_utils.Database:
    """Open the database file (made owner-only if new) with the pragmas every connection needs."""
    if synchronous not in SYNCHRONOUS:  # never formatted into SQL unchecked
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}")
    if is_file(path):
        create_private(path)
    conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a lap confirmed to the helper survives a power cut, not only a crash.
    # In WAL mode NORMAL syncs only at checkpoints: a power cut can take back the
    # last commits (docs/BENCHMARKS.md, "Laptop durability").
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=10000")
    return db


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Run a write transaction that takes the write lock up front.

    BEGIN IMMEDIATE rather than sqlite-utils' deferred BEGIN: a deferred
    transaction that reads first can fail with SQLITE_BUSY_SNAPSHOT when the
    sync job writes in between, and that error is not retried by busy_timeout.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    db.execute("COMMIT")


def init_schema(db: sqlite_utils.Database) -> list[migrate.Migration]:
    """Create or upgrade the schema (lapsync/laptop/migrate.py) and the device id; return migrations run.

    Never drops anything; a database newer than this code is refused (SchemaTooNew).
    """
    path = db.execute("PRAGMA database_list").fetchone()[2]  # "" for an in-memory database
    if path:
        make_private(path)
        migrate.check_not_newer(db.conn, path)
        migrate.keep_copy(db.conn, path)  # an upgrade keeps the database as it was beside it
    applied = migrate.upgrade(db.conn, SCHEMA, path or ":memory:")
    with transaction(db):
        if get_meta(db, "device_id") is None:
            set_meta(db, "device_id", new_id())
    return applied


def rows(db: sqlite_utils.Database, sql: str, params: list | dict | tuple = ()) -> list[dict]:
    """Return the rows of a read as dicts, for reads on every lap.

    db.query() wraps each read in a savepoint of its own (two statements more, and a
    transaction begun and ended outside BEGIN): too much for the lap page's few reads.
    """
    cursor = db.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def get_meta(db: sqlite_utils.Database, key: str, default: str | None = None) -> str | None:
    """Return one value of the meta table."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_meta(db: sqlite_utils.Database, key: str, value: str) -> None:
    """Store one value in the meta table."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def device_id(db: sqlite_utils.Database) -> str:
    """Return this laptop's device id."""
    value = get_meta(db, "device_id")
    if value is None:
        raise RuntimeError("database not initialised: run `flask --app app init-db`")
    return value


def record_change(db: sqlite_utils.Database, entity: str, entity_id: str, payload: dict) -> int:
    """Append a change to the outbox (inside the caller's transaction); return its seq."""
    cursor = db.execute(
        "INSERT INTO change (entity, entity_id, payload, created_at) VALUES (?, ?, ?, ?)",
        [entity, entity_id, json.dumps(payload, separators=(",", ":")), now_ms()],
    )
    return cursor.lastrowid


# A change waits for central while its seq is above the outbox mark and it carries no
# pushed_at (migration 0005): a range of seq, the table's key.
PENDING = "seq > (SELECT pushed_seq FROM outbox_mark) AND pushed_at IS NULL"


def move_pushed_mark(db: sqlite_utils.Database, seq: int) -> None:
    """Move the outbox mark up to SEQ, never back (inside the caller's transaction)."""
    db.execute("UPDATE outbox_mark SET pushed_seq = max(pushed_seq, ?)", [seq])


def close_hole(db: sqlite_utils.Database, start: int) -> bool:
    """Move the changes from seq START on down to START, START+1, ... if the outbox has a hole
    there; return whether it had one. Central asks for START: it has applied up to START - 1
    and nothing after, so no moved seq names a change central knows."""
    first, last, count = db.execute("SELECT min(seq), max(seq), count(*) FROM change "
                                    "WHERE seq >= ?", [start]).fetchone()
    if not count or first == start and last - start == count - 1:  # none, or no hole
        return False
    with transaction(db):  # read again under the write lock: no lap gets a seq meanwhile
        seqs = [row[0] for row in db.execute("SELECT seq FROM change WHERE seq >= ? ORDER BY seq",
                                             [start])]
        for new, old in enumerate(seqs, start):
            if new != old:  # through negative seqs, as carry_on
                db.execute("UPDATE change SET seq = ? WHERE seq = ?", [-new, old])
        db.execute("UPDATE change SET seq = -seq WHERE seq < 0")
        db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'change'",
                   [start + len(seqs) - 1])
    return True


def get_db() -> sqlite_utils.Database:
    """Return the request's database connection: an idle one of the app's, or a new one."""
    if "db" not in g:
        try:
            g.db = current_app.extensions[POOL].get_nowait()
        except queue.Empty:
            # SQLITE_SYNCHRONOUS was checked and upper-cased by init_app.
            g.db = connect(current_app.config["DATABASE"], current_app.config["SQLITE_SYNCHRONOUS"])
    return g.db


def synchronous_setting(app: Flask) -> str:
    """Return the app's SQLITE_SYNCHRONOUS (default FULL), upper-cased and checked."""
    value = str(app.config.get("SQLITE_SYNCHRONOUS") or DEFAULT_SYNCHRONOUS).strip().upper()
    if value not in SYNCHRONOUS:
        raise ValueError(f"config SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS)}, "
                         f"not {app.config.get('SQLITE_SYNCHRONOUS')!r}")
    return value


def close_db(exc: BaseException | None = None) -> None:
    """Hand the request's connection back for the next request (or close a surplus one).

    Why keep connections: opening one costs the pragmas, and closing the last
    connection to a WAL database checkpoints and removes the WAL, which cost more
    than the whole lap insert (bench/bench_laps.py).
    """
    db = g.pop("db", None)
    if db is None:
        return
    if db.conn.in_transaction:  # never hand on a half-done transaction
        db.conn.rollback()
    idle = current_app.extensions[POOL]
    if idle.qsize() < POOL_SIZE:
        idle.put(db)
    else:
        db.close()


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the laptop database or bring it to this version (never drops data)."""
    db = connect(current_app.config["DATABASE"])
    try:
        for migration in init_schema(db):
            click.echo(f"Applied migration {migration.version:04d} {migration.name}")
        click.echo(f"Initialised {current_app.config['DATABASE']} (device {device_id(db)}, "
                   f"schema version {migrate.version(db.conn)})")
    finally:
        db.close()


def init_app(app: Flask) -> None:
    """Register teardown and CLI commands with the app (a bad SQLITE_SYNCHRONOUS stops it)."""
    app.config["SQLITE_SYNCHRONOUS"] = synchronous_setting(app)
    app.extensions[POOL] = queue.SimpleQueue()
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)


def snapshot(source: sqlite3.Connection, target: Path) -> Path:
    """Copy the database of SOURCE into TARGET (a new, whole, owner-only file); return TARGET."""
    with part_file(target) as part:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()  # left by a snapshot that was cut off
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY))
        copy = sqlite3.connect(part)
        try:
            source.backup(copy)  # all pages in one step: one consistent read of the source
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            copy.close()
        with open(part, "r+b") as handle:  # writable: Windows flushes only such a handle
            os.fsync(handle.fileno())
    return target

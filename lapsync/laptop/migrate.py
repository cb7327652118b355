"""Numbered migrations of the laptop's SQLite database; the version lives in PRAGMA user_version.

Migration 1 is the baseline, schema.sql (the schema of the release of 2026-12-06); the
later ones live in lapsync/laptop/migrations/NNNN_name.sql, numbered from 0002 without
gaps, and never drop data. A database gets the migrations after its version, in order,
each in one transaction together with its new version number, so that a crash leaves it
at one version or the next, never in between: a new database all of them, one made
before migrations existed (version 0: the release of 2026-12-06 or earlier) all of them
too (the baseline's IF NOT EXISTS gives it what it lacks), a newer one only what it
lacks. A database newer than this code is refused: the code cannot know what it would
break there. tests/laptop/test_migrations.py compares a migrated 2026-12-06 database
with a new one and names what differs.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from lapsync import schema_version
from lapsync.schema_version import Migration, SchemaTooNew  # noqa: F401 (callers catch it here)

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
BASELINE = Path(__file__).resolve().parents[2] / "schema.sql"
log = logging.getLogger(__name__)


def migrations(folder: Path = MIGRATIONS, baseline: Path = BASELINE) -> list[Migration]:
    """Return the laptop's migrations in order, the baseline first."""
    return schema_version.migrations(folder, baseline)


def latest(folder: Path = MIGRATIONS) -> int:
    """Return the version this code brings a database to."""
    return len(migrations(folder))


def statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (comments between them dropped)."""
    found, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            found.append(current.strip())
            current = ""
    if re.sub(r"--[^\n]*", "", current).strip():
        raise ValueError(f"incomplete SQL statement at the end: {current.strip()[:80]!r}")
    return found


def version(conn: sqlite3.Connection) -> int:
    """Return the database's schema version (0: made before migrations existed)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def is_empty(conn: sqlite3.Connection) -> bool:
    """Tell whether the database holds no table yet (a new file)."""
    return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0


def check_not_newer(conn: sqlite3.Connection, where: str, known: int | None = None) -> None:
    """Refuse a database whose version is newer than this code's (SchemaTooNew)."""
    known = latest() if known is None else known
    if version(conn) > known:
        raise schema_version.too_new(version(conn), known, where)


def upgrade(conn: sqlite3.Connection, schema: Path, where: str = "",
            folder: Path = MIGRATIONS) -> list[Migration]:
    """Bring a database to the latest version from baseline SCHEMA on; return what an old one got."""
    known = migrations(folder, schema)
    check_not_newer(conn, where, len(known))
    new, applied = is_empty(conn), []
    for migration in known[version(conn):]:
        with immediate(conn):
            if version(conn) == migration.version - 1:  # not applied by another process meanwhile
                run(conn, statements(migration.sql()), migration.version)
                applied.append(migration)
    if new:
        return []  # a new database was made, not upgraded
    for migration in applied:
        log.info("%s: applied migration %04d %s", where, migration.version, migration.name)
    return applied


def keep_copy(conn: sqlite3.Connection, path: str, folder: Path = MIGRATIONS) -> Path | None:
    """Copy a database that has migrations pending to PATH.before-vN (N: its version); return it."""
    if is_empty(conn) or version(conn) >= latest(folder):
        return None
    copy = Path(f"{path}.before-v{version(conn)}")
    if not copy.exists():  # the first copy is the one from before any of this release's changes
        os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # it holds hashes
        target = sqlite3.connect(copy)
        try:
            conn.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    return copy


def run(conn: sqlite3.Connection, sql: list[str], new_version: int) -> None:
    """Execute statements and set the version (inside the caller's transaction)."""
    for statement in sql:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {int(new_version)}")


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a write transaction (BEGIN IMMEDIATE) that rolls back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")

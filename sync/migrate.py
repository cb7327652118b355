"""Numbered migrations of central's PostgreSQL database, recorded in table schema_migration.

Migration 1 is the baseline, sync/schema.sql (the schema of the release of 2026-12-06);
the later ones live in sync/migrations/NNNN_name.sql, numbered from 0002 without gaps,
and never drop data. A database gets the migrations after its version, in order, each
in one transaction together with its row in schema_migration: a new one (no table meta
yet) all of them; one without schema_migration was made before migrations existed
(version 0: the release of 2026-12-06 or earlier) and gets all of them too (the
baseline's IF NOT EXISTS gives it what it lacks); a newer one only what it lacks. A
database newer than this code is refused. Every step holds an advisory lock, so two
processes starting together apply each migration once. tests/central/test_migrations.py
compares a migrated 2026-12-06 database with a new one and names what differs.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

from lapsync import schema_version
from lapsync.schema_version import Migration, SchemaTooNew  # noqa: F401 (callers catch it here)

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
BASELINE = Path(__file__).resolve().with_name("schema.sql")
# Owned here, not by schema.sql nor a migration: it exists before the first migration runs.
TABLE = """CREATE TABLE IF NOT EXISTS schema_migration (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at bigint NOT NULL
)"""
RECORD = "INSERT INTO schema_migration (version, name, applied_at) VALUES (%s, %s, %s)"
log = logging.getLogger(__name__)


def migrations(folder: Path = MIGRATIONS, baseline: Path = BASELINE) -> list[Migration]:
    """Return central's migrations in order, the baseline first."""
    return schema_version.migrations(folder, baseline)


def latest(folder: Path = MIGRATIONS) -> int:
    """Return the version this code brings a database to."""
    return len(migrations(folder))


def version(conn: psycopg.Connection) -> int | None:
    """Return the database's schema version: None when empty, 0 when made before migrations."""
    cursor = conn.cursor(row_factory=tuple_row)
    if cursor.execute("SELECT to_regclass('meta') IS NULL").fetchone()[0]:
        return None
    if cursor.execute("SELECT to_regclass('schema_migration') IS NULL").fetchone()[0]:
        return 0
    return cursor.execute("SELECT coalesce(max(version), 0) FROM schema_migration").fetchone()[0]


def check_not_newer(conn: psycopg.Connection, known: int | None = None) -> int | None:
    """Refuse a database newer than this code (SchemaTooNew); return its version."""
    known = latest() if known is None else known
    found = version(conn)
    if found is not None and found > known:
        raise schema_version.too_new(found, known, f"{conn.info.dbname!r} (central)")
    return found


def upgrade(conn: psycopg.Connection, schema: Path, lock: int,
            folder: Path = MIGRATIONS) -> list[Migration]:
    """Bring a database to the latest version from baseline SCHEMA on; return what an old one got."""
    known = migrations(folder, schema)
    with conn.transaction():
        found = check_not_newer(conn, len(known))
    applied = [m for m in known[found or 0:] if apply(conn, m, lock)]
    if found is None:
        return []  # a new database was made, not upgraded
    for migration in applied:
        log.info("central database %s: applied migration %04d %s", where(conn), migration.version,
                 migration.name)
    return applied


def where(conn: psycopg.Connection) -> str:
    """Name a connection's database for the log: name, host and port, never the password."""
    return f"{conn.info.dbname!r} on {conn.info.host}:{conn.info.port}"


def apply(conn: psycopg.Connection, migration: Migration, lock: int) -> bool:
    """Apply one migration and record it, in one transaction; False if applied meanwhile."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
        if (version(conn) or 0) != migration.version - 1:  # another process was first
            return False
        conn.execute(migration.sql())
        conn.execute(TABLE)
        conn.execute(RECORD, [migration.version, migration.name, time.time_ns() // 1_000_000])
    return True

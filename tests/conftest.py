"""Shared fixtures: a fresh laptop database file per test, users, runners, logins."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import jinja2
import pytest
from flask import Flask
from playwright.sync_api import expect, sync_playwright
from werkzeug.routing import Rule
from xdist.scheduler import LoadGroupScheduling

from lapsync import authcore
from lapsync.ids import new_id
from lapsync.laptop import create_app
from lapsync.laptop.auth import create_user
from lapsync.laptop.db import connect, set_meta
from lapsync.laptop.runners import add_runner
from tests.web import launch_chromium

pytest_plugins = ["tests.pg"]

PASSWORD = "correct-horse"
# The apps in this process hash with cheap argon2 parameters, as Django's test settings
# do: a login then costs ~1 ms, not ~200 ms. Apps in subprocesses keep the real ones;
# tests/core/test_authcore.py pins those.
authcore.use_hash_parameters(time_cost=1, memory_cost=1024, parallelism=1)

# Test files in memory where the machine has /dev/shm: a laptop database commits with
# synchronous=FULL, and an fsync to disk per commit only makes the suite wait.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    tempfile.tempdir = "/dev/shm"


class MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept in memory for every app this process creates.

    Each test makes a fresh app, and a fresh app compiles every template it renders
    again: that was half the time of a page test. Jinja checks each template's source
    checksum, so an edited template is compiled anew.
    """

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        """Fill the bucket from memory if this template was compiled before."""
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        """Keep a freshly compiled template."""
        self.compiled[bucket.key] = bucket.bytecode_to_string()


Flask.jinja_options = {**Flask.jinja_options, "bytecode_cache": MemoryBytecodeCache()}


def reuse_url_builders(compile_builder):
    """Wrap werkzeug's Rule._compile_builder so that each distinct rule is compiled once a process.

    werkzeug writes and compiles a Python function per URL rule of every new app: three
    quarters of the time central's create_app takes. The function depends only on the
    rule's parsed parts, its defaults and append_unknown; it reads converters through
    the rule it is bound to, so one compiled function serves every app's copy of a rule.
    """
    compiled: dict[tuple, object] = {}

    def cached(self: Rule, append_unknown: bool = True):
        key = (self.rule, tuple(self._trace), repr(self.defaults), append_unknown)
        if key not in compiled:
            compiled[key] = compile_builder(self, append_unknown)
        return compiled[key]

    return cached


Rule._compile_builder = reuse_url_builders(Rule._compile_builder)

# How long a browser assertion waits for the page to get there (Playwright's default is
# 5 s): an upper bound for a busy two-core machine, not a speed requirement.
expect.set_options(timeout=10_000)
# SIGKILL timing and skewed clocks: under `dev.py test` (pytest-xdist, --dist
# loadgroup) these files run one after another on one worker, never beside each other.
SERIAL_FILES = ("tests/system/test_chaos.py", "tests/system/test_durability.py",
                "tests/system/test_offline_day.py", "tests/system/test_laptop_server.py")
# Real browsers: each file runs whole on one worker, so that its module-scoped apps
# and Chromium start once; different files run side by side.
BROWSER_FILES = ("tests/system/test_browser.py", "tests/system/test_browser_central.py",
                 "tests/system/test_lap_page.py", "tests/system/test_lap_login.py",
                 "tests/system/test_small_screens.py",
                 "tests/system/test_browser_blocks.py",
                 "tests/system/test_barcodes.py", "tests/central/test_girocode.py",
                 "tests/system/test_browser_letters.py", "tests/system/test_browser_money.py",
                 "tests/system/test_browser_setup.py", "tests/system/test_browser_sync_log.py",
                 "tests/system/test_german.py", "tests/system/test_browser_statement.py")


class SerialGroup(LoadGroupScheduling):
    """xdist's loadgroup with SERIAL_FILES as one unit and each of BROWSER_FILES as one.

    xdist hands out the largest units first. Not an xdist_group marker: xdist 3.8 marks
    a group by rewriting item._nodeid, which pytest 9 no longer reads.
    """

    def _split_scope(self, nodeid: str) -> str:
        """Return "serial", a browser file's path, or the test itself as the unit."""
        path = nodeid.split("::", 1)[0]
        if path in SERIAL_FILES:
            return "serial"
        if path in BROWSER_FILES:
            return path
        return super()._split_scope(nodeid)


class SerialGroupPlugin:
    """Hands xdist the SerialGroup scheduler under --dist loadgroup."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log) -> SerialGroup | None:
        """Return SerialGroup for --dist loadgroup; else leave the choice to xdist."""
        return SerialGroup(config, log) if config.getvalue("dist") == "loadgroup" else None


def expected_weight(item: pytest.Item) -> int:
    """Rank a test by how long it is likely to run: system tests, then property tests, then the rest."""
    if item.nodeid.startswith("tests/system/"):
        return 0
    return 1 if getattr(getattr(item, "obj", None), "hypothesis", None) is not None else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the long tests first, so that two workers finish together, not one waiting on the last."""
    items.sort(key=expected_weight)


def pytest_configure(config: pytest.Config) -> None:
    """Register the scheduler where xdist is active (not under -p no:xdist)."""
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(SerialGroupPlugin(), "lapsync-serial-group")


# libfaketime keeps a shared-memory segment and a semaphore per process in /dev/shm and
# removes them only when the process exits normally; the tests SIGKILL such processes.
FAKETIME_LEFTOVERS = re.compile(r"^(?:faketime_shm|sem\.faketime_sem)_(\d+)$")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove libfaketime's leftovers of processes that are gone."""
    if not os.path.isdir("/dev/shm"):
        return
    for name in os.listdir("/dev/shm"):
        found = FAKETIME_LEFTOVERS.match(name)
        if found and not os.path.exists(f"/proc/{found.group(1)}"):
            Path("/dev/shm", name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium, one per test process; fails (never skips) without it.

    Starting Playwright's driver and Chromium costs ~1.3 s of CPU and 3-4 s of waiting
    on the 2-core machine. Modules keep contexts of their own (own cookies and storage)
    and close them; Playwright emulates focus for every page, so pages of other modules
    take no focus from a test's page.
    """
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def users_template(tmp_path_factory) -> Path:
    """A laptop database with one user of each role, made once per test session.

    Hashing passwords with argon2 is slow on purpose; copying a finished file
    keeps every test on its own fresh SQLite file without paying that each time.
    """
    path = tmp_path_factory.mktemp("template") / "laptop.sqlite"
    create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(path)})
    db = connect(path)
    for name, role in [("ada", "admin"), ("tom", "teacher"), ("vic", "viewer")]:
        create_user(db, name, role, PASSWORD)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.fixture
def app(tmp_path, users_template):
    """A laptop app on its own SQLite file, with one user of each role."""
    path = tmp_path / "laptop.sqlite"
    shutil.copyfile(users_template, path)
    db = connect(path)
    set_meta(db, "device_id", new_id())  # every test laptop is a device of its own
    db.close()
    # Its connection to a central (`flask connect`, /connect) is written beside the
    # database, never into the checkout's instance folder, where `dev.py run` reads it.
    return create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(path),
                       "MIN_LAP_SECONDS": 60,
                       "INSTANCE_CONFIG_FILE": str(tmp_path / "instance" / "config.py")})


@pytest.fixture
def db(app):
    """A connection to the app's database file."""
    database = connect(app.config["DATABASE"])
    yield database
    database.close()


@pytest.fixture
def client(app):
    """An anonymous test client."""
    return app.test_client()


def csrf_token(client, path: str = "/") -> str:
    """Fetch a page and return its CSRF token."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def login(client, name: str) -> str:
    """Log a test client in as NAME; return a CSRF token for later posts."""
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_token(client)


@pytest.fixture
def teacher(client):
    """A test client logged in as a teacher; `.csrf` holds its token."""
    client.csrf = login(client, "tom")
    return client


@pytest.fixture
def admin(client):
    """A test client logged in as an admin; `.csrf` holds its token."""
    client.csrf = login(client, "ada")
    return client


@pytest.fixture
def runners(db):
    """Three runners with start numbers 1, 2 and 17."""
    return {n: add_runner(db, n, name, cls, grade)
            for n, name, cls, grade in [(1, "Anna Berg", "5a", 5), (2, "Ben Cruz", "5a", 5),
                                        (17, "Cleo Dahl", "6b", 6)]}

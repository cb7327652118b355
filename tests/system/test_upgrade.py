"""Upgrading from the release of 2026-12-06: a laptop and central made and used by that
release's own code, upgraded by today's, lose nothing and sync the rest exactly once."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from lapsync.laptop import create_app as create_laptop
from lapsync.laptop import migrate as laptop_migrate
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import PENDING, connect
from sync import create_app as create_central
from sync import derived
from sync import migrate as central_migrate
from sync.db import close_pool
from tests.databases import empty_database
from tests.release import release_tree
from tests.web import served


# Runs in a subprocess on the release's code: its central (init-db, a device) served on a
# loopback port, its laptop (init-db, a user, runners, laps, voids), one sync, then more
# laps, voids and a runner left pending. Prints what it made as JSON.
RELEASE_SCRIPT = r"""
import json, sys, threading
from werkzeug.serving import make_server
from sync import create_app as central_app
from sync.db import connection
from sync.devices import register_device
from lapsync import create_app as laptop_app
from lapsync.auth import create_user
from lapsync.client import Central, sync_once
from lapsync.db import connect
from lapsync.laps import record_lap, set_void
from lapsync.runners import add_runner

database_url, laptop_file = sys.argv[1:3]
central = central_app({"TESTING": True, "SECRET_KEY": "release", "DATABASE_URL": database_url})
assert central.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
with central.app_context(), connection(central) as conn:
    token = register_device(conn, "laptop-a", manage_users=True)
server = make_server("127.0.0.1", 0, central, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
laptop = laptop_app({"TESTING": True, "SECRET_KEY": "release", "DATABASE": laptop_file})
assert laptop.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
db = connect(laptop_file)
with laptop.test_request_context():
    user = create_user(db, "tom", "teacher", "correct-horse")
    for number in (1, 2, 3):
        add_runner(db, number, f"Runner {number}", "5a", 5)
    lap = lambda number: record_lap(db, number, user, 0, confirm=True)["lap"]["id"]
    synced = [lap(1), lap(2), lap(3), lap(1)]
    set_void(db, synced[0], user, True, "double")
    result = sync_once(db, Central(f"http://127.0.0.1:{server.server_port}", token))
    assert result.error is None, result.error
    pending = [lap(2), lap(3)]
    set_void(db, synced[1], user, True, "typed twice")      # a void of a lap central has
    set_void(db, synced[0], user, False)                      # a restore of a void central has
    late = add_runner(db, 40, "Late Runner", "6b", 6)
    pending.append(lap(40))
server.shutdown()
print(json.dumps({"token": token, "synced": synced, "pending": pending, "late": late,
                  "seq": db.execute("SELECT max(seq) FROM change").fetchone()[0]}))
"""

# The release's background sync imported APScheduler, which today's requirements dropped.
# Where it is not installed, the release's laptop gets this stand-in: under TESTING the
# release never starts its scheduler, it only imports it.
APSCHEDULER_STUB = {
    "apscheduler/__init__.py": "",
    "apscheduler/jobstores/__init__.py": "",
    "apscheduler/jobstores/base.py": "class JobLookupError(Exception):\n    pass\n",
    "apscheduler/schedulers/__init__.py": "",
    "apscheduler/schedulers/background.py": "class BackgroundScheduler:\n    pass\n",
}


@pytest.fixture
def empty_url(pg_server_url):
    """Return the URL of a new, empty database, dropped after the test."""
    with empty_database(pg_server_url, "upgrade") as url:
        yield url


def run_release(tree: Path, database_url: str, laptop_file: Path) -> dict:
    """Run RELEASE_SCRIPT on the release's code; return what it made."""
    path = [str(tree)]
    if importlib.util.find_spec("apscheduler") is None:
        stubs = tree.parent / "stubs"
        for name, text in APSCHEDULER_STUB.items():
            (stubs / name).parent.mkdir(parents=True, exist_ok=True)
            (stubs / name).write_text(text)
        path.append(str(stubs))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", RELEASE_SCRIPT, database_url, str(laptop_file)],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_release_laptop_and_central_upgraded_lose_nothing_and_sync_the_rest_once(
        tmp_path, empty_url):
    laptop_file = tmp_path / "laptop.sqlite"
    made = run_release(release_tree(tmp_path / "release"), empty_url, laptop_file)
    synced, pending = made["synced"], made["pending"]
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        assert {r["id"] for r in conn.execute("SELECT id FROM lap")} == set(synced)
        before = {r["id"]: r for r in conn.execute("SELECT * FROM lap").fetchall()}

    central = create_central({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": empty_url})
    upgraded = central.test_cli_runner().invoke(args=["init-db"])  # today's init-db
    assert upgraded.exit_code == 0 and "Applied migration 0001" in upgraded.output
    with psycopg.connect(empty_url, autocommit=True) as conn:  # the review tables filled
        assert derived.stored(conn) == derived.reference(conn)
        assert len(derived.stored(conn)["last"]) >= 1
    laptop = create_laptop({"TESTING": True, "SECRET_KEY": "test", "DATABASE": str(laptop_file)})
    initialised = laptop.test_cli_runner().invoke(args=["init-db"])  # at start already, and again
    assert f"schema version {laptop_migrate.latest()}" in initialised.output
    db = connect(laptop_file)
    assert laptop_migrate.version(db.conn) == laptop_migrate.latest()
    assert db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone()[0] == 6  # 3 laps, 2 voids, a runner
    try:
        with served(central) as url:
            first = sync_once(db, Central(url, made["token"]))
            again = sync_once(db, Central(url, made["token"]))
    finally:
        close_pool(central)
    assert first.error is None and first.pushed == 6 and first.rejected == 0
    assert again.error is None and again.pushed == 0

    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        assert central_migrate.version(conn) == central_migrate.latest()
        laps = Counter(r["id"] for r in conn.execute("SELECT id FROM lap"))
        assert laps == Counter(synced + pending)  # every lap, each exactly once
        kept = {r["id"]: r for r in conn.execute("SELECT * FROM lap").fetchall() if r["id"] in before}
        assert all(kept[i][k] == v for i in before for k, v in before[i].items())
        voids = {r["lap_id"]: r["voided"] for r in conn.execute("SELECT lap_id, voided FROM lap_void")}
        assert voids == {synced[0]: False, synced[1]: True}
        counting = conn.execute("SELECT sum(laps) AS n FROM runner_total").fetchone()["n"]
        assert counting == len(synced) + len(pending) - 1
        device = conn.execute("SELECT last_seq, laptop_id FROM device").fetchone()
        assert device["last_seq"] == made["seq"]
        late = conn.execute("SELECT start_number, created_on FROM runner WHERE id = %s",
                            [made["late"]]).fetchone()
        assert late == {"start_number": 40, "created_on": device["laptop_id"]}
        assert derived.stored(conn) == derived.reference(conn)
    assert db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM rejected_change").fetchone()[0] == 0
    own = db.execute("SELECT count(*) FROM lap WHERE voided_at IS NULL").fetchone()[0]
    assert own == counting  # the laptop and central agree
    db.close()

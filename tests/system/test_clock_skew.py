"""Clocks are bounded, end to end: a laptop process whose clock is a year ahead (libfaketime)
and a hostile device pushing the clock's last stamp wedge nobody.

Central runs on a real loopback port on a real PostgreSQL; laptop A is a real process
under libfaketime (LD_PRELOAD, FAKETIME=+8772h: its whole wall clock is 365.5 days ahead);
laptop B and central's admin work with true clocks. A's edit is refused (it would win
for a year), a later edit made at central wins on every node, A itself included, and
A's laps still count everywhere.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from lapsync import hlc
from lapsync.ids import new_id
from lapsync.laptop import create_app as create_laptop
from lapsync.laptop.client.pull import other_laps
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import connect
from sync import roster
from sync.db import now_ms
from sync.devices import register_device
from sync.users import create_user
from tests.pg import snapshot
from tests.system.test_integration import fresh_laptop_file

ROOT = Path(__file__).resolve().parents[2]
FAR = "9999999999999.9999"
YEAR_MS = 365 * 86_400_000
# Laptop A's work, as its own process: sync, then (with an argument) rename runner 17 and
# count a lap for it as central's teacher helga, and sync again; print what it then holds.
LAPTOP_A = """
import json, sys
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import connect, get_meta, now_ms
from lapsync.laptop.laps import record_lap
from lapsync.laptop.runners import update_runner
db = connect(sys.argv[1])
central = Central(sys.argv[2], sys.argv[3], 2, 10)
results = [sync_once(db, central, force=True)]
if len(sys.argv) > 4:
    runner_id = db.execute("SELECT id FROM runner WHERE start_number = 17").fetchone()[0]
    update_runner(db, runner_id, 17, sys.argv[4], "6b", 6)
    helper = db.execute("SELECT id FROM user WHERE name = 'helga'").fetchone()[0]
    record_lap(db, 17, helper, 0)
    results.append(sync_once(db, central, force=True))
name, stamp = db.execute("SELECT name, hlc FROM runner WHERE start_number = 17").fetchone()
print(json.dumps({"errors": [r.error and r.error.message for r in results],
                  "rejected": [r.rejected for r in results], "name": name, "hlc": stamp,
                  "clock": get_meta(db, "hlc"), "now": now_ms()}))
"""


def faketime_library() -> str:
    """Return libfaketime's multi-threaded library (Debian package faketime)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
                   + glob.glob("/usr/lib/faketime/libfaketimeMT.so.1"))
    assert found, "libfaketime is missing: apt-get install faketime"
    return found[0]


def run_a(path: Path, url: str, token: str, *rename: str) -> dict:
    """Run laptop A's work as a process whose clock is a year ahead; return what it printed."""
    env = {**os.environ, "LD_PRELOAD": faketime_library(), "FAKETIME": "+8772h",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    done = subprocess.run([sys.executable, "-c", LAPTOP_A, str(path), url, token, *rename],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def central_clock(conn) -> str:
    """Return central's stored clock."""
    return conn.execute("SELECT value FROM meta WHERE key = 'hlc'").fetchone()["value"]


@pytest.fixture
def runner_17(central_app, central_db) -> str:
    """Runner 17 of central's roster and central's teacher helga; return the runner's id."""
    with central_app.app_context():
        create_user(central_db, "helga", "teacher", "helga-password")
        return roster.add_runner(central_db, 17, "Cleo Dahl", "6b", 6)["id"]


def test_a_laptop_a_year_ahead_wins_nothing_and_a_far_future_push_wedges_nobody(
        live_central, central_app, central_db, users_template, tmp_path, runner_17):
    tokens = {name: register_device(central_db, name) for name in ("laptop-a", "laptop-b", "mallory")}
    path_a = fresh_laptop_file(users_template, tmp_path / "a.sqlite")
    b = connect(fresh_laptop_file(users_template, tmp_path / "b.sqlite"))
    to_b = Central(live_central, tokens["laptop-b"], 2, 10)
    assert sync_once(b, to_b, force=True).error is None

    a = run_a(path_a, live_central, tokens["laptop-a"], "Cleo Year-Ahead")
    assert a["now"] - now_ms() > YEAR_MS - 86_400_000                  # its clock: a year ahead
    assert a["errors"] == [None, None] and a["rejected"][1] == 1       # refused, not wedged
    assert a["name"] == "Cleo Year-Ahead" and a["hlc"] == hlc.ZERO     # central's version wins next
    stored = central_db.execute("SELECT name, hlc FROM runner WHERE id = %s", [runner_17]).fetchone()
    assert stored["name"] == "Cleo Dahl"
    refused = central_db.execute("SELECT error, message FROM rejected_change "
                                 "WHERE entity = 'runner'").fetchone()
    assert refused["error"] == "clock_ahead" and "lies 365 days ahead" in refused["message"]
    assert central_db.execute("SELECT laps FROM runner_total WHERE runner_id = %s",
                              [runner_17]).fetchone()["laps"] == 1  # A's lap counts
    assert not hlc.too_far_ahead(central_clock(central_db), now_ms(), hlc.MAX_AHEAD_S * 1000)

    # A hostile device pushes the clock's last stamp: a runner edit and a lap restore.
    before = snapshot(central_db)
    lap = central_db.execute("SELECT id FROM lap").fetchone()["id"]
    mallory = new_id()
    body = {"protocol": 1, "device_id": mallory, "device_time": now_ms(), "changes": [
        {"seq": 1, "entity": "runner", "id": runner_17, "data": {
            "id": runner_17, "start_number": 17, "name": "Mallory", "class": "6b", "grade": 6,
            "hlc": FAR, "origin": mallory}},
        {"seq": 2, "entity": "lap_void", "id": lap, "data": {
            "lap_id": lap, "voided": False, "at": now_ms(), "by": mallory, "reason": None,
            "hlc": FAR, "origin": mallory}}]}
    answer = requests.post(f"{live_central}/api/v1/push", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {tokens['mallory']}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["acked_seq"] == 2
    assert [(r["seq"], r["error"]) for r in answer.json()["rejected"]] == [
        (1, "clock_ahead"), (2, "clock_ahead")]
    after = snapshot(central_db)
    assert {t: after[t] for t in ("runner", "lap_void", "meta", "runner_total")} == \
        {t: before[t] for t in ("runner", "lap_void", "meta", "runner_total")}

    # A later edit at central wins on every node, the laptop a year ahead included.
    version = central_db.execute("SELECT change_id FROM runner WHERE id = %s",
                                 [runner_17]).fetchone()["change_id"]
    with central_app.app_context():
        roster.edit_runner(central_db, runner_17, version, 17, "Cleo Dahl-Berg", "6b", 6)
    assert sync_once(b, to_b, force=True).error is None
    assert b.execute("SELECT name FROM runner WHERE id = ?", [runner_17]).fetchone()[0] == \
        "Cleo Dahl-Berg"
    assert other_laps(b, runner_17) == 1                               # A's lap, on B
    a = run_a(path_a, live_central, tokens["laptop-a"])
    assert a["errors"] == [None] and a["name"] == "Cleo Dahl-Berg"
    b.close()

    # A's helper sees why: the refused edit and how far ahead its clock is.
    app_a = create_laptop({"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(path_a)})
    status = app_a.test_cli_runner().invoke(args=["sync-status"]).output
    assert f"runner {runner_17}: clock_ahead Refused: the stamp" in status
    assert "clock:         this laptop's clock is 365 days ahead of central's" in status

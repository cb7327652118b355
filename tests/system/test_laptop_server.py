"""The laptop app as served at the track: waitress in its own process, its background sync
running beside it, against a live central on a real PostgreSQL.

Laps are written straight into the laptop's SQLite file by this test process, so no
request to the laptop app nudges a sync: only the background loop can carry them. The
clock test runs the laptop process under libfaketime with its wall clock read from a
file (FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE=1) and moves that clock an hour back,
then two hours forward, mid-run; the monotonic clock stays real.
"""
from __future__ import annotations

import os
import signal
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from lapsync.laptop.db import connect
from lapsync.laptop.laps import record_lap
from lapsync.laptop.runners import add_runner
from tests.pg import HELPER, register
from tests.system.test_clock_skew import faketime_library
from tests.system.test_integration import fresh_laptop_file

ROOT = Path(__file__).resolve().parents[2]
INTERVAL_S = 2
SERVING = re.compile(r"serving on (http://127\.0\.0\.1:\d+/)")
PASSWORD = "correct-horse"  # tests/conftest.py's users_template


class LaptopServer:
    """`python -m lapsync.laptop --port 0` on a database file, connected to central."""

    def __init__(self, tmp_path: Path, database: Path, central: str, token: str,
                 clock_file: Path | None = None, **extra: str):
        self.log_path = tmp_path / "server.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "LAPSYNC_"))}
        env.update(LAPSYNC_DATABASE=str(database), LAPSYNC_CENTRAL_URL=central,
                   LAPSYNC_CENTRAL_TOKEN=token, LAPSYNC_SYNC_INTERVAL=str(INTERVAL_S),
                   LAPSYNC_INSTANCE_CONFIG_FILE=str(tmp_path / "config.py"),
                   LAPSYNC_LOG_DIR=str(tmp_path / "logs"), FLASK_SECRET_KEY="laptop-server-test",
                   **extra)
        if clock_file is not None:
            env.update(LD_PRELOAD=faketime_library(), FAKETIME_TIMESTAMP_FILE=str(clock_file),
                       FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "lapsync.laptop", "--port", "0"],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.url = self.wait_url()

    def output(self) -> str:
        """Return what the server printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_url(self, timeout: float = 30.0) -> str:
        """Wait for the line naming the bound port; return the app's URL."""
        deadline = time.monotonic() + timeout
        while not (found := SERVING.search(self.output())):
            assert self.proc.poll() is None, f"server exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"no URL in {timeout} s:\n{self.output()}"
            time.sleep(0.05)
        return found.group(1)

    def stop(self) -> None:
        """Stop the server (Ctrl+C's clean stop first)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for(predicate, timeout: float) -> float | None:
    """Poll predicate until true; return the seconds it took, None if it never was."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def last_seq(central_db, token_device: str) -> int:
    """Return the outbox seq central has applied for a device."""
    return central_db.execute("SELECT last_seq FROM device WHERE name = %s",
                              [token_device]).fetchone()["last_seq"]


def outbox_top(path: Path) -> int:
    """Return the laptop's newest outbox seq, read from its file."""
    db = connect(path)
    try:
        return db.execute("SELECT coalesce(max(seq), 0) FROM change").fetchone()[0]
    finally:
        db.close()


def laptop_clock_offset_s(path: Path) -> float:
    """Return how far the laptop process's clock was from true time at its last success."""
    db = connect(path)
    try:
        stamp = int(db.execute("SELECT value FROM meta WHERE key = 'last_success_ms'").fetchone()[0])
    finally:
        db.close()
    return stamp / 1000 - time.time()


def knows_helper(path: Path) -> bool:
    """Tell whether the laptop has pulled central's teacher HELPER (its first sync ran)."""
    db = connect(path)
    try:
        return db.execute("SELECT 1 FROM user WHERE id = ?", [HELPER]).fetchone() is not None
    finally:
        db.close()


def write_lap(path: Path, number: int) -> str:
    """Record a lap of runner NUMBER (made here if new) by HELPER straight into the file."""
    db = connect(path)
    try:
        if db.execute("SELECT 1 FROM runner WHERE start_number = ?", [number]).fetchone() is None:
            add_runner(db, number, f"Runner {number}", "5a", 5)
        return record_lap(db, number, HELPER, 0)["lap"]["id"]
    finally:
        db.close()


@pytest.fixture
def laptop_file(users_template, tmp_path) -> Path:
    """A fresh laptop database with ada, tom and vic."""
    return fresh_laptop_file(users_template, tmp_path / "laptop.sqlite")


def test_waitress_serves_the_app_and_its_background_sync_carries_a_lap_to_central(
        live_central, central_db, laptop_file, tmp_path):
    token = register(central_db, "track-1")
    server = LaptopServer(tmp_path, laptop_file, live_central, token)
    try:
        http = requests.Session()
        http.trust_env = False
        login = http.get(server.url + "login", timeout=10)
        assert login.status_code == 200 and 'name="password"' in login.text
        assert "Werkzeug" not in login.headers.get("Server", "")  # waitress, not the dev server
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', login.text).group(1)
        assert http.post(server.url + "login", data={"name": "tom", "password": PASSWORD,
                                                     "csrf_token": csrf},
                         allow_redirects=False, timeout=10).status_code == 302

        assert wait_for(lambda: knows_helper(laptop_file), 15) is not None, server.output()
        lap = write_lap(laptop_file, 17)  # no request: only the background loop can push it
        took = wait_for(lambda: central_db.execute("SELECT 1 FROM lap WHERE id = %s",
                                                   [lap]).fetchone() is not None, 2 * INTERVAL_S + 1)
        assert took is not None, f"lap never reached central:\n{server.output()}"
    finally:
        server.stop()
    logged = (tmp_path / "logs" / "laptop.log").read_text(encoding="utf-8")
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO .*background sync: started",
                     logged, re.MULTILINE), logged


def test_a_clock_set_back_or_forward_an_hour_keeps_the_sync_pace(
        live_central, central_db, laptop_file, tmp_path):
    """Regression: APScheduler's interval trigger followed the wall clock, so a clock set
    back stopped the background sync until the clock caught up again."""
    token = register(central_db, "track-1")
    clock = tmp_path / "clock"
    clock.write_text("+0\n")
    server = LaptopServer(tmp_path, laptop_file, live_central, token, clock_file=clock)
    try:
        assert wait_for(lambda: knows_helper(laptop_file), 15) is not None, server.output()
        # now, an hour back, then an hour ahead of true time
        for offset, hours in (("+0", 0), ("-1h", -1), ("+1h", 1)):
            clock.write_text(offset + "\n")
            time.sleep(INTERVAL_S + 0.5)  # a tick due before the jump is spent: the next comes after
            write_lap(laptop_file, 17)
            top = outbox_top(laptop_file)
            took = wait_for(lambda: last_seq(central_db, "track-1") >= top, 2 * INTERVAL_S)
            assert took is not None, f"no push within two intervals at clock {offset}:\n{server.output()}"
            # the laptop's own clock really was moved (it stamps its last success with it)
            assert wait_for(lambda: abs(laptop_clock_offset_s(laptop_file) - hours * 3600) < 60, 5), \
                laptop_clock_offset_s(laptop_file)
    finally:
        server.stop()


def test_a_server_on_a_port_already_taken_exits_with_a_message_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "LAPSYNC_"))}
    env.update(LAPSYNC_DATABASE=str(tmp_path / "laptop.sqlite"),
               LAPSYNC_INSTANCE_CONFIG_FILE=str(tmp_path / "config.py"),
               LAPSYNC_LOG_DIR=str(tmp_path / "logs"), FLASK_SECRET_KEY="laptop-server-test")
    with socket.socket() as taken:  # another program (or the app itself) holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "lapsync.laptop", "--port", str(port)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert (f"Error: cannot listen on 127.0.0.1:{port}: Address already in use. Is the laptop "
            "app already running there? Stop it, or start this one with another --port.") \
        in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize("sync", ["true", "false"])
def test_sigterm_stops_the_server_as_ctrl_c_does_with_a_backup_at_shutdown(laptop_file,
                                                                             tmp_path, sync):
    """Also with the background sync turned off: backups are not part of the sync."""
    server = LaptopServer(tmp_path, laptop_file, "http://127.0.0.1:9", "unused-token",
                          LAPSYNC_SYNC_ENABLED=sync)
    backups = laptop_file.parent / "backups"
    try:
        db = connect(laptop_file)
        try:                                        # a lap typed while it serves, no snapshot yet
            add_runner(db, 7, "Runner 7", "5a", 5)
            tom = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
            lap_id = record_lap(db, 7, tom, 0)["lap"]["id"]
        finally:
            db.close()
        time.sleep(1)                               # the sync thread has started by now
        server.proc.send_signal(signal.SIGTERM)     # as dev.py, systemd and kill stop it
        assert server.proc.wait(15) == 0, server.output()
    finally:
        server.stop()
    newest = max(backups.glob("*.sqlite"))
    db = connect(newest)
    try:
        assert db.execute("SELECT count(*) FROM lap WHERE id = ?", [lap_id]).fetchone()[0] == 1
    finally:
        db.close()
    logs = tmp_path / "logs"                        # names devices, users and errors: owner-only
    assert (logs.stat().st_mode & 0o777, (logs / "laptop.log").stat().st_mode & 0o777) == (0o700, 0o600)

"""Durability: a lap confirmed to the helper survives SIGKILL of the real app process.

Each test runs the laptop app as its own process (create_app() configured only
through the environment, as in production), talks to it over real HTTP on
loopback, kills it with SIGKILL and starts it again on the same SQLite file.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

from lapsync.auth import create_user
from lapsync.db import connect, init_schema
from lapsync.runners import add_runner

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse"
JSON = {"Accept": "application/json"}
# The smallest real server: the production app factory behind werkzeug. It binds
# a free port itself (no race with other processes) and writes it to a file.
SERVER = ("import os, sys\n"
          "from werkzeug.serving import make_server\n"
          "from lapsync import create_app\n"
          "server = make_server('127.0.0.1', 0, create_app(), threaded=True)\n"
          "open(sys.argv[1] + '.tmp', 'w').write(str(server.server_port))\n"
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "server.serve_forever()\n")


class AppProcess:
    """The laptop app as a separate process on a given database file."""

    def __init__(self, database: Path, log: Path):
        self.database, self.log_path = database, log
        self.port_file = log.with_suffix(".port")
        self.port, self.url = 0, ""
        env = {**os.environ, "LAPSYNC_DATABASE": str(database), "LAPSYNC_MIN_LAP_SECONDS": "60",
               "FLASK_SECRET_KEY": "durability-test-secret"}
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.port_file)], cwd=ROOT,
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "AppProcess":
        self.wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll until the app has bound its port and accepts connections; fail if it died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"app process exited {self.proc.returncode}:\n{self.output()}")
            if self.port or self.port_file.exists():
                self.port = self.port or int(self.port_file.read_text())
                self.url = f"http://127.0.0.1:{self.port}"
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"app not listening after {timeout} s:\n{self.output()}")

    def kill(self) -> int:
        """Send SIGKILL (no shutdown code runs) and reap the process."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        self.log.close()
        return code

    def output(self) -> str:
        """Return what the process printed so far."""
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]


def prepare_database(tmp_path: Path, runners: int) -> Path:
    """Create a laptop database file with a teacher and runners 1..N via the domain functions."""
    path = tmp_path / "laptop.sqlite"
    db = connect(path)
    init_schema(db)
    create_user(db, "tom", "teacher", PASSWORD)
    for number in range(1, runners + 1):
        add_runner(db, number, f"Runner {number}", "5a", 5)
    db.close()
    return path


def page_csrf(html: str) -> str:
    """Return the CSRF token from a page's meta tag."""
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def login(url: str) -> requests.Session:
    """Log in as the teacher through the real form; the session carries the CSRF header."""
    session = requests.Session()
    token = page_csrf(session.get(f"{url}/login", timeout=10).text)
    response = session.post(f"{url}/login", data={"name": "tom", "password": PASSWORD,
                                                  "csrf_token": token},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    session.headers["X-CSRFToken"] = page_csrf(session.get(f"{url}/", timeout=10).text)
    return session


def post_lap(session: requests.Session, url: str, number: str, **extra) -> requests.Response:
    """Post one start number the way the page's script does."""
    data = {"start_number": number, "client_key": uuid.uuid4().hex, **extra}
    return session.post(f"{url}/laps", data=data, headers=JSON, timeout=10)


def stored_lap(path: Path, lap_id: str) -> tuple[dict | None, list[dict]]:
    """Return a lap row and its outbox changes, read straight from the file."""
    db = connect(path)
    try:
        laps = list(db.query("SELECT * FROM lap WHERE id = ?", [lap_id]))
        changes = list(db.query("SELECT * FROM change WHERE entity = 'lap' AND entity_id = ?",
                                [lap_id]))
    finally:
        db.close()
    return (laps[0] if laps else None), changes


def test_lap_confirmed_right_before_sigkill_is_there_after_restart(tmp_path):
    path = prepare_database(tmp_path, runners=1)
    app = AppProcess(path, tmp_path / "first.log")
    try:
        app.wait_ready()
        session = login(app.url)
        response = post_lap(session, app.url, "1")
        if response.status_code == 201:
            assert app.kill() == -signal.SIGKILL  # the moment the helper saw the confirmation
    finally:
        app.kill()
    assert response.status_code == 201, response.text
    lap_id = response.json()["lap"]["id"]

    with AppProcess(path, tmp_path / "second.log") as restarted:
        session = login(restarted.url)
        assert f'data-lap="{lap_id}"' in session.get(f"{restarted.url}/", timeout=10).text
        again = post_lap(session, restarted.url, "1")
        assert again.status_code == 409 and again.json()["error"] == "too_soon"  # it counts
        confirmed = post_lap(session, restarted.url, "1", confirm="1")
        assert confirmed.status_code == 201 and confirmed.json()["count"] == 2

    lap, changes = stored_lap(path, lap_id)
    assert lap is not None and lap["voided_at"] is None
    assert len(changes) == 1 and json.loads(changes[0]["payload"])["id"] == lap_id


def run_burst(session: requests.Session, url: str, numbers: list[str], kill_after: int,
              reached: threading.Event, confirmed: list[str], outcome: dict) -> None:
    """Post laps one after another until the server dies; note each confirmed lap id."""
    try:
        for number in numbers:
            outcome["attempted"] += 1
            try:
                response = post_lap(session, url, number, confirm="1")
            except requests.RequestException as exc:
                outcome["cut"] = repr(exc)
                return
            if response.status_code in (200, 201):
                confirmed.append(response.json()["lap"]["id"])
            else:
                outcome.setdefault("unexpected", []).append((response.status_code, response.text))
            if len(confirmed) == kill_after:
                reached.set()
    finally:
        reached.set()


def test_every_confirmed_lap_of_a_burst_survives_sigkill(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = prepare_database(tmp_path, runners=10)
    numbers = [str(1 + i % 10) for i in range(50)]
    kill_after, delay = rng.randint(1, 30), rng.uniform(0, 0.003)
    confirmed: list[str] = []
    outcome: dict = {"attempted": 0}
    reached = threading.Event()
    app = AppProcess(path, tmp_path / "burst.log")
    try:
        app.wait_ready()
        session = login(app.url)
        thread = threading.Thread(target=run_burst, daemon=True, args=(
            session, app.url, numbers, kill_after, reached, confirmed, outcome))
        thread.start()
        assert reached.wait(60), "the burst never got going"
        time.sleep(delay)  # a random moment inside the burst
        assert app.kill() == -signal.SIGKILL
        thread.join(30)
    finally:
        app.kill()
    note = f"seed={seed} kill_after={kill_after} delay={delay:.4f}s outcome={outcome}"
    assert "unexpected" not in outcome, note
    assert "cut" in outcome and len(confirmed) < len(numbers), "kill missed the burst: " + note
    assert len(confirmed) >= kill_after, note

    with AppProcess(path, tmp_path / "restarted.log") as restarted:
        session = login(restarted.url)
        after = post_lap(session, restarted.url, "1", confirm="1")
        assert after.status_code == 201, after.text

    db = connect(path)
    try:
        stored = {row["id"]: row for row in db.query("SELECT * FROM lap")}
        seqs = {row["entity_id"]: row["seq"]
                for row in db.query("SELECT entity_id, seq FROM change WHERE entity = 'lap'")}
    finally:
        db.close()
    lost = [lap_id for lap_id in confirmed if lap_id not in stored]
    assert lost == [], f"confirmed laps lost: {lost}; {note}"
    assert all(stored[lap_id]["voided_at"] is None for lap_id in confirmed), note
    assert [seqs[lap_id] for lap_id in confirmed] == sorted(seqs[lap_id] for lap_id in confirmed)
    # Nothing appears that was never sent: at most the attempted laps, plus the one after restart.
    assert len(confirmed) + 1 <= len(stored) <= outcome["attempted"] + 1, note
    assert after.json()["count"] == sum(
        1 for row in stored.values() if row["runner_id"] == after.json()["runner"]["id"]), note

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

import pytest
import requests

from lapsync.laptop import create_app
from lapsync.laptop.auth import create_user
from lapsync.laptop.db import connect, get_db, init_schema
from lapsync.laptop.runners import add_runner

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse"
JSON = {"Accept": "application/json"}
# The smallest real server: the production app factory behind werkzeug. It binds
# a free port itself (no race with other processes) and writes it to a file.
SERVER = ("import os, sys\n"
          "from werkzeug.serving import make_server\n"
          "from lapsync.laptop import create_app\n"
          "app = create_app()\n"
          "print('synchronous=' + app.config['SQLITE_SYNCHRONOUS'], flush=True)\n"
          "server = make_server('127.0.0.1', 0, app, threaded=True)\n"
          "open(sys.argv[1] + '.tmp', 'w').write(str(server.server_port))\n"
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "server.serve_forever()\n")


class AppProcess:
    """The laptop app as a separate process on a given database file."""

    def __init__(self, database: Path, log: Path, synchronous: str = "FULL"):
        self.database, self.log_path = database, log
        self.port_file = log.with_suffix(".port")
        self.port, self.url = 0, ""
        env = {**os.environ, "LAPSYNC_DATABASE": str(database), "LAPSYNC_MIN_LAP_SECONDS": "60",
               "FLASK_SECRET_KEY": "durability-test-secret",
               "LAPSYNC_SQLITE_SYNCHRONOUS": synchronous}
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


class Burst:
    """Several helpers posting laps at once, each from its own logged-in session."""

    def __init__(self, url: str, helpers: int, laps_each: int, kill_after: int):
        self.url, self.kill_after = url, kill_after
        self.sessions = [login(url) for _ in range(helpers)]
        self.numbers = [[str(1 + (h * laps_each + i) % RUNNERS) for i in range(laps_each)]
                        for h in range(helpers)]
        self.lock = threading.Lock()
        self.confirmed: list[list[str]] = [[] for _ in range(helpers)]  # lap ids per helper
        self.attempted, self.cut, self.unexpected = 0, [], []
        self.reached = threading.Event()
        self.threads = [threading.Thread(target=self.helper, args=(h,), daemon=True)
                        for h in range(helpers)]

    def start(self) -> None:
        """Start every helper thread."""
        for thread in self.threads:
            thread.start()

    def helper(self, h: int) -> None:
        """Post this helper's laps one after another until the server dies."""
        try:
            for number in self.numbers[h]:
                with self.lock:
                    self.attempted += 1
                try:
                    response = post_lap(self.sessions[h], self.url, number, confirm="1")
                except requests.RequestException as exc:
                    with self.lock:
                        self.cut.append(repr(exc))
                    return
                with self.lock:
                    if response.status_code in (200, 201):
                        self.confirmed[h].append(response.json()["lap"]["id"])
                    else:
                        self.unexpected.append((response.status_code, response.text[:200]))
                    if self.total() >= self.kill_after:
                        self.reached.set()
        finally:
            self.reached.set()

    def total(self) -> int:
        """Return how many laps were confirmed so far."""
        return sum(len(ids) for ids in self.confirmed)

    def join(self) -> None:
        """Wait for every helper thread to end."""
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive(), "a helper hung after the kill"


RUNNERS = 40


def stored_laps(path: Path) -> tuple[dict, dict]:
    """Return {lap id: lap row} and {lap id: [outbox rows]} read straight from the file."""
    db = connect(path)
    try:
        laps = {row["id"]: row for row in db.query("SELECT * FROM lap")}
        changes: dict = {}
        for row in db.query("SELECT * FROM change WHERE entity = 'lap' ORDER BY seq"):
            changes.setdefault(row["entity_id"], []).append(row)
    finally:
        db.close()
    return laps, changes


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_every_confirmed_lap_of_a_concurrent_burst_survives_sigkill(tmp_path, synchronous):
    """SIGKILL while four helpers post at once: every 2xx lap and its outbox change survive.

    NORMAL too: a process kill leaves the WAL in the OS page cache, so only a
    power cut or OS crash can take back commits under NORMAL (bench_durability.py).
    """
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = prepare_database(tmp_path, runners=RUNNERS)
    kill_after, delay = rng.randint(8, 40), rng.uniform(0, 0.003)
    app = AppProcess(path, tmp_path / "burst.log", synchronous)
    try:
        app.wait_ready()
        assert f"synchronous={synchronous}" in app.output(), app.output()
        burst = Burst(app.url, helpers=4, laps_each=50, kill_after=kill_after)
        burst.start()
        assert burst.reached.wait(60), "the burst never got going"
        time.sleep(delay)  # a random moment inside the burst
        killed_at = [len(ids) for ids in burst.confirmed]
        assert app.kill() == -signal.SIGKILL
        burst.join()
    finally:
        app.kill()
    confirmed = [lap_id for ids in burst.confirmed for lap_id in ids]
    note = (f"seed={seed} synchronous={synchronous} kill_after={kill_after} delay={delay:.4f}s "
            f"per helper at kill={killed_at} attempted={burst.attempted} cut={burst.cut[:1]}")
    assert burst.unexpected == [], note
    assert len(burst.cut) == 4 and len(confirmed) < 200, "kill missed the burst: " + note
    assert sum(1 for n in killed_at if n) >= 2, "helpers did not post concurrently: " + note
    assert len(confirmed) >= kill_after, note

    with AppProcess(path, tmp_path / "restarted.log", synchronous) as restarted:
        session = login(restarted.url)
        after = post_lap(session, restarted.url, "1", confirm="1")
        assert after.status_code == 201, after.text

    stored, changes = stored_laps(path)
    lost = [lap_id for lap_id in confirmed if lap_id not in stored]
    assert lost == [], f"confirmed laps lost: {lost}; {note}"
    for lap_id in confirmed:  # each with exactly one outbox change carrying it, unpushed
        assert [json.loads(c["payload"])["id"] for c in changes.get(lap_id, [])] == [lap_id], note
        assert changes[lap_id][0]["pushed_at"] is None and stored[lap_id]["voided_at"] is None, note
    for ids in burst.confirmed:  # one helper's laps were committed in the order confirmed
        seqs = [changes[lap_id][0]["seq"] for lap_id in ids]
        assert seqs == sorted(seqs), note
    # Nothing appears that was never sent: at most the attempted laps, plus the one after restart.
    assert len(confirmed) + 1 <= len(stored) <= burst.attempted + 1, note
    assert set(stored) == set(changes), "a lap without its outbox change or the reverse: " + note
    assert after.json()["count"] == sum(
        1 for row in stored.values() if row["runner_id"] == after.json()["runner"]["id"]), note


def synchronous_of(app) -> int:
    """Return PRAGMA synchronous of the connection a request gets (0 OFF .. 3 EXTRA)."""
    with app.test_request_context("/"):
        return get_db().execute("PRAGMA synchronous").fetchone()[0]


@pytest.mark.parametrize("setting, expected", [(None, 2), ("FULL", 2), ("normal", 1),
                                               (" Extra ", 3)])
def test_sqlite_synchronous_setting_reaches_request_connections(tmp_path, setting, expected):
    config = {"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(tmp_path / "l.sqlite")}
    if setting is not None:
        config["SQLITE_SYNCHRONOUS"] = setting
    app = create_app(config)
    assert synchronous_of(app) == expected
    assert app.config["SQLITE_SYNCHRONOUS"] == {1: "NORMAL", 2: "FULL", 3: "EXTRA"}[expected]


@pytest.mark.parametrize("setting", ["OFF", "0", "FULL; DROP TABLE lap", "fast"])
def test_sqlite_synchronous_refuses_unsafe_or_unknown_values_at_start(tmp_path, setting):
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS must be one of FULL, EXTRA, NORMAL"):
        create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(tmp_path / "l.sqlite"),
                    "SQLITE_SYNCHRONOUS": setting})
    with pytest.raises(ValueError):
        connect(tmp_path / "other.sqlite", setting)

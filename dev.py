#!/usr/bin/env python3
"""Set up and run lapsync, or its test suite, on a machine with only Python 3.

    python3 dev.py run     virtualenv, requirements, databases, admin, device; start
                           central (embedded PostgreSQL) and one laptop connected to it
    python3 dev.py run --laptop   only the laptop app (offline; its own local admin)
    python3 dev.py test    virtualenv, test requirements, Chromium, faketime; run pytest
    python3 dev.py mutate  virtualenv, test requirements; mutation score of the core modules
    python3 dev.py lock    regenerate the locks with hashes (pip-compile) after editing requirements*.txt

Standard library only: this file runs before anything is installed.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = VENV_BIN / "python"
CHROMIUM = Path("/usr/bin/chromium")
HOST = "127.0.0.1"
ADMIN = "admin"
DEVICE_PREFIX = "laptop-"
READY_TIMEOUT_S = 60.0
CENTRAL_WORKERS = 2
# What each command installs: a lock with hashes (pip-compile --generate-hashes) of
# the file of the same name ending in .txt; the laptop alone needs no PostgreSQL.
LAPTOP_LOCK, CENTRAL_LOCK, DEV_LOCK = "requirements.lock", "requirements-central.lock", \
    "requirements-dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^]]*\])?==(\S+)", re.MULTILINE)

def required_python(pyproject: Path = ROOT / "pyproject.toml") -> tuple[int, int]:
    """Return the oldest Python lapsync supports (pyproject's requires-python ">=X.Y")."""
    found = re.search(r'^requires-python\s*=\s*">=(\d+)\.(\d+)"', pyproject.read_text(encoding="utf-8"),
                      re.MULTILINE)
    return (int(found.group(1)), int(found.group(2))) if found else (3, 11)


def check_python(version: tuple = tuple(sys.version_info[:2])) -> None:
    """Stop with a clear message on a Python older than lapsync supports."""
    needed = required_python()
    if tuple(version) < needed:
        sys.exit(f"dev.py: lapsync needs Python {needed[0]}.{needed[1]} or newer; this is "
                 f"{version[0]}.{version[1]} ({sys.executable}).\n"
                 f"Install a newer Python (python.org, or your system's package) and run dev.py "
                 f"with it, e.g. `python3.{needed[1]} dev.py ...` (Windows: `py -3.{needed[1]} dev.py ...`).")


def say(message: str) -> None:
    """Print a progress line that stands out from pip's and Flask's output."""
    print(f"==> {message}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command in the repository root; stop dev.py if it fails."""
    result = subprocess.run(cmd, cwd=ROOT, **kwargs)
    if result.returncode != 0:
        if kwargs.get("capture_output"):
            sys.stderr.write((result.stdout or "") + (result.stderr or ""))
        sys.exit(f"dev.py: command failed ({result.returncode}): {' '.join(map(str, cmd))}")
    return result


def ensure_venv() -> None:
    """Create .venv with this Python unless it exists already."""
    if PYTHON.exists():
        return
    say(f"creating virtualenv {VENV}")
    result = subprocess.run([sys.executable, "-m", "venv", str(VENV)], cwd=ROOT)
    if result.returncode != 0 or not PYTHON.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        sys.exit("dev.py: could not create the virtualenv. On Debian/Ubuntu install it with:\n"
                 "    sudo apt-get install python3-venv")


def pins(path: Path) -> set[str]:
    """Return a lock file's pins as 'name==version' (names normalised, extras left out)."""
    text = path.read_text(encoding="utf-8")
    return {f"{re.sub(r'[-_.]+', '-', m.group(1)).lower()}=={m.group(3)}" for m in PIN.finditer(text)}


def file_hash(path: Path) -> str:
    """Return the sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stamp_file(lock: str) -> Path:
    """Return where the hash of the last install of a lock file is kept."""
    return VENV / f".{lock}.sha256"


def installed(lock: str) -> bool:
    """Tell whether a lock's pins are installed unchanged: by itself or by a lock that holds them all."""
    wanted = pins(ROOT / lock)
    for path in ROOT.glob("requirements*.lock"):
        stamp = stamp_file(path.name)
        if stamp.exists() and stamp.read_text(encoding="utf-8").strip() == file_hash(path) \
                and wanted <= pins(path):
            return True
    return False


def install(lock: str) -> None:
    """Install a lock file into .venv, every file checked against its hash; skipped when unchanged."""
    if installed(lock):
        say(f"{lock} unchanged since the last install")
        return
    say(f"installing {lock} (pinned, hash-checked)")
    path = ROOT / lock
    run([str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "--require-hashes",
         "-r", str(path)])
    stamp_file(lock).write_text(file_hash(path) + "\n", encoding="utf-8")


def flask(*args: str) -> list[str]:
    """Return the command line of a Flask CLI command on the laptop app."""
    return [str(PYTHON), "-m", "flask", "--app", "app", *args]


def central_flask(*args: str) -> list[str]:
    """Return the command line of a Flask CLI command on the central server."""
    return [str(PYTHON), "-m", "flask", "--app", "sync", *args]


def helper_env() -> dict:
    """Return the environment for helper commands: never a background sync there."""
    return {**os.environ, "LAPSYNC_SYNC_ENABLED": "false"}


# ---- what `run` finds, and what it has to do ------------------------------------

@dataclass
class Plan:
    """What `run` must do before starting the apps; empty on a second run."""

    create_admin: bool = False     # no `admin` at central nor on the laptop yet
    revoke: str | None = None      # a live device bound to this laptop whose token is lost
    register: str | None = None    # register a device under this name ...
    connect: bool = False          # ... and/or run `connect` (new token or new central URL)
    sync_now: bool = False         # pull the new admin now (the laptop is connected already)


def free_device_name(live: list[str]) -> str:
    """Return the first name laptop-1, laptop-2, ... that no live device has."""
    n = 1
    while f"{DEVICE_PREFIX}{n}" in live:
        n += 1
    return f"{DEVICE_PREFIX}{n}"


def decide(state: dict, central_url: str) -> Plan:
    """Decide what to create, from what exists (lapsync/devkit/run_state.py's answer)."""
    # An admin the laptop already has reaches central by push: no second one.
    create_admin = ADMIN not in state["central_users"] and ADMIN not in state["laptop_users"]
    device = state["device"]
    if device and device["live"] and device["laptop_id"] in (None, state["laptop_id"]):
        moved = state["central_url"] != central_url  # e.g. another --central-port
        return Plan(create_admin, connect=moved, sync_now=create_admin and not moved)
    # No usable token: a fresh laptop, a new central, or a lost config file. A live
    # device still bound to this laptop must be revoked first (one live token per
    # laptop); its successor keeps its name and carries on from its seqs.
    bound = state["bound_device"]
    return Plan(create_admin, revoke=bound, register=bound or free_device_name(state["live_devices"]),
                connect=True)


def admin_clash(state: dict) -> bool:
    """Tell whether central and the laptop each have a different user called admin."""
    central, laptop = state["central_users"].get(ADMIN), state["laptop_users"].get(ADMIN)
    return bool(central and laptop and central != laptop)


def read_state() -> dict:
    """Ask both databases what exists (admin users, this laptop's device)."""
    result = run([str(PYTHON), "-m", "lapsync.devkit.run_state"], env=helper_env(), capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def create_central_admin() -> str:
    """Create `admin` at central with a random password; return the password."""
    password = secrets.token_urlsafe(12)
    # Through click's FLASK_<COMMAND>_<OPTION> variable, so it never shows in `ps`.
    env = {**helper_env(), "FLASK_CREATE_USER_PASSWORD": password}
    run(central_flask("create-user", ADMIN, "--role", "admin"), env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True)
    return password


def register_device(name: str) -> str:
    """Register a device at central; return its token (the last line printed)."""
    # Trusted to manage users: this laptop's own `admin` may have to reach central by
    # push (decide()), and only such a device may create an admin there. Trusted with the
    # roster: the organiser's laptop edits runners central imported.
    result = run(central_flask("register-device", name, "--manage-users", "--manage-roster"),
                 env=helper_env(), capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


def connect_laptop(plan: Plan, state: dict, central_url: str) -> str:
    """Carry out the device part of the plan; return the laptop's device name."""
    if plan.revoke:
        say(f"revoking device {plan.revoke!r}: this laptop lost its token")
        run(central_flask("revoke-device", plan.revoke), env=helper_env())
    if plan.register:
        say(f"registering this laptop at central as device {plan.register!r}")
        token = register_device(plan.register)
        # In the environment, not the command line: other users of the machine see that in ps.
        run(flask("connect", central_url), env={**helper_env(), "LAPSYNC_TOKEN": token})
        return plan.register
    if plan.connect:
        say(f"central moved to {central_url}: connecting again with the stored token")
        run(flask("connect", central_url),
            env={**helper_env(), "LAPSYNC_TOKEN": read_laptop_token()})
    elif plan.sync_now:
        run(flask("sync"), env=helper_env())
    return state["device"]["name"]


def read_laptop_token() -> str:
    """Return the laptop's stored central token (instance config)."""
    script = ("from lapsync.laptop import create_app\n"
              "print(create_app().config['CENTRAL_TOKEN'])\n")
    return run([str(PYTHON), "-c", script], env=helper_env(), capture_output=True,
               text=True).stdout.strip().splitlines()[-1]


# ---- processes --------------------------------------------------------------------

def central_command(port: int, debug: bool = False) -> list[str]:
    """Return central's server command: gunicorn as in production (waitress on Windows)."""
    if debug:
        return central_flask("run", "--debug", "--host", HOST, "--port", str(port))
    if os.name == "nt":  # gunicorn needs fork
        return [str(PYTHON), "-m", "waitress", "--host", HOST, "--port", str(port),
                "--call", "sync:create_app"]
    return [str(PYTHON), "-m", "gunicorn", "-w", str(CENTRAL_WORKERS), "-b", f"{HOST}:{port}",
            "--graceful-timeout", "5", "--no-control-socket", "sync:create_app()"]


def laptop_command(port: int, host: str = HOST, debug: bool = False) -> list[str]:
    """Return the laptop app's server command: waitress with the background sync
    (`flask serve`); Flask's development server (reloader, debugger) only with debug."""
    if debug:
        return flask("run", "--debug", "--host", host, "--port", str(port))
    return flask("serve", "--host", host, "--port", str(port))


def network_addresses(host: str) -> list[str]:
    """Return the address tablets reach the laptop app at when it listens on host, best effort."""
    if host not in ("0.0.0.0", "::"):  # every interface
        return [] if host == HOST else [host]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:  # connecting a UDP socket sends nothing; it picks the outgoing interface
            sock.connect(("10.255.255.255", 9))
            return [sock.getsockname()[0]]
        except OSError:
            return []


def port_free(port: int, host: str = HOST) -> bool:
    """Tell whether nothing listens on host:port (SO_REUSEADDR: TIME_WAIT is no obstacle)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def answers(url: str) -> bool:
    """Tell whether an HTTP server answers at url (any status), ignoring proxies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def wait_ready(name: str, proc: subprocess.Popen, url: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until url answers; stop dev.py if the process dies or the time runs out."""
    deadline = time.monotonic() + timeout
    while not answers(url):
        if proc.poll() is not None:
            sys.exit(f"dev.py: {name} exited during start (status {proc.returncode})")
        if time.monotonic() > deadline:
            sys.exit(f"dev.py: {name} did not answer at {url} within {timeout:.0f} s")
        time.sleep(0.1)


def start(name: str, cmd: list[str]) -> tuple[str, subprocess.Popen]:
    """Start one server process in the repository root."""
    say(f"starting {name}")
    return name, subprocess.Popen(cmd, cwd=ROOT)


def supervise(running: list[tuple[str, subprocess.Popen]], poll_s: float = 0.3) -> int:
    """Wait until Ctrl+C (0) or until one process ends (its status, at least 1)."""
    try:
        while True:
            for name, proc in running:
                if proc.poll() is not None:
                    say(f"{name} exited with status {proc.returncode}: stopping the rest")
                    return proc.returncode if proc.returncode > 0 else 1
            time.sleep(poll_s)
    except KeyboardInterrupt:
        say("Ctrl+C: stopping")
        return 0


def stop(running: list[tuple[str, subprocess.Popen]], timeout: float = 10.0) -> None:
    """Terminate every process still running; kill what does not end in time."""
    for _, proc in running:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for _, proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def raise_interrupt(signum, frame) -> None:
    """Turn SIGTERM into the same clean stop as Ctrl+C."""
    raise KeyboardInterrupt


def serve(launch: Callable[[list[tuple[str, subprocess.Popen]]], str]) -> int:
    """Start the apps (launch fills the list, returns the banner), print it, supervise until Ctrl+C."""
    # Ctrl+C and SIGTERM stop everything the same way, even where SIGINT was
    # inherited as ignored (e.g. started in the background by a script).
    previous = signal.signal(signal.SIGTERM, raise_interrupt), \
        signal.signal(signal.SIGINT, signal.default_int_handler)
    running: list[tuple[str, subprocess.Popen]] = []
    banner = None
    try:
        banner = launch(running)
        print(banner, flush=True)
        return supervise(running)
    except KeyboardInterrupt:
        if banner is not None:  # Ctrl+C right after the banner, before supervise's own try
            say("Ctrl+C: stopping")
            return 0
        say("interrupted during start: stopping")
        return 130
    finally:
        stop(running)
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def start_laptop_app(running: list[tuple[str, subprocess.Popen]], args: argparse.Namespace,
                     url: str) -> None:
    """Start the laptop app and wait until its login page answers."""
    running.append(start("laptop", laptop_command(args.port, args.host, args.debug)))
    wait_ready("laptop", running[-1][1], url + "login")


def embedded_running(pgdata: Path) -> bool:
    """Tell whether the embedded PostgreSQL in pgdata runs (its postmaster.pid exists)."""
    return (pgdata / "postmaster.pid").exists()


def banner(laptop_url: str, central_url: str, device: str, password: str | None,
           state: dict, host: str = HOST) -> str:
    """Return the block that shows both URLs and the login (and the laptop's network URLs)."""
    line = "=" * 72
    shared = "".join(f"  tablets:  http://{address}:{laptop_url.rsplit(':', 1)[1]}   (this network; "
                     "see docs/SECURITY.md)\n" for address in network_addresses(host))
    database = ("DATABASE_URL" if state["database_url"]
                else f"embedded PostgreSQL in {os.path.relpath(state['pgdata'], ROOT)}")
    if password:
        login = (f"    name:     {ADMIN}\n    password: {password}\n\n"
                 "  This password is shown ONCE: note it now.")
    else:
        login = (f"    name:     {ADMIN} (existing admin, password as printed on first run)\n\n"
                 "  Lost it? Give it a new one at central; it reaches the laptop at its\n"
                 f"  next sync:  .venv/bin/flask --app sync set-password {ADMIN}")
    return (f"\n{line}\n  lapsync is running. Ctrl+C stops both.\n\n"
            f"  laptop:   {laptop_url}   (lap entry; device {device!r}, syncs in the background)\n"
            f"{shared}"
            f"  central:  {central_url}   (sync API {central_url}api/v1/openapi.yaml)\n"
            f"            database: {database}\n\n"
            f"  Login, the same on every laptop (a central user; laptops receive it by pull):\n"
            f"{login}\n{line}\n")


def start_all(args: argparse.Namespace) -> int:
    """Prepare both databases, start central and the connected laptop, wait for Ctrl+C."""
    for name, port, option, host in (("laptop", args.port, "--port", args.host),
                                     ("central", args.central_port, "--central-port", HOST)):
        if not port_free(port, host):
            sys.exit(f"dev.py: port {port} ({name}) is in use; choose another with {option}")
    laptop_url = f"http://{HOST if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/"
    central_url = f"http://{HOST}:{args.central_port}/"
    pgdata = Path(os.environ.get("FLASK_PGDATA") or ROOT / "instance" / "central" / "pgdata")
    stop_pg = not os.environ.get("DATABASE_URL") and not embedded_running(pgdata)
    try:
        return serve(lambda running: launch_all(running, args, laptop_url, central_url))
    finally:
        if stop_pg and embedded_running(pgdata):
            subprocess.run(central_flask("pg-stop"), cwd=ROOT, env=helper_env())


def launch_all(running: list[tuple[str, subprocess.Popen]], args: argparse.Namespace,
               laptop_url: str, central_url: str) -> str:
    """Prepare both databases, start central and the connected laptop; return the banner."""
    run(flask("init-db"), env=helper_env())
    run(central_flask("init-db"), env=helper_env())
    state = read_state()
    plan = decide(state, central_url.rstrip("/"))
    if admin_clash(state):
        say(f"warning: central and this laptop each have a different user {ADMIN!r}: they "
            "clash (see `flask --app app sync-status`); the laptop keeps its own")
    password = create_central_admin() if plan.create_admin else None
    running.append(start("central", central_command(args.central_port, args.debug)))
    wait_ready("central", running[-1][1], central_url + "api/v1/openapi.yaml")
    device = connect_laptop(plan, state, central_url.rstrip("/"))
    start_laptop_app(running, args, laptop_url)
    return banner(laptop_url, central_url, device, password, state, args.host)


# ---- the laptop alone: `run --laptop` ---------------------------------------------

# Asked inside the venv: the laptop's admins, its central and device id (no central needed).
LAPTOP_STATE = ("import json\n"
                "from lapsync.laptop import create_app\n"
                "from lapsync.laptop.db import connect, device_id\n"
                "app = create_app()\n"
                "db = connect(app.config['DATABASE'])\n"
                "admins = [r[0] for r in db.execute(\"SELECT name FROM user WHERE role = 'admin' \"\n"
                "                                   \"ORDER BY name\")]\n"
                "print(json.dumps({'admins': admins, 'device_id': device_id(db),\n"
                "                  'central_url': app.config.get('CENTRAL_URL')}))\n")


def read_laptop_state() -> dict:
    """Return the laptop's admins, device id and central URL (None before `connect`)."""
    result = run([str(PYTHON), "-c", LAPTOP_STATE], env=helper_env(), capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def local_admin_name(device_id: str) -> str:
    """Return the name of this laptop's own first admin, unique among laptops."""
    # Not plain "admin": central's organiser is called that, and a second user of the same
    # name reaching central or another laptop would clash.
    return f"{ADMIN}-{device_id[:6]}"


def create_laptop_admin(name: str) -> str:
    """Create a local admin on the laptop with a random password; return the password."""
    password = secrets.token_urlsafe(12)
    env = {**helper_env(), "FLASK_CREATE_USER_PASSWORD": password}  # never in `ps`
    run(flask("create-user", name, "--role", "admin"), env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True)
    return password


def laptop_banner(url: str, state: dict, name: str | None, password: str | None,
                  host: str = HOST) -> str:
    """Return the block of a laptop-only run: URL, first login or how to connect."""
    line = "=" * 72
    shared = "".join(f"  tablets:  http://{address}:{url.rsplit(':', 1)[1]}   (this network; "
                     "see docs/SECURITY.md)\n" for address in network_addresses(host))
    if password:
        login = (f"  Local admin of this laptop:\n    name:     {name}\n    password: {password}\n\n"
                 "  This password is shown ONCE: note it now.\n")
    else:
        login = (f"  Log in with this laptop's admin ({', '.join(state['admins']) or 'none'}; "
                 "password as printed on first run)\n  or with a central user it has pulled.\n")
    if state.get("central_url"):
        sync = f"  central:  {state['central_url']}   (syncs in the background)\n"
    else:
        sync = ("  central:  not connected: laps wait on this laptop until you connect.\n"
                f"            Connect:  {url}connect   (as admin: paste central's URL and a\n"
                "            device token from central's Devices page)\n")
    return (f"\n{line}\n  lapsync laptop is running (offline is fine). Ctrl+C stops it.\n\n"
            f"  laptop:   {url}   (lap entry)\n{shared}{sync}\n{login}{line}\n")


def start_laptop(args: argparse.Namespace) -> int:
    """Prepare the laptop database and its admin, serve the laptop app alone, wait for Ctrl+C."""
    if not port_free(args.port, args.host):
        sys.exit(f"dev.py: port {args.port} (laptop) is in use; choose another with --port")
    url = f"http://{HOST if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/"
    return serve(lambda running: launch_laptop(running, args, url))


def launch_laptop(running: list[tuple[str, subprocess.Popen]], args: argparse.Namespace,
                  url: str) -> str:
    """Prepare the laptop database and its admin, start the laptop app; return the banner."""
    run(flask("init-db"), env=helper_env())
    state = read_laptop_state()
    name = password = None
    if not state["admins"]:
        name = local_admin_name(state["device_id"])
        password = create_laptop_admin(name)
    start_laptop_app(running, args, url)
    return laptop_banner(url, state, name, password, args.host)


def ensure_chromium() -> None:
    """Make sure /usr/bin/chromium exists, installing it with apt-get when root."""
    if CHROMIUM.exists():
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's chromium for the browser tests")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update"], env=env)
        run(["apt-get", "install", "-y", "chromium"], env=env)
        if CHROMIUM.exists():
            return
    sys.exit(f"dev.py: the browser tests need {CHROMIUM}. Install it with:\n"
             "    sudo apt-get install chromium\n"
             "(Debian's package; never `playwright install`.)")


def ensure_faketime() -> None:
    """Make sure libfaketime exists (the chaos test skews laptop clocks), apt-get when root."""
    if glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1") or glob.glob("/usr/lib/faketime/libfaketimeMT.so.1"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's faketime for the chaos test (laptop clocks skewed)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update"], env=env)
        run(["apt-get", "install", "-y", "faketime"], env=env)
        return
    sys.exit("dev.py: the chaos test needs libfaketime. Install it with:\n"
             "    sudo apt-get install faketime")


def cmd_run(args: argparse.Namespace) -> int:
    """Set everything up and run central and the laptop app (or the laptop alone)."""
    ensure_venv()
    if args.laptop:
        install(LAPTOP_LOCK)
        return start_laptop(args)
    install(CENTRAL_LOCK)
    return start_all(args)


# Two pytest-xdist workers, one per core of the reference machine; loadgroup keeps
# the timing-sensitive system tests on one worker (SerialGroup in tests/conftest.py).
PARALLEL = ["-n", "2", "--dist", "loadgroup"]


def cmd_test(args: argparse.Namespace, pytest_args: list[str]) -> int:
    """Set up the test tools and run the whole suite (or what pytest_args select)."""
    ensure_venv()
    install(DEV_LOCK)
    ensure_chromium()
    ensure_faketime()
    args = [*PARALLEL, *pytest_args]  # a later -n (e.g. -n 0) overrides PARALLEL's
    say("running pytest " + " ".join(args))
    return subprocess.run([str(PYTHON), "-m", "pytest", "-q", *args], cwd=ROOT).returncode


# Each lock from its .txt; each .txt constrains itself to the lock before it (-c), so
# that the three agree on every version they share.
LOCKS = ((LAPTOP_LOCK, "requirements.txt"), (CENTRAL_LOCK, "requirements-central.txt"),
         (DEV_LOCK, "requirements-dev.txt"))


def lock_command(lock: str, source: str, extra: list[str]) -> list[str]:
    """Return the pip-compile command that writes one lock with hashes."""
    return [str(PYTHON), "-m", "piptools", "compile", "--quiet", "--generate-hashes",
            "--allow-unsafe", "--no-emit-index-url", "--no-emit-find-links", "--strip-extras",
            *extra, "--output-file", lock, source]


def cmd_lock(extra: list[str]) -> int:
    """Regenerate the three locks (pip-compile --generate-hashes), laptop first."""
    ensure_venv()
    install(DEV_LOCK)  # pip-tools
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "python3 dev.py lock"}
    for lock, source in LOCKS:
        say(f"pip-compile {source} -> {lock}")
        run(lock_command(lock, source, extra), env=env)
    return 0


def cmd_mutate(args: list[str]) -> int:
    """Set up the test tools and run the mutation tests (lapsync/devkit/mutate.py)."""
    ensure_venv()
    install(DEV_LOCK)
    return subprocess.run([str(PYTHON), "-m", "lapsync.devkit.mutate", *args], cwd=ROOT).returncode


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser with the run and test commands."""
    parser = argparse.ArgumentParser(
        prog="dev.py", description="Set up and run lapsync, or its tests (needs only Python 3).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,test,mutate,lock}")
    run_parser = commands.add_parser(
        "run", help="set up everything; run central and one laptop connected to it",
        description="Create .venv, install requirements-central.lock (hash-checked), initialise "
                    "both databases (central on an embedded PostgreSQL under instance/central "
                    "unless DATABASE_URL is set), create central's admin (its password is printed "
                    "once), register this laptop as a device and connect it, then run central "
                    "(gunicorn; waitress on Windows) and the laptop app (waitress) with its "
                    "background sync. Running it again creates nothing new. Ctrl+C stops both; if "
                    "one of them dies, the other is stopped and dev.py exits non-zero. With "
                    "--laptop: requirements.lock only, and the laptop app alone.")
    run_parser.add_argument("--port", type=int, default=5000, help="laptop app port (default 5000)")
    run_parser.add_argument("--host", default=os.environ.get("LAPSYNC_HOST") or HOST, help="laptop "
                            "app address (default $LAPSYNC_HOST or 127.0.0.1; 0.0.0.0: tablets too)")
    run_parser.add_argument("--central-port", type=int, default=8000,
                            help="central server port (default 8000)")
    run_parser.add_argument("--laptop", action="store_true",
                            help="run only the laptop app, offline until connected: installs "
                                 "no PostgreSQL; its first run creates a local admin (password "
                                 "printed once); connect later on its /connect page")
    run_parser.add_argument("--debug", action="store_true",
                            help="Flask's development server with reloader and debugger "
                                 "instead of waitress (laptop) and gunicorn (central)")
    commands.add_parser(
        "test", help="set up venv, test requirements and Chromium; run pytest",
        usage="dev.py test [-h] [pytest args ...]", allow_abbrev=False,
        description="Create .venv, install requirements-dev.txt, make sure /usr/bin/chromium "
                    "and libfaketime exist (apt-get install chromium faketime when root), then run "
                    "`pytest -q -n 2 --dist loadgroup` (two xdist workers; `-n 0` runs serially) with "
                    "any further arguments, e.g. `dev.py test tests/laptop/test_laps.py -x`. "
                    "Exits with pytest's exit code.")
    commands.add_parser(
        "mutate", help="mutation testing of the shared core (slow; not part of `test`)",
        usage="dev.py mutate [-h] [MODULE ...] [--sample N] [--seed S]", add_help=False,
        description="Create .venv, install requirements-dev.txt, then run "
                    "lapsync/devkit/mutate.py (`dev.py mutate --help` lists its options).")
    commands.add_parser(
        "lock", help="regenerate requirements*.lock (hashes) from requirements*.txt",
        usage="dev.py lock [-h] [pip-compile args ...]", add_help=False,
        description="Run pip-compile --generate-hashes for requirements.txt, "
                    "requirements-central.txt and requirements-dev.txt, in that order; further "
                    "arguments go to pip-compile, e.g. `--upgrade-package flask`.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and dispatch."""
    check_python()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "test":
        return cmd_test(args, extra)
    if args.command == "mutate":
        return cmd_mutate(extra)
    if args.command == "lock":
        return cmd_lock(extra)
    if extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())

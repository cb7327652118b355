#!/usr/bin/env python3
"""Set up and run lapsync, or its test suite, on a machine with only Python 3.

    python3 dev.py run     virtualenv, requirements, database, first admin; start the app
    python3 dev.py test    virtualenv, test requirements, Chromium; run pytest

Standard library only: this file runs before anything is installed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = VENV_BIN / "python"
CHROMIUM = Path("/usr/bin/chromium")
FIRST_ADMIN = "admin"

# Runs inside the venv: create the first admin unless any user exists. The
# password comes through the environment so it never shows in `ps`.
FIRST_ADMIN_SCRIPT = """
import os
from lapsync import create_app
from lapsync.auth import create_user
from lapsync.db import connect
db = connect(create_app().config["DATABASE"])
if db.execute("SELECT count(*) FROM user").fetchone()[0]:
    print("exists")
else:
    create_user(db, os.environ["LAPSYNC_FIRST_NAME"], "admin", os.environ["LAPSYNC_FIRST_PASSWORD"])
    print("created")
db.close()
"""


def say(message: str) -> None:
    """Print a progress line that stands out from pip's and Flask's output."""
    print(f"==> {message}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command in the repository root; stop dev.py if it fails."""
    result = subprocess.run(cmd, cwd=ROOT, **kwargs)
    if result.returncode != 0:
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


def requirement_files(path: Path) -> list[Path]:
    """Return a requirements file and every file it includes with -r."""
    files = [path]
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith(("-r ", "--requirement ")):
            files += requirement_files(path.parent / line.split(maxsplit=1)[1])
    return files


def requirements_hash(path: Path) -> str:
    """Hash a requirements file together with the files it includes."""
    digest = hashlib.sha256()
    for file in requirement_files(path):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def install(requirements: str) -> None:
    """Install a requirements file into .venv, skipped when unchanged since the last install."""
    path = ROOT / requirements
    stamp = VENV / f".{requirements}.sha256"
    wanted = requirements_hash(path)
    if stamp.exists() and stamp.read_text(encoding="utf-8").strip() == wanted:
        say(f"{requirements} unchanged since the last install")
        return
    say(f"installing {requirements}")
    run([str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(path)])
    stamp.write_text(wanted + "\n", encoding="utf-8")


def flask(*args: str) -> list[str]:
    """Return the command line of a Flask CLI command on the laptop app."""
    return [str(PYTHON), "-m", "flask", "--app", "app", *args]


def create_first_admin() -> None:
    """Create user `admin` with a random password, shown once, if no user exists yet."""
    password = secrets.token_urlsafe(12)
    env = {**os.environ, "LAPSYNC_FIRST_NAME": FIRST_ADMIN, "LAPSYNC_FIRST_PASSWORD": password}
    result = run([str(PYTHON), "-c", FIRST_ADMIN_SCRIPT], env=env, capture_output=True, text=True)
    if result.stdout.strip() != "created":
        say("users exist already: log in with your account")
        return
    line = "=" * 60
    print(f"\n{line}\n  First admin created. This password is shown ONCE:\n\n"
          f"    name:     {FIRST_ADMIN}\n    password: {password}\n\n"
          f"  Note it now; add more users at /users.\n{line}\n", flush=True)


def laptop_process(port: int) -> tuple[str, list[str], str]:
    """Describe the laptop app process: name, command line, URL."""
    return ("laptop", flask("run", "--host", "127.0.0.1", "--port", str(port)),
            f"http://127.0.0.1:{port}/")


def serve(processes: list[tuple[str, list[str], str]]) -> int:
    """Start every process, print its URL, wait; Ctrl+C stops them all."""
    running = []
    for name, cmd, url in processes:
        running.append(subprocess.Popen(cmd, cwd=ROOT))
        say(f"{name} app: {url}")
    say("press Ctrl+C to stop")
    try:
        while all(proc.poll() is None for proc in running):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        codes = [proc.wait() for proc in running]
    return next((code for code in codes if code > 0), 0)


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


def cmd_run(args: argparse.Namespace) -> int:
    """Set everything up and run the laptop app."""
    ensure_venv()
    install("requirements.txt")
    run(flask("init-db"))
    create_first_admin()
    return serve([laptop_process(args.port)])


def cmd_test(args: argparse.Namespace, pytest_args: list[str]) -> int:
    """Set up the test tools and run the whole suite (or what pytest_args select)."""
    ensure_venv()
    install("requirements-dev.txt")
    ensure_chromium()
    say("running pytest " + " ".join(pytest_args))
    return subprocess.run([str(PYTHON), "-m", "pytest", "-q", *pytest_args], cwd=ROOT).returncode


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser with the run and test commands."""
    parser = argparse.ArgumentParser(
        prog="dev.py", description="Set up and run lapsync, or its tests (needs only Python 3).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,test}")
    run_parser = commands.add_parser(
        "run", help="set up venv, requirements, database and first admin; run the app",
        description="Create .venv, install requirements.txt, initialise the database, create a "
                    "first admin (its password is printed once) and run the laptop app.")
    run_parser.add_argument("--port", type=int, default=5000, help="laptop app port (default 5000)")
    commands.add_parser(
        "test", help="set up venv, test requirements and Chromium; run pytest",
        usage="dev.py test [-h] [pytest args ...]", allow_abbrev=False,
        description="Create .venv, install requirements-dev.txt, make sure /usr/bin/chromium "
                    "exists (apt-get install chromium when root), then run `pytest -q` with "
                    "any further arguments, e.g. `dev.py test tests/test_laps.py -x`. "
                    "Exits with pytest's exit code.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and dispatch."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "test":
        return cmd_test(args, extra)
    if extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())

"""The laptop app as a process whose wall clock libfaketime sets: offset, speed, moved at will.

libfaketime (Debian package faketime) is preloaded into the app's process: its wall clock
is whatever the timestamp file says ("@2026-06-27 08:00:00 x30": that moment, running 30
times as fast), re-read at every call, so a test moves the clock of a running app by
writing the file. The monotonic and boot clocks stay real (FAKETIME_DONT_FAKE_MONOTONIC):
faking them too hangs every timed wait. libfaketime 0.9.10 breaks time.sleep under that
setting (EINVAL), so the process's time.sleep becomes a timed wait, the same pause.
Used by tests/system/test_clock_faketime.py and test_offline_day.py.
"""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
FAKETIME_GLOBS = ("/usr/lib/*/faketime/libfaketimeMT.so.1", "/usr/lib/faketime/libfaketimeMT.so.1")
SLEEP_FIX = ("import os, threading, time\n"
             "if os.environ.get('LD_PRELOAD', '').endswith('libfaketimeMT.so.1'):\n"
             "    time.sleep = lambda seconds: threading.Event().wait(max(0.0, seconds)) and None\n")
# The production app factory behind werkzeug's threaded server, configured by the
# environment; it binds the port given (0: a free one) and writes the port it bound.
SERVER = SLEEP_FIX + ("import sys\n"
                      "from werkzeug.serving import make_server\n"
                      "from lapsync.laptop import create_app\n"
                      "server = make_server('127.0.0.1', int(sys.argv[2]), create_app(), threaded=True)\n"
                      "open(sys.argv[1] + '.tmp', 'w').write(str(server.server_port))\n"
                      "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
                      "server.serve_forever()\n")


def faketime_library() -> str:
    """Return libfaketime's multi-threaded library; fail (never skip) without it."""
    found = sorted(path for pattern in FAKETIME_GLOBS for path in glob.glob(pattern))
    assert found, "libfaketime is missing: apt-get install faketime"
    return found[0]


def clock_spec(epoch_s: float, speed: float = 1) -> str:
    """Return a timestamp file's text: the wall clock at EPOCH_S (local time), running SPEED times."""
    moment = datetime.fromtimestamp(epoch_s).strftime("%Y-%m-%d %H:%M:%S")
    return f"@{moment}" + (f" x{speed:g}" if speed != 1 else "")


class ClockedLaptop:
    """The laptop app on a database file, started and SIGKILLed at will, its clock in a file."""

    def __init__(self, database: Path, workdir: Path, env: dict | None = None):
        """Prepare (not start) the app on DATABASE; its log, port and clock files in WORKDIR."""
        self.database, self.workdir = database, workdir
        self.clock_file = workdir / "faketime.txt"
        self.log_path, self.port_file = workdir / "laptop.log", workdir / "laptop.port"
        self.env = {"LAPSYNC_DATABASE": str(database), "FLASK_SECRET_KEY": "clocked-laptop",
                    "LAPSYNC_INSTANCE_CONFIG_FILE": str(workdir / "config.py"), **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def set_clock(self, spec: str | None) -> None:
        """Set the running (or next) app's wall clock (clock_spec); None: the real clock."""
        if spec is None:
            self.clock_file.unlink(missing_ok=True)
            return
        temp = self.clock_file.with_suffix(".tmp")
        temp.write_text(spec + "\n", encoding="utf-8")
        os.replace(temp, self.clock_file)  # never half a spec: the app re-reads it at every call

    def start(self, port: int = 0, timeout: float = 30) -> str:
        """Start the app (under libfaketime when a clock is set); wait until it answers."""
        env = {**os.environ, **self.env}
        if self.clock_file.exists():
            env.update(LD_PRELOAD=faketime_library(), FAKETIME_TIMESTAMP_FILE=str(self.clock_file),
                       FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        self.port_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.port_file), str(port)],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the laptop app exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"the laptop app did not start:\n{self.output()}"
            if self.port_file.exists():
                self.url = f"http://127.0.0.1:{int(self.port_file.read_text())}"
                try:
                    requests.get(f"{self.url}/login", timeout=5)
                    return self.url
                except requests.RequestException:
                    pass
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the app (no shutdown code runs) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def output(self) -> str:
        """Return the end of what the app printed."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:] \
            if self.log_path.exists() else ""

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        """Run a `flask --app app` command on the same database and clock."""
        env = {**os.environ, **self.env}
        if self.clock_file.exists():
            env.update(LD_PRELOAD=faketime_library(), FAKETIME_TIMESTAMP_FILE=str(self.clock_file),
                       FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        code = SLEEP_FIX + "from flask.cli import main\nmain()\n"
        return subprocess.run([sys.executable, "-c", code, "--app", "app", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

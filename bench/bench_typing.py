"""Benchmark the lap page under a fast helper: every typed number counted once, in order.

A helper types --numbers start numbers into the real lap page in headless Chromium
(Playwright, Debian's /usr/bin/chromium), 0..--gap-ms between keys, Enter after each.
About a fifth of the numbers repeat an earlier one within the minimum lap time: they
get the "too soon" warning, which the helper leaves alone by typing the next number.
The laptop app answers each lap post after a random 0..--delay-ms (lapsync.devkit.lappage
SlowLaps around the real app, served on loopback). Afterwards the database must hold
exactly one lap per distinct number, in typing order: no lap for a wrong runner, none
lost, none doubled. The same run, with fewer numbers, is
tests/system/test_lap_page.py::test_fast_typing_counts_every_number_once_in_typing_order.

    .venv/bin/python bench/bench_typing.py                    # 1,000 numbers
    .venv/bin/python bench/bench_typing.py --numbers 200 --delay-ms 0
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from lapsync.devkit.browser import launch_chromium, served  # noqa: E402
from lapsync.devkit.lappage import (  # noqa: E402
    SlowLaps,
    audit,
    counted_numbers,
    feedback_latencies,
    log_in,
    type_plan,
    typing_plan,
    wait_answered,
)
from lapsync.devkit.laptops import PASSWORD, prepare_database  # noqa: E402
from lapsync.laptop import create_app  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--numbers", type=int, default=1_000, help="start numbers typed")
    p.add_argument("--delay-ms", type=float, default=300, help="the server answers after 0..this")
    p.add_argument("--gap-ms", type=float, default=30, help="0..this between two keys")
    p.add_argument("--latency", type=int, default=50,
                   help="then this many new numbers, one every 0.2 s, answered at once: Enter to feedback")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p.parse_args(argv)


def run(args: argparse.Namespace, tmp: Path) -> dict:
    """Type the plan into the page of a fresh laptop; return the audit and the times."""
    database = prepare_database(tmp, args.numbers + args.latency)
    # A minimum lap time longer than the run: every repeat is "too soon".
    app = create_app({"SECRET_KEY": "bench-typing", "DATABASE": str(database),
                      "MIN_LAP_SECONDS": 86_400, "SYNC_ENABLED": False})
    plan = typing_plan(args.numbers, args.numbers, seed=args.seed)
    slow = SlowLaps(app, args.delay_ms, seed=args.seed)
    with served(slow) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            log_in(page, url, "tom", PASSWORD)
            start = time.perf_counter()
            type_plan(page, plan, seed=args.seed, max_gap_ms=args.gap_ms)
            typed = time.perf_counter()
            wait_answered(page, args.numbers * (args.delay_ms + 500) + 60_000)
            done = time.perf_counter()
            field = page.locator("#start_number").input_value()
            result = audit(plan, counted_numbers(database))
            slow.max_ms = 0  # the latency part: the server answers at once
            extra = [str(n) for n in range(args.numbers + 1, args.numbers + args.latency + 1)]
            latencies = feedback_latencies(page, extra)
        finally:
            browser.close()
    return {**result, "typing_s": round(typed - start, 2), "total_s": round(done - start, 2),
            "field_after": field, "delay_ms": args.delay_ms, "gap_ms": args.gap_ms,
            "latency_ms": [round(x, 1) for x in latencies]}


def main(argv: list[str] | None = None) -> int:
    """Run once and print the figures; exit 1 when a lap is wrong, lost or out of order."""
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    with tempfile.TemporaryDirectory(prefix="bench-typing-") as tmp:
        result = run(args, Path(tmp))
    print(f"numbers typed            {result['typed']}")
    print(f"distinct (must count)    {result['expected']}")
    print(f"laps counted             {result['counted']}")
    print(f"laps for a wrong runner  {len(result['wrong_runner'])}")
    print(f"laps doubled             {len(result['doubled'])}")
    print(f"laps lost                {len(result['lost'])}")
    print(f"in typing order          {result['in_typing_order']}")
    print(f"typing took              {result['typing_s']} s")
    print(f"last answer after        {result['total_s']} s "
          f"(server delays 0..{args.delay_ms:g} ms, keys 0..{args.gap_ms:g} ms apart)")
    if result["latency_ms"]:
        lat = sorted(result["latency_ms"])
        print(f"Enter to feedback        median {statistics.median(lat):.1f} ms, "
              f"max {lat[-1]:.1f} ms ({len(lat)} new numbers, server answering at once)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    ok = (not result["wrong_runner"] and not result["doubled"] and not result["lost"]
          and result["in_typing_order"] and result["field_after"] == "")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

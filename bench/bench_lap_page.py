"""Benchmark the lap page as a helper feels it: Enter -> feedback in real Chromium, 1M laps.

The laptop app runs on a copy of bench_laps.py's cached database (1M laps, 5,000
runners), served on loopback; headless Debian Chromium types start numbers into the
real page with 20 ms between keys. The time is taken inside the page: from the Enter
keydown to the moment the feedback panel shows the counted lap. Every number is a
runner without a recent lap, so each Enter must end in a counted lap; afterwards the
database must hold exactly those laps, for exactly those runners, in typing order.

    .venv/bin/python bench/bench_lap_page.py                # 400 laps, 1M-lap database
    .venv/bin/python bench/bench_lap_page.py --laps 1000 --json out.json
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

import bench_laps
from bench_options import bench_parser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lapsync.devkit.browser import launch_chromium, served  # noqa: E402
from lapsync.devkit.lappage import log_in  # noqa: E402
from lapsync.laptop import create_app  # noqa: E402
from lapsync.laptop.db import connect  # noqa: E402

TARGET_P99_MS = 50.0
KEY_GAP_MS = 20
# Enter keydown -> the feedback panel showing a counted lap, measured by the page's clock.
PROBE = """
(() => {
  window.__latencies = [];
  let pressed = null;
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && ev.target.id === "start_number") pressed = performance.now();
  }, true);
  const watch = () => {
    const feedback = document.getElementById("feedback");
    if (!feedback) return setTimeout(watch, 20);
    new MutationObserver(() => {
      if (pressed !== null && feedback.classList.contains("good")) {
        window.__latencies.push(performance.now() - pressed);
        pressed = null;
      }
    }).observe(feedback, {attributes: true, childList: true, subtree: true, characterData: true});
  };
  document.addEventListener("DOMContentLoaded", watch);
})();
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = bench_parser(__doc__, rebuild=True, laps=(400, "laps to type and time"),
                     base_laps=1_000_000, runners=5_000,
                     seed=(2, "seed of the cached database and the numbers"))
    return p.parse_args(argv)


def counted_since(database: Path, rowid: int) -> list[int]:
    """Return the start numbers of the laps recorded after rowid, in recording order."""
    db = connect(database)
    try:
        return [row[0] for row in db.execute(
            "SELECT runner.start_number FROM lap JOIN runner ON runner.id = lap.runner_id "
            "WHERE lap.rowid > ? ORDER BY lap.rowid", [rowid])]
    finally:
        db.close()


def last_rowid(database: Path) -> int:
    """Return the highest lap rowid of the database."""
    db = connect(database)
    try:
        return db.execute("SELECT max(rowid) FROM lap").fetchone()[0] or 0
    finally:
        db.close()


def type_numbers(page, numbers: list[int]) -> None:
    """Type each number and Enter, waiting for its counted feedback before the next one."""
    for done, number in enumerate(numbers, 1):
        page.locator("#start_number").press_sequentially(str(number), delay=KEY_GAP_MS)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => window.__latencies.length >= {done}", timeout=10_000)


def percentile(ordered: list[float], q: float) -> float:
    """Return the q-quantile of sorted samples (nearest rank)."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run(args: argparse.Namespace) -> dict:
    """Type the laps into the served page; return the figures."""
    database = bench_laps.fresh_copy(bench_laps.base_database(args), 0)
    try:
        app = create_app({"SECRET_KEY": "bench-secret", "DATABASE": str(database),
                          "MIN_LAP_SECONDS": 60})
        numbers = random.Random(args.seed).sample(range(1, args.runners + 1), args.laps)
        before = last_rowid(database)
        with served(app) as url, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(PROBE)
            log_in(page, url, bench_laps.USER, bench_laps.PASSWORD)
            started = time.perf_counter()
            type_numbers(page, numbers)
            elapsed = time.perf_counter() - started
            latencies = sorted(page.evaluate("window.__latencies"))
            browser.close()
        counted = counted_since(database, before)
    finally:
        bench_laps.remove_db(database)
    return {"laps": len(numbers), "base_laps": args.base_laps, "seconds": round(elapsed, 1),
            "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1), "max_ms": round(latencies[-1], 1),
            "wrong_or_missing": sum(a != b for a, b in zip(counted, numbers)) + abs(
                len(counted) - len(numbers))}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    f = run(args)
    print(f"Enter -> feedback in Chromium on {f['base_laps']:,} laps, {f['laps']} laps typed "
          f"({KEY_GAP_MS} ms between keys) in {f['seconds']} s")
    print(f"  p50 {f['p50_ms']} ms   p95 {f['p95_ms']} ms   p99 {f['p99_ms']} ms   "
          f"max {f['max_ms']} ms   (target p99 <= {TARGET_P99_MS:.0f} ms)")
    print(f"  laps for a wrong runner or missing: {f['wrong_or_missing']}")
    if args.json:
        Path(args.json).write_text(json.dumps(f, indent=2), encoding="utf-8")
    if f["wrong_or_missing"] or f["p99_ms"] > TARGET_P99_MS:
        sys.exit(1)


if __name__ == "__main__":
    main()

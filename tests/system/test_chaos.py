"""The short chaos scenario of bench/chaos.py, in the test suite, run as its own process.

Real processes on loopback: central under gunicorn with two workers on the test
session's PostgreSQL (a fresh database), four laptop app processes with clocks
skewed by libfaketime, each syncing through its own fault proxy; helpers enter
laps, voids, restores, late runners and renames over HTTP while laptops and
central are SIGKILLed and restarted. After the heal it checks every promise
(bench/chaos.py, `violations`). The long run is `bench/chaos.py --duration 300`.

The seed is chosen so that every fault kind is among the first four draws of some
proxy (drop and refuse of two); with a laptop kill every 4 s on average, laptop kills
are due 1.0 s and 5.5 s into the chaos and central's at 2.3 s (kills are scheduled from
the start, so slow restarts on a busy machine only delay them). 20 s leave room for those
restarts and for 60 laps while the suite's other tests load the machine.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from lapsync.devkit.faultproxy import KINDS

ROOT = Path(__file__).resolve().parents[2]
SEED = 4943
DURATION_S = 20


def run_chaos(pg_url: str, workdir: Path) -> tuple[dict, str]:
    """Run the short scenario as its own process (bench/ is no test import); return report, summary."""
    report_file = workdir / "report.json"
    command = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--seed", str(SEED),
               "--duration", str(DURATION_S), "--laptop-kill-every", "4", "--laptops", "4", "--workers", "2",
               "--database-url", pg_url, "--workdir", str(workdir), "--settle", "40",
               "--json", str(report_file)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    summary = done.stdout + done.stderr[-4000:]
    assert report_file.exists(), summary
    return json.loads(report_file.read_text(encoding="utf-8")), summary


def test_short_chaos_run_loses_no_confirmed_lap_doubles_none_and_converges(pg_url, tmp_path):
    report, summary = run_chaos(pg_url, tmp_path)
    print(summary)
    assert report["violations"] == [], summary
    figures = report["figures"]
    assert (figures["lost"], figures["doubled"], figures["extra"], figures["voids_not_applied"]) \
        == (0, 0, 0, 0), summary
    assert figures["laps_at_central"] >= report["laps"] >= 60, summary
    # The chaos really happened: every fault kind, both kinds of kill, skewed clocks,
    # and every kind of helper action.
    kills = Counter(report["kills"])
    assert set(report["faults"]) == set(KINDS), summary
    assert kills["laptop"] >= 2 and kills["central"] >= 1, summary
    assert max(abs(s or 0) for s in figures["clock_offsets_s"].values()) >= 60, summary
    assert report["voids"] >= 3 and report["restores"] >= 1, summary
    assert report["runners_added"] >= 1 and report["edits"] >= 1, summary

"""The short chaos scenario of bench/chaos.py, in the test suite (issue 5).

Real processes on loopback: central under gunicorn with two workers on the test
session's PostgreSQL (a fresh database), four laptop app processes with clocks
skewed by libfaketime, each syncing through its own fault proxy; helpers enter
laps, voids, restores, late runners and renames over HTTP while laptops and
central are SIGKILLed and restarted. After the heal it checks every promise
(bench/chaos.py, `violations`). The long run is `bench/chaos.py --duration 300`.

The seed is chosen so that every fault kind is among the first four draws of some
proxy (drop and refuse of two) and the first laptop and central kills come about
2 s into the chaos: the assertions on what happened hold whatever the machine's speed.
"""
from __future__ import annotations

from bench import chaos
from bench.faultproxy import KINDS

SEED = 4943
DURATION_S = 45


def test_short_chaos_run_loses_no_confirmed_lap_doubles_none_and_converges(pg_url, tmp_path):
    report = chaos.run(chaos.Config(seed=SEED, duration=DURATION_S, laptops=4, workers=2,
                                    database_url=pg_url, workdir=tmp_path, settle=40))
    summary = report.summary()
    print(summary)
    assert report.violations == [], summary
    figures = report.figures
    assert (figures["lost"], figures["doubled"], figures["extra"], figures["voids_not_applied"]) \
        == (0, 0, 0, 0), summary
    assert figures["laps_at_central"] >= report.laps >= 60, summary
    # The chaos really happened: every fault kind, both kinds of kill, skewed clocks,
    # and every kind of helper action.
    assert set(report.faults) == set(KINDS), summary
    assert report.kills["laptop"] >= 2 and report.kills["central"] >= 1, summary
    assert max(abs(s or 0) for s in figures["clock_offsets_s"].values()) >= 60, summary
    assert report.voids >= 3 and report.restores >= 1, summary
    assert report.runners_added >= 1 and report.edits >= 1, summary

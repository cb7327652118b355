"""Durability: a lap confirmed to the helper survives SIGKILL of the real app process.

Each test runs the laptop app as its own process (create_app() configured only
through the environment, as in production), talks to it over real HTTP on
loopback, kills it with SIGKILL and starts it again on the same SQLite file.
"""
from __future__ import annotations

import json
import random
import signal
import time

import pytest

from lapsync.devkit.laptops import RUNNERS, Burst, login, post_lap, prepare_database, stored_lap, stored_laps
from lapsync.devkit.processes import AppProcess
from lapsync.laptop import create_app
from lapsync.laptop.db import connect, get_db


def test_lap_confirmed_right_before_sigkill_is_there_after_restart(tmp_path):
    path = prepare_database(tmp_path, runners=1)
    app = AppProcess(path, tmp_path / "first.log")
    try:
        app.wait_ready()
        session = login(app.url)
        response = post_lap(session, app.url, "1")
        if response.status_code == 201:
            assert app.kill() == -signal.SIGKILL  # the moment the helper saw the confirmation
    finally:
        app.kill()
    assert response.status_code == 201, response.text
    lap_id = response.json()["lap"]["id"]

    with AppProcess(path, tmp_path / "second.log") as restarted:
        session = login(restarted.url)
        assert f'data-lap="{lap_id}"' in session.get(f"{restarted.url}/", timeout=10).text
        again = post_lap(session, restarted.url, "1")
        assert again.status_code == 409 and again.json()["error"] == "too_soon"  # it counts
        confirmed = post_lap(session, restarted.url, "1", confirm="1")
        assert confirmed.status_code == 201 and confirmed.json()["count"] == 2

    lap, changes = stored_lap(path, lap_id)
    assert lap is not None and lap["voided_at"] is None
    assert len(changes) == 1 and json.loads(changes[0]["payload"])["id"] == lap_id


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_every_confirmed_lap_of_a_concurrent_burst_survives_sigkill(tmp_path, synchronous):
    """SIGKILL while four helpers post at once: every 2xx lap and its outbox change survive.

    NORMAL too: a process kill leaves the WAL in the OS page cache, so only a
    power cut or OS crash can take back commits under NORMAL (bench_durability.py).
    """
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = prepare_database(tmp_path, runners=RUNNERS)
    kill_after, delay = rng.randint(8, 40), rng.uniform(0, 0.003)
    app = AppProcess(path, tmp_path / "burst.log", synchronous)
    try:
        app.wait_ready()
        assert f"synchronous={synchronous}" in app.output(), app.output()
        burst = Burst(app.url, helpers=4, laps_each=50, kill_after=kill_after)
        burst.start()
        assert burst.reached.wait(60), "the burst never got going"
        time.sleep(delay)  # a random moment inside the burst
        killed_at = [len(ids) for ids in burst.confirmed]
        assert app.kill() == -signal.SIGKILL
        burst.join()
    finally:
        app.kill()
    confirmed = [lap_id for ids in burst.confirmed for lap_id in ids]
    note = (f"seed={seed} synchronous={synchronous} kill_after={kill_after} delay={delay:.4f}s "
            f"per helper at kill={killed_at} attempted={burst.attempted} cut={burst.cut[:1]}")
    assert burst.unexpected == [], note
    assert len(burst.cut) == 4 and len(confirmed) < 200, "kill missed the burst: " + note
    assert sum(1 for n in killed_at if n) >= 2, "helpers did not post concurrently: " + note
    assert len(confirmed) >= kill_after, note

    with AppProcess(path, tmp_path / "restarted.log", synchronous) as restarted:
        session = login(restarted.url)
        after = post_lap(session, restarted.url, "1", confirm="1")
        assert after.status_code == 201, after.text

    stored, changes = stored_laps(path)
    lost = [lap_id for lap_id in confirmed if lap_id not in stored]
    assert lost == [], f"confirmed laps lost: {lost}; {note}"
    for lap_id in confirmed:  # each with exactly one outbox change carrying it, unpushed
        assert [json.loads(c["payload"])["id"] for c in changes.get(lap_id, [])] == [lap_id], note
        assert changes[lap_id][0]["pushed_at"] is None and stored[lap_id]["voided_at"] is None, note
    for ids in burst.confirmed:  # one helper's laps were committed in the order confirmed
        seqs = [changes[lap_id][0]["seq"] for lap_id in ids]
        assert seqs == sorted(seqs), note
    # Nothing appears that was never sent: at most the attempted laps, plus the one after restart.
    assert len(confirmed) + 1 <= len(stored) <= burst.attempted + 1, note
    assert set(stored) == set(changes), "a lap without its outbox change or the reverse: " + note
    assert after.json()["count"] == sum(
        1 for row in stored.values() if row["runner_id"] == after.json()["runner"]["id"]), note


def synchronous_of(app) -> int:
    """Return PRAGMA synchronous of the connection a request gets (0 OFF .. 3 EXTRA)."""
    with app.test_request_context("/"):
        return get_db().execute("PRAGMA synchronous").fetchone()[0]


@pytest.mark.parametrize("setting, expected", [(None, 2), ("FULL", 2), ("normal", 1),
                                               (" Extra ", 3)])
def test_sqlite_synchronous_setting_reaches_request_connections(tmp_path, setting, expected):
    config = {"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(tmp_path / "l.sqlite")}
    if setting is not None:
        config["SQLITE_SYNCHRONOUS"] = setting
    app = create_app(config)
    assert synchronous_of(app) == expected
    assert app.config["SQLITE_SYNCHRONOUS"] == {1: "NORMAL", 2: "FULL", 3: "EXTRA"}[expected]


@pytest.mark.parametrize("setting", ["OFF", "0", "FULL; DROP TABLE lap", "fast"])
def test_sqlite_synchronous_refuses_unsafe_or_unknown_values_at_start(tmp_path, setting):
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS must be one of FULL, EXTRA, NORMAL"):
        create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(tmp_path / "l.sqlite"),
                    "SQLITE_SYNCHRONOUS": setting})
    with pytest.raises(ValueError):
        connect(tmp_path / "other.sqlite", setting)

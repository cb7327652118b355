"""The laptop's sync client over real HTTP on loopback: push, pull, errors, status, CLI."""
from __future__ import annotations

import json
import random
import secrets
import socket
import stat
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from lapsync import hlc, protocol
from lapsync.ids import new_id
from lapsync.laptop.auth import hash_password
from lapsync.laptop.client import push as client_push
from lapsync.laptop.client.batch import build_batch
from lapsync.laptop.client.connect import config_file
from lapsync.laptop.client.pull import min_lap_seconds, other_laps
from lapsync.laptop.client.push import recall_encodings
from lapsync.laptop.client.state import (
    BACKOFF_BASE_MS,
    BACKOFF_CAP_MS,
    backoff_ms,
    blocked,
    sync_once,
)
from lapsync.laptop.client.status import status_for, sync_status
from lapsync.laptop.client.transport import (
    AUTH,
    GZIP_BELOW_BYTES_PER_S,
    PROTOCOL,
    REFUSED,
    TRANSIENT,
    Central,
    SyncResult,
    central_from_config,
    config_fingerprint,
)
from lapsync.laptop.db import (
    PENDING,
    connect,
    device_id,
    get_meta,
    move_pushed_mark,
    now_ms,
    record_change,
    transaction,
)
from lapsync.laptop.laps import record_lap, set_void
from lapsync.protocol import encode as protocol_encode
from lapsync.protocol.columns import MAGIC, validate_columns
from tests.conftest import PASSWORD, login
from tests.laptop.fake_central import TOKEN, FakeCentral


@pytest.fixture
def central():
    """A fake central on a real loopback port."""
    server = FakeCentral()
    yield server
    server.close()


def to(server: FakeCentral, token: str = TOKEN, read_timeout: float = 5) -> Central:
    """A client for the server."""
    return Central(server.url, token, 2, read_timeout)


def user_id(db, name: str = "tom") -> str:
    """Return a user's id."""
    return db.execute("SELECT id FROM user WHERE name = ?", [name]).fetchone()[0]


def laps(db, *numbers: int) -> list[str]:
    """Record laps (no minimum lap time); return their ids."""
    return [record_lap(db, n, user_id(db), 0)["lap"]["id"] for n in numbers]


def pending(db) -> list[int]:
    """Return the seqs still waiting for central."""
    return [r[0] for r in db.execute(f"SELECT seq FROM change WHERE {PENDING} ORDER BY seq")]


def forget_pushed(db) -> None:
    """Make every change wait for central again (an answer lost: the mark back to the start)."""
    db.execute("UPDATE outbox_mark SET pushed_seq = 0")


def changes(db) -> int:
    """Return the number of outbox rows."""
    return db.execute("SELECT count(*) FROM change").fetchone()[0]


def quick_id() -> str:
    """Return a random cuid-shaped id (24 characters): cuid2 takes ~30 us, too slow for 100k."""
    return "q" + secrets.token_hex(12)[1:]


def backlog(db, count: int) -> None:
    """Write COUNT lap changes to the outbox at once (as a long day offline would)."""
    user, me = user_id(db), device_id(db)
    with transaction(db):
        for _ in range(count):
            lap_id = quick_id()
            record_change(db, "lap", lap_id, {"id": lap_id, "runner_id": quick_id(), "created_by": user,
                                              "time": now_ms(), "device_id": me})


def free_port() -> int:
    """Return a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- push -----------------------------------------------------------------------

def test_sync_pushes_everything_once_with_bearer_token_and_clock(db, runners, central):
    laps(db, 1, 2, 17)
    total = changes(db)
    before = now_ms()
    result = sync_once(db, to(central))
    assert result.error is None and result.pushed == total
    assert pending(db) == []
    assert [c["seq"] for c in central.received] == list(range(1, total + 1))
    body = central.pushed()[0]
    assert body["protocol"] == protocol.PROTOCOL_VERSION and body["device_id"] == device_id(db)
    assert before <= body["device_time"] <= now_ms()
    assert abs(int(get_meta(db, "clock_offset_ms"))) < 5_000
    assert sync_once(db, to(central)).pushed == 0  # nothing twice
    assert len(central.received) == total


def test_a_push_sends_the_backlog_it_found_and_leaves_laps_typed_meanwhile(db, runners, central,
                                                                           monkeypatch):
    """Regression (bench/bench_load.py): with a lap typed during every round trip, one push
    went on and on, a few laps and two commits (fsyncs) per round, beside lap entry."""
    laps(db, 1, 2)
    found = pending(db)
    path = db.execute("PRAGMA database_list").fetchone()[2]
    typed: list[str] = []
    real_send = client_push.send

    def send_while_a_helper_types(*args):  # a lap is recorded while the batch travels
        if len(typed) < 5:  # bounded, so that the old behaviour ends too
            helper = connect(path)
            typed.append(record_lap(helper, 17, user_id(helper), 0)["lap"]["id"])
            helper.close()
        return real_send(*args)

    monkeypatch.setattr(client_push, "send", send_while_a_helper_types)
    result = SyncResult()
    client_push.push(db, to(central), result)
    assert len(central.pushed()) == 1 and result.pushed == len(found)
    assert [c["seq"] for c in central.received] == found
    assert len(typed) == 1 and len(pending(db)) == 1  # waits for the next sync
    monkeypatch.setattr(client_push, "send", real_send)
    assert sync_once(db, to(central)).pushed == 1 and pending(db) == []
    assert typed[0] in [c["id"] for c in central.received]


def test_only_acked_rows_are_marked_pushed(db, runners, central):
    laps(db, 1, 2, 17)
    seqs = pending(db)
    central.fault("push", (200, {"acked_seq": seqs[2], "server_time": now_ms(), "rejected": []}))
    central.fault("push", 500)
    result = sync_once(db, to(central))
    assert result.error.kind == TRANSIENT
    assert pending(db) == seqs[3:]


def test_response_lost_after_central_committed_is_replayed_once(db, runners, central):
    laps(db, 1, 2)
    total = changes(db)
    central.fault("push", "commit_drop")
    result = sync_once(db, to(central))
    assert result.error.kind == TRANSIENT
    assert len(central.received) == total and len(pending(db)) == total  # not marked yet
    assert sync_once(db, to(central), force=True).error is None
    assert pending(db) == [] and len(central.received) == total  # replay changed nothing


def test_409_seq_gap_resends_from_where_central_says(db, runners, central):
    laps(db, 1)
    sync_once(db, to(central))
    kept = 3  # central lost everything after seq 3 (restored from a backup)
    central.applied[device_id(db)] = kept
    central.received = central.received[:kept]
    laps(db, 2, 17)
    result = sync_once(db, to(central))
    assert result.error is None and pending(db) == []
    assert [c["seq"] for c in central.received] == list(range(1, changes(db) + 1))


def test_409_with_central_ahead_marks_acked_rows_and_resumes(db, runners, central):
    laps(db, 1, 2, 17)
    seqs = pending(db)
    central.applied[device_id(db)] = seqs[4]  # central applied these; the ack got lost
    central.fault("push", (409, {"error": "seq_gap", "message": "gap", "acked_seq": seqs[4],
                                 "resume_from": seqs[5]}))
    result = sync_once(db, to(central))
    assert result.error is None and pending(db) == []
    assert [c["seq"] for c in central.received] == seqs[5:]
    assert central.pushed()[1]["changes"][0]["seq"] == seqs[5]


def test_ack_beyond_this_laptop_is_refused_and_marks_nothing(db, runners, central):
    laps(db, 1)
    central.fault("push", (200, {"acked_seq": 10_000, "server_time": now_ms(), "rejected": []}))
    result = sync_once(db, to(central))
    assert result.error.kind == PROTOCOL and "another laptop" in result.error.message
    assert len(pending(db)) == changes(db)


def test_batches_are_bounded_by_count(db, central, monkeypatch):
    # The limit's value is pinned in tests/core; a small one takes the same path as 50,000.
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 40)
    backlog(db, 2 * 40 + 5)
    result = sync_once(db, to(central))
    sizes = [len(body["changes"]) for body in central.pushed()]
    assert result.error is None and pending(db) == []
    assert sizes == [40, 40, changes(db) - 2 * 40]


def test_batch_body_is_bounded_by_bytes(db, runners, monkeypatch):
    laps(db, 1, 2, 17, 1, 2, 17)
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_BYTES", 1_500)
    body, seqs = build_batch(db, pending(db)[0])
    assert len(body) <= 1_500 and 1 <= len(seqs) < changes(db)
    decoded = json.loads(body)
    assert [c["seq"] for c in decoded["changes"]] == seqs
    assert decoded["changes"][0]["data"] == json.loads(
        db.execute("SELECT payload FROM change WHERE seq = ?", [seqs[0]]).fetchone()[0])


def test_rejected_items_are_recorded_and_do_not_wedge_the_queue(app, db, runners, central):
    bad = laps(db, 1)[0]
    central.reject_ids.add(bad)
    result = sync_once(db, to(central))
    assert result.error is None and result.rejected == 1 and pending(db) == []
    row = next(db.query("SELECT * FROM rejected_change"))
    assert row["entity"] == "lap" and row["entity_id"] == bad and row["error"] == "scripted_reject"
    good = laps(db, 2)[0]
    assert sync_once(db, to(central)).error is None
    assert good in [c["id"] for c in central.received] and pending(db) == []
    output = app.test_cli_runner().invoke(args=["sync-status"]).output
    assert "rejected:      1" in output and bad in output


def test_other_4xx_is_recorded_shown_and_pull_still_runs(db, runners, central):
    laps(db, 1)
    central.fault("push", (422, {"error": "invalid_change", "message": "seq 7: bad field"}))
    central.pull_changes.append(runner_change(new_id(), 40, "Dora", "0000000000001.0000", "central"))
    result = sync_once(db, to(central))
    assert result.error.kind == REFUSED and "seq 7: bad field" in result.error.message
    assert "bad field" in get_meta(db, "last_error")
    assert len(pending(db)) == changes(db)
    assert db.execute("SELECT name FROM runner WHERE start_number = 40").fetchone()[0] == "Dora"


def test_empty_push_binds_the_device_before_the_first_pull(db, central):
    with transaction(db):
        move_pushed_mark(db, db.execute("SELECT max(seq) FROM change").fetchone()[0])  # all pushed
    sync_once(db, to(central))
    paths = [path for path, _ in central.requests]
    assert paths[0].endswith("/push") and paths[1].endswith("/pull")
    assert central.pushed()[0]["changes"] == []
    central.requests.clear()
    sync_once(db, to(central), force=True)
    assert [p for p, _ in central.requests if p.endswith("/push")] == []  # bound already


# ---- errors, backoff, auth ------------------------------------------------------

def test_401_stops_retrying_until_the_token_changes(db, central):
    wrong = to(central, token="revoked-token")
    result = sync_once(db, wrong)
    assert result.error.kind == AUTH and "not authorised" in result.error.message
    asked = len(central.requests)
    assert sync_once(db, wrong).skipped == "auth"
    assert len(central.requests) == asked  # no request at all
    status = sync_status(db, central.url, wrong.fingerprint)
    assert status["text"].startswith("device not authorised") and status["authorised"] is False
    assert sync_once(db, to(central)).error is None  # a new token is tried
    assert sync_status(db, central.url, to(central).fingerprint)["state"] == "synced"


def test_403_counts_as_not_authorised(db, central):
    central.fault("push", (403, {"error": "device_mismatch", "message": "bound to another laptop"}))
    assert sync_once(db, to(central)).error.kind == AUTH
    assert blocked(db, to(central).fingerprint) == "auth"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_status_backs_off_and_retries_later(db, central, status):
    central.fault("push", status)
    before = now_ms()
    result = sync_once(db, to(central))
    assert result.error.kind == TRANSIENT
    until = int(get_meta(db, "backoff_until_ms"))
    assert before <= until <= now_ms() + BACKOFF_BASE_MS
    assert get_meta(db, "failures") == "1"
    assert blocked(db, to(central).fingerprint, now=until - 1) == "backoff"
    assert blocked(db, to(central).fingerprint, now=until + 1) is None
    with transaction(db):  # the backoff has passed: the next tick tries again
        db.execute("UPDATE meta SET value = '0' WHERE key = 'backoff_until_ms'")
    assert sync_once(db, to(central)).error is None
    assert get_meta(db, "failures") == "0"


def test_a_clock_set_back_does_not_stretch_a_backoff_beyond_the_cap(db, central):
    """Regression (found by bench/chaos.py): a backoff set before the laptop's clock went back an
    hour lay an hour ahead, and the background sync skipped every tick for that hour."""
    central.fault("push", 503)
    sync_once(db, to(central))
    until, fingerprint = int(get_meta(db, "backoff_until_ms")), to(central).fingerprint
    assert blocked(db, fingerprint, now=until - BACKOFF_CAP_MS) == "backoff"
    assert blocked(db, fingerprint, now=until - 3_600_000) is None   # clock set back 1 h
    with transaction(db):
        db.execute("UPDATE meta SET value = ? WHERE key = 'backoff_until_ms'", [str(now_ms() + 3_600_000)])
    result = sync_once(db, to(central))    # the background job's call: not forced
    assert result.skipped is None and result.error is None


def test_backoff_is_exponential_with_full_jitter_and_capped():
    rng = random.Random(7)
    for failures in range(1, 25):
        ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (failures - 1))
        delays = [backoff_ms(failures, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # full jitter
    assert backoff_ms(10_000, rng) <= BACKOFF_CAP_MS


def test_failures_in_a_row_grow_the_backoff(db, central):
    for n in range(1, 4):
        central.fault("pull", 503)
        assert sync_once(db, to(central), force=True).error.kind == TRANSIENT
        assert get_meta(db, "failures") == str(n)


def test_timeout_is_transient(db, central):
    central.fault("push", ("sleep", 1.5))
    result = sync_once(db, to(central, read_timeout=0.3))
    assert result.error.kind == TRANSIENT and "in time" in result.error.message
    assert len(pending(db)) == changes(db)


def test_refused_connection_is_transient(db):
    result = sync_once(db, Central(f"http://127.0.0.1:{free_port()}", TOKEN, 1, 1))
    assert result.error.kind == TRANSIENT and "cannot be reached" in result.error.message
    assert sync_status(db, "http://x", "f")["state"] == "offline"


def test_dropped_connection_is_transient_and_marks_nothing(db, runners, central):
    central.fault("push", "drop")
    result = sync_once(db, to(central))
    assert result.error.kind == TRANSIENT
    assert len(pending(db)) == changes(db) and central.received == []


def test_garbled_answer_is_transient(db, central):
    central.fault("pull", (200, ["not", "an", "object"]))
    assert sync_once(db, to(central)).error.kind == TRANSIENT


@pytest.mark.parametrize("status, kind", [(502, TRANSIENT), (503, TRANSIENT),
                                          (404, REFUSED), (413, REFUSED)])
def test_an_html_error_page_is_classed_by_its_status_not_as_a_broken_connection(db, status, kind):
    """Regression (found by bench/chaos.py): a gateway's HTML 502 was reported as "the connection
    to central broke (JSONDecodeError)", and another server's HTML 404 retried for ever as transient."""
    page = Response("<html><body><h1>Error</h1></body></html>", status, mimetype="text/html")
    server = make_server("127.0.0.1", 0, page, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        result = sync_once(db, Central(f"http://127.0.0.1:{server.server_port}", TOKEN, 2, 5))
    finally:
        server.shutdown()
        thread.join(5)
    assert (result.error.kind, result.error.status) == (kind, status), result.error.message
    assert result.error.message.startswith(f"central answered {status}")


def test_manual_sync_ignores_backoff(db, central):
    central.fault("push", 500)
    sync_once(db, to(central))
    with transaction(db):
        db.execute("UPDATE meta SET value = ? WHERE key = 'backoff_until_ms'", [str(now_ms() + BACKOFF_CAP_MS // 2)])
    assert sync_once(db, to(central)).skipped == "backoff"
    assert sync_once(db, to(central), force=True).error is None


# ---- pull ---------------------------------------------------------------------

def runner_change(rid, number, name, stamp, origin, grade=5):
    """A pulled runner change."""
    return {"entity": "runner", "id": rid, "data": {"id": rid, "start_number": number, "name": name,
            "class": "5a", "grade": grade, "hlc": stamp, "origin": origin}}


def user_change(uid, name, stamp, origin, role="teacher", password=PASSWORD):
    """A pulled user change."""
    return {"entity": "user", "id": uid, "data": {"id": uid, "name": name,
            "password_hash": hash_password(password), "role": role, "created_at": 1,
            "hlc": stamp, "origin": origin}}


def void_change(lap_id, voided, stamp, origin, by=None):
    """A pulled void (or restore) of a lap."""
    return {"entity": "lap_void", "id": lap_id, "data": {"lap_id": lap_id, "voided": voided,
            "at": 5, "by": by or new_id(), "reason": "double count" if voided else None,
            "hlc": stamp, "origin": origin}}


def test_pull_applies_runner_edits_by_last_writer_wins(db, runners, central):
    local = db.execute("SELECT hlc, origin FROM runner WHERE id = ?", [runners[1]]).fetchone()
    older = hlc.format_hlc(hlc.parse(local[0])[0] - 1, 0)
    newer = hlc.format_hlc(hlc.parse(local[0])[0] + 60_000, 0)
    fresh = new_id()
    central.pull_changes += [
        runner_change(runners[1], 1, "Old Name", older, "zz-other"),      # loses
        runner_change(runners[2], 2, "Ben Renamed", newer, "aa-other"),   # wins
        runner_change(runners[17], 17, "Tie Low", local[0], "00-low"),    # same hlc, lower origin
        runner_change(fresh, 99, "New Runner", newer, "aa-other"),
    ]
    outbox = changes(db)
    result = sync_once(db, to(central))
    assert result.error is None and result.pulled["runner"] == 4
    names = dict(db.execute("SELECT id, name FROM runner").fetchall())
    assert names[runners[1]] == "Anna Berg" and names[runners[2]] == "Ben Renamed"
    assert names[runners[17]] == "Cleo Dahl" and names[fresh] == "New Runner"
    assert changes(db) == outbox  # pulled changes are not local changes
    assert get_meta(db, "hlc") >= newer  # the clock moved past what it saw
    assert get_meta(db, "pull_cursor") == "4"


def test_runner_tie_on_hlc_goes_to_the_higher_origin(db, central):
    rid, stamp = new_id(), "0000000000005.0000"
    central.pull_changes += [runner_change(rid, 5, "From B", stamp, "bbb"),
                             runner_change(rid, 5, "From A", stamp, "aaa"),
                             runner_change(rid, 5, "From C", stamp, "ccc")]
    sync_once(db, to(central))
    assert db.execute("SELECT name, origin FROM runner WHERE id = ?", [rid]).fetchone() == ("From C", "ccc")


def test_pulled_user_can_log_in_offline_and_loses_to_newer_local(app, db, central):
    uid = new_id()
    central.pull_changes.append(user_change(uid, "petra", "0000000000009.0000", "central"))
    sync_once(db, to(central))
    fresh = app.test_client()
    login(fresh, "petra")  # the pulled password hash works offline
    central.pull_changes.append(user_change(uid, "petra", "0000000000008.0000", "central",
                                            role="viewer"))
    sync_once(db, to(central), force=True)
    assert db.execute("SELECT role FROM user WHERE id = ?", [uid]).fetchone()[0] == "teacher"
    central.pull_changes.append(user_change(uid, "petra", "0000000000010.0000", "central",
                                            role="viewer"))
    sync_once(db, to(central), force=True)
    assert db.execute("SELECT role FROM user WHERE id = ?", [uid]).fetchone()[0] == "viewer"


def test_pulled_voids_apply_to_local_laps_by_last_writer_wins(db, runners, central):
    lap_a, lap_b = laps(db, 1, 2)
    set_void(db, lap_b, user_id(db), True, "typo")
    local_stamp = db.execute("SELECT void_hlc FROM lap WHERE id = ?", [lap_b]).fetchone()[0]
    later = hlc.format_hlc(hlc.parse(local_stamp)[0] + 1000, 0)
    admin = user_id(db, "ada")
    central.pull_changes += [
        void_change(lap_a, True, later, "central", by=admin),              # applies
        void_change(lap_b, False, "0000000000001.0000", "central"),        # older: ignored
        void_change(new_id(), True, later, "central"),                     # another laptop's lap
    ]
    outbox = changes(db)
    assert sync_once(db, to(central)).error is None
    a = next(db.query("SELECT * FROM lap WHERE id = ?", [lap_a]))
    assert a["voided_at"] == 5 and a["voided_by"] == admin and a["void_reason"] == "double count"
    assert db.execute("SELECT voided_at IS NOT NULL FROM lap WHERE id = ?", [lap_b]).fetchone()[0] == 1
    central.pull_changes.append(void_change(lap_a, False, hlc.format_hlc(hlc.parse(later)[0] + 1, 0),
                                            "central"))
    sync_once(db, to(central), force=True)
    assert db.execute("SELECT voided_at FROM lap WHERE id = ?", [lap_a]).fetchone()[0] is None
    assert changes(db) == outbox


def test_pulled_void_with_unknown_user_keeps_the_lap_voided(db, runners, central):
    lap = laps(db, 1)[0]
    soon = hlc.format_hlc(now_ms() + 60_000, 0)  # later than the local void, within the bound
    central.pull_changes.append(void_change(lap, True, soon, "central", by=new_id()))
    sync_once(db, to(central))
    row = db.execute("SELECT voided_at, voided_by FROM lap WHERE id = ?", [lap]).fetchone()
    assert row == (5, None)


def test_settings_and_totals_arrive(db, runners, central):
    central.pull_changes += [
        {"entity": "setting", "id": "min_lap_seconds", "data": {"key": "min_lap_seconds", "value": 45}},
        {"entity": "setting", "id": "event_name", "data": {"key": "event_name", "value": "Lauf 2025"}},
        {"entity": "total", "id": runners[1], "data": {"runner_id": runners[1], "other_laps": 7}},
        {"entity": "total", "id": "unknown-yet", "data": {"runner_id": "unknown-yet", "other_laps": 2}},
        {"entity": "total", "id": runners[1], "data": {"runner_id": runners[1], "other_laps": 9}},
    ]
    assert min_lap_seconds(db, 60) == 60
    sync_once(db, to(central))
    assert min_lap_seconds(db, 60) == 45
    assert json.loads(get_meta(db, "setting:event_name")) == "Lauf 2025"
    assert other_laps(db, runners[1]) == 9 and other_laps(db, runners[2]) == 0
    assert other_laps(db, "unknown-yet") == 2


@pytest.mark.parametrize("raw", ['"sixty"', "-5", "true", "1e9", "not json"])
def test_min_lap_seconds_ignores_a_bad_setting(db, raw):
    with transaction(db):
        db.execute("INSERT INTO meta (key, value) VALUES ('setting:min_lap_seconds', ?)", [raw])
    assert min_lap_seconds(db, 60) == 60


def test_bad_pulled_items_are_recorded_and_the_rest_applies(db, central):
    good = new_id()
    central.pull_changes += [
        user_change(new_id(), "tom", "0000000000009.0000", "central"),        # name taken locally
        runner_change(new_id(), 3, "Bad Grade", "0000000000009.0000", "central", grade=99),
        runner_change(new_id(), 4, "Bad Clock", "yesterday", "central"),
        {"entity": "spaceship", "id": "x", "data": {}},
        {"entity": "runner", "id": "y", "data": "not an object"},
        runner_change(good, 5, "Good", "0000000000009.0000", "central"),
    ]
    result = sync_once(db, to(central))
    assert result.error is None and result.pulled == {"not applied": 5, "runner": 1}
    assert db.execute("SELECT name FROM runner WHERE id = ?", [good]).fetchone()[0] == "Good"
    assert db.execute("SELECT count(*) FROM rejected_pull").fetchone()[0] == 5
    assert get_meta(db, "pull_cursor") == "6"
    assert sync_status(db, central.url, None)["rejected"] == 5


def test_pull_pages_until_no_more(db, central):
    central.pull_changes += [runner_change(new_id(), n, f"R{n}", "0000000000009.0000", "c")
                             for n in range(1, protocol.MAX_PULL_LIMIT + 6)]
    result = sync_once(db, to(central))
    assert result.pulled["runner"] == protocol.MAX_PULL_LIMIT + 5
    assert len([p for p, _ in central.requests if p.endswith("/pull")]) == 2


def test_pull_cursor_ahead_restarts_from_central_answer(db, central):
    with transaction(db):
        db.execute("INSERT INTO meta (key, value) VALUES ('pull_cursor', '500')")
    central.pull_changes.append(runner_change(new_id(), 8, "Again", "0000000000009.0000", "c"))
    central.fault("pull", (409, {"error": "cursor_ahead", "message": "new database", "resume_from": 0}))
    assert sync_once(db, to(central)).error is None
    assert get_meta(db, "pull_cursor") == "1"


@pytest.mark.parametrize("page", [
    {"protocol": 2, "next_cursor": 1, "more": False, "changes": []},
    {"protocol": 1, "next_cursor": -1, "more": False, "changes": []},
    {"protocol": 1, "next_cursor": 1, "more": "no", "changes": []},
    {"protocol": 1, "next_cursor": 1, "more": False, "changes": {}},
])
def test_malformed_pull_page_is_an_error_and_moves_no_cursor(db, central, page):
    central.fault("pull", (200, page))
    result = sync_once(db, to(central))
    assert result.error.kind == PROTOCOL
    assert get_meta(db, "pull_cursor") is None


def test_pull_that_promises_more_but_sends_nothing_ends(db, central):
    central.fault("pull", (200, {"protocol": 1, "next_cursor": 0, "more": True, "changes": []}))
    assert sync_once(db, to(central)).error.kind == PROTOCOL


# ---- status -------------------------------------------------------------------

def test_status_texts(db, runners, central):
    fingerprint = to(central).fingerprint
    assert sync_status(db, None, None)["text"].startswith("not connected to central")
    assert sync_status(db, central.url, fingerprint)["text"].startswith("not synced yet")
    sync_once(db, to(central))
    now = int(get_meta(db, "last_success_ms")) + 12_000
    assert sync_status(db, central.url, fingerprint, now)["text"] == "synced 12 s ago"
    laps(db, 1, 2, 17)
    oldest = db.execute(f"SELECT min(created_at) FROM change WHERE {PENDING}").fetchone()[0]
    sync_once(db, Central(f"http://127.0.0.1:{free_port()}", TOKEN, 1, 1))
    status = sync_status(db, central.url, fingerprint, oldest + 14 * 60_000 + 5)
    assert status["text"] == "offline – 3 laps waiting (oldest 14 min)"
    assert status["level"] == "bad" and status["pending"] == 3
    with transaction(db):
        record_change(db, "runner", new_id(), {})
    status = sync_status(db, central.url, fingerprint, oldest + 2 * 3_600_000 + 5 * 60_000)
    assert status["text"] == "offline – 4 changes waiting (oldest 2 h 5 min)"


def test_status_is_on_every_page(app, db, central, teacher):
    page = teacher.get("/").get_data(as_text=True)
    assert 'id="sync-status"' in page and "not connected to central" in page
    app.config.update(CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN)
    sync_once(db, to(central))
    for path in ("/", "/runners/", "/login"):
        assert "synced 0 s ago" in teacher.get(path).get_data(as_text=True) or \
            "synced 1 s ago" in teacher.get(path).get_data(as_text=True)
    assert teacher.get("/sync/status").get_json()["state"] == "synced"
    app.config.update(CENTRAL_TOKEN="revoked")
    sync_once(db, to(central, token="revoked"))
    assert "device not authorised" in teacher.get("/").get_data(as_text=True)


# ---- CLI ----------------------------------------------------------------------

@pytest.fixture
def cli(app, tmp_path):
    """A CLI runner whose instance config file lives under tmp_path."""
    app.config["INSTANCE_CONFIG_FILE"] = str(tmp_path / "instance" / "config.py")
    return app.test_cli_runner()


def config_text(app) -> str:
    """Return the instance config file's text."""
    return config_file(app).read_text(encoding="utf-8")


def test_connect_stores_url_and_token_and_runs_a_first_sync(app, db, cli, central):
    path = config_file(app)
    path.parent.mkdir()
    path.write_text("SECRET_THING = 'keep me'\nCENTRAL_URL = 'http://old:1'\n", encoding="utf-8")
    central.pull_changes.append(runner_change(new_id(), 70, "From Central", "0000000000009.0000", "c"))
    result = cli.invoke(args=["connect", central.url + "/", TOKEN])
    assert result.exit_code == 0, result.output
    assert "runner 1" in result.output and "pushed" in result.output
    text = config_text(app)
    assert "SECRET_THING = 'keep me'" in text and f"CENTRAL_URL = {central.url!r}" in text
    assert f"CENTRAL_TOKEN = {TOKEN!r}" in text and "http://old:1" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert db.execute("SELECT count(*) FROM runner WHERE start_number = 70").fetchone()[0] == 1
    assert pending(db) == []


@pytest.mark.parametrize("url", ["ftp://host/x", "host:5000", "http://", "http://exa mple",
                                 "http://user:pw@host", "http://host:99999", "javascript:alert(1)",
                                 "http://host/?q=1", ""])
def test_connect_refuses_a_bad_url_and_writes_nothing(app, cli, url):
    result = cli.invoke(args=["connect", url, TOKEN])
    assert result.exit_code == 2 and "URL" in result.output
    assert not config_file(app).exists()


@pytest.mark.parametrize("token", ["", "   ", "with space", "x" * 501, "tökén"])
def test_connect_refuses_a_bad_token_and_writes_nothing(app, cli, token, central):
    result = cli.invoke(args=["connect", central.url, token])
    assert result.exit_code == 2 and "TOKEN" in result.output
    assert not config_file(app).exists()


def test_connect_exits_non_zero_when_central_is_unreachable(app, cli):
    result = cli.invoke(args=["connect", f"http://127.0.0.1:{free_port()}", TOKEN])
    assert result.exit_code == 2 and "cannot be reached" in result.output
    assert "CENTRAL_TOKEN" in config_text(app)  # kept: the app retries by itself


def test_a_refused_token_is_not_stored_and_the_working_one_stays(app, db, cli, central):
    assert cli.invoke(args=["connect", central.url, TOKEN]).exit_code == 0
    before = config_text(app)
    result = cli.invoke(args=["connect", central.url, "wrong-token"])   # a typo
    assert result.exit_code == 3 and "not authorised" in result.output
    assert "Nothing was stored" in result.output and config_text(app) == before
    assert blocked(db, config_fingerprint(central.url, "wrong-token")) is None
    assert cli.invoke(args=["sync"]).exit_code == 0                        # still connected
    assert sync_status(db, central.url, to(central).fingerprint)["state"] == "synced"


def test_sync_command_prints_what_moved(app, db, runners, cli, central):
    app.config.update(CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN)
    laps(db, 1, 2)
    total = changes(db)
    result = cli.invoke(args=["sync"])
    assert result.exit_code == 0 and f"pushed {total} changes, pulled 0" in result.output
    assert pending(db) == []


def test_sync_command_shows_progress_for_a_large_backlog(app, db, cli, central, monkeypatch):
    app.config.update(CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN)
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 40)  # more than one batch
    backlog(db, 40 + 10)
    result = cli.invoke(args=["sync"])
    assert result.exit_code == 0, result.output
    assert "Pushing" in result.stderr and pending(db) == []


def test_sync_command_fails_without_central_or_when_unreachable(app, cli):
    result = cli.invoke(args=["sync"])
    assert result.exit_code == 1 and "connect URL TOKEN" in result.output
    app.config.update(CENTRAL_URL=f"http://127.0.0.1:{free_port()}", CENTRAL_TOKEN=TOKEN)
    assert cli.invoke(args=["sync"]).exit_code == 2


def test_sync_status_command_text_and_json(app, db, runners, cli, central):
    app.config.update(CENTRAL_URL=central.url, CENTRAL_TOKEN=TOKEN)
    laps(db, 1)
    text = cli.invoke(args=["sync-status"]).output
    assert "pending:       7 changes (1 laps)" in text and "last success:  never" in text
    assert "authorised:    yes" in text and device_id(db) in text
    central.fault("push", 503)
    cli.invoke(args=["sync"])
    info = json.loads(cli.invoke(args=["sync-status", "--json"]).output)
    assert info["pending"] == 7 and info["state"] == "offline"
    assert "503" in info["last_error"] and info["last_success_ms"] is None
    assert info["oldest_pending_age_s"] >= 0 and info["backoff_until_ms"] is not None
    cli.invoke(args=["sync"])
    info = json.loads(cli.invoke(args=["sync-status", "--json"]).output)
    assert info["pending"] == 0 and info["state"] == "synced" and info["last_success_ms"]


# ---- against the real central (sync/) on a real PostgreSQL ---------------------

def laptop(tmp_path, name: str):
    """Another laptop app with its own SQLite file and instance config file."""
    from lapsync.laptop import create_app
    return create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(tmp_path / f"{name}.sqlite"),
                       "INSTANCE_CONFIG_FILE": str(tmp_path / f"{name}-config.py")})


def roster(db) -> list[tuple]:
    """Return the runners as comparable rows."""
    return db.execute("SELECT id, start_number, name, class, grade, hlc, origin FROM runner "
                      "ORDER BY id").fetchall()


def central_laps(central_db) -> int:
    """Return how many laps central holds."""
    return central_db.execute("SELECT count(*) AS n FROM lap").fetchone()["n"]


def test_two_laptops_converge_through_real_central(app, db, runners, cli, live_central, central_db,
                                                    device_token, tmp_path):
    from lapsync.laptop import db as laptop_db
    from sync.devices import register_device
    a_laps = laps(db, 1, 1, 2)
    set_void(db, a_laps[1], user_id(db), True, "double")
    central_db.execute("UPDATE device SET manage_users = true")  # A's users reach central
    assert cli.invoke(args=["connect", live_central, device_token]).exit_code == 0
    assert central_laps(central_db) == 3 and pending(db) == []
    b = laptop(tmp_path, "b")
    b_cli = b.test_cli_runner()
    result = b_cli.invoke(args=["connect", live_central, register_device(central_db, "laptop-b")])
    assert result.exit_code == 0, result.output
    # ada, tom and vic from A, and central's helper; B is not trusted: ada without her hash.
    assert "runner 3" in result.output and "user 4" in result.output
    b_db = laptop_db.connect(b.config["DATABASE"])
    assert roster(b_db) == roster(db)
    assert b_db.execute("SELECT password_hash FROM user WHERE name = 'ada'").fetchone()[0] == \
        "!withheld"
    browser = b.test_client()
    login(browser, "tom")  # the teacher logs in on B offline, with the pulled hash
    b_lap = laps(b_db, 1)[0]
    new_runner = client_add_runner(b_db, 50, "Late Runner")
    laps(b_db, 50)
    assert b_cli.invoke(args=["sync"]).exit_code == 0
    assert cli.invoke(args=["sync"]).exit_code == 0
    assert central_laps(central_db) == 5
    assert roster(db) == roster(b_db) and new_runner in {r[0] for r in roster(db)}
    assert other_laps(db, runners[1]) == 1       # B's lap of runner 1
    assert other_laps(b_db, runners[1]) == 1     # A's lap that counts (one is voided)
    assert other_laps(db, new_runner) == 1
    assert b_lap not in [r[0] for r in db.execute("SELECT id FROM lap")]  # laps stay where made
    b_db.close()


def client_add_runner(db, number: int, name: str) -> str:
    """Add a runner on a laptop."""
    from lapsync.laptop.runners import add_runner
    return add_runner(db, number, name, "7c", 7)


def test_replayed_push_after_a_lost_ack_changes_nothing_at_central(app, db, runners, cli,
                                                                   live_central, central_db,
                                                                   device_token):
    from tests.pg import snapshot
    laps(db, 1, 2, 17)
    app.config.update(CENTRAL_URL=live_central, CENTRAL_TOKEN=device_token)
    assert cli.invoke(args=["sync"]).exit_code == 0
    before = snapshot(central_db, skip_device_contact=True)
    with transaction(db):  # the laptop died between central's commit and its own ack
        forget_pushed(db)
    assert cli.invoke(args=["sync"]).exit_code == 0
    assert pending(db) == [] and snapshot(central_db, skip_device_contact=True) == before


def test_central_settings_and_voids_reach_the_laptop(app, db, runners, cli, live_central,
                                                     central_db, device_token):
    from sync.settings import set_setting
    lap = laps(db, 1)[0]
    app.config.update(CENTRAL_URL=live_central, CENTRAL_TOKEN=device_token)
    assert cli.invoke(args=["sync"]).exit_code == 0
    set_setting(central_db, "min_lap_seconds", 30)
    assert cli.invoke(args=["sync"]).exit_code == 0
    assert min_lap_seconds(db, 60) == 30
    assert db.execute("SELECT voided_at FROM lap WHERE id = ?", [lap]).fetchone()[0] is None


def test_revoked_token_shows_not_authorised(app, db, cli, live_central, central_db, device_token):
    from sync.devices import revoke_device
    app.config.update(CENTRAL_URL=live_central, CENTRAL_TOKEN=device_token)
    assert cli.invoke(args=["sync"]).exit_code == 0
    revoke_device(central_db, "laptop-a")
    result = cli.invoke(args=["sync"])
    assert result.exit_code == 3 and "not authorised" in result.output
    assert sync_once(db, central_from_config(app.config)).skipped == "auth"
    assert status_for(app, db)["text"].startswith("device not authorised")


# ---- compact lap runs and the pipelined push --------------------------------------

def verbose_changes(db, start: int) -> list[dict]:
    """Return the changes of a verbose batch from START, decoded."""
    return json.loads(build_batch(db, start)[0])["changes"]


def test_a_compact_batch_carries_exactly_the_changes_of_the_verbose_one(db, runners):
    first = laps(db, 1, 2)[0]
    set_void(db, first, user_id(db), True, "typo")
    laps(db, 17, 1)
    with transaction(db):  # a lap payload not as record_change writes it: it goes verbatim
        lap_id = new_id()
        db.execute("INSERT INTO change (entity, entity_id, payload, created_at) VALUES "
                   "('lap', ?, ?, ?)", [lap_id, json.dumps({
                       "runner_id": runners[1], "id": lap_id, "created_by": user_id(db),
                       "time": now_ms(), "device_id": device_id(db)}), now_ms()])
    laps(db, 2)
    start = pending(db)[0]
    body, seqs = build_batch(db, start, compact=True)
    decoded = json.loads(body)
    assert [c["entity"] for c in decoded["changes"]][-5:] == ["laps", "lap_void", "laps", "lap", "laps"]
    cleaned = protocol.validate_push(decoded)
    assert protocol.expand_changes(cleaned["changes"]) == verbose_changes(db, start)
    assert seqs == list(range(start, changes(db) + 1))


def test_a_lap_run_never_spans_a_gap_in_the_outbox_seqs(db):
    backlog(db, 6)
    first = changes(db) - 5
    with transaction(db):  # a row gone from the outbox (it never happens; if it did ...)
        db.execute("DELETE FROM change WHERE seq = ?", [first + 3])
    body, seqs = build_batch(db, first, compact=True)
    assert seqs == [first, first + 1, first + 2, first + 4, first + 5]
    sent = json.loads(body)["changes"]
    assert [c["entity"] for c in sent] == ["laps", "laps"]
    assert [c["seq"] for c in protocol.expand_changes(sent)] == seqs  # ... no seq is renamed
    with pytest.raises(protocol.ProtocolError) as refused:   # and central refuses the gap
        protocol.validate_push(json.loads(body))
    assert refused.value.extra["field"] == "seq"


def test_compact_batches_are_bounded_by_bytes_too(db, monkeypatch):
    backlog(db, 60)
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_BYTES", 2_000)
    start, covered = pending(db)[0], []
    while start <= changes(db):
        body, seqs = build_batch(db, start, compact=True)
        assert len(body) <= 2_000 and seqs and seqs[0] == start
        decoded = protocol.validate_push(json.loads(body))["changes"]
        assert [c["seq"] for c in protocol.expand_changes(decoded)] == seqs
        covered += seqs
        start = seqs[-1] + 1
    assert covered == list(range(pending(db)[0], changes(db) + 1))


class RecordingCentral(Central):
    """A client that keeps every push body it sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bodies: list[dict] = []

    def push(self, body: bytes) -> tuple[int, dict]:
        """Record the body (a columnar one as the JSON body it stands for), then POST it."""
        self.bodies.append(validate_columns(body) if body.startswith(MAGIC) else json.loads(body))
        return super().push(body)


def test_laps_go_compact_once_central_announces_it_and_each_lap_arrives_once(
        db, live_central, central_db, device_token, monkeypatch):
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 40)
    backlog(db, 150)
    central = RecordingCentral(live_central, device_token)
    result = sync_once(db, central)
    assert result.error is None and pending(db) == [] and central.encodings == {"laps", "clock_jumps"}
    entities = [{c["entity"] for c in body["changes"]} for body in central.bodies]
    assert entities[:2] == [{"lap", "user"}, {"lap"}]       # sent before central's first answer
    assert all(kinds == {"laps"} for kinds in entities[2:]) and len(entities) >= 4
    sent = [c["seq"] for body in central.bodies
            for c in protocol.expand_changes(protocol.validate_push(body)["changes"])]
    assert sent == list(range(1, changes(db) + 1))
    stored = central_db.execute("SELECT count(*) AS n, count(DISTINCT id) AS d FROM lap").fetchone()
    assert stored == {"n": 150, "d": 150}
    backlog(db, 50)                                          # the next run (a new process) ...
    again = RecordingCentral(live_central, device_token)
    assert sync_once(db, again).error is None and pending(db) == []
    assert [{c["entity"] for c in body["changes"]} for body in again.bodies] == [{"laps"}, {"laps"}]
    from sync.devices import register_device
    other = RecordingCentral(live_central, register_device(central_db, "laptop-b"))
    recall_encodings(db, other)                        # ... not for another URL or token
    assert other.encodings == set()


def test_a_pipelined_push_marks_a_batch_only_after_its_answer(db, central, monkeypatch):
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 10)
    backlog(db, 35)
    central.fault("push", ("sleep", 0))   # batch 1 answered
    central.fault("push", "commit_drop")  # batch 2 applied, its answer lost
    failed = sync_once(db, to(central))
    assert failed.error is not None and failed.error.kind == TRANSIENT
    bodies = central.pushed()
    assert len(bodies) == 2                                   # batch 3 waited for batch 2's answer
    assert pending(db)[0] == bodies[1]["changes"][0]["seq"]   # batch 1 marked, batch 2 not
    assert sync_once(db, to(central), force=True).error is None
    assert pending(db) == [] and [c["seq"] for c in central.received] == list(range(1, changes(db) + 1))


def test_a_central_that_refuses_compact_runs_gets_verbose_batches_again(db, runners, central):
    laps(db, 1, 2)
    server = to(central)
    server.encodings = {"laps"}  # announced earlier; central was downgraded since
    central.fault("push", (422, {"error": "invalid_change", "message": "unknown entity 'laps'"}))
    failed = sync_once(db, server)
    assert failed.error is not None and failed.error.status == 422 and server.encodings == set()
    fresh = to(central)
    recall_encodings(db, fresh)   # the next run does not start with lap runs either
    assert fresh.encodings == set()
    assert sync_once(db, server, force=True).error is None and pending(db) == []
    assert {c["entity"] for c in central.pushed()[-1]["changes"]} <= {"lap", "runner", "user"}


# ---- the catch-up push: short runs, gzip on slow links -------------------

def test_long_runs_are_cut_so_that_each_runs_columns_are_let_go_as_it_ends(db, monkeypatch):
    monkeypatch.setattr(protocol_encode, "RUN_LAPS", 4)
    backlog(db, 10)
    start = pending(db)[0]
    body, seqs = build_batch(db, start, compact=True)
    runs = [c for c in json.loads(body)["changes"] if c["entity"] == "laps"]
    assert [len(run["data"]["id"]) for run in runs] == [4, 4, 2]
    cleaned = protocol.validate_push(json.loads(body))
    assert protocol.expand_changes(cleaned["changes"]) == verbose_changes(db, start)
    assert seqs == list(range(start, changes(db) + 1))


def test_the_links_speed_decides_compression_where_central_accepts_gzip():
    central = Central("http://127.0.0.1:9", TOKEN)
    accepts = {"content_encodings": ["gzip"], "apply_ms": 500}
    assert not central.compressing()                      # nothing measured yet
    central.learn_link(1_000_000, 0.51, accepts)          # 10 ms on the wire: 100 MB/s
    assert central.link_rate == pytest.approx(1e8) and not central.compressing()
    central.learn_link(1_000_000, 1.5, accepts)           # 1 s on the wire: 1 MB/s
    assert central.link_rate == pytest.approx(1e6) and central.compressing()
    central.learn_link(10_000, 9.0, accepts)              # a small push tells of latency only
    assert central.link_rate == pytest.approx(1e6) and central.compressing()
    central.learn_link(1_000_000, 1.5, {"apply_ms": 500})  # a central that does not list gzip
    assert not central.compressing()
    central.learn_link(1_000_000, 0.51, accepts)
    central.gzip = True                                    # forced either way (bench_push --gzip)
    assert central.compressing()
    central.learn_link(1_000_000, 1.5, accepts)
    central.gzip = False
    assert not central.compressing()
    for bad in (None, "500", True, -1):                   # no usable apply_ms: no estimate
        fresh = Central("http://127.0.0.1:9", TOKEN)
        fresh.learn_link(1_000_000, 1.5, {"content_encodings": ["gzip"], "apply_ms": bad})
        assert fresh.link_rate is None and not fresh.compressing()


class WatchedCentral(Central):
    """A client that notes, for every push, whether it went gzip-compressed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gzipped: list[bool] = []

    def push(self, body: bytes) -> tuple[int, dict]:
        """Note the choice, then push as the product does."""
        self.gzipped.append(self.compressing())
        return super().push(body)


def test_pushes_go_gzip_compressed_once_the_link_proves_slow_and_arrive_once(
        db, live_central, central_db, device_token, monkeypatch):
    from lapsync.devkit.faultproxy import FaultProxy
    monkeypatch.setattr(protocol.limits, "MAX_BATCH_CHANGES", 2_500)
    backlog(db, 7_000)
    link = FaultProxy(live_central, rate=4_000_000, keep_exchanges=False)  # 32 Mbit/s
    try:
        central = WatchedCentral(link.url, device_token)
        result = sync_once(db, central)
    finally:
        link.close()
    assert result.error is None and pending(db) == []
    assert central.gzipped[0] is False and central.gzipped[1:] == [True] * (len(central.gzipped) - 1)
    assert len(central.gzipped) == 3 and central.link_rate < GZIP_BELOW_BYTES_PER_S
    stored = central_db.execute("SELECT count(*) AS n, count(DISTINCT id) AS d FROM lap").fetchone()
    assert stored == {"n": 7_000, "d": 7_000}


def test_a_refused_gzip_push_is_sent_as_plain_json_next_time(db, central):
    backlog(db, 3)
    server = to(central)
    server.content_encodings, server.gzip = {"gzip"}, True  # announced once, forced on
    central.fault("push", 415)                                # a central that no longer takes it
    failed = sync_once(db, server, force=True)
    assert failed.error is not None and failed.error.status == 415 and not server.compressing()
    assert sync_once(db, server, force=True).error is None and pending(db) == []
    first, second = central.pushed()              # the fake reads plain JSON only
    assert first is None and second["changes"]


@pytest.mark.parametrize("value,ok", [
    ("1700000000000.0000", True), ("1700000000000.0001", True),
    ("\u0661" * 13 + ".0000", False),          # Arabic-Indic digits: \d took them
    ("1700000000000.0000\n", False),           # ^...$ let a trailing newline through
    ("170000000000.0000", False), (None, False), (1700000000000, False),
])
def test_a_pulled_hlc_is_ascii_digits_only(value, ok):
    """The pull checks stamps as central does: a stamp that outranks every real one is refused."""
    if ok:
        assert protocol.pulled_hlc(value) == value
    else:
        with pytest.raises(ValueError):
            protocol.pulled_hlc(value)

"""Lap entry: recording, minimum lap time, void, unknown numbers, bad input."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from cuid2 import is_cuid

from lapsync.laptop import create_app
from lapsync.laptop.db import connect
from lapsync.laptop.lapnotes import since_text

JSON = {"Accept": "application/json"}


def post_lap(client, number, **extra):
    """Post a start number the way the page's script does."""
    data = {"start_number": number, **extra}
    return client.post("/laps", data=data, headers={**JSON, "X-CSRFToken": client.csrf})


def test_lap_gets_cuid_and_next_seq_and_survives_restart(app, teacher, runners):
    first = post_lap(teacher, "1")
    assert first.status_code == 201
    body = first.get_json()
    assert is_cuid(body["lap"]["id"])
    assert body["runner"]["name"] == "Anna Berg" and body["count"] == 1
    assert body["since_previous_ms"] is None
    second = post_lap(teacher, "2").get_json()
    db = connect(app.config["DATABASE"])
    seqs = {row["entity_id"]: row["seq"] for row in db.query("SELECT * FROM change WHERE entity = 'lap'")}
    assert seqs[second["lap"]["id"]] == seqs[body["lap"]["id"]] + 1
    db.close()
    restarted = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE": app.config["DATABASE"]})
    db = connect(restarted.config["DATABASE"])
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 2
    assert db.execute("SELECT runner_id FROM lap WHERE id = ?", [body["lap"]["id"]]).fetchone()[0] == runners[1]
    db.close()


def test_outbox_change_is_written_with_the_lap(teacher, runners, db):
    lap_id = post_lap(teacher, "17").get_json()["lap"]["id"]
    change = next(db.query("SELECT * FROM change WHERE entity_id = ?", [lap_id]))
    payload = json.loads(change["payload"])
    assert payload["runner_id"] == runners[17] and change["pushed_at"] is None


def test_min_lap_time_warns_and_records_nothing_until_confirmed(teacher, runners, db):
    assert post_lap(teacher, "1").status_code == 201
    warned = post_lap(teacher, "1")
    assert warned.status_code == 409
    assert warned.get_json()["error"] == "too_soon"
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 1
    confirmed = post_lap(teacher, "1", confirm="1")
    assert confirmed.status_code == 201 and confirmed.get_json()["count"] == 2
    assert 0 <= confirmed.get_json()["since_previous_ms"] < 60_000


def test_a_number_that_waited_on_the_page_counts_at_the_time_it_was_typed(teacher, runners, db):
    waited = post_lap(teacher, "1", typed_ms_ago="70000")   # the app did not answer for 70 s
    assert waited.status_code == 201
    again = post_lap(teacher, "1", typed_ms_ago="0")        # typed just now: 70 s later
    assert again.status_code == 201 and 70_000 <= again.get_json()["since_previous_ms"] < 75_000
    first, second = [row[0] for row in db.execute("SELECT time FROM lap ORDER BY rowid")]
    assert 70_000 <= second - first < 75_000


def test_a_number_typed_before_the_lap_ahead_of_it_reached_the_app_is_too_soon(teacher, runners, db):
    assert post_lap(teacher, "1").status_code == 201          # reached the app just now
    waited = post_lap(teacher, "1", typed_ms_ago="5000")      # typed 5 s ago, sent only now
    assert waited.status_code == 409 and waited.get_json()["error"] == "too_soon"
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 1   # not counted unasked


def test_a_number_held_while_another_helper_counted_the_runner_minutes_later_counts(
        teacher, runners, db):
    assert post_lap(teacher, "1").status_code == 201           # another helper, just now
    held = post_lap(teacher, "1", typed_ms_ago="120000")       # typed 2 min before, held since
    assert held.status_code == 201 and held.get_json()["since_previous_ms"] >= 119_000
    close = post_lap(teacher, "1", typed_ms_ago="90000")       # 30 s after the held one
    assert close.status_code == 409 and 29_000 <= close.get_json()["since_previous_ms"] <= 31_000
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 2


@pytest.mark.parametrize("value", ["-5", "1.5", "x", "86400001", "٣"])
def test_an_unreadable_typing_time_records_nothing(teacher, runners, db, value):
    refused = post_lap(teacher, "1", typed_ms_ago=value)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_typed_ago"
    assert "nothing was recorded" in refused.get_json()["message"]
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM change WHERE entity = 'lap'").fetchone()[0] == 0


def test_a_merged_runners_number_counts_for_the_runner_it_was_merged_into(teacher, runners, db):
    db.execute("INSERT INTO runner_merge (runner_id, merged_into) VALUES (?, ?)",
               [runners[2], runners[1]])                  # central merged Ben (2) into Anna (1)
    counted = post_lap(teacher, "2")                       # Ben's bib, still on the runner
    assert counted.status_code == 201
    assert counted.get_json()["runner"]["name"] == "Anna Berg"
    assert [r[0] for r in db.execute("SELECT runner_id FROM lap")] == [runners[1]]
    assert post_lap(teacher, "1").status_code == 409       # the same runner: too soon
    assert post_lap(teacher, "3").status_code == 404       # nobody's number stays unknown


def test_min_lap_time_comes_from_config(tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "DATABASE": str(tmp_path / "x.sqlite"),
                      "MIN_LAP_SECONDS": 0})
    from lapsync.laptop.auth import create_user
    from lapsync.laptop.runners import add_runner
    from tests.conftest import login
    db = connect(app.config["DATABASE"])
    create_user(db, "tom", "teacher", "correct-horse")
    add_runner(db, 5, "Eva", "7c", 7)
    client = app.test_client()
    client.csrf = login(client, "tom")
    assert post_lap(client, "5").status_code == 201
    assert post_lap(client, "5").status_code == 201


def test_unknown_number_records_nothing(teacher, runners, db):
    response = post_lap(teacher, "999")
    assert response.status_code == 404
    assert response.get_json() == {"error": "unknown_runner", "message": response.get_json()["message"]}
    assert "999" in response.get_json()["message"]
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM change WHERE entity = 'lap'").fetchone()[0] == 0


@pytest.mark.parametrize("raw", ["", "   ", "abc", "-3", "0", "1.5", "1e3", "1000000",
                                 "99999999999999999999999", "١٢", "12 13", "x" * 5000])
def test_bad_start_numbers_are_refused(teacher, runners, db, raw):
    response = post_lap(teacher, raw)
    assert response.status_code == 400
    assert response.get_json()["error"] in ("missing_start_number", "invalid_start_number")
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0


def test_double_submit_with_same_key_records_once(teacher, runners, db):
    first = post_lap(teacher, "2", client_key="k-123")
    again = post_lap(teacher, "2", client_key="k-123")
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["lap"]["id"] == first.get_json()["lap"]["id"]
    assert again.get_json()["duplicate"] is True
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 1


def test_void_keeps_the_lap_struck_through_and_syncs(teacher, runners, db):
    lap_id = post_lap(teacher, "1").get_json()["lap"]["id"]
    response = teacher.post(f"/laps/{lap_id}/void", headers={**JSON, "X-CSRFToken": teacher.csrf})
    assert response.get_json() == {"id": lap_id, "voided": True, "changed": True}
    row = next(db.query("SELECT * FROM lap WHERE id = ?", [lap_id]))
    assert row["voided_at"] and row["voided_by"] and row["void_hlc"]
    assert db.execute("SELECT count(*) FROM change WHERE entity = 'lap_void'").fetchone()[0] == 1
    page = teacher.get("/").get_data(as_text=True)
    assert f'data-lap="{lap_id}" class="voided"' in page
    assert post_lap(teacher, "1").get_json()["count"] == 1  # voided laps never count nor block


def test_void_twice_changes_nothing_and_restore_counts_again(teacher, runners, db):
    lap_id = post_lap(teacher, "1").get_json()["lap"]["id"]
    headers = {**JSON, "X-CSRFToken": teacher.csrf}
    teacher.post(f"/laps/{lap_id}/void", headers=headers)
    assert teacher.post(f"/laps/{lap_id}/void", headers=headers).get_json()["changed"] is False
    assert teacher.post(f"/laps/{lap_id}/restore", headers=headers).get_json()["voided"] is False
    assert db.execute("SELECT count(*) FROM change WHERE entity = 'lap_void'").fetchone()[0] == 2
    assert db.execute("SELECT voided_at FROM lap").fetchone()[0] is None


def test_void_of_unknown_lap_is_404(teacher, runners):
    response = teacher.post("/laps/nope/void", headers={**JSON, "X-CSRFToken": teacher.csrf})
    assert response.status_code == 404 and response.get_json()["error"] == "unknown_lap"


def test_void_reason_too_long_is_refused(teacher, runners, db):
    lap_id = post_lap(teacher, "1").get_json()["lap"]["id"]
    response = teacher.post(f"/laps/{lap_id}/void", data={"reason": "x" * 201},
                            headers={**JSON, "X-CSRFToken": teacher.csrf})
    assert response.status_code == 422
    assert db.execute("SELECT voided_at FROM lap").fetchone()[0] is None


def void_form(client, lap_id: str, action: str = "void", **extra):
    """Post a recent-laps row's Void (or Restore) form as a browser without JavaScript does."""
    return client.post(f"/laps/{lap_id}/{action}", data={"csrf_token": client.csrf, **extra})


def lap_voids(db) -> list[tuple]:
    """Return each lap's void state and reason, and how many void changes are queued."""
    laps = db.execute("SELECT voided_at IS NOT NULL, void_reason FROM lap").fetchall()
    return laps + db.execute("SELECT count(*) FROM change WHERE entity = 'lap_void'").fetchall()


def test_plain_form_void_asks_first_naming_the_lap(teacher, runners, db):
    lap = post_lap(teacher, "17").get_json()["lap"]
    asked = void_form(teacher, lap["id"])
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and 'id="void-confirm"' in page
    clock = datetime.fromtimestamp(lap["time"] / 1000).strftime("%H:%M:%S")
    assert "Void this lap?</strong>" in page and f"{clock} – Cleo Dahl (17, 6b)" in page
    assert f'action="/laps/{lap["id"]}/void"' in page and 'name="confirm" value="1"' in page
    assert "Yes, void it" in page and 'class="void-cancel" href="/"' in page
    assert lap_voids(db) == [(0, None), (0,)]  # asking voided nothing


def test_plain_form_void_with_confirm_voids_with_its_reason(teacher, runners, db):
    lap_id = post_lap(teacher, "17").get_json()["lap"]["id"]
    response = void_form(teacher, lap_id, confirm="1", reason="typed 17 for 71")
    assert response.status_code == 302
    assert lap_voids(db) == [(1, "typed 17 for 71"), (1,)]
    page = teacher.get("/").get_data(as_text=True)
    assert "Lap voided." in page and f'data-lap="{lap_id}" class="voided"' in page
    assert 'id="void-confirm"' not in page


def test_plain_form_restore_needs_no_second_step(teacher, runners, db):
    lap_id = post_lap(teacher, "17").get_json()["lap"]["id"]
    void_form(teacher, lap_id, confirm="1")
    assert void_form(teacher, lap_id, "restore").status_code == 302
    assert lap_voids(db) == [(0, None), (2,)]


def test_plain_form_void_of_a_voided_lap_does_not_ask_again(teacher, runners, db):
    lap_id = post_lap(teacher, "17").get_json()["lap"]["id"]
    void_form(teacher, lap_id, confirm="1")
    again = void_form(teacher, lap_id)
    assert again.status_code == 302
    assert "That lap is voided already." in teacher.get("/").get_data(as_text=True)
    assert lap_voids(db) == [(1, "voided at the track"), (1,)]


def test_plain_form_void_with_a_bad_reason_asks_again_and_voids_nothing(teacher, runners, db):
    lap_id = post_lap(teacher, "17").get_json()["lap"]["id"]
    refused = void_form(teacher, lap_id, confirm="1", reason="x" * 201)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'class="feedback bad"' in page
    assert "The reason may be at most 200 characters" in page and 'id="void-confirm"' in page
    assert lap_voids(db) == [(0, None), (0,)]


@pytest.mark.parametrize("confirm", ["", "1"])
def test_plain_form_void_of_an_unknown_lap_is_a_404_page(teacher, runners, db, confirm):
    response = void_form(teacher, "no-such-lap", confirm=confirm)
    assert response.status_code == 404 and "That lap does not exist." in response.get_data(as_text=True)
    assert response.mimetype == "text/html"


def test_json_void_still_voids_in_one_request_with_or_without_confirm(teacher, runners, db):
    headers = {**JSON, "X-CSRFToken": teacher.csrf}
    first = post_lap(teacher, "1").get_json()["lap"]["id"]
    second = post_lap(teacher, "2").get_json()["lap"]["id"]
    assert teacher.post(f"/laps/{first}/void", headers=headers).get_json()["changed"] is True
    answer = teacher.post(f"/laps/{second}/void", data={"confirm": "1"}, headers=headers)
    assert answer.get_json() == {"id": second, "voided": True, "changed": True}
    assert db.execute("SELECT count(*) FROM lap WHERE voided_at IS NOT NULL").fetchone()[0] == 2


def test_plain_form_post_without_javascript(teacher, runners):
    response = teacher.post("/laps", data={"start_number": "17", "csrf_token": teacher.csrf},
                            follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<span class="count">1</span> Cleo Dahl (17, 6b) – first lap' in page


def test_plain_form_unknown_number_shows_red_message(teacher, runners):
    response = teacher.post("/laps", data={"start_number": "404", "csrf_token": teacher.csrf})
    assert response.status_code == 404
    assert 'class="feedback bad"' in response.get_data(as_text=True)
    assert "No runner has start number 404" in response.get_data(as_text=True)


def test_plain_form_too_soon_offers_confirm_button(teacher, runners, db):
    teacher.post("/laps", data={"start_number": "2", "csrf_token": teacher.csrf})
    response = teacher.post("/laps", data={"start_number": "2", "csrf_token": teacher.csrf})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert 'name="confirm" value="1"' in page and "Count this lap anyway?" in page
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 1


def test_same_number_on_two_runners_asks_which(teacher, runners, db):
    db.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin) "
               "VALUES ('r-other', 17, 'Dora Eck', '6b', 6, '0', 'elsewhere')")
    response = post_lap(teacher, "17")
    assert response.status_code == 409
    assert {r["name"] for r in response.get_json()["runners"]} == {"Cleo Dahl", "Dora Eck"}
    chosen = post_lap(teacher, "17", runner_id="r-other")
    assert chosen.status_code == 201 and chosen.get_json()["runner"]["name"] == "Dora Eck"


def test_recent_laps_newest_first(teacher, runners):
    post_lap(teacher, "1")
    post_lap(teacher, "2")
    page = teacher.get("/").get_data(as_text=True)
    assert page.index("Ben Cruz") < page.index("Anna Berg")


def test_pulled_min_lap_time_overrides_config(teacher, runners, db):
    db.execute("INSERT INTO meta (key, value) VALUES ('setting:min_lap_seconds', '0')")
    assert post_lap(teacher, "1").status_code == 201
    assert post_lap(teacher, "1").status_code == 201  # central set no minimum


def test_count_includes_laps_from_other_laptops(teacher, runners, db):
    db.execute("INSERT INTO runner_other_laps (runner_id, laps) VALUES (?, 4)", [runners[2]])
    assert post_lap(teacher, "2").get_json()["count"] == 5


def test_accept_any_gets_the_page_flow_not_json(teacher, runners):
    response = teacher.post("/laps", data={"start_number": "1", "csrf_token": teacher.csrf},
                            headers={"Accept": "*/*"})
    assert response.status_code == 302  # a plain form post: redirect back to the page


def test_connections_are_reused_between_requests(app, teacher, runners):
    # Regression (bench/bench_laps.py): a connection per request, closed at its end,
    # checkpointed the WAL on every close and cost more than the lap insert itself.
    post_lap(teacher, "1", confirm="1")
    idle = app.extensions["lapsync_db_idle"]
    kept = idle.get_nowait()
    idle.put(kept)
    post_lap(teacher, "2")
    assert idle.get_nowait() is kept and not kept.conn.in_transaction


def test_plain_form_says_first_lap_only_when_the_count_is_one(teacher, runners, db):
    db.execute("INSERT INTO runner_other_laps (runner_id, laps) VALUES (?, 2)", [runners[2]])
    page = teacher.post("/laps", data={"start_number": "2", "csrf_token": teacher.csrf},
                        follow_redirects=True).get_data(as_text=True)
    # two laps on other laptops, one here: not "first lap"
    assert '<span class="count">3</span> Ben Cruz (2, 5a) – previous lap on another laptop' in page


def test_plain_form_retry_says_already_recorded(teacher, runners):
    data = {"start_number": "17", "csrf_token": teacher.csrf, "client_key": "k-retry"}
    teacher.post("/laps", data=data)
    page = teacher.post("/laps", data=data, follow_redirects=True).get_data(as_text=True)
    assert '<span class="count">1</span> Cleo Dahl (17, 6b) – already recorded' in page


def test_plain_form_confirm_counts_for_the_warned_runner_of_a_shared_number(teacher, runners, db):
    db.execute("INSERT INTO runner (id, start_number, name, class, grade, hlc, origin) "
               "VALUES ('r-other', 17, 'Dora Eck', '6b', 6, '0', 'elsewhere')")
    form = {"start_number": "17", "csrf_token": teacher.csrf, "runner_id": "r-other"}
    teacher.post("/laps", data=form)
    warned = teacher.post("/laps", data=form)
    assert warned.status_code == 409 and 'name="runner_id" value="r-other"' in warned.get_data(as_text=True)
    teacher.post("/laps", data={**form, "confirm": "1"})
    assert db.execute("SELECT count(*) FROM lap WHERE runner_id = 'r-other'").fetchone()[0] == 2


@pytest.mark.parametrize("since_ms, text", [
    (65_400, "1 min 5 s since last lap"),
    (3_599_999, "59 min 59 s since last lap"),
    (3_600_000, "1 h 0 min since last lap"),
    (44_450_000, "12 h 20 min since last lap"),    # a relay's night, not "740 min 50 s"
])
def test_the_time_since_the_last_lap_reads_in_hours_from_an_hour_on(app, since_ms, text):
    result = {"since_previous_ms": since_ms, "count": 2}
    with app.test_request_context():
        assert since_text(result) == text

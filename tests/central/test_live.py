"""Central live view: the newest laps, a polled JSON feed whose cursor never skips a lap."""
from __future__ import annotations

import re
import secrets
import threading

import pytest
import requests
from flask.sessions import SecureCookieSessionInterface
from playwright.sync_api import expect

from lapsync.protocol import validate_push
from sync import create_app
from sync.db import close_pool, now_ms
from sync.devices import find_device
from sync.live import FEED_LIMIT, PAGE_LAPS
from sync.push import push
from tests.pg import Outbox, register
from tests.web import served

T0 = 1_700_000_100_000


def send(conn, token: str, box: Outbox, now: int, first: int = 1) -> None:
    """Push an outbox's changes from seq `first` through central's real push, received at `now`."""
    push(conn, find_device(conn, token), validate_push(box.body(first)), now)


def feed(client, **params) -> dict:
    """GET /live/feed with params; return its JSON (asserting 200)."""
    response = client.get("/live/feed", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_page_shows_the_newest_laps_newest_first(viewer, central_db, device_token):
    box = Outbox()
    runner = box.runner(7, "Anna Berg", "5a")
    laps = [box.lap(runner) for _ in range(PAGE_LAPS + 10)]
    send(central_db, device_token, box, now=T0)
    page = viewer.get("/live/").get_data(as_text=True)
    shown = re.findall(r'<tr data-lap="([^"]+)"', page)
    assert shown == list(reversed(laps))[:PAGE_LAPS]   # the latest 50, newest on top
    assert "Anna Berg" in page and "laptop-a" in page and ">5a<" in page
    assert '<noscript><meta http-equiv="refresh"' in page and "live.js" in page
    feed_id = central_db.execute("SELECT max(feed_id) AS m FROM lap").fetchone()["m"]
    assert f'data-cursor="{feed_id}"' in page


def test_feed_after_a_cursor_returns_only_newer_laps(viewer, central_db, device_token):
    box = Outbox()
    runner = box.runner(7, "Anna Berg", "5a")
    box.lap(runner), box.lap(runner)
    send(central_db, device_token, box, now=T0)
    first = feed(viewer)
    assert first["reset"] and len(first["laps"]) == 2
    assert feed(viewer, after=first["cursor"])["laps"] == []
    newer = box.lap(runner)
    send(central_db, device_token, box, now=T0 + 1000, first=4)
    answer = feed(viewer, after=first["cursor"], voids=first["void_cursor"])
    assert [lap["id"] for lap in answer["laps"]] == [newer]
    lap = answer["laps"][0]
    assert (lap["name"], lap["class"], lap["start_number"], lap["device"], lap["runner_laps"],
            lap["received_at"], lap["voided"]) == ("Anna Berg", "5a", 7, "laptop-a", 3, T0 + 1000,
                                                   False)
    assert answer["cursor"] > first["cursor"] and not answer["reset"]


def test_a_lap_committed_later_with_an_older_receipt_time_is_not_lost(viewer, central_db,
                                                                      device_token):
    # Push A takes its receipt time, then waits for the write lock while push B (later
    # receipt time) commits: a cursor on received_at would move past A's lap for good.
    box_a, box_b = Outbox(), Outbox()
    runner = box_b.runner(7, "Anna Berg")
    box_b.lap(runner)
    send(central_db, register(central_db, "laptop-b"), box_b, now=T0 + 5_000)
    seen = feed(viewer)
    late = box_a.lap(runner)
    send(central_db, device_token, box_a, now=T0)          # commits after, received "before"
    answer = feed(viewer, after=seen["cursor"], voids=seen["void_cursor"])
    assert [lap["id"] for lap in answer["laps"]] == [late]
    assert answer["laps"][0]["received_at"] < seen["laps"][-1]["received_at"]


def test_a_lap_waiting_for_the_write_lock_is_seen_by_the_next_poll(viewer, central_db, pg_url,
                                                                   device_token):
    """Real concurrency: a push blocked behind another writer commits after a poll."""
    import psycopg
    from psycopg.rows import dict_row

    from sync.db import write_transaction
    box = Outbox()
    runner = box.runner(7, "Anna Berg")
    box.lap(runner)
    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as holder, \
            psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as pusher:
        with write_transaction(holder):                    # another writer holds the lock
            thread = threading.Thread(target=send, args=(pusher, device_token, box, T0))
            thread.start()
            thread.join(0.3)
            before = feed(viewer, after=0, voids=0)
            assert before["laps"] == [] and before["cursor"] == 0
        thread.join(10)
    after = feed(viewer, after=before["cursor"], voids=before["void_cursor"])
    assert len(after["laps"]) == 1


def test_void_changes_reach_the_feed(viewer, central_db, device_token):
    box = Outbox()
    runner = box.runner(7, "Anna Berg")
    lap = box.lap(runner)
    send(central_db, device_token, box, now=T0)
    seen = feed(viewer)
    box.void(lap)
    send(central_db, device_token, box, now=T0 + 1000, first=3)
    answer = feed(viewer, after=seen["cursor"], voids=seen["void_cursor"])
    assert answer["laps"] == [] and answer["voids"] == [{"lap_id": lap, "voided": True}]
    assert feed(viewer, after=answer["cursor"], voids=answer["void_cursor"])["voids"] == []
    page = viewer.get("/live/").get_data(as_text=True)
    assert f'<tr data-lap="{lap}" class="voided">' in page


def test_a_big_backlog_comes_in_pages(viewer, central_db, device_token):
    box = Outbox()
    runner = box.runner(7, "Anna Berg")
    laps = [box.lap(runner) for _ in range(FEED_LIMIT + 5)]
    send(central_db, device_token, box, now=T0)
    first = feed(viewer, after=0, voids=0)
    assert first["more"] and len(first["laps"]) == FEED_LIMIT
    rest = feed(viewer, after=first["cursor"], voids=first["void_cursor"])
    assert not rest["more"]
    assert [lap["id"] for lap in first["laps"] + rest["laps"]] == laps


def test_a_cursor_beyond_anything_handed_out_starts_over(viewer, central_db, device_token):
    box = Outbox()
    box.lap(box.runner(7, "Anna Berg"))
    send(central_db, device_token, box, now=T0)
    answer = feed(viewer, after=10**12, voids=5)
    assert answer["reset"] and len(answer["laps"]) == 1


@pytest.mark.parametrize("params", [{"after": "-1"}, {"after": "abc"}, {"after": "1e3"},
                                    {"after": "1" * 19}, {"after": "0", "voids": "-5"},
                                    {"after": " 1"}, {"after": "٣"}])
def test_bad_cursors_get_400_json(viewer, params):
    response = viewer.get("/live/feed", query_string=params)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_cursor"


def test_feed_works_across_processes_without_shared_memory(viewer, central_db, pg_url,
                                                           device_token, central_users):
    """Two app instances (as two gunicorn workers): a lap pushed over HTTP to one is in the
    other's feed, because the feed reads only the database."""
    other = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": pg_url})
    try:
        with served(other) as url:
            seen = feed(viewer)
            box = Outbox()
            box.lap(box.runner(7, "Anna Berg"))
            answer = requests.post(f"{url}/api/v1/push", json=box.body(), timeout=10,
                                   headers={"Authorization": f"Bearer {device_token}"})
            assert answer.status_code == 200, answer.text
            assert len(feed(viewer, after=seen["cursor"], voids=seen["void_cursor"])["laps"]) == 1
    finally:
        close_pool(other)


def test_empty_page_says_no_laps_yet(viewer):
    page = viewer.get("/live/").get_data(as_text=True)
    assert "No laps yet" in page and 'data-cursor="0"' in page


@pytest.mark.parametrize("path", ["/live/", "/live/feed?after=0"])
def test_anonymous_is_sent_to_login(central_client, path):
    response = central_client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_live_page_updates_itself_in_a_real_browser(live_central, central_app, central_db,
                                                    central_users, device_token, browser):
    """live.js: a lap pushed after the page loaded appears, a void strikes it through."""
    central_app.config["LIVE_POLL_MS"] = 200   # the page's poll interval (2 s in production)
    sid = secrets.token_urlsafe(32)
    central_db.execute("INSERT INTO user_session (id, user_id, valid_until) VALUES (%s, %s, %s)",
                       [sid, central_users["vic"], now_ms() + 3_600_000])
    box = Outbox()
    runner = box.runner(7, "Anna Berg", "5a")
    send(central_db, device_token, box, now=now_ms())
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(8_000)
        context.add_cookies([{"name": "session", "url": live_central,
                              "value": signed_session_cookie(central_app, sid)}])
        page.goto(f"{live_central}/live/")
        expect(page.locator("#live-empty")).to_be_visible()
        lap = box.lap(runner)
        send(central_db, device_token, box, now=now_ms(), first=2)
        row = page.locator(f'#live-laps tr[data-lap="{lap}"]')
        expect(row).to_contain_text("Anna Berg")
        expect(page.locator("#live-empty")).to_be_hidden()
        box.void(lap)
        send(central_db, device_token, box, now=now_ms(), first=3)
        expect(row).to_have_class(re.compile(r"\bvoided\b"))
        expect(page.locator("#live-status")).to_contain_text("Up to date")
    finally:
        context.close()


def signed_session_cookie(app, sid: str) -> str:
    """Return a Flask session cookie holding sid, signed with the app's key."""
    return SecureCookieSessionInterface().get_signing_serializer(app).dumps({"sid": sid})

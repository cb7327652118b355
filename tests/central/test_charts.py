"""Central charts: laps over time (5-minute buckets, offset-corrected) and laps per class."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest

from lapsync.protocol import validate_push
from sync.charts import BUCKET_MS, MAX_BUCKETS, axis_labels, nice_ticks
from sync.devices import find_device
from sync.push import push
from tests.pg import Outbox, register

T0 = 1_700_000_100_000          # a multiple of 5 minutes
assert T0 % BUCKET_MS == 0
S = 1000


def send(conn, token: str, box: Outbox, now: int, device_time: int) -> None:
    """Push an outbox through central's real push: received at `now`, laptop clock `device_time`."""
    push(conn, find_device(conn, token), validate_push(box.body(device_time=device_time)), now)


def bars(page: str, chart: str) -> list[dict]:
    """Return the data-* attributes and <title> of every bar of one SVG chart."""
    svg = re.search(rf'<svg id="{chart}".*?</svg>', page, re.S).group(0)
    found = []
    for attributes, title in re.findall(r'<rect class="bar"([^>]*)><title>([^<]*)</title>', svg):
        bar = {k: html.unescape(v) for k, v in re.findall(r'data-([\w-]+)="([^"]*)"', attributes)}
        found.append({**bar, "title": html.unescape(title)})
    return found


def bucket(offset_s: int) -> str:
    """Return the data-bucket label of the bucket starting offset_s after T0 (local time)."""
    return datetime.fromtimestamp((T0 + offset_s * S) / 1000).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def event(central_db, device_token):
    """Laptop A (right clock) and laptop B (an hour slow, pushed two hours late), one void."""
    a = Outbox()
    anna = a.runner(1, "Anna Berg", "5a")
    ben = a.runner(2, "Ben Cruz", "6b")
    a.runner(3, "Cleo Dahl", "7c")
    for at in (10, 200):
        a.lap(anna, time=T0 + at * S)                 # bucket 0
    a.lap(ben, time=T0 + 400 * S)                     # bucket 1
    a.void(a.lap(anna, time=T0 + 320 * S))            # bucket 1, voided: never counts
    a.lap(ben, time=T0 + 1300 * S)                    # bucket 4
    send(central_db, device_token, a, now=T0 + 1500 * S, device_time=T0 + 1500 * S)
    b = Outbox(clock_ms=T0 - 3600 * S)
    b.lap(anna, time=T0 - 3600 * S + 50 * S)          # really at T0 + 50 s: bucket 0
    send(central_db, register(central_db, "laptop-b"), b, now=T0 + 7200 * S,
         device_time=T0 + 3600 * S)                   # offset +1 h, received 2 h after
    return {"anna": anna, "ben": ben}


def test_laps_over_time_in_5_minute_buckets_by_corrected_device_time(viewer, event):
    page = viewer.get("/charts/").get_data(as_text=True)
    shown = bars(page, "laps-over-time")
    assert [(b["bucket"], b["laps"]) for b in shown] == [
        (bucket(0), "3"), (bucket(300), "1"), (bucket(600), "0"), (bucket(900), "0"),
        (bucket(1200), "1")]
    assert [int(b["start-ms"]) for b in shown] == [T0 + i * BUCKET_MS for i in range(5)]
    first, second = (datetime.fromtimestamp(ms / 1000) for ms in (T0, T0 + BUCKET_MS))
    assert shown[0]["title"] == f"{first:%H:%M}–{second:%H:%M}: 3 laps"
    assert shown[1]["title"].endswith(": 1 lap")
    assert f">{first:%H:%M}</text>" in page            # x axis label
    y_ticks = re.findall(r'<text class="tick" x="52" y="[\d.]+" text-anchor="end">(\d+)</text>', page)
    assert y_ticks == ["0", "1", "2", "3"]
    assert ">Laps</text>" in page and "Time on " in page


def test_laps_per_class_from_totals_without_voided_laps(viewer, event):
    shown = bars(viewer.get("/charts/").get_data(as_text=True), "laps-per-class")
    assert [(b["class"], b["laps"], b["title"]) for b in shown] == [
        ("5a", "3", "5a: 3 laps"), ("6b", "2", "6b: 2 laps"), ("7c", "0", "7c: 0 laps")]


def test_bar_heights_follow_the_values(viewer, event):
    page = viewer.get("/charts/").get_data(as_text=True)
    svg = re.search(r'<svg id="laps-over-time".*?</svg>', page, re.S).group(0)
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', svg)]
    assert heights[0] == pytest.approx(3 * heights[1], abs=0.05)
    assert heights[2] == heights[3] == 0 and heights[4] == heights[1]


def test_no_laps_yet(viewer, central_db, device_token):
    page = viewer.get("/charts/").get_data(as_text=True)
    assert "No laps yet" in page and "<svg" not in page
    box = Outbox()
    box.runner(1, "Anna Berg")
    send(central_db, device_token, box, now=T0, device_time=T0)
    page = viewer.get("/charts/").get_data(as_text=True)
    assert 'id="no-laps"' in page and 'id="no-class-laps"' in page


def test_only_voided_laps_is_no_laps(viewer, central_db, device_token):
    box = Outbox()
    box.void(box.lap(box.runner(1, "Anna Berg")))
    send(central_db, device_token, box, now=T0, device_time=T0)
    page = viewer.get("/charts/").get_data(as_text=True)
    assert 'id="no-laps"' in page and 'id="no-class-laps"' in page


def test_a_lap_days_off_is_left_out_and_counted(viewer, central_db, device_token):
    box = Outbox()
    anna = box.runner(1, "Anna Berg")
    box.lap(anna, time=T0 - 10 * 24 * 3600 * S)       # a clock that was wrong for days
    box.lap(anna, time=T0)
    send(central_db, device_token, box, now=T0, device_time=T0)
    page = viewer.get("/charts/").get_data(as_text=True)
    shown = bars(page, "laps-over-time")
    assert len(shown) == MAX_BUCKETS and shown[-1]["laps"] == "1"
    assert "1 earlier lap is outside this chart" in page


def test_a_lap_timed_in_a_far_year_leaves_the_event_in_the_chart(viewer, central_db,
                                                                   device_token):
    box = Outbox()
    anna = box.runner(1, "Anna Berg")
    box.lap(anna, time=99_999_999_999_999)               # year 5138: no offset corrects it
    box.lap(anna, time=T0)
    box.lap(anna, time=T0 + 5 * 60 * S)
    send(central_db, device_token, box, now=T0, device_time=T0)
    page = viewer.get("/charts/").get_data(as_text=True)
    shown = bars(page, "laps-over-time")
    assert [b["laps"] for b in shown] == ["1", "1"]      # the event's two buckets, not year 5138
    assert "1 lap is timed after central's clock" in page and "counts all the same" in page
    assert "earlier lap" not in page
    totals = central_db.execute("SELECT laps FROM runner_total WHERE runner_id = %s", [anna])
    assert totals.fetchone()["laps"] == 3


@pytest.mark.parametrize("top,ticks", [(0, [0, 1]), (1, [0, 1]), (3, [0, 1, 2, 3]),
                                       (7, [0, 2, 4, 6, 8]), (10, [0, 2, 4, 6, 8, 10]),
                                       (130, [0, 50, 100, 150]), (1000, [0, 200, 400, 600, 800, 1000])])
def test_nice_ticks(top, ticks):
    assert nice_ticks(top) == ticks


def test_query_arguments_are_ignored(viewer, event):
    assert viewer.get("/charts/?bucket=-1&x=%00").status_code == 200


def test_anonymous_is_sent_to_login(central_client):
    response = central_client.get("/charts/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_relay_s_time_axis_is_labelled_at_round_times_with_the_day_where_it_changes(central_app):
    monday = datetime(2026, 12, 7, 13, 55)            # Monday 13:55 to Wednesday 13:50: 48 hours
    starts = [monday + timedelta(minutes=5 * i) for i in range(MAX_BUCKETS)]
    with central_app.test_request_context(headers={"Accept-Language": "de"}):
        labels = [label for label in axis_labels(starts) if label]
    assert labels == ["Mo. 18:00", "Di. 00:00", "06:00", "12:00", "18:00", "Mi. 00:00", "06:00", "12:00"]
    with central_app.test_request_context():
        short = [label for label in axis_labels(starts[:24]) if label]   # two hours
    assert short == ["14:00", "14:10", "14:20", "14:30", "14:40", "14:50", "15:00", "15:10",
                     "15:20", "15:30", "15:40", "15:50"]

"""Charts: laps over time (5-minute buckets) and laps per class, as inline SVG.

Time axis: a lap is placed at its device time corrected by the clock offset
measured at its push (device_time + clock_offset_ms ~ central's clock at the
moment the runner passed). Not the receipt time: a laptop that was offline for an
hour delivers an hour of laps in one push, and they would all pile up in one
bucket. Not the raw device time either: a laptop whose clock is wrong by ten
minutes would shift its laps by ten minutes. The offset is estimated at each push
(central's clock minus the laptop's), so drift within one offline stretch is the
only error left: seconds, not minutes.

Voided laps never count: the time chart reads lap_bucket, the class chart
runner_total; every writer keeps both in step with lap and lap_void in the same
transaction (sync/derived.py, sync/ledger.py), so neither counts the lap table.
"""
from __future__ import annotations

import math
from datetime import datetime

import psycopg
from babel.dates import format_date
from flask import Blueprint, Flask, render_template
from flask_babel import get_locale

from .auth import login_required
from .db import get_db, now_ms
from .derived import BUCKET_MS
from .search import class_order

bp = Blueprint("charts", __name__, url_prefix="/charts")

MAX_BUCKETS = 576          # 48 hours: a 24-hour relay fits twice
LABEL_STEPS = (1, 2, 3, 6, 12, 24, 36, 72, 144)  # buckets between labels: 5, 10, 15, 30 min, 1 ... 12 h
WIDTH, HEIGHT = 900, 320   # the time chart's drawing area in SVG units
MARGIN = {"left": 60, "right": 20, "top": 20, "bottom": 60}
CLASS_ROW = 28             # height of one class's bar in the class chart

# Kept in step with the laps that count by every writer (sync/derived.py).
BUCKETS_SQL = "SELECT bucket, laps FROM lap_bucket WHERE laps <> 0 ORDER BY bucket"

CLASSES_SQL = f"""
SELECT r.class, coalesce(sum(t.laps), 0)::bigint AS laps
FROM runner r LEFT JOIN runner_total t ON t.runner_id = r.id
WHERE r.merged_into IS NULL
GROUP BY r.class_key, r.class ORDER BY {class_order("r")}
"""


def laps_per_bucket(conn: psycopg.Connection, now: int | None = None) -> tuple[list[dict], int, int]:
    """Return ([{start, laps}] per 5-minute bucket, gaps as 0, laps before, laps after).

    At most MAX_BUCKETS buckets up to the last lap not after central's clock (now) are
    returned; laps before them (a laptop whose clock was days off, say) and laps after
    central's clock (a lap time no clock offset could correct) are counted as left out.
    """
    rows = conn.execute(BUCKETS_SQL).fetchall()
    now_bucket = (now_ms() if now is None else now) // BUCKET_MS + 1  # a bucket of slack
    later = sum(r["laps"] for r in rows if r["bucket"] > now_bucket)
    rows = [r for r in rows if r["bucket"] <= now_bucket]
    if not rows:
        return [], 0, later
    counts = {r["bucket"]: r["laps"] for r in rows}
    last = rows[-1]["bucket"]
    first = max(rows[0]["bucket"], last - MAX_BUCKETS + 1)
    earlier = sum(r["laps"] for r in rows if r["bucket"] < first)
    return [{"start": b * BUCKET_MS, "laps": counts.get(b, 0)}
            for b in range(first, last + 1)], earlier, later


def laps_per_class(conn: psycopg.Connection) -> list[dict]:
    """Return [{class, laps}] for every class, in natural class order (5a before 10a)."""
    return [{"class": r["class"], "laps": r["laps"]} for r in conn.execute(CLASSES_SQL)]


def nice_ticks(top: int, count: int = 5) -> list[int]:
    """Return axis ticks 0..>=top at a step of 1, 2 or 5 times a power of ten."""
    top = max(top, 1)
    rough = top / count
    power = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return list(range(0, math.ceil(top / step) * step + 1, step))


def clock(ms: int) -> str:
    """Format epoch ms as local HH:MM."""
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M")


def axis_labels(starts: list[datetime]) -> list[str | None]:
    """Label the time axis at round times (about a dozen labels), with the weekday where a
    chart of more than one day (a 24-hour relay) enters a new day."""
    step = next((s for s in LABEL_STEPS if s * 12 >= len(starts)), LABEL_STEPS[-1])
    days, seen, labels = starts[0].date() != starts[-1].date(), None, []
    for start in starts:
        if (start.hour * 60 + start.minute) // (BUCKET_MS // 60_000) % step:
            labels.append(None)
            continue
        text = f"{start:%H:%M}"
        if days and start.date() != seen:
            seen, text = start.date(), f"{format_date(start.date(), 'EEE', locale=get_locale())} {text}"
        labels.append(text)
    return labels


def time_chart(buckets: list[dict]) -> dict:
    """Lay out the laps-over-time bars: positions, heights, ticks and labels."""
    ticks = nice_ticks(max(b["laps"] for b in buckets))
    scale = HEIGHT / ticks[-1]
    slot = WIDTH / len(buckets)
    starts = [datetime.fromtimestamp(b["start"] / 1000) for b in buckets]
    bars = []
    for i, (b, start, label) in enumerate(zip(buckets, starts, axis_labels(starts))):
        width = min(max(slot * 0.8, 1), 40)
        bars.append({"x": round(MARGIN["left"] + (i + 0.5) * slot - width / 2, 2),
                     "width": round(width, 2), "height": round(b["laps"] * scale, 2),
                     "y": round(MARGIN["top"] + HEIGHT - b["laps"] * scale, 2), "laps": b["laps"],
                     "bucket": start.strftime("%Y-%m-%dT%H:%M"), "start": b["start"],
                     "from": clock(b["start"]), "to": clock(b["start"] + BUCKET_MS),
                     "label": label,
                     "center": round(MARGIN["left"] + (i + 0.5) * slot, 2)})
    return {"bars": bars, "ticks": [{"value": t, "y": round(MARGIN["top"] + HEIGHT - t * scale, 2)}
                                    for t in ticks],
            "width": MARGIN["left"] + WIDTH + MARGIN["right"],
            "height": MARGIN["top"] + HEIGHT + MARGIN["bottom"],
            "left": MARGIN["left"], "right": MARGIN["left"] + WIDTH,
            "baseline": MARGIN["top"] + HEIGHT, "top": MARGIN["top"],
            "first_day": bars[0]["bucket"][:10], "last_day": bars[-1]["bucket"][:10]}


def class_chart(classes: list[dict]) -> dict:
    """Lay out the laps-per-class bars (one horizontal bar per class)."""
    ticks = nice_ticks(max(c["laps"] for c in classes))
    left, width = 140, 700
    scale = width / ticks[-1]
    bars = [{"y": MARGIN["top"] + i * CLASS_ROW + 4, "height": CLASS_ROW - 8,
             "width": round(c["laps"] * scale, 2), "laps": c["laps"], "class": c["class"],
             "middle": MARGIN["top"] + i * CLASS_ROW + CLASS_ROW / 2}
            for i, c in enumerate(classes)]
    baseline = MARGIN["top"] + len(classes) * CLASS_ROW
    return {"bars": bars, "left": left, "right": left + width, "top": MARGIN["top"],
            "baseline": baseline, "width": left + width + MARGIN["right"] + 60,
            "height": baseline + 50,
            "ticks": [{"value": t, "x": round(left + t * scale, 2)} for t in ticks]}


@bp.get("/")
@login_required
def index():
    """Show laps over time and laps per class; a clear note when there are none yet."""
    conn = get_db()
    buckets, earlier, later = laps_per_bucket(conn)
    classes = laps_per_class(conn)
    has_class_laps = any(c["laps"] for c in classes)
    return render_template(
        "charts.html", bucket_minutes=BUCKET_MS // 60000,
        time=time_chart(buckets) if buckets else None,
        earlier=earlier, later=later,
        classes=class_chart(classes) if has_class_laps else None)


def init_app(app: Flask) -> None:
    """Register the charts page."""
    app.register_blueprint(bp)

"""Standings: merged lap totals per runner, class and grade, and one runner's laps.

Totals come from runner_total, which push (and every central void) keeps in step
with lap and lap_void in the same transaction, so these pages never count the lap
table: with 5,000 runners they read 5,000 total rows however many laps there are.
"""
from __future__ import annotations

import psycopg
from flask import Blueprint, Flask, abort, render_template, request
from flask_babel import gettext as _
from psycopg import sql

from lapsync.protocol import is_id
from lapsync.text import date_time_text, signed_text

from . import search
from .auth import login_required
from .db import get_db
from .results import distance_m
from .settings import get_settings

bp = Blueprint("standings", __name__, url_prefix="/standings")

MAX_QUERY = 100
PER_PAGE = 100     # runners per page: the page stays small and fast with 5,000 runners
MAX_PAGE = 10_000
RUNNER_ORDER = {
    "laps": sql.SQL("laps DESC, start_number, id"),
    "name": sql.SQL("name_plain, name, start_number, id"),
    "number": sql.SQL("start_number, id"),
}
GROUP_ORDER = {
    "laps": sql.SQL("laps DESC, sort_key, key"),
    "average": sql.SQL("average DESC NULLS LAST, sort_key, key"),   # nobody ran: no average
    "name": sql.SQL("sort_key, key"),
}
# What a group is, and how groups sort by name: classes naturally (5a before 10a).
GROUP_COLUMN = {"class": (sql.SQL("r.class"), sql.SQL("r.class_key")),
                "grade": (sql.SQL("r.grade"), sql.SQL("r.grade"))}

RUNNERS_SQL = sql.SQL(f"""
WITH ranked AS (
    SELECT r.id, r.start_number, r.name, r.class, r.grade, coalesce(t.laps, 0) AS laps,
           r.name_folded, r.name_plain,
           -- no counting lap: did not run, no place (they sort last, so no place moves)
           CASE WHEN t.laps > 0 THEN rank() OVER (ORDER BY coalesce(t.laps, 0) DESC) END AS place
    FROM runner r LEFT JOIN runner_total t ON t.runner_id = r.id
    WHERE r.merged_into IS NULL
      AND (%(class)s::text IS NULL OR r.class = %(class)s)
      AND (%(grade)s::int IS NULL OR r.grade = %(grade)s)
)
SELECT id, start_number, name, class, grade, laps, place, count(*) OVER () AS matches
FROM ranked
WHERE %(q)s::text IS NULL OR {search.name_matches()} OR start_number = %(number)s
ORDER BY {{order}}
LIMIT %(limit)s OFFSET %(offset)s
""")

# runners: those who ran (a lap that counts); the average is over them, so a child who did
# not come does not pull it down; nobody ran: no average (NULL). Counted from runner_total.
GROUPS_SQL = sql.SQL("""
SELECT {column} AS key, {sort_key} AS sort_key, count(*) FILTER (WHERE t.laps > 0) AS runners,
       count(*) FILTER (WHERE coalesce(t.laps, 0) <= 0) AS did_not_run,
       coalesce(sum(t.laps), 0)::bigint AS laps,
       round(coalesce(sum(t.laps), 0)::numeric
             / nullif(count(*) FILTER (WHERE t.laps > 0), 0), 2) AS average
FROM runner r LEFT JOIN runner_total t ON t.runner_id = r.id
WHERE r.merged_into IS NULL
GROUP BY {column}, {sort_key}
ORDER BY {order}
""")

RUNNER_LAPS_SQL = """
SELECT l.id, l.device_id, l.device_time, l.received_at, l.clock_offset_ms, l.created_by,
       d.name AS device_name, u.name AS helper_name,
       v.voided, v.at AS void_at, v.by AS void_by, vu.name AS void_by_name, v.reason
FROM lap l
LEFT JOIN device d ON d.id = l.pushed_by
LEFT JOIN app_user u ON u.id = l.created_by
LEFT JOIN lap_void v ON v.lap_id = l.id
LEFT JOIN app_user vu ON vu.id = v.by
WHERE l.runner_id = %s
ORDER BY l.received_at, l.feed_id, l.id
"""


class BadFilter(Exception):
    """A standings query argument that cannot be used (the page says which)."""


def local_time(ms: int | None) -> str:
    """Format epoch milliseconds as the server's local date and time, the reader's way."""
    return date_time_text(ms)


def format_offset(ms: int | None) -> str:
    """Format a clock offset (server minus laptop) in seconds with its sign: '+1,5 s' in German."""
    return "" if ms is None else f"{signed_text(ms / 1000)} s"


def metres_per_lap(conn: psycopg.Connection) -> float | None:
    """Return the metres_per_lap setting, or None when it is not set."""
    value = get_settings(conn).get("metres_per_lap")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def distance(laps: int, metres: float | None) -> dict | None:
    """Return {'m', 'km'} for a lap count (numbers; pages write them with the decimal
    filter), or None without metres per lap. Metres to the cm, as the results, the
    certificates and the exports write them (sync/results.py distance_m)."""
    if metres is None:
        return None
    return {"m": distance_m(laps, metres), "km": laps * metres / 1000}


def parse_runner_filters(args) -> dict:
    """Read search, class, grade and sort from the query string or raise BadFilter."""
    q = (args.get("q") or "").strip()
    if len(q) > MAX_QUERY:
        raise BadFilter(_("The search is at most %(n)s characters.", n=MAX_QUERY))
    grade = (args.get("grade") or "").strip()
    if grade and not (grade.isascii() and grade.isdigit() and 1 <= int(grade) <= 13):
        raise BadFilter(_("The grade must be a whole number from 1 to 13."))
    sort = args.get("sort") or "laps"
    if sort not in RUNNER_ORDER:
        raise BadFilter(_("Sort by laps, name or number."))
    page = (args.get("page") or "1").strip()
    if not (page.isascii() and page.isdigit() and 1 <= int(page) <= MAX_PAGE):
        raise BadFilter(_("The page must be a whole number from 1 to %(max)s.", max=MAX_PAGE))
    number = int(q) if q.isascii() and q.isdigit() and len(q) <= 6 else None
    return {"q": q or None, "number": number, "class": (args.get("class") or "").strip() or None,
            "grade": int(grade) if grade else None, "sort": sort, "page": int(page),
            "limit": PER_PAGE, "offset": (int(page) - 1) * PER_PAGE, **search.search_params(q)}


def runner_standings(conn: psycopg.Connection, filters: dict) -> tuple[list[dict], int]:
    """Return one page of runners with laps and place, filtered and sorted, and the matches."""
    query = RUNNERS_SQL.format(order=RUNNER_ORDER[filters["sort"]])
    rows = conn.execute(query, filters).fetchall()
    if rows or filters["page"] == 1:
        return rows, rows[0]["matches"] if rows else 0
    first = conn.execute(query, {**filters, "offset": 0}).fetchone()  # past the end: still counted
    return rows, first["matches"] if first else 0


def group_standings(conn: psycopg.Connection, by: str, sort: str = "laps") -> list[dict]:
    """Return runners who ran, who did not, laps and average laps per runner who ran for
    every class or grade."""
    column, sort_key = GROUP_COLUMN[by]
    query = GROUPS_SQL.format(column=column, sort_key=sort_key, order=GROUP_ORDER[sort])
    return conn.execute(query).fetchall()


def unassigned_laps(conn: psycopg.Connection) -> int:
    """Count laps that count for runner ids central does not know yet."""
    return conn.execute("SELECT coalesce(sum(t.laps), 0)::bigint AS n FROM runner_total t "
                        "WHERE NOT EXISTS (SELECT 1 FROM runner r WHERE r.id = t.runner_id)"
                        ).fetchone()["n"]


def class_names(conn: psycopg.Connection) -> list[str]:
    """Return every class name in use, in natural order (5a before 10a)."""
    rows = conn.execute("SELECT DISTINCT class, class_key FROM runner WHERE merged_into IS NULL "
                        f"ORDER BY {search.class_order()}").fetchall()
    return [r["class"] for r in rows]


def find_runner(conn: psycopg.Connection, runner_id: str) -> dict | None:
    """Return a runner with its laps that count (and the runner it was merged into), or None."""
    return conn.execute("SELECT r.id, r.start_number, r.name, r.class, r.grade, r.merged_into, "
                        "coalesce(t.laps, 0) AS laps, m.name AS merged_into_name, "
                        "m.start_number AS merged_into_number FROM runner r "
                        "LEFT JOIN runner_total t ON t.runner_id = r.id "
                        "LEFT JOIN runner m ON m.id = r.merged_into WHERE r.id = %s",
                        [runner_id]).fetchone()


def runner_laps(conn: psycopg.Connection, runner_id: str) -> list[dict]:
    """Return every lap of a runner id in receipt order, with device, helper and void.

    Receipt time is central's clock, so laps of different laptops compare; never the
    device clock alone. Within one push (one receipt time) the feed id keeps the
    laptop's own order of entry.
    """
    laps = conn.execute(RUNNER_LAPS_SQL, [runner_id]).fetchall()
    counted = 0
    for lap in laps:
        lap["voided"] = bool(lap["voided"])
        counted += 0 if lap["voided"] else 1
        lap["number"] = None if lap["voided"] else counted
    return laps


@bp.get("/")
@login_required
def index():
    """Show every runner with the laps that count: search, filter by class/grade, sort."""
    conn, error, status = get_db(), None, 200
    try:
        filters = parse_runner_filters(request.args)
    except BadFilter as exc:
        error, status = str(exc), 400
        filters = parse_runner_filters({})
    metres = metres_per_lap(conn)
    runners, matches = runner_standings(conn, filters)
    for runner in runners:
        runner["distance"] = distance(runner["laps"], metres)
    return render_template("standings.html", runners=runners, filters=filters, error=error,
                           classes=class_names(conn), metres=metres, matches=matches,
                           pages=max(1, -(-matches // PER_PAGE)),
                           unassigned=unassigned_laps(conn)), status


def group_page(by: str):
    """Render the class or grade standings, sorted as asked."""
    conn = get_db()
    sort = request.args.get("sort") or "laps"
    error, status = None, 200
    if sort not in GROUP_ORDER:
        error, status, sort = _("Sort by laps, average or name."), 400, "laps"
    metres = metres_per_lap(conn)
    groups = group_standings(conn, by, sort)
    for group in groups:
        group["distance"] = distance(group["laps"], metres)
    return render_template("standings_groups.html", groups=groups, by=by, sort=sort,
                           error=error, metres=metres), status


@bp.get("/classes")
@login_required
def classes():
    """Show runners, laps, distance and average laps per runner for every class."""
    return group_page("class")


@bp.get("/grades")
@login_required
def grades():
    """Show runners, laps, distance and average laps per runner for every grade."""
    return group_page("grade")


@bp.get("/runner/<runner_id>")
@login_required
def runner(runner_id: str):
    """Show one runner's every lap: device, helper, times, clock offset, void state."""
    conn = get_db()
    person = find_runner(conn, runner_id) if is_id(runner_id) else None
    if person is None:
        abort(404, _("There is no runner with this id."))
    laps = runner_laps(conn, runner_id)
    return render_template("runner.html", runner=person, laps=laps,
                           distance=distance(person["laps"], metres_per_lap(conn)))


def init_app(app: Flask) -> None:
    """Register the standings blueprint and its time filters."""
    app.register_blueprint(bp)
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(format_offset, "clock_offset")

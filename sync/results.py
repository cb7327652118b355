"""Results out: the CSV exports, printable class lists and certificates.

Laps come from runner_total (kept in step with laps and voids by every writer, so
voided laps never count) and are never counted from the lap table: the export
stays fast with a million laps. Distances are laps × the metres_per_lap setting.

Excel safety of /admin/results.csv: UTF-8 with a byte order mark (so Excel picks
the right encoding); every text cell in double quotes, so a ";" or "," in a name
stays inside its cell; and a text cell that starts with =, +, -, @, tab, CR or LF
gets a single quote in front, so a runner called "=HYPERLINK(...)" shows as text
and never runs as a formula (CSV/formula injection). So does each such piece after
a ";" inside a cell: German Excel splits a comma-separated file on ";", and
"x;=1+1" would otherwise leave a formula in a cell of its own. Numbers are never
changed or quoted.

Beside it, /admin/results-de.csv is the same for German Excel, which splits a CSV on
";" and reads "1,2" as a number: semicolons, German headers, distances with a decimal
comma (metres and kilometres), the same BOM, quoting and formula guard.
"""
from __future__ import annotations

import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import psycopg
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    render_template,
    request,
)
from flask_babel import format_date, format_decimal
from flask_babel import gettext as _

from lapsync.protocol import MAX_CLASS, MAX_RUNNER_NAME

from .auth import login_required
from .db import connection, get_db
from .roster import search_runners
from .search import class_order
from .settings import get_settings

bp = Blueprint("results", __name__, url_prefix="/admin")
# did_not_run ("yes" or empty) comes last: columns that were there keep their places.
HEADER = ("start_number", "name", "class", "grade", "laps", "distance_m", "did_not_run")
# The start of a cell, or of a piece a ";"-splitting spreadsheet makes of it, that a
# spreadsheet would read as a formula.
FORMULA_PIECE = re.compile(r"(^|;)(?=[=+\-@\t\r\n])")
CHUNK_ROWS = 1000
# Every runner with the laps that count, by class (5a before 10a), then most laps.
RESULTS = f"""
SELECT r.id, r.start_number, r.name, r.class, r.grade, coalesce(t.laps, 0) AS laps
FROM runner r LEFT JOIN runner_total t ON t.runner_id = r.id
WHERE r.merged_into IS NULL AND (%(class)s::text IS NULL OR r.class = %(class)s)
ORDER BY {class_order("r")}, laps DESC, r.name_plain, r.name, r.start_number
"""
# runners: those who ran (a lap that counts); did_not_run: the rest of the roster.
CLASS_SUMMARY = f"""
SELECT r.class, count(*) FILTER (WHERE t.laps > 0) AS runners,
       count(*) FILTER (WHERE coalesce(t.laps, 0) <= 0) AS did_not_run,
       sum(coalesce(t.laps, 0)) AS laps
FROM runner r LEFT JOIN runner_total t ON t.runner_id = r.id WHERE r.merged_into IS NULL
GROUP BY r.class_key, r.class
ORDER BY {class_order("r")}
"""


def excel_safe(value: object) -> object:
    """Put a quote before each formula start of a text cell (also after a ";"); numbers as is."""
    if isinstance(value, str):
        return FORMULA_PIECE.sub(r"\1'", value)
    return value


def distance_m(laps: int, metres_per_lap: float | None) -> int | float | None:
    """Return laps × metres per lap (whole metres stay whole); None without the setting."""
    if metres_per_lap is None:
        return None
    value = laps * metres_per_lap
    return int(value) if float(value).is_integer() else round(value, 2)


def export_filename(event_name: str | None, stem: str = "results", suffix: str = "csv") -> str:
    """Return an export's file name with the event name reduced to safe ASCII."""
    text = unicodedata.normalize("NFKD", (event_name or "").replace("ß", "ss"))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text.encode("ascii", "ignore").decode()).strip("-")
    slug = slug[:60].rstrip("-")
    return f"{stem}-{slug}.{suffix}" if slug else f"{stem}.{suffix}"


@dataclass(frozen=True)
class CsvStyle:
    """How a results CSV is written: separator, header, the distance cells of a row and the
    word that marks a runner who did not run."""

    delimiter: str
    header: tuple[str, ...]
    distances: Callable[[int | float | None], list]
    did_not_run: str


# results.csv: comma, English header, the distance in metres as a number (or empty).
ENGLISH = CsvStyle(",", HEADER, lambda metres: ["" if metres is None else metres], "yes")


class GermanDecimal:
    """A number as German Excel reads it: decimal comma, no grouping, never quoted.

    csv's QUOTE_NONNUMERIC leaves anything with __float__ unquoted and writes its str().
    """

    def __init__(self, value: float, places: int, trim: bool = True):
        self.value = value
        text = f"{value:.{places}f}"
        if trim and places:  # 2,5 m; money keeps its cents (trim=False): 2,50
            text = text.rstrip("0").rstrip(".")
        self.text = text.replace(".", ",")

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return self.text


def german_distances(metres: int | float | None) -> list:
    """Return the distance cells of the German CSV: metres and kilometres, decimal comma."""
    if metres is None:
        return ["", ""]
    return [GermanDecimal(metres, 2), GermanDecimal(metres / 1000, 3)]


# The German export: semicolon (German Excel's list separator), German header, 1,2 not 1.2.
GERMAN = CsvStyle(";", ("Startnummer", "Name", "Klasse", "Jahrgang", "Runden", "Strecke (m)",
                        "Strecke (km)", "Nicht gelaufen"), german_distances, "ja")


def ran(row: dict) -> bool:
    """Return whether a runner ran: one without a lap that counts after review did not."""
    return row["laps"] > 0


def csv_row(row: dict, metres_per_lap: float | None, style: CsvStyle = ENGLISH) -> list:
    """Return one runner as CSV cells, text cells made Excel-safe."""
    distance = distance_m(row["laps"], metres_per_lap)
    return [row["start_number"], excel_safe(row["name"]), excel_safe(row["class"]), row["grade"],
            row["laps"], *style.distances(distance), "" if ran(row) else style.did_not_run]


def results_csv_chunks(conn: psycopg.Connection, metres_per_lap: float | None,
                       style: CsvStyle = ENGLISH) -> Iterator[str]:
    """Yield the results CSV in chunks: BOM and header, then every runner (server-side cursor)."""
    buffer = io.StringIO()
    # Every text cell quoted; numbers (and what passes for one, German decimals) are not.
    writer = csv.writer(buffer, delimiter=style.delimiter, quoting=csv.QUOTE_NONNUMERIC)
    buffer.write("\ufeff")
    writer.writerow(style.header)
    with conn.transaction(), conn.cursor(name="results_csv") as cursor:
        cursor.itersize = CHUNK_ROWS
        cursor.execute(RESULTS, {"class": None})
        for number, row in enumerate(cursor, 1):
            writer.writerow(csv_row(row, metres_per_lap, style))
            if number % CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def ranked(rows: list[dict], metres_per_lap: float | None) -> list[dict]:
    """Add rank (equal laps share a rank: 1, 2, 2, 4; None for who did not run) and distance
    to rows sorted by laps."""
    out, rank, previous = [], 0, None
    for position, row in enumerate(rows, 1):
        if row["laps"] != previous:
            rank, previous = position, row["laps"]
        out.append({**row, "rank": rank if ran(row) else None,
                    "distance": distance_m(row["laps"], metres_per_lap)})
    return out


def class_results(conn: psycopg.Connection,
                  class_name: str | None = None) -> list[tuple[str, list]]:
    """Return [(class, ranked runners)] for every class, or for one class."""
    metres = get_settings(conn).get("metres_per_lap")
    rows = conn.execute(RESULTS, {"class": class_name}).fetchall()
    return [(name, ranked(list(group), metres))
            for name, group in itertools.groupby(rows, key=lambda r: r["class"])]


def class_summary(conn: psycopg.Connection) -> list[dict]:
    """Return each class with who ran, who did not and the laps, in natural class order."""
    metres = get_settings(conn).get("metres_per_lap")
    return [{**row, "distance": distance_m(row["laps"], metres)}
            for row in conn.execute(CLASS_SUMMARY)]


def runner_result(conn: psycopg.Connection, runner_id: str) -> dict | None:
    """Return one runner with laps and distance, or None."""
    row = conn.execute("SELECT r.id, r.start_number, r.name, r.class, r.grade, "
                       "coalesce(t.laps, 0) AS laps FROM runner r "
                       "LEFT JOIN runner_total t ON t.runner_id = r.id "
                       "WHERE r.id = %s AND r.merged_into IS NULL",
                       [runner_id]).fetchone()
    if row is None:
        return None
    return {**row, "distance": distance_m(row["laps"], get_settings(conn).get("metres_per_lap"))}


def event_info(conn: psycopg.Connection) -> dict:
    """Return the event's name and its date formatted for the reader's language."""
    settings = get_settings(conn)
    day = settings.get("event_date")
    return {"name": settings.get("event_name") or "",
            "date": format_date(date.fromisoformat(day), "long") if day else ""}


def distance_text(metres: float | None) -> str:
    """Format a distance for people: '800 m', '12.4 km' (in the reader's language)."""
    if metres is None:
        return "–"
    if metres >= 1000:
        return _("%(km)s km", km=format_decimal(metres / 1000, format="#,##0.##"))
    return _("%(m)s m", m=format_decimal(metres, format="#,##0.##"))


@bp.app_template_filter("results_distance")
def _distance_filter(metres: float | None) -> str:
    """Jinja filter: a distance in metres as text."""
    return distance_text(metres)


@bp.get("/results")
@login_required
def index():
    """Offer the exports: CSV, class lists, certificates; find a runner's certificate."""
    conn = get_db()
    query = request.args.get("q", "").strip()[:MAX_RUNNER_NAME]
    found = search_runners(conn, query) if query else []
    return render_template("results.html", classes=class_summary(conn), q=query, found=found,
                           event=event_info(conn))


def csv_download(style: CsvStyle, stem: str) -> Response:
    """Stream every runner's result as a CSV in style, named after the event."""
    settings = get_settings(get_db())
    app = current_app._get_current_object()

    def generate() -> Iterator[str]:
        """Stream on a connection of its own: the request's is released before streaming."""
        with connection(app) as conn:
            yield from results_csv_chunks(conn, settings.get("metres_per_lap"), style)

    filename = export_filename(settings.get("event_name"), stem)
    return Response(generate(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store"})


@bp.get("/results.csv")
@login_required
def results_csv() -> Response:
    """Download every runner's result as Excel-safe CSV (UTF-8 with BOM), streamed."""
    return csv_download(ENGLISH, "results")


@bp.get("/results-de.csv")
@login_required
def results_csv_german() -> Response:
    """Download the same for German Excel: semicolons, German header, decimal comma."""
    return csv_download(GERMAN, "ergebnisse")


def _class_arg() -> str | None:
    """Return the class asked for in ?class=, or None for all."""
    name = request.args.get("class", "").strip()
    return name[:MAX_CLASS + 1] or None  # cut beyond any class's length: it matches none


def _class_groups(conn: psycopg.Connection, class_name: str | None) -> list:
    """Return class_results of one class (404 when it has no runners) or of all (None)."""
    groups = class_results(conn, class_name)
    if class_name and not groups:
        abort(404, _("There are no runners in class %(class_name)s.", class_name=class_name))
    return groups


def _certificates(conn: psycopg.Connection, runners: list[dict], title: str,
                  class_name: str | None = None) -> str:
    """Render the certificates of the runners who ran, one per page, and say who did not
    (one runner's page when class_name is None)."""
    # A certificate for 0 laps thanks a child for a run it never ran: the page counts them.
    return render_template("certificate.html", runners=[r for r in runners if ran(r)],
                           did_not_run=[r for r in runners if not ran(r)], title=title,
                           class_name=class_name, event=event_info(conn))


@bp.get("/results/classes")
@login_required
def class_lists():
    """Print the ranking of every class (or one), one class per page, for the ceremony."""
    conn, class_name = get_db(), _class_arg()
    return render_template("results_classes.html", groups=_class_groups(conn, class_name),
                           class_name=class_name, event=event_info(conn))


@bp.get("/certificates/runner/<runner_id>")
@login_required
def certificate_runner(runner_id: str):
    """Print one runner's certificate."""
    conn = get_db()
    runner = runner_result(conn, runner_id)
    if runner is None:
        abort(404, _("There is no such runner."))
    return _certificates(conn, [runner], runner["name"])


@bp.get("/certificates/class/<path:class_name>")
@login_required
def certificate_class(class_name: str):
    """Print a certificate for every runner of a class, one per page."""
    conn = get_db()
    runners = _class_groups(conn, class_name)[0][1]
    return _certificates(conn, sorted(runners, key=lambda r: (r["name"].casefold(),
                                                              r["start_number"])),
                         _("Class %(class_name)s", class_name=class_name), class_name)


def init_app(app: Flask) -> None:
    """Register the results blueprint."""
    app.register_blueprint(bp)

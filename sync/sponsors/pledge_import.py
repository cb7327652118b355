"""Import pledges from a CSV or XLSX file: all lines or none, a report for every bad line.

Columns (any order, header names in German or English, case ignored):
  Startnummer,Sponsor,E-Mail,Art,Betrag[,Höchstbetrag]
  start_number,sponsor,email,kind,amount[,cap]
Art/kind: pro Runde, pro km, fest (or per_lap, per_km, fixed); amounts in currency
units with a decimal comma or point ("0,50", "1.25", "20"). A line naming an unknown
start number, or one that is already on file (same runner, sponsor, kind and amount),
refuses the whole file.
"""
from __future__ import annotations

from pathlib import Path

import click
import psycopg
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync.roster_csv import Problem
from lapsync.sheets import SheetError, format_report, read_sheet

from ..db import connection
from .money_log import log_money
from .pledges import check_pledge, insert_pledges

COLUMNS = {"startnummer": "start_number", "start_number": "start_number",
           "sponsor": "sponsor_name", "e-mail": "email", "email": "email",
           "art": "kind", "kind": "kind", "betrag": "rate_cents", "amount": "rate_cents",
           "höchstbetrag": "cap_cents", "cap": "cap_cents"}
REQUIRED = ("start_number", "sponsor_name", "email", "kind", "rate_cents")
EXPECTED = "Startnummer,Sponsor,E-Mail,Art,Betrag[,Höchstbetrag]"


def read_header(cells: list[str]) -> list[str]:
    """Return the field of each column, or raise SheetError for a wrong header."""
    names = [" ".join(cell.split()).casefold() for cell in cells]
    fields = [COLUMNS.get(name) for name in names]
    unknown = [cell for cell, field in zip(cells, fields) if field is None]
    missing = [name for name in REQUIRED if name not in fields]
    doubled = sorted({f for f in fields if f and fields.count(f) > 1})
    if unknown or missing or doubled:
        raise SheetError([Problem(1, _(
            "Wrong header: expected %(expected)s (or start_number,sponsor,email,kind,"
            "amount[,cap]); unknown: %(unknown)s; missing: %(missing)s; twice: %(doubled)s.",
            expected=EXPECTED, unknown=", ".join(repr(c) for c in unknown) or "–",
            missing=", ".join(missing) or "–", doubled=", ".join(doubled) or "–"))])
    return fields


def live_runners(conn: psycopg.Connection) -> dict[int, list[dict]]:
    """Return the runners that are not merged away, by start number."""
    by_number: dict[int, list[dict]] = {}
    for row in conn.execute("SELECT id, start_number, name, class FROM runner "
                            "WHERE merged_into IS NULL"):
        by_number.setdefault(row["start_number"], []).append(row)
    return by_number


def line_runner(text: str, runners: dict[int, list[dict]]) -> dict | str:
    """Return the runner a line's start number names, or what is wrong with it."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and int(text) > 0):
        return _("The start number %(text)s is not valid: use digits only, e.g. 17.",
                 text=repr(text[:20]))
    found = runners.get(int(text), [])
    if not found:
        return _("No runner has start number %(number)s.", number=int(text))
    if len(found) > 1:
        return _("Start number %(number)s belongs to %(count)s runners: decide the clash on "
                 "the review page first.", number=int(text), count=len(found))
    return found[0]


def existing_keys(conn: psycopg.Connection) -> set[tuple]:
    """Return (runner, sponsor, kind, rate) of every live pledge, names case-folded."""
    return {(r["runner_id"], r["sponsor_name"].casefold(), r["kind"], r["rate_cents"])
            for r in conn.execute("SELECT runner_id, sponsor_name, kind, rate_cents FROM pledge "
                                  "WHERE deleted_ms IS NULL")}


def check_line(line: int, cells: dict, runners: dict, known: dict) -> tuple[dict | None, list]:
    """Check one line: (runner id and fields, or None) and its problems."""
    runner = line_runner(cells.get("start_number", ""), runners)
    fields, errors = check_pledge(cells)
    problems = [Problem(line, message) for message in errors.values()]
    if isinstance(runner, str):
        return None, [Problem(line, runner), *problems]
    if problems:
        return None, problems
    key = (runner["id"], fields["sponsor_name"].casefold(), fields["kind"], fields["rate_cents"])
    if key in known:
        where = known[key]
        return None, [Problem(line, _("%(sponsor)s's pledge for %(number)s is already on file.",
                                      sponsor=fields["sponsor_name"],
                                      number=runner["start_number"]) if where == 0 else
                              _("The same pledge is also on line %(line)s.", line=where))]
    known[key] = line
    return {"runner_id": runner["id"], **fields}, []


def parse_pledges(rows: list[tuple[int, list[str]]], runners: dict, known: set) -> list[dict]:
    """Check every line of a pledge file; return the pledges or raise SheetError."""
    fields = read_header(rows[0][1])
    if len(rows) == 1:
        raise SheetError([Problem(1, _("The file has a header but no pledges."))])
    seen: dict = dict.fromkeys(known, 0)
    pledges, problems = [], []
    for line, cells in rows[1:]:
        if len(cells) > len(fields) and any(c.strip() for c in cells[len(fields):]):
            problems.append(Problem(line, _("Expected %(expected)s columns, found %(found)s.",
                                            expected=len(fields), found=len(cells))))
            continue
        pledge, found = check_line(line, dict(zip(fields, cells)), runners, seen)
        problems += found
        if pledge:
            pledges.append(pledge)
    if problems:
        raise SheetError(problems, "invalid_pledges")
    return pledges


def import_pledges(conn: psycopg.Connection, user_id: str | None, data: bytes,
                   filename: str) -> int:
    """Import a pledge file whole in one transaction (logged), or raise SheetError; return the count."""
    rows = read_sheet(data)
    with conn.transaction():
        pledges = parse_pledges(rows, live_runners(conn), existing_keys(conn))
        ids = insert_pledges(conn, user_id, [p.pop("runner_id") for p in pledges], pledges)
        log_money(conn, user_id, "pledge_import", {"count": len(ids), "file": filename})
    return len(ids)


@click.command("import-pledges")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_pledges_command(file: Path) -> None:
    """Import sponsors' pledges from a CSV or XLSX file (all lines or none).

    Columns Startnummer,Sponsor,E-Mail,Art,Betrag[,Höchstbetrag] or
    start_number,sponsor,email,kind,amount[,cap]; Art is pro Runde, pro km or fest
    (per_lap, per_km, fixed); amounts like 0,50 or 1.25 or 20. A bad line refuses the
    whole file and every bad line is listed.
    """
    with connection() as conn:
        try:
            count = import_pledges(conn, None, file.read_bytes(), file.name)
        except SheetError as exc:
            raise click.ClickException(format_report(exc)) from None
    click.echo(f"Imported {count} pledges from {file.name}.")

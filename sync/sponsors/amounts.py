"""What each pledge raises: amounts from the laps that count, with one rounding rule.

Laps come from runner_total, the same source as the standings, results and
certificates: voided laps never count, a merge moves laps to the survivor (and a
pledge of the merged runner follows them there), a renumbered runner keeps its id and
its laps. The distance is laps x the metres_per_lap setting.

The rule (docs/MONEY.md), per pledge, in cents:
  per_lap: rate x laps
  per_km:  rate x distance_m / 1000, rounded half up to the cent
  fixed:   rate
then the cap, if any, applied last: min(amount, cap). Without metres_per_lap a per_km
pledge raises nothing yet (the pages say so). Totals add the pledges' rounded amounts.
"""
from __future__ import annotations

import collections
from decimal import ROUND_HALF_UP, Decimal

import psycopg
from flask_babel import format_currency

from ..money_settings import money_settings
from ..search import class_order

# Runners are put in order first (2,000 rows; classes naturally, then names), and the pledges
# by their runner's place: sorting 10,000 pledges by the runners' text keys cost 3x as much.
AMOUNTS_SQL = f"""
WITH placed AS (
    SELECT id, start_number, name, class, grade,
           row_number() OVER (ORDER BY {class_order()}, name_plain, name, start_number, id) AS place
    FROM runner WHERE merged_into IS NULL
)
SELECT p.id, p.runner_id, p.sponsor_name, p.email, p.address, p.kind, p.rate_cents,
       p.cap_cents, p.reference, p.created_ms, p.updated_ms, p.created_by, p.deleted_ms,
       r.id AS counted_runner_id, r.start_number, r.name, r.class, r.grade,
       coalesce(t.laps, 0) AS laps, coalesce(pay.paid, 0)::bigint AS paid_cents
FROM pledge p
JOIN runner o ON o.id = p.runner_id
JOIN placed r ON r.id = coalesce(o.merged_into, o.id)
LEFT JOIN runner_total t ON t.runner_id = r.id
LEFT JOIN (SELECT pledge_id, sum(amount_cents) AS paid FROM payment
           WHERE pledge_id IS NOT NULL GROUP BY pledge_id) pay ON pay.pledge_id = p.id
WHERE p.deleted_ms IS NULL
  AND (%(class)s::text IS NULL OR r.class = %(class)s)
  AND (%(runner)s::text IS NULL OR r.id = %(runner)s)
  AND (%(ids)s::text[] IS NULL OR p.id = ANY(%(ids)s))
ORDER BY r.place, lower(p.sponsor_name) COLLATE "C", p.created_ms, p.id
"""
CENT = Decimal(1)


def metres_per_lap(conn: psycopg.Connection) -> Decimal | None:
    """Return the metres_per_lap setting as an exact Decimal, or None when it is not set."""
    row = conn.execute("SELECT value FROM setting WHERE key = 'metres_per_lap'").fetchone()
    value = row["value"] if row else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return Decimal(str(value))  # 400.5 stays 400.5, not the float's binary neighbour


def amount_cents(kind: str, rate_cents: int, cap_cents: int | None, laps: int,
                 metres: Decimal | None) -> int:
    """Return what one pledge raises in cents: the rule in this module's docstring."""
    if kind == "per_lap":
        amount = rate_cents * laps                 # whole cents: nothing to round
    elif kind == "per_km":
        distance = Decimal(laps) * metres if metres is not None else Decimal(0)
        amount = int((Decimal(rate_cents) * distance / 1000).quantize(CENT, rounding=ROUND_HALF_UP))
    else:
        amount = rate_cents
    return amount if cap_cents is None else min(amount, cap_cents)


def distance_m(laps: int, metres: Decimal | None) -> int | float | None:
    """Return laps x metres per lap (whole metres as int), or None without the setting."""
    if metres is None:
        return None
    value = Decimal(laps) * metres
    return int(value) if value == value.to_integral_value() else float(round(value, 2))


def pledge_amounts(conn: psycopg.Connection, *, class_name: str | None = None,
                   runner_id: str | None = None,
                   pledge_ids: list[str] | None = None) -> list[dict]:
    """Return every live pledge (of a class, a runner or given ids) with laps and amounts.

    Each row: the pledge's fields, start_number, name, class, grade of the runner whose
    laps count (counted_runner_id), laps, distance_m, amount_cents, paid_cents and
    outstanding_cents (amount - paid; below 0 when overpaid).
    """
    metres = metres_per_lap(conn)
    rows = conn.execute(AMOUNTS_SQL, {"class": class_name, "runner": runner_id,
                                      "ids": pledge_ids}).fetchall()
    # Thousands of pledges share a few dozen lap counts and rates: each figure once.
    distances: dict[int, int | float | None] = {}
    amounts: dict[tuple, int] = {}
    for row in rows:
        laps, key = row["laps"], (row["kind"], row["rate_cents"], row["cap_cents"], row["laps"])
        if laps not in distances:
            distances[laps] = distance_m(laps, metres)
        if key not in amounts:
            amounts[key] = amount_cents(*key, metres)
        row["distance_m"], row["amount_cents"] = distances[laps], amounts[key]
        row["outstanding_cents"] = row["amount_cents"] - row["paid_cents"]
    return rows


def sum_rows(rows: list[dict]) -> dict:
    """Return pledges, amount, paid, outstanding and overpaid cents summed over rows.

    Outstanding sums what each pledge still owes; one sponsor's overpayment is not
    another's payment, so it is summed apart (overpaid).
    """
    return {"pledges": len(rows), "amount_cents": sum(r["amount_cents"] for r in rows),
            "paid_cents": sum(r["paid_cents"] for r in rows),
            "outstanding_cents": sum(max(r["outstanding_cents"], 0) for r in rows),
            "overpaid_cents": sum(max(-r["outstanding_cents"], 0) for r in rows)}


def totals_by(rows: list[dict], key: str) -> dict:
    """Return sum_rows per value of key (counted_runner_id, class or grade)."""
    groups: dict = collections.defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return {value: sum_rows(group) for value, group in groups.items()}


def raised(rows: list[dict]) -> dict:
    """Return the totals of pledge rows per runner, class and grade and for the school; {}
    without pledges."""
    if not rows:
        return {}
    return {"runner": totals_by(rows, "counted_runner_id"), "class": totals_by(rows, "class"),
            "grade": totals_by(rows, "grade"), "school": sum_rows(rows)}


def money(cents: int | None, conn: psycopg.Connection | None = None,
          currency: str | None = None) -> str:
    """Format cents in the reader's language: 1.234,50 € in German, €1,234.50 in English."""
    if cents is None:
        return "–"
    if currency is None:
        currency = money_settings(conn)["currency"]
    return format_currency(Decimal(cents) / 100, currency)

"""A runner's laps as every laptop page counts them: this laptop's that count plus those
of the other laptops as last pulled (central's total less this laptop's part)."""
from __future__ import annotations

import sqlite_utils

# Laps of runner.id that count: on this laptop (index lap_runner) and elsewhere (pulled).
OWN_LAPS_SQL = ("(SELECT count(*) FROM lap l WHERE l.runner_id = runner.id "
                "AND l.voided_at IS NULL)")
OTHER_LAPS_SQL = ("coalesce((SELECT o.laps FROM runner_other_laps o "
                  "WHERE o.runner_id = runner.id), 0)")


def lap_counts(db: sqlite_utils.Database, runner_id: str) -> tuple[int, int]:
    """Return (laps that count on all laptops, of them on this laptop) of one runner."""
    own, other = db.execute(f"SELECT {OWN_LAPS_SQL}, {OTHER_LAPS_SQL} FROM "
                            "(SELECT ? AS id) AS runner", [runner_id]).fetchone()
    return own + other, own

"""The log of money changes: who (a user or the command line), when, what, on which pledge."""
from __future__ import annotations

import psycopg
from flask_babel import gettext as _
from flask_babel import ngettext
from psycopg.types.json import Jsonb

from ..db import now_ms
from ..money_settings import money_settings
from .amounts import money
from .money_actions import describe_more

COMMAND_LINE = "command line"
MAX_ENTRIES = 200

LOG_SQL = """
SELECT m.id, m.at, m.user_id, m.by_name, m.action, m.pledge_id, m.payment_id, m.details
FROM money_log m
WHERE %(pledge)s::text IS NULL OR m.pledge_id = %(pledge)s
ORDER BY m.id DESC LIMIT %(limit)s
"""


def log_money(conn: psycopg.Connection, user_id: str | None, action: str, details: dict,
              pledge_id: str | None = None, payment_id: str | None = None) -> int:
    """Record a money change (caller's transaction); no user means the command line."""
    name = COMMAND_LINE
    if user_id is not None:
        row = conn.execute("SELECT name FROM app_user WHERE id = %s", [user_id]).fetchone()
        name = row["name"] if row else user_id
    return conn.execute(
        "INSERT INTO money_log (at, user_id, by_name, action, pledge_id, payment_id, details) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [now_ms(), user_id, name, action, pledge_id, payment_id, Jsonb(details)]).fetchone()["id"]


def money_log(conn: psycopg.Connection, pledge_id: str | None = None,
              limit: int = MAX_ENTRIES) -> list[dict]:
    """Return the latest money changes (of one pledge, or all), newest first, with a sentence."""
    currency = money_settings(conn)["currency"]
    return [{**row, "text": with_withdrawn(describe(row["action"], row["details"], currency),
                                           row["details"]),
             # Stored in English for the log; shown in the reader's language.
             "by_name": _("the command line") if row["user_id"] is None else row["by_name"]}
            for row in conn.execute(LOG_SQL, {"pledge": pledge_id, "limit": limit})]


def with_withdrawn(text: str, d: dict) -> str:
    """Add to a change's sentence the queued mails it withdrew (sync/sponsors/mail.py)."""
    count = d.get("withdrawn_mail")
    if not count:
        return text
    return text + " " + ngettext("A queued e-mail to the sponsor was withdrawn: it stated the "
                                 "figures before this change.",
                                 "%(num)s queued e-mails to the sponsor were withdrawn: they "
                                 "stated the figures before this change.", count)


def field_changes(changed: dict, currency: str) -> str:
    """Say what a pledge edit changed, each field from its old value to its new one."""
    labels = {"sponsor_name": _("sponsor"), "email": _("e-mail"), "address": _("address"),
              "kind": _("kind"), "rate_cents": _("amount"), "cap_cents": _("cap"),
              "runner": _("runner")}
    kinds = {"per_lap": _("per lap"), "per_km": _("per km"), "fixed": _("fixed")}

    def shown(key: str, value) -> str:
        """Write one field's value as the pages do."""
        if key.endswith("_cents"):
            return money(value, currency=currency)
        if key == "kind":
            return kinds.get(value, value)
        return " ".join(str(value).split()) if value else "–"
    return "; ".join(f"{labels.get(key, key)} {shown(key, change.get('from'))} → "
                     f"{shown(key, change.get('to'))}"
                     for key, change in sorted(changed.items()) if isinstance(change, dict))


def describe(action: str, d: dict, currency: str = "EUR") -> str:
    """Say in one sentence what a money change did (amounts in CURRENCY)."""
    if action == "pledge_add":
        return _("Added the pledge of %(sponsor)s for %(runner)s.", sponsor=d.get("sponsor"),
                 runner=d.get("runner"))
    if action == "pledge_edit":
        return _("Changed the pledge of %(sponsor)s for %(runner)s: %(fields)s.",
                 sponsor=d.get("sponsor"), runner=d.get("runner"),
                 fields=field_changes(d.get("changed", {}), currency))
    if action == "pledge_delete":
        return _("Deleted the pledge of %(sponsor)s for %(runner)s.", sponsor=d.get("sponsor"),
                 runner=d.get("runner"))
    if action == "pledge_import":
        return _("Imported %(count)s pledges from %(file)s.", count=d.get("count"),
                 file=d.get("file"))
    if action == "payment_add":
        return _("Recorded a payment of %(amount)s from %(sponsor)s.",
                 amount=money(d.get("amount_cents"), currency=currency), sponsor=d.get("sponsor"))
    if action == "payment_delete":
        return _("Deleted a payment of %(amount)s from %(sponsor)s.",
                 amount=money(d.get("amount_cents"), currency=currency), sponsor=d.get("sponsor"))
    return describe_more(action, d, currency)

"""The decision log: who decided what at central, newest first, in one sentence each."""
from __future__ import annotations

import json
import logging

import psycopg
from flask_babel import gettext as _
from flask_babel import ngettext
from psycopg.types.json import Jsonb

from lapsync.authcore import role_label

from .db import now_ms
from .setting_labels import SETTING_LABELS

MAX_DECISIONS = 100
MAX_LOGGED = 300  # characters of a decision's details in the log file
log = logging.getLogger(__name__)
# The users page's actions (sync/users.py), each told by describe_user.
USER_ACTIONS = ("create_user", "change_role", "reset_password", "deactivate_user",
                "reactivate_user")

# A lap central voided can be restored from its log line while central's void stands.
DECISIONS_SQL = """
SELECT d.id, d.at, d.action, d.subject_ids, d.details, u.name AS user_name,
       coalesce(v.central AND v.voided, false) AS undoable, v.change_id AS lap_version
FROM decision d LEFT JOIN app_user u ON u.id = d.user_id
LEFT JOIN lap_void v ON d.action = 'void_lap' AND v.lap_id = d.subject_ids[1]
ORDER BY d.id DESC
LIMIT %s
"""


def log_decision(conn: psycopg.Connection, user_id: str, action: str, subjects: list[str],
                 details: dict) -> int:
    """Record who decided what on which records (caller's transaction); log it; return its id."""
    decision = conn.execute("INSERT INTO decision (at, user_id, action, subject_ids, details) "
                            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                            [now_ms(), user_id, action, subjects, Jsonb(details)]).fetchone()["id"]
    # The details as stored for the decision log (secrets are masked by the caller there).
    log.info("decision %d: %s by user %s on %s: %s", decision, action, user_id, ",".join(subjects),
             json.dumps(details, default=str, ensure_ascii=False)[:MAX_LOGGED])
    return decision


def decisions(conn: psycopg.Connection, limit: int = MAX_DECISIONS) -> list[dict]:
    """Return the latest decisions, newest first, with the user's name and a sentence."""
    return [{**row, "text": describe(row["action"], row["details"])}
            for row in conn.execute(DECISIONS_SQL, [limit])]


def describe(action: str, d: dict) -> str:
    """Say in one sentence what a decision did."""
    if action == "void_lap":
        return _("Voided a lap of %(runner)s recorded on %(device)s as a double count.",
                 runner=d.get("runner"), device=d.get("device"))
    if action == "restore_lap":
        return _("Restored a lap of %(runner)s that central had voided.", runner=d.get("runner"))
    if action == "number_block":
        return _("Gave device %(name)s start numbers %(first)s–%(last)s for late runners.",
                 name=d.get("name"), first=d.get("first"), last=d.get("last"))
    if action == "keep_laps":
        return _("Kept two close laps of %(runner)s: not a double count.", runner=d.get("runner"))
    if action == "renumber":
        return _("Gave %(name)s start number %(to)s (was %(from)s).", name=d.get("name"),
                 to=d.get("to"), **{"from": d.get("from")})
    if action == "merge":
        return ngettext("Merged %(merged)s into %(survivor)s: %(num)s lap moved.",
                        "Merged %(merged)s into %(survivor)s: %(num)s laps moved.",
                        d.get("laps_moved") or 0, merged=d.get("merged"), survivor=d.get("survivor"))
    if action == "keep_runners":
        return _("Kept both runners of the clash on %(value)s.", value=d.get("value"))
    if action == "register_device" and d.get("manage_users") and d.get("manage_roster"):
        return _("Registered device %(name)s, trusted to manage users and the roster.",
                 name=d.get("name"))
    if action == "register_device" and d.get("manage_users"):
        return _("Registered device %(name)s, trusted to manage users.", name=d.get("name"))
    if action == "register_device" and d.get("manage_roster"):
        return _("Registered device %(name)s, trusted to manage the roster.", name=d.get("name"))
    if action == "register_device":
        return _("Registered device %(name)s.", name=d.get("name"))
    if action == "device_manage_users" and d.get("manage_users"):
        return _("Let device %(name)s manage users (admins too).", name=d.get("name"))
    if action == "device_manage_users":
        return _("Device %(name)s may no longer manage users.", name=d.get("name"))
    if action == "device_manage_roster" and d.get("manage_roster"):
        return _("Let device %(name)s manage the roster (edit any runner).", name=d.get("name"))
    if action == "device_manage_roster":
        return _("Device %(name)s may no longer manage the roster.", name=d.get("name"))
    if action == "revoke_device":
        return _("Revoked the token of device %(name)s.", name=d.get("name"))
    if action in USER_ACTIONS:
        return describe_user(action, d)
    if action == "new_event":
        return _("Archived the last event (%(runners)s runners, %(laps)s laps, %(pledges)s "
                 "pledges) as %(archive)s and started %(name)s.", runners=d.get("runner"),
                 laps=d.get("lap"), pledges=d.get("pledge"), archive=d.get("archive"),
                 name=d.get("name"))
    if action == "settings":
        changes = ", ".join(f"{SETTING_LABELS.get(key, key)} = {setting_value(value.get('to'))}"
                            for key, value in sorted(d.items()))
        return _("Changed the event settings: %(changes)s.", changes=changes)
    return action


def setting_value(value) -> str:
    """Write a logged setting's value for the reader: yes/no, "not set", else as stored."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return _("not set") if value is None or value == "" else str(value)


def describe_user(action: str, d: dict) -> str:
    """Say in one sentence what a change of a user on the users page did."""
    if action == "create_user":
        return _("Created user %(name)s as %(role)s.", name=d.get("name"),
                 role=role_label(d.get("role", "")))
    if action == "change_role":
        return _("Changed the role of %(name)s from %(from)s to %(to)s.", name=d.get("name"),
                 to=role_label(d.get("to", "")), **{"from": role_label(d.get("from", ""))})
    if action == "reset_password":
        return _("Reset the password of %(name)s.", name=d.get("name"))
    if action == "deactivate_user":
        return _("Deactivated user %(name)s: they can no longer log in, here or on a laptop "
                 "after its next sync.", name=d.get("name"))
    return _("Reactivated user %(name)s.", name=d.get("name"))


def user_decisions(conn: psycopg.Connection, limit: int = MAX_DECISIONS) -> list[dict]:
    """Return the latest changes of users made on the users page, newest first."""
    rows = conn.execute("SELECT d.id, d.at, d.action, d.details, u.name AS user_name "
                        "FROM decision d LEFT JOIN app_user u ON u.id = d.user_id "
                        "WHERE d.action = ANY(%s) ORDER BY d.id DESC LIMIT %s",
                        [list(USER_ACTIONS), limit]).fetchall()
    return [{**row, "text": describe(row["action"], row["details"])} for row in rows]

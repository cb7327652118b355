"""Who may say what in a push: a device speaks for itself only (docs/SECURITY.md, "Trust").

A device's authority comes from its token, never from the body. Central sets every
change's origin to the pushing laptop; a lap must be recorded by that laptop and by a
user it knows; a device voids or restores only its own laps and edits only runners it
created, unless central trusts it with the roster (device.manage_roster); users are
central's (sync/pushed_users.py). Anything else is refused item by item: kept in
rejected_change, listed in the push answer and on the laptop's sync-status, while the
rest of the batch applies and the queue moves on.
"""
from __future__ import annotations

import json
import unicodedata

import psycopg
from flask_babel import gettext as _

from lapsync.names import class_fold, refused_character

from . import clock
from .ledger import detect_clashes, upsert_runner

Refusal = tuple[str, str]          # (error code, message)

NOT_THIS_LAPTOP = "not_this_laptop"
UNKNOWN_USER = "unknown_user"
NOT_OWN_LAP = "not_own_lap"
ROSTER_AT_CENTRAL = "roster_only_at_central"
INVALID_NAME = "invalid_name"

# A pushed runner re-spelled to its class's spelling at central: central's own edit, with a
# stamp after the laptop's, so that every laptop pulls it (the one that pushed it too).
RESPELL = """
UPDATE runner SET class = %(class)s, hlc = %(hlc)s, origin = %(origin)s,
    change_id = nextval('change_id_seq')
WHERE id = %(id)s
"""

# Users a laptop may name as a lap's recorder or a void's author: central's users it
# pulls with a password hash (admins only by a device trusted to manage users, sync/pull.py)
# and the users the laptop itself created, whether central took them or not.
KNOWN_USERS = """
SELECT id FROM app_user WHERE id = ANY(%(ids)s) AND (role <> 'admin' OR %(trusted)s)
UNION
SELECT user_id FROM laptop_user WHERE user_id = ANY(%(ids)s) AND laptop_id = %(laptop)s
"""


def reject(conn: psycopg.Connection, laptop_id: str, change: dict, error: str, message: str,
           now: int) -> dict:
    """Keep a change refused for good for the admin; return its entry for the answer."""
    return reject_all(conn, laptop_id, [(change, error, message)], now)[0]


def reject_all(conn: psycopg.Connection, laptop_id: str,
               refused: list[tuple[dict, str, str]], now: int) -> list[dict]:
    """Keep changes refused for good, (change, error, message) each; return their entries."""
    if not refused:
        return []
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO rejected_change (laptop_id, seq, entity, entity_id, error, message, "
            "payload, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (laptop_id, seq) DO NOTHING",
            [[laptop_id, change["seq"], change["entity"], change["id"], error, message,
              json.dumps(change["data"]), now] for change, error, message in refused])
    return [{"seq": change["seq"], "error": error, "message": message}
            for change, error, message in refused]


def known_users(conn: psycopg.Connection, device: dict, ids: set[str]) -> set[str]:
    """Return those of ids that name users the device knows."""
    rows = conn.execute(KNOWN_USERS, {"ids": list(ids), "trusted": device["manage_users"],
                                      "laptop": device["laptop_id"]})
    return {row["id"] for row in rows}


def own_origin(device: dict, changes: list[dict]) -> None:
    """Set each change's origin to the pushing laptop: whatever the body says, it speaks for itself."""
    for change in changes:
        if "origin" in change["data"]:
            change["data"]["origin"] = device["laptop_id"]


def lap_seqs(changes: list[dict]) -> list[int]:
    """Return the seq of each lap of the batch, in lap_columns' order."""
    seqs: list[int] = []
    for change in changes:
        if change["entity"] == "lap":
            seqs.append(change["seq"])
        elif change["entity"] not in ("lap_void", "runner", "user"):  # a compact lap run
            seqs += range(change["seq"], change["seq"] + len(change["data"]["id"]))
    return seqs


def lap_refusal(device: dict, lap: dict, unknown: set[str]) -> Refusal | None:
    """Say why a lap may not come from this device, or None."""
    if lap["device_id"] != device["laptop_id"]:
        return NOT_THIS_LAPTOP, _("The lap names laptop %(named)s as the one that recorded "
                                  "it, but this device is laptop %(laptop)s: a device pushes "
                                  "only its own laps.", named=repr(lap["device_id"]),
                                  laptop=repr(device["laptop_id"]))
    if lap["created_by"] in unknown:
        return UNKNOWN_USER, _("The lap names user %(user)s as its recorder, a user this "
                               "laptop does not know (neither pulled from central nor created "
                               "on it).", user=repr(lap["created_by"]))
    return None


def own_laps(conn: psycopg.Connection, device: dict, changes: list[dict],
             laps: dict[str, list]) -> tuple[dict[str, list], list[tuple[dict, str, str]]]:
    """Split a batch's lap columns into the laps this device may push and the refused ones."""
    if not laps["id"]:
        return laps, []
    # Laptops and users are few per batch: two set checks decide for 50,000 laps at once.
    users = set(laps["created_by"])
    unknown = users - known_users(conn, device, users)
    if not unknown and set(laps["device_id"]) <= {device["laptop_id"]}:
        return laps, []
    keep, refused, seqs = [], [], lap_seqs(changes)
    for index, values in enumerate(zip(*laps.values())):
        lap = dict(zip(laps, values))
        refusal = lap_refusal(device, lap, unknown)
        if refusal is None:
            keep.append(index)
        else:
            refused.append(({"seq": seqs[index], "entity": "lap", "id": lap["id"],
                             "data": lap}, *refusal))
    return {name: [values[i] for i in keep] for name, values in laps.items()}, refused


def void_refusal(conn: psycopg.Connection, device: dict, void: dict) -> Refusal | None:
    """Say why a device may not void or restore this lap, or None."""
    lap = conn.execute("SELECT device_id FROM lap WHERE id = %s", [void["lap_id"]]).fetchone()
    if lap is None or lap["device_id"] != device["laptop_id"]:
        return NOT_OWN_LAP, _("A device voids or restores only laps it recorded: central has "
                              "no lap %(lap)s from this laptop.", lap=repr(void["lap_id"]))
    if not known_users(conn, device, {void["by"]}):
        return UNKNOWN_USER, _("The void names user %(user)s, a user this laptop does not "
                               "know (neither pulled from central nor created on it).",
                               user=repr(void["by"]))
    return None


def name_refusal(data: dict, fields: tuple[str, ...]) -> Refusal | None:
    """Refuse names with invisible characters (bidi overrides, zero-width, separators)."""
    for field in fields:
        char = refused_character(data[field])
        if char:
            return INVALID_NAME, _("%(field)s holds the invisible character %(char)s: names "
                                   "are one line without control, bidi or zero-width "
                                   "characters.", field=repr(field), char=char)
    return None


def runner_refusal(device: dict, runner: dict, stored: dict | None) -> Refusal | None:
    """Say why a device may not write this runner (stored: central's row of it), or None."""
    refusal = name_refusal(runner, ("name", "class"))
    if refusal or device["manage_roster"] or stored is None \
            or stored["created_on"] == device["laptop_id"]:
        return refusal
    return ROSTER_AT_CENTRAL, _("This device edits only runners it created; another laptop or "
                                "central made this one. An admin at central can let this "
                                "device manage the roster.")


def apply_runner(conn: psycopg.Connection, device: dict, runner: dict, now: int,
                 spellings: dict[str, str] | None = None) -> Refusal | None:
    """Write a pushed runner if the device may (last writer wins); record clashes.

    spellings (ledger.class_spellings, kept for the batch) gives its class the roster's spelling.
    """
    runner = {**runner, **{field: unicodedata.normalize("NFC", runner[field])
                           for field in ("name", "class")}}
    stored = conn.execute("SELECT created_on FROM runner WHERE id = %s",
                          [runner["id"]]).fetchone()
    refusal = runner_refusal(device, runner, stored)
    if refusal:
        return refusal
    row = upsert_runner(conn, runner, newer_only=True)
    if stored is None:  # the device created it (central's own runners keep NULL)
        conn.execute("UPDATE runner SET created_on = %s WHERE id = %s",
                     [device["laptop_id"], runner["id"]])
    if row is not None and row["merged_into"] is None:  # a merged runner clashes no more
        if spellings is not None:
            runner["class"] = respell(conn, runner, spellings)
        detect_clashes(conn, {**runner, "start_number": row["start_number"]}, now)  # as kept
    return None


def respell(conn: psycopg.Connection, runner: dict, spellings: dict[str, str]) -> str:
    """Give a runner just written its class's spelling (a new class keeps its own); return it."""
    written = spellings.setdefault(class_fold(runner["class"]), runner["class"])
    if written != runner["class"]:
        clock.observe(conn, runner["hlc"])  # the tick must follow the laptop's stamp
        conn.execute(RESPELL, {"id": runner["id"], "class": written, "hlc": clock.tick(conn),
                               "origin": clock.node_id(conn)})
    return written

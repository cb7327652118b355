"""Devices: long-lived, revocable Bearer tokens for laptops, stored hashed; the devices page.

A token is shown once, on registration. Two rights, off by default, widen what a
device may push (sync/authority.py, sync/pushed_users.py): `manage_users` (create and
change users, admins too; it also pulls admins' password hashes) and `manage_roster`
(edit any runner, not only those it created). A change of either is logged: on the
page as a decision, on the command line (sync/device_commands.py) as a warning.
"""
from __future__ import annotations

import datetime
import hashlib
import logging
import secrets

import psycopg
from flask import Blueprint, Flask, flash, g, redirect, request, url_for
from flask_babel import gettext as _

from lapsync.errors import InputError, wants_json
from lapsync.protocol import CONTROL_CHARS, ProtocolError
from lapsync.text import age, date_time_text, decimal_text
from lapsync.web.guard import private_page

from . import blocks
from .auth import admin_required, login_required
from .db import get_db, init_schema, now_ms, write_transaction
from .decisions import log_decision

bp = Blueprint("devices", __name__, url_prefix="/devices")
log = logging.getLogger(__name__)

MAX_DEVICE_NAME = 50
DEVICE_COLUMNS = ("id, name, laptop_id, created_at, revoked_at, last_contact, last_seq, "
                  "clock_offset_ms, laps_pushed, manage_users, manage_roster")
RIGHTS = ("manage_users", "manage_roster")  # what central may trust a device with
MAX_REFUSED_SHOWN = 50             # refused changes listed on the devices page
# The devices page's yes/no values of the manage_users and manage_roster fields.
FLAG_VALUES = {"yes": True, "no": False}


def hash_token(token: str) -> str:
    """Return the stored form of a token (sha256: tokens are 256-bit random)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def clean_name(name: str) -> str:
    """Check a device name; return it stripped or raise InputError."""
    name = (name or "").strip()
    if not 1 <= len(name) <= MAX_DEVICE_NAME or CONTROL_CHARS.search(name):
        raise InputError("invalid_device_name",
                         f"A device name is 1 to {MAX_DEVICE_NAME} characters on one line.")
    return name


def register_device(conn: psycopg.Connection, name: str, manage_users: bool = False,
                    manage_roster: bool = False) -> str:
    """Create a device called NAME; return its token (shown once, stored hashed)."""
    name = clean_name(name)
    token = secrets.token_urlsafe(32)
    try:
        with conn.transaction():
            conn.execute("INSERT INTO device (name, token_hash, created_at, manage_users, "
                         "manage_roster) VALUES (%s, %s, %s, %s, %s)",
                         [name, hash_token(token), now_ms(), bool(manage_users),
                          bool(manage_roster)])
    except psycopg.errors.UniqueViolation:
        raise InputError("duplicate_device", f"A device called {name!r} exists already "
                         "(revoke it first to register a new token).", 409) from None
    return token


def revoke_device(conn: psycopg.Connection, name: str) -> bool:
    """Revoke the live device called NAME; tell whether there was one."""
    with conn.transaction():
        row = conn.execute("UPDATE device SET revoked_at = %s WHERE name = %s "
                           "AND revoked_at IS NULL RETURNING id", [now_ms(), name]).fetchone()
    return row is not None


def select_devices(conn: psycopg.Connection, rest: str, params: list) -> list[dict]:
    """SELECT DEVICE_COLUMNS FROM device + a fixed clause (rest); return the rows.

    A database made before one of DEVICE_COLUMNS existed gets it here (init-db is
    idempotent), so laptops keep syncing, and the page keeps working, with a central
    upgraded without running init-db. Only outside a transaction, where the failed
    statement aborted nothing.
    """
    query = f"SELECT {DEVICE_COLUMNS} FROM device {rest}"
    try:
        return conn.execute(query, params).fetchall()
    except psycopg.errors.UndefinedColumn:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise
        init_schema(conn)
        return conn.execute(query, params).fetchall()


def find_device(conn: psycopg.Connection, token: str) -> dict | None:
    """Return the device a token belongs to (revoked or not), or None."""
    rows = select_devices(conn, "WHERE token_hash = %s", [hash_token(token)])
    return rows[0] if rows else None


def authenticate(conn: psycopg.Connection, header: str | None) -> dict:
    """Return the live device of an `Authorization: Bearer` header or raise a 401."""
    scheme, _space, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProtocolError("missing_token", "Send `Authorization: Bearer <device token>` "
                            "(flask --app sync register-device NAME makes one).", 401)
    device = find_device(conn, token.strip())
    if device is None:
        raise ProtocolError("invalid_token", "This device token is not known here.", 401)
    if device["revoked_at"] is not None:
        raise ProtocolError("revoked_token", _("The token of device %(name)s was revoked.",
                                               name=repr(device["name"])), 401)
    return device


def lock_device(conn: psycopg.Connection, device_id: int) -> dict:
    """Lock a device row for this transaction; raise a 401 if it was revoked meanwhile."""
    device = conn.execute(f"SELECT {DEVICE_COLUMNS} FROM device WHERE id = %s FOR UPDATE",
                          [device_id]).fetchone()
    if device is None or device["revoked_at"] is not None:
        raise ProtocolError("revoked_token", "This device token was revoked.", 401)
    return device


def bind_laptop(conn: psycopg.Connection, device: dict, laptop_id: str) -> dict:
    """Bind a device to the laptop of its first push; refuse any other laptop (403)."""
    if device["laptop_id"] == laptop_id:
        return device
    if device["laptop_id"] is not None:
        raise ProtocolError("device_mismatch", _("Device %(name)s belongs to another laptop: "
                                                 "register a device for this one.",
                                                 name=repr(device["name"])), 403)
    other = conn.execute("SELECT name FROM device WHERE laptop_id = %s AND revoked_at IS NULL",
                         [laptop_id]).fetchone()
    if other is not None:
        raise ProtocolError("laptop_registered", _("This laptop syncs as device %(name)s "
                                                   "already: revoke that one first.",
                                                   name=repr(other["name"])), 403)
    # A revoked token's successor carries on where that token stopped: the seqs
    # belong to the laptop's outbox, not to a token.
    previous = conn.execute("SELECT coalesce(max(last_seq), 0) AS seq FROM device "
                            "WHERE laptop_id = %s", [laptop_id]).fetchone()["seq"]
    return conn.execute(f"UPDATE device SET laptop_id = %s, last_seq = %s WHERE id = %s "
                        f"RETURNING {DEVICE_COLUMNS}", [laptop_id, previous, device["id"]]
                        ).fetchone()


def list_devices(conn: psycopg.Connection) -> list[dict]:
    """Return every device, live ones first, by name."""
    return select_devices(conn, "ORDER BY revoked_at IS NOT NULL, name, id", [])


def log_device_decision(conn: psycopg.Connection, user_id: str | None, action: str,
                        device: dict, **details) -> None:
    """Log a device decision: the decision log, or the logger for the command line (no user)."""
    if user_id is None:  # a trust given is a warning; the rest is routine
        log.log(logging.WARNING if any(details.get(r) for r in RIGHTS) else logging.INFO,
                "command line: %s of device %r (id %s) %s", action, device["name"],
                device["id"], details)
        return
    log_decision(conn, user_id, action, [str(device["id"])], {"name": device["name"], **details})


def register_logged(conn: psycopg.Connection, user_id: str | None, name: str,
                    manage_users: bool, manage_roster: bool = False) -> tuple[dict, str]:
    """Register a device with a start-number block and log it in one transaction."""
    with write_transaction(conn):  # the block is checked against the others under the lock
        token = register_device(conn, name, manage_users, manage_roster)
        device = find_device(conn, token)
        blocks.reserve_block(conn, device["id"], *blocks.block_settings())
        rights = {r: True for r, given in zip(RIGHTS, (manage_users, manage_roster)) if given}
        log_device_decision(conn, user_id, "register_device", device, **rights)
    return device, token


def set_right(conn: psycopg.Connection, user_id: str | None, device_id: int, right: str,
              allowed: bool) -> tuple[dict, bool]:
    """Give a live device a right of RIGHTS, or take it; log a change; return (device, changed)."""
    if right not in RIGHTS:
        raise ValueError(right)
    with write_transaction(conn):
        device = live_device(conn, device_id, lock=True)
        if device[right] == allowed:
            return device, False
        conn.execute(f"UPDATE device SET {right} = %s WHERE id = %s", [allowed, device_id])
        if right == "manage_users":
            # Admins' hashes go to trusted devices only (sync/pull.py): every laptop pulls
            # the admins again, and this one takes or drops their hashes.
            conn.execute("UPDATE app_user SET change_id = nextval('change_id_seq') "
                         "WHERE role = 'admin'")
        log_device_decision(conn, user_id, f"device_{right}", device, **{right: allowed})
    return {**device, right: allowed}, True


def live_device_id(conn: psycopg.Connection, name: str) -> int:
    """Return the id of the live device called NAME, or raise a 404."""
    row = conn.execute("SELECT id FROM device WHERE name = %s AND revoked_at IS NULL",
                       [name]).fetchone()
    if row is None:
        raise InputError("unknown_device", f"No live device is called {name!r}.", 404)
    return row["id"]


def refused_changes(conn: psycopg.Connection, limit: int = MAX_REFUSED_SHOWN) -> list[dict]:
    """Return the latest changes central refused for good, with the device that sent them."""
    return conn.execute(
        "SELECT r.id, r.laptop_id, r.seq, r.entity, r.entity_id, r.error, r.message, r.at, "
        "(SELECT d.name FROM device d WHERE d.laptop_id = r.laptop_id ORDER BY d.id DESC "
        "LIMIT 1) AS device_name FROM rejected_change r ORDER BY r.id DESC LIMIT %s",
        [limit]).fetchall()


def live_device(conn: psycopg.Connection, device_id: int, lock: bool = False) -> dict:
    """Return a device that is not revoked, or raise 404/409."""
    device = conn.execute(f"SELECT {DEVICE_COLUMNS} FROM device WHERE id = %s"
                          + (" FOR UPDATE" if lock else ""), [device_id]).fetchone()
    if device is None:
        raise InputError("unknown_device", _("There is no such device."), 404)
    if device["revoked_at"] is not None:
        raise InputError("already_revoked", _("The token of %(name)s was revoked already.",
                                              name=device["name"]), 409)
    return device


def revoke_device_id(conn: psycopg.Connection, device_id: int) -> dict:
    """Revoke a live device by its id (as revoke-device does by name); return it."""
    with conn.transaction():
        device = live_device(conn, device_id, lock=True)
        conn.execute("UPDATE device SET revoked_at = %s WHERE id = %s", [now_ms(), device_id])
    return device


# ---- the devices page ----------------------------------------------------------

@bp.app_template_filter("ms_datetime")
def ms_datetime(ms: int | None) -> str:
    """Format epoch ms as central's local date and time the reader's way (or a dash)."""
    return "–" if ms is None else date_time_text(ms)


@bp.app_template_filter("ms_time")
def ms_time(ms: int | None) -> str:
    """Format epoch ms as central's local time of day with seconds (or a dash)."""
    if ms is None:
        return "–"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def offset_text(offset_ms: int | None) -> str:
    """Describe a laptop's clock offset (central minus laptop) for people."""
    if offset_ms is None:
        return "–"
    seconds = decimal_text(abs(offset_ms) / 1000, 1, fixed=True)
    if abs(offset_ms) < 1000:
        return _("in step (%(ms)s ms)", ms=offset_ms)
    if offset_ms > 0:
        return _("laptop %(seconds)s s behind", seconds=seconds)
    return _("laptop %(seconds)s s ahead", seconds=seconds)


def device_rows(conn: psycopg.Connection) -> list[dict]:
    """Return every device with its contact age, clock offset as text and number block."""
    now, held = now_ms(), blocks.current_blocks(conn)
    return [{**d, "contact_age": age(now - d["last_contact"]) if d["last_contact"] else None,
             "offset": offset_text(d["clock_offset_ms"]), "block": held.get(d["id"])}
            for d in list_devices(conn)]


def render_page(status: int = 200, **context):
    """Render the devices page (never cached: it may show a new token)."""
    conn = get_db()
    return private_page("devices.html", status, devices=device_rows(conn),
                        refused=refused_changes(conn), **context)


@bp.get("/")
@login_required
def index():
    """List every laptop: last contact, last applied seq, laps pushed, clock offset, state."""
    return render_page()


def form_flag(value: str | None, default: bool | None = None,
              right: str = "manage_users") -> bool:
    """Read a yes/no form field (a checkbox sends "yes"); raise a 400 for anything else."""
    if value is None and default is not None:
        return default
    if value not in FLAG_VALUES:
        message = _("Whether the device may manage users is yes or no.") \
            if right == "manage_users" else \
            _("Whether the device may manage the roster is yes or no.")
        raise InputError(f"invalid_{right}", message, 400)
    return FLAG_VALUES[value]


@bp.post("/register")
@admin_required
def register():
    """Register a device and show its token this once."""
    name, conn, form = request.form.get("name", ""), get_db(), request.form
    try:
        manage_users, manage_roster = (form_flag(form.get(right), False, right) for right in RIGHTS)
        device, token = register_logged(conn, g.user["id"], name, manage_users, manage_roster)
    except InputError as exc:
        if wants_json():
            raise
        return render_page(exc.status, error=exc, typed_name=name)
    return render_page(201, new_device=device["name"], new_token=token)


def right_flash(device: dict, right: str, allowed: bool) -> str:
    """Say what a device may do now that a right was given or taken."""
    if right == "manage_users" and allowed:
        return _("%(name)s may now manage users: its pushes may create and change users, "
                 "admins too, and it receives admins' password hashes.", name=device["name"])
    if right == "manage_users":
        return _("%(name)s may no longer manage users: central refuses its user changes and "
                 "sends it no admin's password hash.", name=device["name"])
    if allowed:
        return _("%(name)s may now manage the roster: its pushes may edit any runner.",
                 name=device["name"])
    return _("%(name)s may no longer manage the roster: central refuses its edits of runners "
             "it did not create.", name=device["name"])


def set_right_view(device_id: int, right: str):
    """Give a device a right or take it (the form's yes/no); log the change."""
    try:
        allowed = form_flag(request.form.get(right), right=right)
        device, _changed = set_right(get_db(), g.user["id"], device_id, right, allowed)
    except InputError as exc:
        if wants_json():
            raise
        return render_page(exc.status, error=exc)
    flash(right_flash(device, right, allowed))
    return redirect(url_for("devices.index"))


@bp.post("/<int:device_id>/manage-users")
@admin_required
def manage_users(device_id: int):
    """Trust a device to manage users (admins too), or stop trusting it; log the change."""
    return set_right_view(device_id, "manage_users")


@bp.post("/<int:device_id>/manage-roster")
@admin_required
def manage_roster(device_id: int):
    """Trust a device to edit any runner, or only those it created; log the change."""
    return set_right_view(device_id, "manage_roster")


@bp.post("/<int:device_id>/revoke")
@admin_required
def revoke(device_id: int):
    """Revoke a device's token: the first post asks to confirm, the second revokes."""
    conn = get_db()
    try:
        if request.form.get("confirm") != "yes":
            return render_page(confirm=live_device(conn, device_id))
        with conn.transaction():
            device = revoke_device_id(conn, device_id)
            log_decision(conn, g.user["id"], "revoke_device", [str(device_id)],
                         {"name": device["name"], "laptop_id": device["laptop_id"]})
    except InputError as exc:
        if wants_json():
            raise
        return render_page(exc.status, error=exc)
    flash(_("The token of %(name)s was revoked: it can no longer push or pull.",
            name=device["name"]))
    return redirect(url_for("devices.index"))


@bp.post("/<int:device_id>/block")
@admin_required
def number_block(device_id: int):
    """Give a device more start numbers (action extend) or the range the admin typed."""
    conn, form = get_db(), request.form
    try:
        with write_transaction(conn):
            device = live_device(conn, device_id, lock=True)
            if form.get("action") == "extend":
                block = blocks.extend_block(conn, g.user["id"], device, *blocks.block_settings())
            else:
                block = blocks.set_block(conn, g.user["id"], device, form.get("first"),
                                         form.get("last"))
    except InputError as exc:
        if wants_json():
            raise
        return render_page(exc.status, error=exc)
    flash(_("%(name)s numbers late runners from %(first)s–%(last)s now; the laptop learns it "
            "at its next sync.", name=device["name"], first=block["first"], last=block["last"]))
    return redirect(url_for("devices.index"))


def init_app(app: Flask) -> None:
    """Register the devices page (the device commands: sync/device_commands.py)."""
    app.register_blueprint(bp)

"""Users made at central: pulled by every laptop so a teacher can log in offline.

Central's admins manage them on the users page (sync/user_views.py) or with create-user.
Every change takes a new central stamp and change id, so laptops pull it; a deactivated
user is pulled without a password hash and with "active": false (sync/pull.py). Each
change made on the page is logged in the decision log. The last active admin can neither
be demoted nor deactivated, and nobody deactivates themselves: central keeps an admin.
"""
from __future__ import annotations

import logging
import secrets

import click
import psycopg
from flask import Flask
from flask.cli import with_appcontext
from flask_babel import gettext as _

from lapsync.authcore import (NEW_PASSWORD, ROLES, hash_password, name_taken, taken_hint,
                              validate_password, validate_user)
from lapsync.errors import InputError
from lapsync.ids import new_id
from lapsync.names import confusable

from . import clock
from .db import connection, now_ms, write_transaction
from .decisions import log_decision

# Generated passwords: no 0/o, 1/l/i to misread when copied by hand; 3 groups of 4 of
# 31 signs are 59 bits, against a login rate limit.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
USER_COLUMNS = "id, name, role, created_at, deactivated_at, last_login_at"
log = logging.getLogger(__name__)


def generate_password() -> str:
    """Return a new random password such as 'k7mq-4hxt-p2ne' (shown once, typed by hand)."""
    return "-".join("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4))
                    for _ in range(3))


def confusable_user(conn: psycopg.Connection, name: str, user_id: str | None = None) -> str | None:
    """Return the name of another user that looks like name ("admin", "аdmin"), or None."""
    others = conn.execute("SELECT name FROM app_user WHERE id IS DISTINCT FROM %s ORDER BY name",
                          [user_id]).fetchall()
    return confusable(name, [row["name"] for row in others])


def create_user(conn: psycopg.Connection, name: str, role: str, password: str,
                by: str | None = None) -> str:
    """Create a user at central (argon2 hash, as on the laptops); log it if BY; return its id."""
    name, role, password = validate_user(name, role, password)
    password_hash = hash_password(password)  # slow: outside the write lock
    with write_transaction(conn):
        if conn.execute("SELECT 1 FROM app_user WHERE name = %s", [name]).fetchone():
            raise name_taken(name)
        other = confusable_user(conn, name)
        if other is not None:
            raise InputError("confusable_name", _(
                "%(name)s looks like the name of user %(other)s: choose a name that looks "
                "like no other.", name=repr(name), other=repr(other)), 409)
        user_id = new_id()
        conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, "
                     "origin, change_id) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                     "nextval('change_id_seq'))",
                     [user_id, name, password_hash, role, now_ms(), clock.tick(conn),
                      clock.node_id(conn)])
        if by is not None:
            log_decision(conn, by, "create_user", [user_id], {"name": name, "role": role})
    return user_id


def list_users(conn: psycopg.Connection) -> list[dict]:
    """Return every user, active ones first, by name."""
    return conn.execute(f"SELECT {USER_COLUMNS} FROM app_user "
                        "ORDER BY deactivated_at IS NOT NULL, lower(name), name").fetchall()


def locked_user(conn: psycopg.Connection, user_id: str) -> dict:
    """Return a user locked for this transaction, or raise a 404."""
    row = conn.execute(f"SELECT {USER_COLUMNS} FROM app_user WHERE id = %s FOR UPDATE",
                       [user_id]).fetchone()
    if row is None:
        raise InputError("unknown_user", _("There is no such user."), 404)
    return row


def keep_an_admin(conn: psycopg.Connection, user: dict) -> None:
    """Refuse (409) taking the last active admin away: nobody could manage central then."""
    if user["role"] != "admin" or user["deactivated_at"] is not None:
        return
    others = conn.execute("SELECT count(*) AS n FROM app_user WHERE role = 'admin' "
                          "AND deactivated_at IS NULL AND id <> %s", [user["id"]]).fetchone()
    if others["n"] == 0:
        raise InputError("last_admin", _(
            "%(name)s is the last active admin: make another user an admin first.",
            name=user["name"]), 409)


def restamp(conn: psycopg.Connection, user_id: str, assignments: str, values: list) -> None:
    """Update a user with a new central stamp and change id, so laptops pull it (write lock)."""
    conn.execute(f"UPDATE app_user SET {assignments}, hlc = %s, origin = %s, "
                 "change_id = nextval('change_id_seq') WHERE id = %s",
                 [*values, clock.tick(conn), clock.node_id(conn), user_id])


def set_role(conn: psycopg.Connection, by: str, user_id: str, role: str) -> tuple[dict, bool]:
    """Give a user another role (logged); return (user, whether it changed)."""
    if role not in ROLES:
        raise InputError("invalid_role", _("The role must be one of: %(roles)s.",
                                           roles=", ".join(ROLES)))
    with write_transaction(conn):
        user = locked_user(conn, user_id)
        if user["role"] == role:
            return user, False
        keep_an_admin(conn, user)
        restamp(conn, user_id, "role = %s", [role])
        log_decision(conn, by, "change_role", [user_id],
                     {"name": user["name"], "from": user["role"], "to": role})
    return {**user, "role": role}, True


def reset_password(conn: psycopg.Connection, by: str, user_id: str, password: str) -> dict:
    """Give a user a new password (logged) and end their other sessions; return the user."""
    password_hash = hash_password(validate_password(password))  # slow: outside the lock
    with write_transaction(conn):
        user = locked_user(conn, user_id)
        restamp(conn, user_id, "password_hash = %s", [password_hash])
        # The old password may be known to someone: their sessions end (not the admin's own).
        conn.execute("DELETE FROM user_session WHERE user_id = %s AND user_id <> %s",
                     [user_id, by])
        log_decision(conn, by, "reset_password", [user_id], {"name": user["name"]})
    return user


def set_password(conn: psycopg.Connection, name: str, password: str) -> dict:
    """Give the user NAME a new password (the command line's) and end all their sessions."""
    password_hash = hash_password(validate_password(password))  # slow: outside the lock
    with write_transaction(conn):
        user = conn.execute(f"SELECT {USER_COLUMNS} FROM app_user WHERE name = %s FOR UPDATE",
                            [name]).fetchone()
        if user is None:
            raise InputError("unknown_user", _("There is no user called %(name)s.",
                                               name=repr(name)), 404)
        restamp(conn, user["id"], "password_hash = %s", [password_hash])  # laptops pull it
        # Whoever knew the old password may be logged in with it somewhere.
        conn.execute("DELETE FROM user_session WHERE user_id = %s", [user["id"]])
    return user


def set_active(conn: psycopg.Connection, by: str, user_id: str,
               active: bool) -> tuple[dict, bool]:
    """Deactivate a user (sessions end) or reactivate one (logged); return (user, changed)."""
    with write_transaction(conn):
        user = locked_user(conn, user_id)
        if (user["deactivated_at"] is None) == active:
            return user, False
        if not active:
            if user_id == by:
                raise InputError("deactivate_self", _(
                    "You cannot deactivate yourself: ask another admin."), 409)
            keep_an_admin(conn, user)
            conn.execute("DELETE FROM user_session WHERE user_id = %s", [user_id])
        at = None if active else now_ms()
        restamp(conn, user_id, "deactivated_at = %s", [at])
        log_decision(conn, by, "reactivate_user" if active else "deactivate_user", [user_id],
                     {"name": user["name"]})
    return {**user, "deactivated_at": at}, True


@click.command("create-user")
@with_appcontext
@click.argument("name")
@click.option("--role", type=click.Choice(("admin", "teacher", "viewer")), required=True,
              help="admin, teacher or viewer")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (asked for twice when left out, or taken from "
                   "FLASK_CREATE_USER_PASSWORD).")
def create_user_command(name: str, role: str, password: str) -> None:
    """Create a user at central; laptops receive it at their next pull."""
    with connection() as conn:
        try:
            create_user(conn, name, role, password)
        except InputError as exc:
            raise click.ClickException(exc.message + taken_hint(exc, "sync", name)) from None
    log.info("command line: create_user %r (%s)", name.strip(), role)
    click.echo(f"Created {role} {name.strip()!r} at central.")


@click.command("set-password")
@with_appcontext
@click.argument("name")
@NEW_PASSWORD
def set_password_command(name: str, password: str) -> None:
    """Give the user NAME a new password and end their sessions; laptops receive it at their
    next pull."""
    with connection() as conn:
        try:
            set_password(conn, name, password)
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    log.info("command line: set_password of user %r (their sessions ended)", name)
    click.echo(f"New password set for {name!r}; their sessions ended.")


def init_app(app: Flask) -> None:
    """Register the user CLI commands."""
    app.cli.add_command(create_user_command)
    app.cli.add_command(set_password_command)

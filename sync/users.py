"""Users made at central: pulled by every laptop so a teacher can log in offline."""
from __future__ import annotations

import click
import psycopg
from flask import Flask
from flask.cli import with_appcontext

from lapsync.authcore import hash_password, validate_user
from lapsync.errors import InputError
from lapsync.ids import new_id
from lapsync.names import confusable

from . import clock
from .db import connection, now_ms, write_transaction


def confusable_user(conn: psycopg.Connection, name: str, user_id: str | None = None) -> str | None:
    """Return the name of another user that looks like name ("admin", "аdmin"), or None."""
    others = conn.execute("SELECT name FROM app_user WHERE id IS DISTINCT FROM %s ORDER BY name",
                          [user_id]).fetchall()
    return confusable(name, [row["name"] for row in others])


def create_user(conn: psycopg.Connection, name: str, role: str, password: str) -> str:
    """Create a user at central (argon2 hash, as on the laptops); return its id."""
    name, role, password = validate_user(name, role, password)
    password_hash = hash_password(password)  # slow: outside the write lock
    with write_transaction(conn):
        if conn.execute("SELECT 1 FROM app_user WHERE name = %s", [name]).fetchone():
            raise InputError("duplicate_name", f"A user called {name!r} exists already.", 409)
        other = confusable_user(conn, name)
        if other is not None:
            raise InputError("confusable_name", f"{name!r} looks like the name of user "
                             f"{other!r}: choose a name that looks like no other.", 409)
        user_id = new_id()
        conn.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, "
                     "origin, change_id) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                     "nextval('change_id_seq'))",
                     [user_id, name, password_hash, role, now_ms(), clock.tick(conn),
                      clock.node_id(conn)])
    return user_id


@click.command("create-user")
@with_appcontext
@click.argument("name")
@click.option("--role", type=click.Choice(("admin", "teacher", "viewer")), required=True,
              help="admin, teacher or viewer")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (asked for when left out).")
def create_user_command(name: str, role: str, password: str) -> None:
    """Create a user at central; laptops receive it at their next pull."""
    with connection() as conn:
        try:
            create_user(conn, name, role, password)
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"Created {role} {name.strip()!r} at central.")


def init_app(app: Flask) -> None:
    """Register the user CLI commands."""
    app.cli.add_command(create_user_command)

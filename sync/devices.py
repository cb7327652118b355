"""Devices: long-lived, revocable Bearer tokens for laptops, stored hashed."""
from __future__ import annotations

import hashlib
import secrets

import click
import psycopg
from flask import Flask
from flask.cli import with_appcontext

from lapsync.errors import InputError
from lapsync.protocol import CONTROL_CHARS, ProtocolError

from .db import connection, now_ms

MAX_DEVICE_NAME = 50
DEVICE_COLUMNS = ("id, name, laptop_id, created_at, revoked_at, last_contact, last_seq, "
                  "clock_offset_ms, laps_pushed")


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


def register_device(conn: psycopg.Connection, name: str) -> str:
    """Create a device called NAME; return its token (shown once, stored hashed)."""
    name = clean_name(name)
    token = secrets.token_urlsafe(32)
    try:
        with conn.transaction():
            conn.execute("INSERT INTO device (name, token_hash, created_at) VALUES (%s, %s, %s)",
                         [name, hash_token(token), now_ms()])
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


def find_device(conn: psycopg.Connection, token: str) -> dict | None:
    """Return the device a token belongs to (revoked or not), or None."""
    return conn.execute(f"SELECT {DEVICE_COLUMNS} FROM device WHERE token_hash = %s",
                        [hash_token(token)]).fetchone()


def authenticate(conn: psycopg.Connection, header: str | None) -> dict:
    """Return the live device of an `Authorization: Bearer` header or raise a 401."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProtocolError("missing_token", "Send `Authorization: Bearer <device token>` "
                            "(flask --app sync register-device NAME makes one).", 401)
    device = find_device(conn, token.strip())
    if device is None:
        raise ProtocolError("invalid_token", "This device token is not known here.", 401)
    if device["revoked_at"] is not None:
        raise ProtocolError("revoked_token", f"The token of device {device['name']!r} "
                            "was revoked.", 401)
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
        raise ProtocolError("device_mismatch", f"Device {device['name']!r} belongs to another "
                            "laptop: register a device for this one.", 403)
    other = conn.execute("SELECT name FROM device WHERE laptop_id = %s AND revoked_at IS NULL",
                         [laptop_id]).fetchone()
    if other is not None:
        raise ProtocolError("laptop_registered", f"This laptop syncs as device "
                            f"{other['name']!r} already: revoke that one first.", 403)
    # A revoked token's successor carries on where that token stopped: the seqs
    # belong to the laptop's outbox, not to a token.
    previous = conn.execute("SELECT coalesce(max(last_seq), 0) AS seq FROM device "
                            "WHERE laptop_id = %s", [laptop_id]).fetchone()["seq"]
    return conn.execute(f"UPDATE device SET laptop_id = %s, last_seq = %s WHERE id = %s "
                        f"RETURNING {DEVICE_COLUMNS}", [laptop_id, previous, device["id"]]
                        ).fetchone()


def list_devices(conn: psycopg.Connection) -> list[dict]:
    """Return every device, live ones first, by name."""
    return conn.execute(f"SELECT {DEVICE_COLUMNS} FROM device "
                        "ORDER BY revoked_at IS NOT NULL, name, id").fetchall()


@click.command("register-device")
@with_appcontext
@click.argument("name")
def register_device_command(name: str) -> None:
    """Register a laptop called NAME and print its sync token (shown only this once)."""
    with connection() as conn:
        try:
            token = register_device(conn, name)
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"Device {name.strip()!r} registered. Its token (shown only now):")
    click.echo(token)


@click.command("revoke-device")
@with_appcontext
@click.argument("name")
def revoke_device_command(name: str) -> None:
    """Revoke the token of the device called NAME: its pushes and pulls get 401."""
    with connection() as conn:
        if not revoke_device(conn, name):
            raise click.ClickException(f"No live device is called {name!r}.")
    click.echo(f"Device {name!r} revoked.")


@click.command("list-devices")
@with_appcontext
def list_devices_command() -> None:
    """List devices: name, state, laptop, last contact, last seq, clock offset, laps."""
    with connection() as conn:
        devices = list_devices(conn)
    for d in devices:
        state = "revoked" if d["revoked_at"] else "live"
        click.echo(f"{d['name']:<20} {state:<8} laptop={d['laptop_id'] or '-'} "
                   f"last_contact={d['last_contact'] or '-'} last_seq={d['last_seq']} "
                   f"offset_ms={d['clock_offset_ms'] if d['clock_offset_ms'] is not None else '-'} "
                   f"laps={d['laps_pushed']}")


def init_app(app: Flask) -> None:
    """Register the device CLI commands."""
    app.cli.add_command(register_device_command)
    app.cli.add_command(revoke_device_command)
    app.cli.add_command(list_devices_command)

"""Event settings decided at central (minimum lap time, metres per lap, ...)."""
from __future__ import annotations

import json
from typing import Any

import click
import psycopg
from flask import Flask
from flask.cli import with_appcontext
from psycopg.types.json import Jsonb

from lapsync.errors import InputError
from lapsync.protocol import SETTINGS, validate_setting

from .db import connection, write_transaction


def set_setting(conn: psycopg.Connection, key: str, value: Any) -> Any:
    """Validate and store one setting with a new change id; return the stored value."""
    value = validate_setting(key, value)
    with write_transaction(conn):
        conn.execute("INSERT INTO setting (key, value, change_id) "
                     "VALUES (%s, %s, nextval('change_id_seq')) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value, change_id = excluded.change_id",
                     [key, Jsonb(value)])
    return value


def get_settings(conn: psycopg.Connection) -> dict:
    """Return every stored setting as {key: value}."""
    return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM setting")}


def parse_value(key: str, text: str) -> Any:
    """Read a command-line value: numbers as JSON (60, 400.5), names and dates as text."""
    if key in ("event_name", "event_date"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


@click.command("set-setting")
@with_appcontext
@click.argument("key", type=click.Choice(SETTINGS))
@click.argument("value")
def set_setting_command(key: str, value: str) -> None:
    """Set an event setting (KEY VALUE); laptops receive it at their next pull."""
    with connection() as conn:
        try:
            stored = set_setting(conn, key, parse_value(key, value))
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"{key} = {json.dumps(stored)}")


def init_app(app: Flask) -> None:
    """Register the settings CLI command."""
    app.cli.add_command(set_setting_command)

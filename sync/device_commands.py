"""The device commands of `flask --app sync`: register, trust, revoke and list laptops.

They run as the central operator (who holds the database anyway): a right given is
logged as a warning instead of in the decision log (sync/devices.py).
"""
from __future__ import annotations

import logging

import click
from flask import Flask
from flask.cli import with_appcontext

from lapsync.errors import InputError
from lapsync.text import when

from . import blocks
from .db import connection, now_ms
from .devices import list_devices, live_device_id, register_logged, revoke_device, set_right

log = logging.getLogger(__name__)
RIGHT_TEXT = {"manage_users": ("may manage users", "may not manage users"),
              "manage_roster": ("may manage the roster", "may not manage the roster")}


@click.command("register-device")
@with_appcontext
@click.argument("name")
@click.option("--manage-users", is_flag=True,
              help="Trust this laptop to manage users: its pushes may create and change "
                   "users (admins too), and it pulls admins' password hashes. Off by "
                   "default: only central does that.")
@click.option("--manage-roster", is_flag=True,
              help="Trust this laptop with the roster: its pushes may edit any runner. Off "
                   "by default: it edits only runners it created.")
def register_device_command(name: str, manage_users: bool, manage_roster: bool) -> None:
    """Register a laptop called NAME and print its sync token (shown only this once)."""
    with connection() as conn:
        try:
            _device, token = register_logged(conn, None, name, manage_users, manage_roster)
        except InputError as exc:
            raise click.ClickException(exc.message) from None
    trust = (" It may manage users (admins too)." if manage_users else "") + \
        (" It may manage the roster." if manage_roster else "")
    click.echo(f"Device {name.strip()!r} registered.{trust} Its token (shown only now):")
    click.echo(token)


@click.command("set-device")
@with_appcontext
@click.argument("name")
@click.option("--manage-users/--no-manage-users", default=None,
              help="Trust the live device NAME to manage users (admins too), or stop.")
@click.option("--manage-roster/--no-manage-roster", default=None,
              help="Trust the live device NAME to edit any runner, or only those it created.")
def set_device_command(name: str, manage_users: bool | None,
                       manage_roster: bool | None) -> None:
    """Change what the live device NAME may manage (users, roster); each change is logged."""
    rights = {"manage_users": manage_users, "manage_roster": manage_roster}
    if all(value is None for value in rights.values()):
        raise click.UsageError("Give --manage-users/--no-manage-users or "
                               "--manage-roster/--no-manage-roster.")
    with connection() as conn:
        for right, allowed in rights.items():
            if allowed is None:
                continue
            try:
                device, changed = set_right(conn, None, live_device_id(conn, name), right, allowed)
            except InputError as exc:
                raise click.ClickException(exc.message) from None
            state = RIGHT_TEXT[right][0 if allowed else 1]
            click.echo(f"Device {device['name']!r} {state}{'' if changed else ' (unchanged)'}.")


@click.command("revoke-device")
@with_appcontext
@click.argument("name")
def revoke_device_command(name: str) -> None:
    """Revoke the token of the device called NAME: its pushes and pulls get 401."""
    with connection() as conn:
        if not revoke_device(conn, name):
            raise click.ClickException(f"No live device is called {name!r}.")
    log.info("command line: revoke_device of device %r", name)
    click.echo(f"Device {name!r} revoked.")


@click.command("list-devices")
@with_appcontext
def list_devices_command() -> None:
    """List devices: name, state, laptop, last contact, last seq, clock offset, laps, users,
    roster, start-number block."""
    with connection() as conn:
        devices, held = list_devices(conn), blocks.current_blocks(conn)
    now = now_ms()
    for d in devices:
        state = "revoked" if d["revoked_at"] else "live"
        block = f"{held[d['id']]['first']}-{held[d['id']]['last']}" if d["id"] in held else "-"
        click.echo(f"{d['name']:<20} {state:<8} laptop={d['laptop_id'] or '-'} "
                   f"last_contact={when(d['last_contact'], now)} last_seq={d['last_seq']} "
                   f"offset_ms={d['clock_offset_ms'] if d['clock_offset_ms'] is not None else '-'} "
                   f"laps={d['laps_pushed']} manage_users={'yes' if d['manage_users'] else 'no'} "
                   f"manage_roster={'yes' if d['manage_roster'] else 'no'} block={block}")


def init_app(app: Flask) -> None:
    """Register the device CLI commands."""
    for command in (register_device_command, set_device_command, revoke_device_command,
                    list_devices_command):
        app.cli.add_command(command)

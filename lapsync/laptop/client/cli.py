"""CLI for sync: `flask connect URL [TOKEN]`, `flask sync`, `flask sync-status [--json]`."""
from __future__ import annotations

import json
import os
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from lapsync import hlc
from lapsync.protocol import limits
from lapsync.errors import InputError
from lapsync.text import age, when

from .. import clockwatch, new_event
from ..db import connect, device_id, now_ms
from .connect import config_file, validate_token, validate_url
from .connecting import check_central, first_sync, store_central
from .push import pending_count
from .state import sync_once
from .status import rejected_items, status_for
from .transport import AUTH, TRANSIENT, Central, SyncError, SyncResult, central_from_config

EXIT_CODES = {TRANSIENT: 2, AUTH: 3}  # anything else: 1
TOKEN_ENV = "LAPSYNC_TOKEN"  # connect's token when TOKEN is left out: never in `ps` or history


def fail(result: SyncResult, hint: str = "") -> None:
    """Print why the sync failed and exit non-zero (2 unreachable, 3 not authorised, 1 other)."""
    click.secho(f"Sync failed: {result.error.message}{hint}", fg="red", err=True)
    sys.exit(EXIT_CODES.get(result.error.kind, 1))


def moved(result: SyncResult) -> str:
    """Describe what one sync moved, e.g. 'pushed 12 changes, pulled 40 (runner 38, user 2)'."""
    pulled = ", ".join(f"{entity} {count}" for entity, count in sorted(result.pulled.items()))
    text = f"pushed {result.pushed} changes, pulled {result.pulled_total}"
    text += f" ({pulled})" if pulled else ""
    if result.rejected:
        text += f"; central rejected {result.rejected} (see sync-status)"
    return text


def run_sync(db, central: Central) -> SyncResult:
    """Sync once now, with a progress bar when the backlog is larger than one batch."""
    pending = pending_count(db)
    if pending <= limits.MAX_BATCH_CHANGES:
        return sync_once(db, central, force=True)
    with click.progressbar(length=pending, label="Pushing", file=sys.stderr) as bar:
        return sync_once(db, central, force=True, progress=bar.update)


def read_token(token: str | None) -> str:
    """Return TOKEN as given; "-" or none: $LAPSYNC_TOKEN (none only), else standard input."""
    if token is not None and token != "-":
        return token
    if token is None and os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    if sys.stdin.isatty():
        return click.prompt("Device token", hide_input=True, err=True)
    return sys.stdin.readline().strip()


# ignore_unknown_options: a device token is URL-safe base64 and 1 in 64 begin with
# "-"; without it click reads such a token as an option ("No such option '-0'").
@click.command("connect", context_settings={"ignore_unknown_options": True})
@click.argument("url")
@click.argument("token", required=False)
@with_appcontext
def connect_command(url: str, token: str | None) -> None:
    """Connect this laptop to central at URL with a device TOKEN, then sync once.

    The token comes from `flask --app sync register-device NAME` on central. Leave
    TOKEN out (or give -) to keep it off the command line, where other users of the
    machine can see it: it is then read from $LAPSYNC_TOKEN (TOKEN left out only) or
    from standard input (asked for, hidden, on a terminal). URL and token are stored
    in the instance config file (mode 600). Exit status: 2 when central cannot be
    reached, 3 when it refuses the token, 1 otherwise.
    """
    try:
        url, token = validate_url(url), validate_token(read_token(token))
    except InputError as exc:
        raise click.BadParameter(exc.message, param_hint="URL" if exc.code == "invalid_url" else "TOKEN")
    refused_token(url, token)
    try:
        path = store_central(current_app, url, token)
    except OSError as exc:
        raise click.ClickException(f"Cannot write {config_file(current_app)}: {exc}")
    click.echo(f"Stored central {url} in {path}.")
    result = first_sync(current_app, run_sync)
    if result.error:
        fail(result, "\nThe URL and token are stored: fix the problem and run "
                     "`flask --app app sync` (the running app retries by itself).")
    click.echo(f"Connected: {moved(result)}.")


def refused_token(url: str, token: str) -> None:
    """Exit 3, storing nothing, if central refuses the token (a mistyped one must not replace
    a working one); one it cannot reach is stored, and the app retries by itself."""
    try:
        check_central(url, token, current_app.config)
    except SyncError as exc:
        if exc.status in (401, 403):
            fail(SyncResult(error=SyncError(AUTH, f"central refused this token (HTTP {exc.status}): "
                                            "not authorised.", exc.status)),
                 "\nNothing was stored: the URL and token stored before (if any) stay.")


@click.command("sync")
@with_appcontext
def sync_command() -> None:
    """Sync with central now: push pending changes, pull what is new.

    Exit status: 2 when central cannot be reached, 3 when it refuses this
    device's token, 1 for other errors or when no central is configured.
    """
    central = central_from_config(current_app.config)
    if central is None:
        raise click.ClickException("Not connected to central: run "
                                   "`flask --app app connect URL TOKEN` first.")
    db = connect(current_app.config["DATABASE"])
    try:
        result = run_sync(db, central)
    finally:
        db.close()
    if result.error:
        fail(result, f"\n({result.pushed} changes pushed before that.)" if result.pushed else "")
    click.echo(f"Synced: {moved(result)}.")


def status_lines(info: dict, now: int) -> list[str]:
    """Render sync_status (plus rejected items) as lines for the terminal."""
    oldest = info["oldest_pending_age_s"]
    lines = [f"status:        {info['text']}",
             f"central:       {info['central_url'] or 'not connected'}",
             f"device:        {info['device_id']}",
             f"pending:       {info['pending']} changes ({info['pending_laps']} laps)"
             + (f", oldest {age(oldest * 1000)}" if oldest is not None else ""),
             f"last success:  {when(info['last_success_ms'], now)}",
             f"last error:    {info['last_error'] or 'none'}"
             + (f" at {when(info['last_error_ms'], now)}" if info["last_error_ms"] else ""),
             f"authorised:    {'unknown' if info['authorised'] is None else 'yes' if info['authorised'] else 'NO'}"]
    if info["backoff_until_ms"] and info["backoff_until_ms"] > now:
        lines.append(f"next retry:    in {age(info['backoff_until_ms'] - now)} "
                     f"({info['failures']} failures in a row)")
    if info["clock_offset_ms"] is not None:
        lines.append(f"clock offset:  central is {info['clock_offset_ms']:+d} ms from this laptop")
        if -info["clock_offset_ms"] > info.get("clock_bound_ms", hlc.MAX_AHEAD_S * 1000):
            lines.append(f"clock:         this laptop's clock is {hlc.span(info['clock_offset_ms'])} "
                         "ahead of central's: central refuses its edits of runners, users and "
                         "voids until its date and time are right")
    lines += [f"past error:    {past['error']}" + (f" at {when(past['at_ms'], now)}" if past["at_ms"] else "")
              + " (cleared by a later success)" for past in info.get("past_errors", [])]
    lines += [f"clock jump:    {jump['jump_ms'] // 1000:+d} s, noticed at {when(jump['at'], now)} "
              f"after outbox seq {jump['after_seq']}; "
              + ("reported to central" if jump["reported_at"] else "not reported to central yet")
              for jump in info.get("clock_jumps", [])]
    if info.get("event_notice"):
        lines.append(f"new event:     {info['event_notice']}")
    lines.append(f"rejected:      {info['rejected']}")
    lines += [f"  {item['direction']} {item['ref']} {item['entity']} {item['entity_id']}: "
              f"{item['error']} {item['message']}".rstrip() for item in info["rejected_items"]]
    return lines


@click.command("sync-status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@with_appcontext
def sync_status_command(as_json: bool) -> None:
    """Show pending changes, the oldest one's age, last success, last error, auth state."""
    db = connect(current_app.config["DATABASE"])
    try:
        now = now_ms()
        info = status_for(current_app, db)
        info.update(device_id=device_id(db), rejected_items=rejected_items(db), now_ms=now,
                    clock_jumps=clockwatch.history(db), event_notice=new_event.notice(db),
                    clock_bound_ms=round(float(current_app.config["MAX_CLOCK_AHEAD_S"]) * 1000))
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo("\n".join(status_lines(info, now)))

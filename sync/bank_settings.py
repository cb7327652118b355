"""Central-only settings of the money side: the organiser's bank account and the mail server.

Stored in central_setting (sync/central_settings.py), which no pull reads, so a laptop
never receives an IBAN or an SMTP password. The SMTP password is never shown back:
pages show only whether one is stored, and the decision log records that it changed,
not its value.
"""
from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from typing import Any

import psycopg
from flask_babel import lazy_gettext as _l
from psycopg.types.json import Jsonb
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError

from lapsync.errors import InputError

from .db import now_ms, write_transaction
from .decisions import log_decision
from .money_settings import validated

SECRETS = ("smtp_password",)
TLS_MODES = ("none", "starttls", "ssl")
HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\]")
ADDRESS = re.compile(r"[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")


def _text(value: Any, limit: int) -> str:
    """Return value as one line of 1..limit characters or raise ValueError."""
    if not isinstance(value, str):
        raise ValueError
    value = " ".join(value.split())
    if not 0 < len(value) <= limit or any(ord(c) < 32 for c in value):
        raise ValueError
    return value


def clean_iban(value: Any) -> str:
    """Return a valid IBAN in its compact form (DE89370400440532013000)."""
    try:
        return stdnum_iban.validate(_text(value, 50))
    except ValidationError:
        raise ValueError from None


def clean_bic(value: Any) -> str:
    """Return a valid BIC (8 or 11 characters, upper case)."""
    try:
        return stdnum_bic.validate(_text(value, 20))
    except ValidationError:
        raise ValueError from None


def clean_port(value: Any) -> int:
    """Return a TCP port number 1..65535 (a number or its digits)."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError
    return value


def clean_host(value: Any) -> str:
    """Return a host name or IP address."""
    value = _text(value, 253)
    if not HOST.fullmatch(value):
        raise ValueError
    return value


def clean_from(value: Any) -> str:
    """Return a sender address, bare or with a name ("Lauf <lauf@schule.de>")."""
    value = _text(value, 200)
    name, address = email.utils.parseaddr(value)
    if not ADDRESS.fullmatch(address):
        raise ValueError
    return email.utils.formataddr((name, address)) if name else address


def clean_tls(value: Any) -> str:
    """Return one of none, starttls, ssl."""
    if not isinstance(value, str) or value.strip().lower() not in TLS_MODES:
        raise ValueError
    return value.strip().lower()


def clean_password(value: Any) -> str:
    """Return a password as typed (1..200 characters, spaces kept)."""
    if not isinstance(value, str) or not 0 < len(value) <= 200 or "\x00" in value:
        raise ValueError
    return value


# key -> (validator, what the form says when it refuses a value)
VALIDATORS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "account_holder": (lambda v: _text(v, 70),
                       _l("The account holder must be 1 to 70 characters on one line.")),
    "iban": (clean_iban, _l("This is not a valid IBAN (check the digits).")),
    "bic": (clean_bic, _l("A BIC has 8 or 11 letters and digits, like COBADEFFXXX.")),
    "smtp_host": (clean_host, _l("The mail server must be a host name or IP address.")),
    "smtp_port": (clean_port, _l("The port must be a whole number from 1 to 65535.")),
    "smtp_user": (lambda v: _text(v, 200), _l("The user name must be 1 to 200 characters.")),
    "smtp_password": (clean_password, _l("The password must be 1 to 200 characters.")),
    "smtp_from": (clean_from, _l("The sender must be an e-mail address, "
                                 "like Sponsorenlauf <lauf@schule.de>.")),
    "smtp_tls": (clean_tls, _l("Encryption must be none, starttls or ssl.")),
}
BANK_MAIL_SETTINGS = tuple(VALIDATORS)
BANK = ("account_holder", "iban", "bic")
MAIL = ("smtp_host", "smtp_port", "smtp_tls", "smtp_user", "smtp_password", "smtp_from")


def validate_bank_mail(key: str, value: Any) -> Any:
    """Return the cleaned value of a bank or mail setting or raise InputError (422)."""
    return validated(VALIDATORS, key, value)


def bank_mail_settings(conn: psycopg.Connection) -> dict:
    """Return the stored bank and mail settings as {key: value}."""
    return {row["key"]: row["value"] for row in conn.execute(
        "SELECT key, value FROM central_setting WHERE key = ANY(%s)", [list(VALIDATORS)])}


def logged_value(key: str, value: Any) -> Any:
    """Return what the decision log may say about a value (never a secret)."""
    return "(set)" if key in SECRETS and value is not None else value


def save_bank_mail(conn: psycopg.Connection, values: dict, user_id: str | None = None,
                   remove: tuple[str, ...] = ()) -> list[str]:
    """Validate values, store the changed ones and drop those in remove; return changed keys."""
    cleaned = {key: validate_bank_mail(key, value) for key, value in values.items()}
    with write_transaction(conn):
        stored = bank_mail_settings(conn)
        changed = {key: value for key, value in cleaned.items() if stored.get(key) != value}
        gone = [key for key in remove if key in stored and key not in cleaned]
        for key, value in changed.items():
            conn.execute("INSERT INTO central_setting (key, value, updated_ms) VALUES (%s, %s, %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                         "updated_ms = excluded.updated_ms", [key, Jsonb(value), now_ms()])
        for key in gone:
            conn.execute("DELETE FROM central_setting WHERE key = %s", [key])
        keys = sorted([*changed, *gone])
        if keys and user_id is not None:
            log_decision(conn, user_id, "settings", keys, {
                key: {"from": logged_value(key, stored.get(key)),
                      "to": logged_value(key, changed.get(key))} for key in keys})
    return keys


def shown_settings(conn: psycopg.Connection) -> dict:
    """Return the bank and mail settings fit for a page: secrets only as "stored"."""
    return {key: (True if key in SECRETS else value)
            for key, value in bank_mail_settings(conn).items()}


def parse_bank_mail_form(form: dict) -> tuple[dict, tuple[str, ...], dict]:
    """Read the bank and mail form: (values to save, keys to remove, errors by field)."""
    values, remove, errors = {}, [], {}
    for key in BANK_MAIL_SETTINGS:
        text = str(form.get(key, ""))
        if key in SECRETS:
            if form.get(f"{key}_remove"):
                remove.append(key)
            if not text:  # an empty password field keeps the stored one
                continue
        elif not text.strip():
            remove.append(key)
            continue
        try:
            values[key] = validate_bank_mail(key, text)
        except InputError as exc:
            errors[key] = exc.message
    return values, tuple(remove), errors

"""The money side's central-only settings: the currency and whether certificates show "raised".

Stored like the bank and mail settings (sync/bank_settings.py) in central_setting, which
no pull reads, so laptops never get them. set-setting and the settings page take them;
unset keys read as their defaults.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from babel.numbers import list_currencies
from flask import g, has_request_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from psycopg.types.json import Jsonb

from lapsync.errors import InputError

from .db import now_ms
from .decisions import log_decision

DEFAULT_CURRENCY = "EUR"
TRUE_WORDS = {"1", "true", "on", "yes", "ja"}
FALSE_WORDS = {"0", "false", "off", "no", "nein"}
DEFAULTS: dict[str, Any] = {"currency": DEFAULT_CURRENCY, "certificate_raised": False}


def clean_currency(value: Any) -> str:
    """Return an ISO 4217 currency code in capitals, or raise ValueError."""
    code = value.strip().upper() if isinstance(value, str) else ""
    if len(code) != 3 or code not in list_currencies():
        raise ValueError
    return code


def clean_flag(value: Any) -> bool:
    """Return a yes/no value as bool (true/false, on/off, yes/no, ja/nein, 1/0), or raise."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError


# key -> (validator, what the form says when it refuses a value)
MONEY_VALIDATORS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "currency": (clean_currency, _l("The currency must be an ISO 4217 code such as EUR or CHF.")),
    "certificate_raised": (clean_flag, _l("Say yes or no (true or false).")),
}
MONEY_SETTINGS = tuple(MONEY_VALIDATORS)


def validated(validators: dict[str, tuple[Callable, Any]], key: str, value: Any) -> Any:
    """Return VALUE cleaned by KEY's check in VALIDATORS or raise InputError (422)."""
    if key not in validators:
        raise InputError("unknown_setting", _("There is no setting %(key)s.", key=key), 422)
    check, message = validators[key]
    try:
        return check(value)
    except ValueError:
        raise InputError("invalid_setting", str(message), 422, field=key) from None


def validate_money_setting(key: str, value: Any) -> Any:
    """Return the cleaned value of a money setting or raise InputError (422)."""
    return validated(MONEY_VALIDATORS, key, value)


def save_money_settings(conn: psycopg.Connection, values: dict,
                        user_id: str | None = None) -> list[str]:
    """Validate values, store the changed ones (logged with a user); return the changed keys."""
    cleaned = {key: validate_money_setting(key, value) for key, value in values.items()}
    with conn.transaction():
        stored = money_settings(conn, cached=False)
        changed = {key: value for key, value in cleaned.items() if stored[key] != value}
        for key, value in changed.items():
            conn.execute("INSERT INTO central_setting (key, value, updated_ms) VALUES (%s, %s, %s) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                         "updated_ms = excluded.updated_ms", [key, Jsonb(value), now_ms()])
        if changed and user_id is not None:
            log_decision(conn, user_id, "settings", sorted(changed),
                         {key: {"from": stored[key], "to": value} for key, value in changed.items()})
    if has_request_context():
        g.pop("money_settings", None)
    return sorted(changed)


def money_settings(conn: psycopg.Connection, cached: bool = True) -> dict:
    """Return currency and certificate_raised: stored values over the defaults (once a request)."""
    if cached and has_request_context() and "money_settings" in g:
        return g.money_settings
    stored = {row["key"]: row["value"] for row in conn.execute(
        "SELECT key, value FROM central_setting WHERE key = ANY(%s)", [list(DEFAULTS)])}
    settings = {**DEFAULTS, **stored}
    if has_request_context():
        g.money_settings = settings
    return settings

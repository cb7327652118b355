"""The money side of a sponsored run, at central only: sponsors' pledges, amounts from the
reviewed laps, payments and bank statements, the freeze, letters with a GiroCode, e-mail."""
from __future__ import annotations

from flask import Flask

from . import (
    class_lists,
    freeze_views,
    letter_views,
    mail_views,
    money_exports,
    payments,
    sponsor_views,
    statement_views,
)

ROOMS = (mail_views, statement_views, freeze_views, letter_views, class_lists, sponsor_views,
         payments, money_exports)
BLUEPRINTS = frozenset(room.bp.name for room in ROOMS)   # the menu's "Sponsors" on each


def init_app(app: Flask) -> None:
    """Register the sponsors' pages, exports and commands."""
    for room in ROOMS:
        room.init_app(app)

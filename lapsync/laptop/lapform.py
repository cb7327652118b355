"""What a lap post's form says, checked: the start number and how long ago it was typed.

Each refusal says that nothing was recorded (the lap page shows it as the app words it).
"""
from __future__ import annotations

from flask_babel import gettext as _

from lapsync.errors import InputError
from lapsync.protocol import MAX_START_NUMBER
from lapsync.text import check_start_number

SCANNED_DIGITS = 12  # digits the lap form reads: a zero-padded number up to this length counts
# How long a number may have waited on the lap page (the app not answering) and still
# count at the time it was typed.
MAX_TYPED_AGO_MS = 24 * 3600 * 1000


def parse_typed_ago(raw: str | None) -> int:
    """Return how many ms ago the page says the number was typed (0 if it does not say)."""
    text = (raw or "").strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_TYPED_AGO_MS:
        raise InputError("invalid_typed_ago", _("The time the number was typed is unreadable: "
                                                "nothing was recorded. Type the number again."),
                         400)
    return int(text)


def parse_start_number(raw: str | None) -> int:
    """Turn the typed start number into an int or raise InputError."""
    text = (raw or "").strip()
    if not text:
        raise InputError("missing_start_number", _("Type a start number."), 400)
    if not text.isdigit() or not text.isascii():
        raise InputError("invalid_start_number", _(
            "%(text)s is not a start number: digits only. Nothing was recorded.",
            text=repr(text[:20])), 400)
    try:
        return check_start_number(text, SCANNED_DIGITS)
    except ValueError:
        raise InputError("invalid_start_number",
                         _("Start numbers run from 1 to %(max)s: nothing was recorded.",
                           max=MAX_START_NUMBER),
                         400) from None

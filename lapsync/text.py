"""Text and number rules both apps share: what counts as a number, how a duration reads."""
from __future__ import annotations

from flask_babel import gettext, ngettext

from lapsync.protocol import MAX_START_NUMBER


def whole_number(value, max_digits: int = 9) -> int:
    """Return an int given as int or as ASCII digits; raise ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip()
    # isdigit() alone lets through '١٢' and '²'; int() alone lets through '+1' and '1_0'.
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        raise ValueError(text)
    return int(text)


def check_start_number(value, max_digits: int = 9) -> int:
    """Return a start number (1 to MAX_START_NUMBER) as whole_number reads it; else ValueError."""
    number = whole_number(value, max_digits)
    if not 1 <= number <= MAX_START_NUMBER:
        raise ValueError(value)
    return number


def age(ms: int) -> str:
    """Format a duration as '12 s', '14 min', '2 h 5 min' or '3 d'."""
    seconds = max(0, ms // 1000)
    if seconds < 60:
        return gettext("%(seconds)s s", seconds=seconds)
    if seconds < 3600:
        return gettext("%(minutes)s min", minutes=seconds // 60)
    if seconds < 86_400:
        return gettext("%(hours)s h %(minutes)s min", hours=seconds // 3600,
                       minutes=seconds // 60 % 60)
    return ngettext("%(num)s d", "%(num)s d", seconds // 86_400)

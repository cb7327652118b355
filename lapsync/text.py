"""Text and number rules both apps share: what counts as a number, how a duration reads,
how names compare in a search and how classes sort."""
from __future__ import annotations

import functools
import re
import unicodedata

from datetime import datetime

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import NumberPattern, parse_pattern
from flask_babel import get_locale, gettext, ngettext

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


def when(ms: int | None, now: int) -> str:
    """Format an epoch-ms moment for a terminal: local time plus its age, or 'never'."""
    if not ms:
        return "never"
    return f"{datetime.fromtimestamp(ms / 1000):%Y-%m-%d %H:%M:%S} ({age(now - ms)} ago)"


# Date and time patterns by language: German writes 27.06.2025 14:05:33; the English pages
# keep the ISO form they always had (2025-06-27 14:05:33).
DATE_TIME = {"de": "dd.MM.yyyy HH:mm:ss"}
DATE = {"de": "dd.MM.yyyy"}


def decimal_text(value: float | None, places: int = 2, fixed: bool = False) -> str:
    """Write a number the reader's way: '1,20' in German, '1.20' in English ('–' for none).

    places: decimals at most (fixed: always that many); thousands are grouped (1.234,5).
    """
    if value is None:
        return "–"
    fraction = ("0" if fixed else "#") * places
    return format_number(value, "#,##0" + (f".{fraction}" if places else ""))


def number_text(value: int | None) -> str:
    """Write a whole number the reader's way: '12.345' in German, '12,345' in English."""
    return "–" if value is None else format_number(value, "#,##0")


def signed_text(value: float, places: int = 1) -> str:
    """Write a number with its sign and fixed decimals, ungrouped: '+1,5' in German, '-0.3'."""
    fraction = "0" * places
    return format_number(value, f"+0.{fraction};-0.{fraction}")


def format_number(value: float, pattern: str) -> str:
    """Format a number with a CLDR pattern in the reader's locale, as babel's format_decimal."""
    return _formatted(value, pattern, _locale())


# Babel takes ~20 us a number even with the pattern parsed; the same laps and distances
# come back on every standings page (300 numbers), so each text is made once.
@functools.lru_cache(maxsize=8192)
def _formatted(value: float, pattern: str, locale: str) -> str:
    """Return a number's text (its value decides it: 1.5 and Decimal('1.50') alike)."""
    number_pattern, babel_locale = _number_format(pattern, locale)
    return number_pattern.apply(value, babel_locale)


@functools.lru_cache(maxsize=256)
def _number_format(pattern: str, locale: str) -> tuple[NumberPattern, Locale]:
    """Parse a pattern and a locale once: format_decimal parses both on every call."""
    return parse_pattern(pattern), Locale.parse(locale)


def _locale() -> str:
    """Return the reader's locale (English outside a request: CLI, sync job, tests)."""
    return str(get_locale() or "en")


def language() -> str:
    """Return the reader's language ('en' outside a request)."""
    return _locale().split("_")[0]


def date_time_text(ms: int | None) -> str:
    """Write epoch milliseconds as local date and time: '27.06.2025 14:05:33' in German."""
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000)
    return format_datetime(moment, DATE_TIME.get(language(), "yyyy-MM-dd HH:mm:ss"),
                           locale=_locale())


def date_text(day: str) -> str:
    """Write an ISO day (2025-06-27) the reader's way: '27.06.2025' in German."""
    pattern = DATE.get(language())
    if not pattern:
        return day
    return format_datetime(datetime.fromisoformat(day), pattern, locale=_locale())


# Letters that NFKD leaves whole, by the plain Latin letters people type for them.
SPELLED = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d",
                         "þ": "th", "ı": "i", "ħ": "h", "ŧ": "t", "ŋ": "n", "ĸ": "k"})
# German spells ä, ö, ü as ae, oe, ue when the keyboard has none: both fold to a, o, u.
UMLAUT_SPELLING = re.compile("([aou])e")
# Every number padded to one width, so that text order is number order (5a before 10a);
# the width is the longest class (MAX_CLASS), so no number in a class is longer.
CLASS_NUMBER_WIDTH = 20
DIGITS = re.compile("[0-9]+")


@functools.lru_cache(maxsize=16_384)
def plain(text: str) -> str:
    """Return text case-folded without accents: 'Müller' -> 'muller', 'Straße' -> 'strasse'."""
    if text.isascii():
        return text.lower()
    bare = "".join(char for char in unicodedata.normalize("NFKD", text.casefold())
                   if not unicodedata.combining(char))
    return bare.casefold().translate(SPELLED)  # NFKD can give capitals: 'ϒ' -> 'Υ'



@functools.lru_cache(maxsize=16_384)
def fold(text: str) -> str:
    """Return text as a search compares it: plain, and ae, oe, ue read as a, o, u."""
    # 'Müller', 'Mueller', 'MULLER' -> 'muller'; 'Ömer', 'Oemer' -> 'omer'.
    return UMLAUT_SPELLING.sub(r"\1", plain(text))


def name_matches(name: str, query: str) -> bool:
    """Tell whether a search for query finds name (folded, or plain: 'el' finds 'Joel')."""
    return fold(query) in fold(name) or plain(query) in plain(name)


@functools.lru_cache(maxsize=4096)
def class_key(name: str) -> str:
    """Return the sort key of a class: numbers by value, letters plain ('5a' < '5B' < '10a')."""
    # As PostgreSQL's lpad (sync/search.py): a longer run is cut on the right.
    width = CLASS_NUMBER_WIDTH
    return DIGITS.sub(lambda run: run.group().rjust(width, "0")[:width], plain(name))

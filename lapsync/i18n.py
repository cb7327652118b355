"""English and German for both apps, chosen from the browser's Accept-Language."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from babel.support import Translations
from flask import Flask, has_request_context, request
from flask_babel import Babel, get_locale, gettext

from . import text

LANGUAGES = ("en", "de")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
MIN_LITERAL = 8  # characters of a message besides its placeholders: "%(name)s" alone is no pattern


def N_(message: str) -> str:
    """Mark an English message for the catalogue without translating it: it is stored or sent
    in English, and shown in the reader's language by recorded_text."""
    return message


def select_locale() -> str:
    """Pick the browser's preferred language among ours; English otherwise.

    Outside a request (CLI commands, the sync job, domain functions in tests)
    there is no browser to ask: English, never an error.
    """
    if not has_request_context():
        return "en"
    return request.accept_languages.best_match(LANGUAGES) or "en"


def message_pattern(msgid: str) -> re.Pattern:
    """Return a pattern that reads a message formatted from msgid back into its values."""
    regex, seen, position = "", set(), 0
    for found in PLACEHOLDER.finditer(msgid):
        regex += re.escape(msgid[position:found.start()])
        name = found.group(1)
        if name is None:
            regex += "%"
        else:
            regex += f"(?P={name})" if name in seen else f"(?P<{name}>.+?)"
            seen.add(name)
        position = found.end()
    return re.compile(regex + re.escape(msgid[position:]), re.S)


@functools.cache
def message_patterns() -> tuple[frozenset[str], list[tuple[re.Pattern, str]]]:
    """Return the catalogue's messages: those without placeholders, and patterns of the rest
    (the most specific first)."""
    catalog = Translations.load(str(TRANSLATIONS), ["de"])._catalog
    plain, patterns = set(), []
    for msgid in catalog:
        if not isinstance(msgid, str) or not msgid or re.search(r"%\(\w+\)[^s]", msgid):
            continue
        if "%" not in msgid:
            plain.add(msgid)
        elif len(PLACEHOLDER.sub("", msgid).strip()) >= MIN_LITERAL:
            patterns.append((message_pattern(msgid), msgid))
    patterns.sort(key=lambda pair: -len(PLACEHOLDER.sub("", pair[1])))
    return frozenset(plain), patterns


def recorded_text(message: str | None) -> str:
    """Return a message recorded in English (a refusal stored at a push) in the reader's language.

    The message is matched against the catalogue's English messages, its values read
    back and put into the German one; a message the catalogue does not know stays as it is.
    """
    if not message or text.language() == "en":
        return message or ""
    plain, patterns = message_patterns()
    if message in plain:
        return gettext(message)
    for pattern, msgid in patterns:
        found = pattern.fullmatch(message)
        if found:
            return gettext(msgid, **found.groupdict())
    return message


def entity_text(entity: str) -> str:
    """Name a kind of synced record (lap, lap_void, runner, user, ...) for people."""
    names = {"lap": gettext("Lap"), "lap_void": gettext("Lap void"), "runner": gettext("Runner"),
             "user": gettext("User"), "setting": gettext("Setting"), "total": gettext("Total"),
             "clock_jump": gettext("Clock jump")}
    return names.get(entity, entity)


def init_app(app: Flask) -> None:
    """Attach Flask-Babel (one catalog, lapsync/translations, serves both apps) and the
    number and date filters that write them the reader's way (1,20 in German)."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    app.add_template_filter(text.decimal_text, "decimal")
    app.add_template_filter(text.number_text, "number")
    app.add_template_filter(text.signed_text, "signed")
    app.add_template_filter(text.date_time_text, "date_time")
    app.add_template_filter(text.date_text, "iso_day")
    app.add_template_filter(recorded_text, "recorded")
    app.add_template_filter(entity_text, "entity")

"""Both apps in German: every page translated, numbers written the German way, and the
search that finds "Müller" by "mueller" at 390 px in Chromium.

The page walk asks every page of test_small_screens.py's lists (which its own test keeps
complete: every GET route of both apps), the error pages and an import report, with the
Flask test client in German, on the same filled apps. A message that gettext looks up
and the German catalogue lacks is recorded (Domain.get_translations is wrapped); text
that a page shows the same in English and German, and is no name or data of the event,
was never passed through gettext. Either fails the test, naming page and text.
"""
from __future__ import annotations

import html
import io
import re

import flask_babel
import pytest
from playwright.sync_api import expect

from lapsync.laptop.db import connect
from lapsync.laptop.runners import add_runner
from sync import roster
from sync.db import connection
from tests.conftest import PASSWORD, csrf_token
from tests.system import test_small_screens as small_screens
from tests.system.test_small_screens import CENTRAL_PAGES, LAPTOP_PAGES, ROSTER, open_page
from tests.web import fits_width

# The small-screen tests' filled apps (laptop and central on loopback, synced) and their
# logged-in Chromium pages, as fixtures of this module too.
sites = small_screens.sites
admin_page = small_screens.admin_page

DE = {"Accept-Language": "de-DE,de;q=0.9"}
EN = {"Accept-Language": "en-US,en;q=0.9"}
# An English decimal in German text: 1.20 or 0.8 (not 27.06.2025, not 10.000).
ENGLISH_DECIMAL = re.compile(r"(?<![\d.])\d+\.\d{1,2}(?![\d.])")
# Words German shares with English, and what the event's data brings to the pages.
SAME_IN_BOTH = {"name", "start", "status", "laptop", "laptops", "token", "code", "export",
                "excel", "csv", "xlsx", "iban", "bic", "e-mail", "smtp", "girocode", "login",
                "tablet", "admin", "online", "offline", "sponsor", "sponsoren", "sponsors",
                "stand", "live", "details", "server", "port", "host", "passwort", "gesamt",
                "ende", "text", "min", "sync", "version", "ok", "lapsync", "avery", "zweckform"}
# An id or a code (a cuid, users_only_at_central) is no text to translate.
IDENTIFIER = re.compile(r"[a-z0-9_]+")
# Decimal points a German page shows on purpose: the pledge import takes "1.25" as well.
INTENDED_POINTS = {"1.25"}
ERROR_PAGES = {
    "laptop": [("teacher on an admin page", "/users", "tom", 403),
               ("a POST-only address asked by GET", "/laps", "ada", 405)],
    "central": [("teacher on an admin page", "/runners/new", "tom", 403),
                ("a POST-only address asked by GET", "/review/void", "ada", 405)],
}


class Recording:
    """German translations that note every message they lack (then answer it in English)."""

    def __init__(self, translations, missing: set):
        self.translations, self.missing = translations, missing

    def _check(self, key, text: str) -> None:
        """Note text when the catalogue has no entry for key."""
        if text and key not in self.translations._catalog:
            self.missing.add(text)

    def ugettext(self, message: str) -> str:
        self._check(message, message)
        return self.translations.ugettext(message)

    def ungettext(self, singular: str, plural: str, n: int) -> str:
        self._check((singular, 0), singular)
        return self.translations.ungettext(singular, plural, n)

    def upgettext(self, context: str, message: str) -> str:
        self._check(f"{context}\x04{message}", message)
        return self.translations.upgettext(context, message)

    def unpgettext(self, context: str, singular: str, plural: str, n: int) -> str:
        self._check((f"{context}\x04{singular}", 0), singular)
        return self.translations.unpgettext(context, singular, plural, n)

    gettext, ngettext, pgettext, npgettext = ugettext, ungettext, upgettext, unpgettext


@pytest.fixture
def untranslated(monkeypatch) -> set:
    """Return the set that collects every message German pages look up and lack."""
    missing: set[str] = set()
    original = flask_babel.Domain.get_translations

    def recording(domain):
        """Wrap the German catalogue; leave English (which has none) as it is."""
        translations = original(domain)
        locale = flask_babel.get_locale()
        return Recording(translations, missing) if locale and locale.language == "de" else translations
    monkeypatch.setattr(flask_babel.Domain, "get_translations", recording)
    return missing


def client_of(app, user: str):
    """Return a test client of app logged in as user through the login form."""
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"name": user, "password": PASSWORD, "csrf_token": token},
                           headers=DE)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def visible_text(page: str) -> list[str]:
    """Return a page's text pieces as a reader sees them (scripts, styles and tags left out)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<!--.*?-->", " ", page, flags=re.S)
    pieces = re.split(r"<[^>]+>", page)
    return [" ".join(html.unescape(piece).split()) for piece in pieces if piece.strip()]


def data_words(sites: dict) -> set[str]:
    """Return the words of names and data that pages show in any language."""
    words = set()
    for _number, name, class_, _grade in ROSTER:
        words.update(re.findall(r"\w+", f"{name} {class_}".casefold()))
    words.update({"ada", "tom", "eve", "dana", "okonkwo", "fitzgerald", "sponsorenlauf", "der",
                  "gesamtschule", "am", "wiesengrund", "zieleinlauf", "wendemarke", "helper",
                  "bäckerei", "konditorei", "gmbh"})  # a sponsor of test_small_screens' pledges
    return words


def english_left(german: list[str], english: list[str], known: set[str]) -> list[str]:
    """Return text pieces a page shows alike in both languages that hold an English word."""
    same = set(german) & set(english)
    left = []
    for piece in sorted(same):
        if IDENTIFIER.fullmatch(piece):
            continue
        words = set(re.findall(r"[^\W\d_]{4,}", piece))
        if any(w.casefold() not in known | SAME_IN_BOTH and not w.isupper() for w in words):
            left.append(piece)
    return left


def pages_of(app: str, sites: dict) -> list[tuple[str, str, str, int | None]]:
    """Return (name, path, user, status) of every page of an app to walk in German."""
    listed = {"laptop": LAPTOP_PAGES, "central": CENTRAL_PAGES}[app]
    pages = [(name, path.format(runner=sites["runner"]), "ada", None) for name, path in listed.items()]
    return pages + ERROR_PAGES[app] + [("login", "/login", "", 200)]


@pytest.mark.parametrize("app", ["laptop", "central"])
def test_every_page_is_german_in_german(sites, untranslated, app):
    flask_app = sites["apps"][app]
    clients = {user: client_of(flask_app, user) for user in ("ada", "tom")}
    clients[""] = flask_app.test_client()
    known, problems = data_words(sites), []
    for name, path, user, status in pages_of(app, sites):
        untranslated.clear()
        german = clients[user].get(path, headers=DE, follow_redirects=True)
        body = german.get_data(as_text=True)
        assert status is None or german.status_code == status, (name, german.status_code)
        assert '<html lang="de">' in body, f"{app} {name}: not a German page"
        text = visible_text(body)
        english = visible_text(clients[user].get(path, headers=EN, follow_redirects=True).get_data(
            as_text=True))
        problems += [f"{app} {name}: no German for {m!r}" for m in sorted(untranslated)]
        problems += [f"{app} {name}: English left in {p!r}" for p in english_left(text, english, known)]
        problems += [f"{app} {name}: English number {d!r} in {p!r}" for p in text
                     for d in ENGLISH_DECIMAL.findall(p) if d not in INTENDED_POINTS]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("app", ["laptop", "central"])
def test_an_import_report_is_german_in_german(sites, untranslated, app):
    client = client_of(sites["apps"][app], "ada")
    bad = "Name,Klasse,Jahrgang,Farbe\nAnna,5a,99\n".encode()
    token = csrf_token(client, "/runners/import")
    response = client.post("/runners/import", headers=DE, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(bad), "klasse.csv"), "csrf_token": token})
    assert response.status_code == 422
    assert "Falscher Kopf" in response.get_data(as_text=True) or "Kopfzeile" in response.get_data(
        as_text=True)
    assert not untranslated, sorted(untranslated)


# ---- search at 390 px in German: "mueller" finds Müller on both apps -------------------------

def test_mueller_finds_mueller_on_both_apps_at_390_px_in_german(sites, admin_page):
    db = connect(sites["apps"]["laptop"].config["DATABASE"])
    try:
        add_runner(db, 4711, "Jörg Müller", "7b", 7)
    finally:
        db.close()
    with connection(sites["apps"]["central"]) as conn:
        roster.add_runner(conn, 4712, "Jörg Müller", "7b", 7)
    for app, path in (("laptop", "/runners/"), ("central", "/runners/")):
        page = admin_page(app, "390x844")[0]
        open_page(page, sites[app] + path)
        field = page.locator("input[name=q]")
        field.press_sequentially("mueller", delay=20)
        field.press("Enter")
        found = page.locator("main")
        expect(found).to_contain_text("Jörg Müller")
        expect(found).not_to_contain_text("Anna Berg")
        assert page.evaluate("document.documentElement.lang") == "de"
        assert fits_width(page)

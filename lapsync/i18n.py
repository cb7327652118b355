"""English and German for both apps, chosen from the browser's Accept-Language."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, has_request_context, request
from flask_babel import Babel, get_locale

LANGUAGES = ("en", "de")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def select_locale() -> str:
    """Pick the browser's preferred language among ours; English otherwise.

    Outside a request (CLI commands, the sync job, domain functions in tests)
    there is no browser to ask: English, never an error.
    """
    if not has_request_context():
        return "en"
    return request.accept_languages.best_match(LANGUAGES) or "en"


def init_app(app: Flask) -> None:
    """Attach Flask-Babel (one catalog, lapsync/translations, serves both apps)."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale

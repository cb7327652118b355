"""A bare Flask app with the core's web parts (Babel, CSRF, shared templates) and stand-in
templates, for driving the core's views and error handlers without either app."""
from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from jinja2 import ChoiceLoader, DictLoader

from lapsync import errors, i18n, web

TEMPLATES = {
    "base.html": "{% block content %}{% endblock %}"
                 "<flash>{{ get_flashed_messages()|join('|') }}</flash>",
    "error.html": '{% extends "web/error.html" %}',
    "login.html": '{% extends "web/login.html" %}',
}


def bare_app(templates: dict | None = None, config: dict | None = None, **error_rules) -> Flask:
    """Return an app with i18n, CSRF (off unless config turns it on), the shared blueprint,
    the error handlers (init_app's keywords in error_rules) and TEMPLATES plus templates."""
    app = Flask(__name__)
    app.config.update({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
                       **(config or {})})
    app.jinja_loader = ChoiceLoader([DictLoader({**TEMPLATES, **(templates or {})}),
                                     app.jinja_loader])
    i18n.init_app(app)
    CSRFProtect(app)
    web.init_app(app)
    errors.init_app(app, **error_rules)
    return app

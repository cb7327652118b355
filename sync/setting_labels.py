"""What each setting is called on the settings page and in the decision log (both languages)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

SETTING_LABELS = {
    "event_name": _l("Event name"), "event_date": _l("Date"),
    "min_lap_seconds": _l("Minimum lap time (seconds)"), "metres_per_lap": _l("Metres per lap"),
    "account_holder": _l("Account holder"), "iban": _l("IBAN"), "bic": _l("BIC"),
    "smtp_host": _l("Mail server (SMTP host)"), "smtp_port": _l("Port"),
    "smtp_tls": _l("Encryption"), "smtp_user": _l("User name"),
    "smtp_password": _l("Password"), "smtp_from": _l("Sender address"),
    "currency": _l("Currency (ISO 4217 code)"),
    "certificate_raised": _l("Certificates show the money raised"),
}

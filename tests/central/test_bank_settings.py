"""Central-only settings: the bank account and the mail server, never pulled by laptops."""
from __future__ import annotations

import json

import pytest

from lapsync.errors import InputError
from sync.bank_settings import bank_mail_settings, save_bank_mail
from tests.central.test_settings import pulled_settings

BANK = {"account_holder": "Förderverein der Schule e.V.", "iban": "DE89 3704 0044 0532 0130 00",
        "bic": "COBADEFFXXX"}
MAIL = {"smtp_host": "mail.schule.de", "smtp_port": "587", "smtp_tls": "starttls",
        "smtp_user": "lauf", "smtp_password": "geheim 123!", "smtp_from": "Sponsorenlauf <lauf@schule.de>"}
SECRET = "geheim 123!"


def post(client, **form):
    """Post the bank and mail form with the client's CSRF token."""
    return client.post("/settings/central", data={"csrf_token": client.csrf, **form})


def test_cli_sets_bank_and_mail_settings_which_laptops_never_pull(central_app, central_db,
                                                                  device_token):
    cli = central_app.test_cli_runner()
    for key, value in {**BANK, **MAIL}.items():
        if key != "smtp_password":
            result = cli.invoke(args=["set-setting", key, value])
            assert result.exit_code == 0, result.output
    result = cli.invoke(args=["set-setting", "smtp_password", "-"], input=SECRET + "\n")
    assert result.exit_code == 0 and SECRET not in result.output
    assert bank_mail_settings(central_db) == {
        "account_holder": "Förderverein der Schule e.V.", "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX", "smtp_host": "mail.schule.de", "smtp_port": 587,
        "smtp_tls": "starttls", "smtp_user": "lauf", "smtp_password": SECRET,
        "smtp_from": "Sponsorenlauf <lauf@schule.de>"}
    assert cli.invoke(args=["set-setting", "metres_per_lap", "400"]).exit_code == 0
    assert pulled_settings(central_db, device_token) == {"metres_per_lap": 400}


@pytest.mark.parametrize("key,value", [
    ("iban", "DE89 3704 0044 0532 0130 01"), ("iban", "DE89"), ("iban", ""),
    ("bic", "COBA"), ("bic", "COBADEFF1"), ("account_holder", "x" * 71),
    ("account_holder", "a\x00b"), ("smtp_port", "0"), ("smtp_port", "65536"), ("smtp_port", "x"),
    ("smtp_tls", "tls13"), ("smtp_from", "no address"), ("smtp_from", "a@b"),
    ("smtp_host", "bad host"), ("smtp_password", ""),
])
def test_bad_values_are_refused_and_nothing_is_stored(central_app, central_db, key, value):
    with pytest.raises(InputError):
        save_bank_mail(central_db, {**BANK, key: value})
    assert bank_mail_settings(central_db) == {}
    result = central_app.test_cli_runner().invoke(args=["set-setting", key, value])
    assert result.exit_code != 0 and bank_mail_settings(central_db) == {}


def test_admin_saves_on_the_settings_page_and_the_password_is_never_shown(
        central_admin, central_db, central_users):
    response = post(central_admin, **BANK, **MAIL)
    assert response.status_code == 302
    assert bank_mail_settings(central_db)["smtp_password"] == SECRET
    page = central_admin.get("/settings/").get_data(as_text=True)
    assert "Bank and mail settings saved" in page and 'value="DE89370400440532013000"' in page
    assert SECRET not in page and "geheim" not in page
    logged = central_db.execute("SELECT * FROM decision WHERE action = 'settings'").fetchone()
    assert logged["user_id"] == central_users["ada"] and "geheim" not in json.dumps(logged["details"])
    assert logged["details"]["smtp_password"] == {"from": None, "to": "(set)"}
    # An empty password field keeps the stored password; a cleared field removes the setting.
    assert post(central_admin, **BANK, **{**MAIL, "smtp_password": "", "smtp_user": ""}).status_code == 302
    stored = bank_mail_settings(central_db)
    assert stored["smtp_password"] == SECRET and "smtp_user" not in stored
    post(central_admin, **BANK, **{**MAIL, "smtp_password": "neu"}, smtp_password_remove="1")
    assert bank_mail_settings(central_db)["smtp_password"] == "neu"  # a typed one wins
    post(central_admin, **BANK, **{**MAIL, "smtp_password": ""}, smtp_password_remove="1")
    assert "smtp_password" not in bank_mail_settings(central_db)


def test_a_bad_field_saves_nothing_and_says_which(central_admin, central_db):
    response = post(central_admin, **{**BANK, "iban": "DE00 1234"}, **MAIL)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "This is not a valid IBAN" in page and 'value="DE00 1234"' in page
    assert SECRET not in page
    assert bank_mail_settings(central_db) == {}


def test_a_viewer_sees_the_bank_account_but_neither_the_password_nor_a_form(
        central_viewer, central_db):
    save_bank_mail(central_db, {**BANK, **MAIL})
    page = central_viewer.get("/settings/").get_data(as_text=True)
    assert "DE89370400440532013000" in page and SECRET not in page
    assert 'id="central-form"' not in page and "stored" in page
    assert post(central_viewer, iban="DE89370400440532013000").status_code == 403

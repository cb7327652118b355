"""The money side's navigation: every sponsors page links letters, the freeze, the bank
statement and the e-mail queue for each role that may open them; the menu's "Sponsors" is
marked on all of them; a deleted statement payment's message links the statement page."""
from __future__ import annotations

import re

import pytest

from sync.sponsors.pledges import format_reference
from sync.sponsors.statement import import_statement
from tests.central.test_letters import school  # noqa: F401  (class 5a with pledges)

EVERYONE = {"/sponsors/": "pledges-link", "/sponsors/outstanding": "outstanding-link",
            "/sponsors/changes": "freeze-link", "/sponsors/letters": "letters-link",
            "/sponsors/statement/": "statement-link", "/sponsors/mail/": "mail-link",
            "/sponsors/log": "money-log-link"}
ADMIN_ONLY = {"/sponsors/entry", "/sponsors/new", "/sponsors/import"}


def money_pages(ids: dict) -> list[str]:
    """Return every page of the money side that is not a form."""
    return [*EVERYONE, "/sponsors/letters?class=5a", "/sponsors/letters?class=5a&kind=reminder",
            "/sponsors/classes/5a/list", f"/sponsors/{ids['oma']}"]


def sponsor_links(page: str) -> dict[str, str]:
    """Return the sponsor links of a page as {href: id}, and check there is one such nav."""
    (nav,) = re.findall(r'<nav class="actions no-print" id="sponsor-links"[^>]*>(.*?)</nav>', page,
                        re.S)
    return {href.replace("&amp;", "&"): link_id
            for href, link_id in re.findall(r'<a href="([^"]+)" id="([^"]+)"', nav)}


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_every_money_page_links_letters_freeze_statement_and_the_mail_queue(
        request, central_db, school, role):  # noqa: F811
    client = request.getfixturevalue(f"central_{role}")
    for path in money_pages(school["ids"]):
        response = client.get(path)
        assert response.status_code == 200, path
        links = sponsor_links(response.get_data(as_text=True))
        assert {href: links.get(href) for href in EVERYONE} == EVERYONE, path
        assert (ADMIN_ONLY <= set(links)) == (role == "admin"), path
        assert not ADMIN_ONLY & set(links) or role == "admin", path
    for path in EVERYONE:      # and each page a link leads to opens for this role
        assert client.get(path).status_code == 200, path


def test_the_link_of_the_page_shown_is_marked_and_the_menu_marks_sponsors(
        central_admin, central_db, school):  # noqa: F811
    for path, link_id in EVERYONE.items():
        page = central_admin.get(path).get_data(as_text=True)
        assert re.findall(r'id="([\w-]+)" aria-current="page"', page) == [link_id], path
        menu = re.search(r'<a href="/sponsors/" aria-current="page">([^<]+)</a>', page)
        assert menu and menu.group(1) == "Sponsors", path


@pytest.mark.parametrize("parts", [1, 2])
def test_a_deleted_statement_payment_says_where_its_transfer_waits_with_a_link(
        central_admin, central_db, school, parts):  # noqa: F811
    ids = school["ids"]
    refs = [central_db.execute("SELECT reference FROM pledge WHERE id = %s",
                               [ids[key]]).fetchone()["reference"] for key in ("oma", "firma")]
    # Oma owes 4,00 €, the Firma 20,00 €: one of them, or both in one transfer.
    purpose, amount = (format_reference(refs[0]), "4,00") if parts == 1 else \
        (" ".join(format_reference(ref) for ref in refs), "24,00")
    data = f"Buchungstag;Verwendungszweck;Betrag;Auftraggeber\n02.07.2025;{purpose};{amount};Berg\n"
    import_statement(central_db, school["admin"], data.encode(), "konto.csv")
    payment = central_db.execute("SELECT id FROM payment WHERE pledge_id = %s "
                                 "AND statement_line_id IS NOT NULL", [ids["oma"]]).fetchone()
    page = central_admin.post(f"/sponsors/payments/{payment['id']}/delete",
                              data={"csrf_token": central_admin.csrf, "confirm": "1"},
                              follow_redirects=True).get_data(as_text=True)
    (flash,) = re.findall(r'<p class="flash good" role="status">(.*?)</p>', page, re.S)
    assert "waits on the bank statement page again." in flash
    assert flash.endswith(' <a href="/sponsors/statement/">Open the bank statement page</a>')
    statement = central_admin.get("/sponsors/statement/").get_data(as_text=True)
    assert purpose in statement            # the transfer is back on the list

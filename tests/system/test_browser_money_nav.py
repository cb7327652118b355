"""The organiser finds the money pages by their links, on a phone in German (390 px, Chromium).

Central runs on a loopback port with class 5a of tests.central.test_letters; the organiser
logs in through the form and only taps links: the sponsors' links lead to letters, the
freeze, the bank statement and the e-mail queue, a deleted bank payment's message leads
back to the statement page where its transfer waits, and the reminders name a transfer
that waits there instead of asking for money that may be paid. No page scrolls sideways.
"""
from __future__ import annotations

import re

from playwright.sync_api import expect

from sync.sponsors.pledges import format_reference
from sync.sponsors.statement import import_statement
from tests.central.test_letters import school  # noqa: F401  (the class 5a fixture)
from tests.central.test_letters_waiting import waiting_transfer
from tests.pg import CENTRAL_PASSWORD
from tests.web import fits_width

KEPT_PAGE = {"timeout_ms": 8_000, "locale": "de-DE", "viewport": {"width": 390, "height": 844}}


def log_in(page, url: str) -> None:
    """Log in as ada through the form, as a person types."""
    page.goto(f"{url}/login")
    page.get_by_label("Name").press_sequentially("ada", delay=5)
    page.get_by_label("Passwort", exact=True).press_sequentially(CENTRAL_PASSWORD, delay=5)
    page.get_by_role("button", name="Anmelden").click()
    expect(page).to_have_url(re.compile(r"/standings/"))


def tap(page, link_id: str, path: str) -> None:
    """Tap one of the sponsors' links and check where it leads: on screen, no sideways scroll."""
    link = page.locator(f"#sponsor-links #{link_id}")
    link.scroll_into_view_if_needed()
    link.click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    expect(page.locator(f"#sponsor-links #{link_id}")).to_have_attribute("aria-current", "page")
    assert fits_width(page), path


def test_the_organiser_reaches_every_money_page_by_its_links(page, live_central, central_db,
                                                             school):  # noqa: F811
    log_in(page, live_central)
    page.get_by_role("navigation").get_by_role("link", name="Sponsoren").first.click()
    expect(page).to_have_url(re.compile(r"/sponsors/$"))
    links = page.locator("#sponsor-links")
    for name in ("Briefe", "Einfrieren und Änderungen", "Kontoauszug"):
        expect(links.get_by_role("link", name=name, exact=True)).to_be_visible()
    tap(page, "letters-link", "/sponsors/letters")
    expect(page.locator("h1")).to_have_text("Briefe an Sponsoren")
    tap(page, "freeze-link", "/sponsors/changes")
    expect(page.locator("#freeze-state")).to_be_visible()
    tap(page, "statement-link", "/sponsors/statement/")
    tap(page, "mail-link", "/sponsors/mail/")
    expect(page.locator("#dry-run")).to_be_visible()
    # The menu's "Sponsoren" stays marked on all of them.
    expect(page.locator('.topbar nav a[aria-current="page"]')).to_have_text("Sponsoren")


def test_a_deleted_bank_payment_links_to_the_statement_page_where_it_waits(
        page, live_central, central_db, school):  # noqa: F811
    ids = school["ids"]
    references = [format_reference(central_db.execute(
        "SELECT reference FROM pledge WHERE id = %s", [ids[key]]).fetchone()["reference"])
        for key in ("oma", "firma")]
    purpose = f"Spende {references[0]} {references[1]}"     # 4,00 € open + 20,00 € open
    import_statement(central_db, school["admin"], (
        "Buchungstag;Verwendungszweck;Betrag;Auftraggeber\n"
        f"02.07.2025;{purpose};24,00;Hans Berg\n").encode(), "konto.csv")
    log_in(page, live_central)
    page.goto(f"{live_central}/sponsors/{ids['oma']}")
    row = page.locator("#payments tr", has_text="4,00")
    row.get_by_role("checkbox").check()          # deleting money asks first
    row.get_by_role("button", name="Löschen").click()
    flash = page.locator(".flash")
    expect(flash).to_contain_text("die Überweisung wartet wieder auf der Seite Kontoauszug.")
    flash.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/sponsors/statement/$"))
    expect(page.get_by_role("cell", name=purpose)).to_be_visible()
    assert fits_width(page)


def test_reminders_name_the_transfer_that_waits_and_lead_to_it(page, live_central, central_db,
                                                               school):  # noqa: F811
    waiting_transfer(central_db, school)
    log_in(page, live_central)
    page.goto(f"{live_central}/sponsors/")
    tap(page, "letters-link", "/sponsors/letters")
    page.get_by_role("link", name="Erinnerungen (Klasse 5a)", exact=True).click()
    expect(page).to_have_url(re.compile(r"kind=reminder"))
    expect(page.locator("article.letter")).to_have_count(1)           # Opa Berg's only
    held = page.locator("#waiting-credits")
    expect(held).to_be_visible()
    expect(held.locator("li")).to_have_count(2)
    for sponsor in ("Oma Berg", "Firma Groß"):
        expect(held.locator("li", has_text=sponsor)).to_contain_text("5,00\xa0€")
        expect(held.locator("li", has_text=sponsor)).to_contain_text("Hans Müller")
    assert fits_width(page)
    held.locator("#waiting-statement-link").click()
    expect(page).to_have_url(re.compile(r"/sponsors/statement/$"))
    expect(page.get_by_role("cell", name="Hans Müller")).to_be_visible()
    assert fits_width(page)

"""Lifting a freeze in Chromium, in German at 390 px: the organiser sees what changes first.

A regression test: the organiser keeps the frozen figures of two sponsors whose
letters went out, lifts the freeze and freezes again. The confirmation lists the letter
that changes (old and new) and the kept figures that stay; after the lift and the new
freeze the kept sponsors still owe what their letters said. Central runs on a real
loopback port on the test's PostgreSQL; laps and voids come as in the integration test.
"""
from __future__ import annotations

import re

from playwright.sync_api import expect

from sync.review import lap_state, void_lap
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge
from tests.central.test_freeze import event  # noqa: F401  (Anna, Ben and three pledges)
from tests.pg import CENTRAL_PASSWORD
from tests.web import scroll_width

EURO = "\xa0€"     # German amounts: 0,80 € with a no-break space
ACCEPT = "Neuen Betrag übernehmen"


def log_in_german(browser, live_central: str):
    """Log in as ada in a German browser at 390 px; return the page and its context."""
    context = browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{live_central}/login")
    page.get_by_label("Name").press_sequentially("ada", delay=5)
    page.get_by_label("Passwort", exact=True).press_sequentially(CENTRAL_PASSWORD, delay=5)
    page.get_by_role("button", name="Anmelden").click()
    expect(page).to_have_url(re.compile(r"/standings/"))
    return page, context


def row(page, table: str, sponsor: str):
    """Return one sponsor's row of one of the changes page's tables."""
    return page.locator(f"#{table} tr").filter(has=page.get_by_role("cell", name=sponsor,
                                                                     exact=True))


def test_the_organiser_lifts_the_freeze_and_kept_figures_stay(
        browser, live_central, central_db, event):  # noqa: F811
    admin = event["admin"]
    add_pledge(central_db, admin, event["ben"], {"sponsor_name": "Firma Maßmann",
                                                 "kind": "per_km", "rate_cents": "0,50"})
    page, context = log_in_german(browser, live_central)
    try:
        page.goto(f"{live_central}/sponsors/changes")
        page.get_by_role("button", name="Ergebnisse jetzt einfrieren").click()
        expect(page.locator("#freeze-state")).to_have_attribute("data-frozen", "yes")
        # After the letters: one more lap for Ben, one of Anna's voided, Oma pays 5,00 €.
        event["box"].lap(event["ben"])
        event["send"]()
        lap = lap_state(central_db, event["laps"][event["anna"]][0])
        void_lap(central_db, admin, lap["id"], lap["version"])
        add_payment(central_db, admin, event["oma"], {"amount_cents": "5", "paid_on": "2025-07-01",
                                                      "method": "transfer"})
        page.reload()
        for sponsor in ("Oma", "Firma Maßmann"):
            row(page, "changes", sponsor).get_by_role(
                "button", name="Eingefrorenen Betrag behalten").click()
            expect(row(page, "kept", sponsor)).to_have_count(1)
        firma = row(page, "changes", "Firma")               # 20 € as before, for 9 laps: its letter
        expect(firma.locator(".new")).to_contain_text("20,00" + EURO)   # states laps too
        firma.get_by_role("button", name=ACCEPT).click()
        expect(page.locator("#changes tbody tr[data-pledge]")).to_have_count(1)   # Tante
        page.get_by_role("button", name="Einfrieren aufheben").click()
        confirm = page.locator("#confirm-unfreeze")
        expect(confirm).to_be_visible()
        tante = row(page, "unfreeze-changing", "Tante")
        expect(tante.locator(".old")).to_contain_text("4,00" + EURO)
        expect(tante.locator(".new")).to_contain_text("5,00" + EURO)
        expect(page.locator("#unfreeze-changing tbody tr")).to_have_count(1)
        expect(row(page, "unfreeze-kept", "Oma").locator(".old")).to_contain_text("5,00" + EURO)
        expect(row(page, "unfreeze-kept", "Firma Maßmann").locator(".old")).to_contain_text(
            "0,80" + EURO)
        assert scroll_width(page) <= 390
        confirm.get_by_role("button", name="Ja, Einfrieren aufheben").click()
        expect(page.locator("#freeze-state")).to_have_attribute("data-frozen", "no")
        expect(page.locator("#kept tbody tr")).to_have_count(2)
        page.get_by_role("button", name="Ergebnisse jetzt einfrieren").click()
        expect(page.locator("#freeze-state")).to_have_attribute("data-frozen", "yes")
        expect(page.locator("#changes .empty-note")).to_be_visible()
        # The reminder asks Maßmann for what the letter said; Oma, who paid it, gets none.
        page.goto(f"{live_central}/sponsors/letters?kind=reminder&class=5a")
        reminders = page.locator("article.letter")
        expect(reminders).to_have_count(3)                      # Firma, Tante, Maßmann
        expect(reminders.filter(has_text="Firma Maßmann")).to_contain_text("0,80" + EURO)
        expect(reminders.filter(has_text="Guten Tag Oma")).to_have_count(0)
    finally:
        context.close()

"""Certificates printed from real Chromium: one A4 page each, whatever the names' lengths."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from lapsync.devkit.browser import type_login
from sync.money_settings import save_money_settings
from sync.settings import set_setting
from sync.sponsors.pledges import add_pledge
from tests.central.test_results import run
from tests.pg import CENTRAL_PASSWORD

EVENT = ("Sponsorenlauf des Städtischen Gymnasiums an der Friedrich-Wilhelm-Straße zugunsten der "
         "Kinderhilfe")                                                       # 98 characters
LONGEST = ("Maximiliane-Alexandra Friederike Charlotte von Hohenzollern-Schwarzenberg-Württemberg-"
           "Lichtenstein")                                                    # 98 characters


def test_a_certificate_with_the_longest_names_prints_on_one_a4_page(
        browser, live_central, central_db, central_users, device_token):
    set_setting(central_db, "event_name", EVENT)
    set_setting(central_db, "metres_per_lap", 400)
    assert len(EVENT) == len(LONGEST) == 98
    save_money_settings(central_db, {"certificate_raised": "true"}, None)
    ids = run(central_db, device_token, [(7, LONGEST, "Vorbereitungsklasse", 12),
                                         (8, "Anna Berg", "Vorbereitungsklasse", 9)])
    add_pledge(central_db, None, ids[LONGEST], {"sponsor_name": "Oma", "kind": "per_lap",
                                                "rate_cents": "1,50"})
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        type_login(page, live_central, "ada", CENTRAL_PASSWORD)
        page.goto(f"{live_central}/admin/certificates/class/Vorbereitungsklasse")
        expect(page.locator("article.certificate")).to_have_count(2)
        expect(page.locator("article.certificate", has_text=LONGEST)).to_have_count(1)
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4")                                     # as a browser prints it
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 2        # one page per certificate
        spilled = page.locator("article.certificate").evaluate_all(
            "cs => cs.filter(c => c.scrollHeight > c.clientHeight + 1).length")
        assert spilled == 0
    finally:
        context.close()

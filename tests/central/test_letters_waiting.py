"""Reminders held back while a bank transfer naming their pledge waits on the statement page.

Class 5a of tests.central.test_letters: Oma Berg owes 4,00 €, Opa Berg 5,00 € (no e-mail),
Firma Groß 20,00 €. Hans Müller's 5,00 € names Oma's and the Firma's references: it adds up
to neither, so it waits for an admin, and it may be the money their reminders ask for.
"""
from __future__ import annotations

import re

import pytest

from sync.sponsors.letters import letter_batch
from sync.sponsors.mail import due_mail
from sync.sponsors.pledges import format_reference
from sync.sponsors.statement import assign_line, import_statement, open_lines
from tests.central.test_letters import school  # noqa: F401  (class 5a with pledges)

REMINDERS = "/sponsors/letters?class=5a&kind=reminder"


def reference(conn, pledge_id: str) -> str:
    """Return a pledge's RF reference as its letter prints it."""
    return format_reference(conn.execute("SELECT reference FROM pledge WHERE id = %s",
                                         [pledge_id]).fetchone()["reference"])


def waiting_transfer(conn, made: dict, payer: str = "Hans Müller") -> None:
    """Import Hans Müller's 5,00 € naming Oma's and the Firma's references (it waits)."""
    ids = made["ids"]
    purpose = f"Spende Lauf {reference(conn, ids['oma'])} {reference(conn, ids['firma'])}"
    import_statement(conn, made["admin"], (
        "Buchungstag;Verwendungszweck;Betrag;Auftraggeber\n"
        f"08.12.2026;{purpose};5,00;{payer}\n").encode("cp1252"), "konto.csv")
    assert len(open_lines(conn)) == 1


def shown(page: str) -> list[str]:
    """Return the pledge ids of the letters a page prints."""
    return re.findall(r'<article class="letter" data-pledge="([^"]+)"', page)


def test_reminders_named_by_a_waiting_transfer_are_held_back_and_named_with_it(
        central_admin, central_db, school):  # noqa: F811
    ids = school["ids"]
    assert sorted(shown(central_admin.get(REMINDERS).get_data(as_text=True))) == \
        sorted([ids["oma"], ids["opa"], ids["firma"]])
    waiting_transfer(central_db, school)
    page = central_admin.get(REMINDERS).get_data(as_text=True)
    assert shown(page) == [ids["opa"]] and "1 letter, one per A4 page." in page
    block = re.search(r'<div class="feedback warn" id="waiting-credits">(.*?)</div>', page, re.S)
    assert block, page
    assert "2 reminders are held back: bank transfers naming their pledges wait" in block.group(1)
    assert dict(re.findall(r'<li data-waiting="([^"]+)">(.*?)</li>', block.group(1))) == {
        ids["oma"]: "Oma Berg – Anna Berg: a transfer of €5.00 from Hans Müller naming this "
                    "pledge waits on the bank statement page.",
        ids["firma"]: "Firma Groß – Anna Berg: a transfer of €5.00 from Hans Müller naming this "
                      "pledge waits on the bank statement page."}
    assert '<a href="/sponsors/statement/" id="waiting-statement-link">' in block.group(1)
    # The other kinds of letters are not reminders: they go out as before.
    assert len(shown(central_admin.get("/sponsors/letters?class=5a").get_data(as_text=True))) == 4


def test_queuing_the_reminders_leaves_out_the_held_back_ones_and_says_so(
        central_admin, central_db, school):  # noqa: F811
    waiting_transfer(central_db, school)
    page = central_admin.post("/sponsors/letters/queue", follow_redirects=True, data={
        "csrf_token": central_admin.csrf, "class": "5a", "kind": "reminder"}).get_data(as_text=True)
    assert due_mail(central_db) == []          # Opa has no address; Oma and the Firma wait
    assert "0 e-mails queued." in page
    assert ("2 reminders were not queued: bank transfers naming their pledges wait on the bank "
            'statement page. <a href="/sponsors/statement/">Open the bank statement page</a>') in page


def test_once_the_transfer_is_assigned_the_other_reminder_goes_out_again(
        central_app, central_admin, central_db, school):  # noqa: F811
    ids = school["ids"]
    waiting_transfer(central_db, school, payer="")     # a bank export without the payer
    assert ("Oma Berg – Anna Berg: a transfer of €5.00 naming this pledge waits on the bank "
            "statement page.") in central_admin.get(REMINDERS).get_data(as_text=True)
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        batch = letter_batch(central_db, class_name="5a", kind="reminder")
    assert {w["row"]["id"]: [line["counterparty"] for line in w["lines"]]
            for w in batch.waiting} == {ids["oma"]: [""], ids["firma"]: [""]}
    assign_line(central_db, school["admin"], open_lines(central_db)[0]["id"], ids["oma"])
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        batch = letter_batch(central_db, class_name="5a", kind="reminder")
    # Oma has paid 7,00 € of 6,00 €: no reminder; the Firma's is back.
    assert batch.waiting == [] and {letter["row"]["id"] for letter in batch.letters} == {
        ids["opa"], ids["firma"]}


def statement_line_reads(conn, run) -> int:
    """Return how many statements that name statement_line run() sends over conn."""
    seen, plain = [], conn.cursor_factory

    class Counting(plain):  # type: ignore[misc, valid-type]
        """A cursor that counts the statements naming statement_line."""

        def execute(self, query, params=None, **kwargs):
            text = query if isinstance(query, str) else query.as_string(conn)
            seen.extend(["statement_line"] if "statement_line" in text else [])
            return super().execute(query, params, **kwargs)

    conn.cursor_factory = Counting
    try:
        run()
    finally:
        conn.cursor_factory = plain
    return len(seen)


@pytest.mark.parametrize("kind, reads", [("reminder", 1), (None, 0), ("thanks", 0),
                                         ("letter", 0)])
def test_a_class_reminders_read_the_waiting_transfers_in_one_query_other_kinds_in_none(
        central_app, central_db, school, kind, reads):  # noqa: F811
    waiting_transfer(central_db, school)
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        assert statement_line_reads(central_db, lambda: letter_batch(
            central_db, class_name="5a", kind=kind)) == reads

"""Bank statement import: German and English CSV exports matched to pledges by RF reference.

Idempotent (the same file twice records nothing new), tolerant of column order, BOM,
Windows-1252 and account lines above the header; a bad file changes nothing; unmatched
credits wait for an admin, who assigns them to a pledge or ignores them.
"""
from __future__ import annotations

import io
import re
from datetime import date

import pytest

from sync.sponsors.pledges import add_pledge, format_reference
from sync.roster import import_roster
from tests.pg import central_login
from sync.sponsors.statement import find_reference, ignored_lines, import_statement, open_lines
from sync.sponsors.statement_csv import StatementError, parse_amount, parse_statement

ROSTER = b"Name,Klasse,Jahrgang,Startnummer\nAnna Berg,5a,5,7\nBen Cruz,6b,6,8\n"


@pytest.fixture
def pledges(central_db):
    """Two runners with pledges: {name: pledge row}."""
    import_roster(central_db, ROSTER)
    runners = {r["name"]: r["id"] for r in central_db.execute("SELECT id, name FROM runner")}
    rows = {}
    for name, runner, kind, rate in [("Oma Berg", "Anna Berg", "fixed", "20"),
                                     ("Tante Cruz", "Ben Cruz", "per_lap", "0,50"),
                                     ("Herr Groß", "Ben Cruz", "fixed", "10")]:
        pledge_id = add_pledge(central_db, None, runners[runner],
                               {"sponsor_name": name, "kind": kind, "rate_cents": rate})
        rows[name] = central_db.execute("SELECT * FROM pledge WHERE id = %s", [pledge_id]).fetchone()
    return rows


def german(pledges, extra: str = "") -> bytes:
    """A German online-banking export: account lines, then a header in its own order."""
    oma, tante = pledges["Oma Berg"]["reference"], pledges["Tante Cruz"]["reference"]
    spaced = format_reference(tante).lower()           # rf12 3456 ... as a person types it
    return (
        "Kontonummer:;DE89370400440532013000\n"
        "Zeitraum:;01.06.2025 - 30.06.2025\n"
        "\n"
        "Betrag;Buchungstag;Valutadatum;Name Zahlungsbeteiligter;Verwendungszweck\n"
        f"20,00;28.06.2025;28.06.2025;Erika Berg;Sponsorenlauf {oma} Anna\n"
        f"1.234,50;29.06.2025;29.06.2025;Tanja Cruz;Spende {spaced}\n"
        "-45,90;29.06.2025;29.06.2025;Stadtwerke;Abschlag Strom\n"
        "10,00;30.06.2025;30.06.2025;K. Groß;Sponsorenlauf Ben Cruz 6b\n"
        "10,00;30.06.2025;30.06.2025;K. Groß;Sponsorenlauf Ben Cruz 6b\n"
        + extra).encode("cp1252")


def payments(conn) -> list[tuple]:
    """Return (sponsor, amount, paid_on, method, reference) of every payment."""
    return [tuple(r.values()) for r in conn.execute(
        "SELECT p.sponsor_name, y.amount_cents, y.paid_on, y.method, y.reference "
        "FROM payment y JOIN pledge p ON p.id = y.pledge_id ORDER BY y.amount_cents")]


def test_credits_with_a_reference_become_payments_once(central_app, central_db, pledges, tmp_path):
    report = import_statement(central_db, None, german(pledges), "juni.csv")
    # Ben has run no lap yet: his per-lap pledge owes nothing, the transfer overpays it.
    assert report == {"lines": 5, "debits": 1, "known": 0, "matched": 2, "unmatched": 2,
                      "overpaid": [{"amount_cents": 123450, "counterparty": "Tanja Cruz",
                                    "sponsor": "Tante Cruz", "runner": "8 Ben Cruz (6b)",
                                    "overpaid_cents": 123450}]}
    assert payments(central_db) == [
        ("Oma Berg", 2000, date(2025, 6, 28), "transfer", pledges["Oma Berg"]["reference"]),
        ("Tante Cruz", 123450, date(2025, 6, 29), "transfer", pledges["Tante Cruz"]["reference"])]
    # The two identical credits are two lines, both waiting for an admin.
    assert [(row["amount_cents"], row["counterparty"]) for row in open_lines(central_db)] == [
        (1000, "K. Groß"), (1000, "K. Groß")]
    # The same file again, by the command line: nothing new.
    path = tmp_path / "juni.csv"
    path.write_bytes(german(pledges))
    result = central_app.test_cli_runner().invoke(args=["import-statement", str(path)])
    assert result.exit_code == 0, result.output
    assert "payments recorded by their reference: 0;" in result.output
    assert "imported before: 4;" in result.output
    assert len(payments(central_db)) == 2 and len(open_lines(central_db)) == 2
    log = central_db.execute("SELECT by_name, action FROM money_log WHERE action LIKE 'statement%' "
                             "OR (action = 'payment_add') ORDER BY id").fetchall()
    assert [(r["by_name"], r["action"]) for r in log] == [
        ("command line", "payment_add"), ("command line", "payment_add"),
        ("command line", "statement_import"), ("command line", "statement_import")]


def test_a_later_export_that_repeats_lines_adds_only_the_new_ones(central_db, pledges):
    import_statement(central_db, None, german(pledges), "juni.csv")
    herr = pledges["Herr Groß"]["reference"]
    later = german(pledges, f"10,00;01.07.2025;01.07.2025;K. Groß;{herr}\n"
                            "10,00;30.06.2025;30.06.2025;K. Groß;Sponsorenlauf Ben Cruz 6b\n")
    report = import_statement(central_db, None, later, "juli.csv")
    # The third identical line of 30.06. is new: a third transfer on that day.
    assert report == {"lines": 7, "debits": 1, "known": 4, "matched": 1, "unmatched": 1,
                      "overpaid": []}
    assert len(open_lines(central_db)) == 3


def test_english_columns_with_a_bom_and_commas(central_db, pledges):
    reference = pledges["Herr Groß"]["reference"]
    data = ("\ufeffpurpose,amount,booking_date\n"
            f'"Pledge {reference.lower()}, thanks",12.50,2025-07-02\n'
            '"Donation",5,02.07.2025\n').encode("utf-8")
    assert import_statement(central_db, None, data, "en.csv")["matched"] == 1
    assert payments(central_db) == [("Herr Groß", 1250, date(2025, 7, 2), "transfer", reference)]


@pytest.mark.parametrize("text,cents", [("12,50", 1250), ("1.234,56", 123456), ("-45,90", -4590),
                                        ("+20", 2000), ("12.5", 1250), ("1,234.56", 123456),
                                        ("20,00 €", 2000), ("0,01", 1)])
def test_amounts_as_banks_write_them(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("body,problem", [
    ("Buchungstag;Verwendungszweck;Betrag\n31.02.2025;x;1,00\n", "line 2: The booking day"),
    ("Buchungstag;Verwendungszweck;Betrag\n28.06.2025;x;zwölf\n", "line 2: The amount"),
    ("Datum;Text\n28.06.2025;x\n", "No header found"),
])
def test_a_bad_file_records_nothing_and_names_the_line(central_app, central_db, pledges, tmp_path,
                                                       body, problem):
    path = tmp_path / "bad.csv"
    path.write_text(body, encoding="utf-8")
    result = central_app.test_cli_runner().invoke(args=["import-statement", str(path)])
    assert result.exit_code != 0 and problem in result.output
    assert payments(central_db) == [] and open_lines(central_db) == []
    assert central_db.execute("SELECT count(*) AS n FROM statement_line").fetchone()["n"] == 0
    with pytest.raises(StatementError):
        parse_statement(body.encode())


def test_references_are_found_whatever_the_spacing_and_only_when_unique():
    known = {"RF18539007547034", "RF71ABC"}
    assert find_reference("Spende rf18 5390 0754 7034 Anna", known) == "RF18539007547034"
    assert find_reference("RF18539007547034Anna", known) == "RF18539007547034"
    assert find_reference("RF18539007547034 und RF71 ABC", known) is None   # two pledges
    assert find_reference("RF18539007547035", known) is None


def test_an_admin_assigns_an_unmatched_credit_on_the_page(central_admin, central_db, pledges):
    page = central_admin.post("/sponsors/statement/", data={
        "csrf_token": central_admin.csrf,
        "file": (io.BytesIO(german(pledges)), "juni.csv")},
        content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
    assert ("juni.csv – bookings read: 5; payments recorded by their reference: 2; new credits "
            "left to assign: 2; imported before: 0; debits skipped: 1.") in page
    assert "Credits without a pledge: 2" in page
    first = open_lines(central_db)[0]["id"]
    page = central_admin.get(f"/sponsors/statement/?line={first}&q=Gro").get_data(as_text=True)
    herr = pledges["Herr Groß"]["id"]
    assert re.search(rf'name="pledge_id" value="{herr}"', page)
    response = central_admin.post(f"/sponsors/statement/lines/{first}/assign",
                                  data={"csrf_token": central_admin.csrf, "pledge_id": herr})
    assert response.status_code == 302
    assert payments(central_db)[0][:2] == ("Herr Groß", 1000)
    again = central_admin.post(f"/sponsors/statement/lines/{first}/assign",
                               data={"csrf_token": central_admin.csrf, "pledge_id": herr})
    assert again.status_code == 409 and len(payments(central_db)) == 3
    second = open_lines(central_db)[0]["id"]
    central_admin.post(f"/sponsors/statement/lines/{second}/ignore",
                       data={"csrf_token": central_admin.csrf, "confirm": "1"})
    assert open_lines(central_db) == []
    who = central_db.execute("SELECT by_name FROM money_log WHERE action = 'statement_ignore'")
    assert who.fetchone()["by_name"] == "ada"


def test_a_credit_assigned_by_hand_that_overpays_its_pledge_is_named(central_admin, central_db,
                                                                     pledges):
    central_admin.post("/sponsors/statement/", data={
        "csrf_token": central_admin.csrf, "file": (io.BytesIO(german(pledges)), "juni.csv")},
        content_type="multipart/form-data", follow_redirects=True)  # its own messages shown
    herr = pledges["Herr Groß"]["id"]                      # owes 10,00 €
    pages = [central_admin.post(f"/sponsors/statement/lines/{line['id']}/assign", data={
        "csrf_token": central_admin.csrf, "pledge_id": herr}, follow_redirects=True,
        headers={"Accept-Language": "en"}).get_data(as_text=True)
        for line in open_lines(central_db)]               # both 10,00 € credits of K. Groß
    assert "The payment is recorded." in pages[0] and "overpaid" not in pages[0]
    assert "The payment is recorded." in pages[1]
    assert re.search(r"€10\.00 from K\. Groß booked to Herr Groß for [^:<]*Ben Cruz[^:<]*: paid "
                     r"more than it owes \(overpaid by €10\.00\)\.", pages[1])
    assert [p[:2] for p in payments(central_db) if p[0] == "Herr Groß"] == [
        ("Herr Groß", 1000), ("Herr Groß", 1000)]


def test_ignoring_a_credit_asks_first_and_can_be_undone(central_app, central_admin, central_db,
                                                       pledges):
    import_statement(central_db, None, german(pledges), "juni.csv")
    line = open_lines(central_db)[0]["id"]
    page = central_admin.get("/sponsors/statement/").get_data(as_text=True)
    assert re.search(rf'action="/sponsors/statement/lines/{line}/ignore" class="inline ignore-form">'
                     r'\s*<input type="hidden" name="csrf_token"[^>]*>\s*<label><input type="checkbox" '
                     r'name="confirm" value="1" required> No sponsor(?:\x27|&#39;)s payment</label>', page)
    # The button alone (a mis-tap) changes nothing.
    refused = central_admin.post(f"/sponsors/statement/lines/{line}/ignore",
                                 data={"csrf_token": central_admin.csrf})
    assert refused.status_code == 400 and "Tick the box to confirm" in refused.get_data(as_text=True)
    assert len(open_lines(central_db)) == 2
    page = central_admin.post(f"/sponsors/statement/lines/{line}/ignore", data={
        "csrf_token": central_admin.csrf, "confirm": "1"}, follow_redirects=True).get_data(as_text=True)
    assert "The credit of €10.00 from K. Groß is ignored; it is listed under" in page
    assert [r["id"] for r in ignored_lines(central_db)] == [line] and len(open_lines(central_db)) == 1
    assert "Ignored credits: 1" in page and "Credits without a pledge: 1" in page
    assert f'action="/sponsors/statement/lines/{line}/restore"' in page
    # A viewer sees it, without the button, and cannot put it back.
    central_viewer = central_app.test_client()
    central_viewer.csrf = central_login(central_viewer, "vic")
    viewed = central_viewer.get("/sponsors/statement/").get_data(as_text=True)
    assert "Ignored credits: 1" in viewed and "/restore" not in viewed
    assert central_viewer.post(f"/sponsors/statement/lines/{line}/restore",
                               data={"csrf_token": central_viewer.csrf}).status_code == 403
    # Put back: it waits again, and the money log says who did what.
    page = central_admin.post(f"/sponsors/statement/lines/{line}/restore", data={
        "csrf_token": central_admin.csrf}, follow_redirects=True).get_data(as_text=True)
    assert "The credit of €10.00 from K. Groß waits on the list again." in page
    assert ignored_lines(central_db) == [] and line in [r["id"] for r in open_lines(central_db)]
    assert central_admin.post(f"/sponsors/statement/lines/{line}/restore", data={
        "csrf_token": central_admin.csrf}).status_code == 409
    log = central_db.execute("SELECT by_name, action FROM money_log WHERE action IN "
                             "('statement_ignore', 'statement_restore') ORDER BY id").fetchall()
    assert [(r["by_name"], r["action"]) for r in log] == [("ada", "statement_ignore"),
                                                          ("ada", "statement_restore")]
    assert ("Put an ignored credit of €10.00 from K. Groß back on the list to assign: "
            "Sponsorenlauf Ben Cruz 6b.") in central_admin.get("/sponsors/log").get_data(as_text=True)


def test_a_bad_upload_shows_its_lines_and_records_nothing(central_admin, central_db, pledges):
    bad = "Buchungstag;Verwendungszweck;Betrag\n28.06.2025;x;1,00\n99.99.2025;y;2,00\n"
    response = central_admin.post("/sponsors/statement/", data={
        "csrf_token": central_admin.csrf, "file": (io.BytesIO(bad.encode()), "b.csv")},
        content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "The booking day 99.99.2025" in page
    assert central_db.execute("SELECT count(*) AS n FROM statement_line").fetchone()["n"] == 0


def test_a_viewer_sees_the_list_but_cannot_import_or_assign(central_viewer, central_db, pledges):
    import_statement(central_db, None, german(pledges), "juni.csv")
    page = central_viewer.get("/sponsors/statement/").get_data(as_text=True)
    assert "K. Groß" in page and 'id="statement-form"' not in page
    line = open_lines(central_db)[0]["id"]
    assert central_viewer.post(f"/sponsors/statement/lines/{line}/assign", data={
        "csrf_token": central_viewer.csrf, "pledge_id": pledges["Herr Groß"]["id"]}).status_code == 403
    assert len(open_lines(central_db)) == 2

"""The amounts exports on real PostgreSQL: amounts.csv byte for byte, amounts-de.csv for German
Excel and amounts.xlsx read back with openpyxl; every total equals the sponsors page's figures,
with an overpaid pledge (outstanding never below 0, the overpayment apart)."""
from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import openpyxl
import pytest

from sync.sponsors.amounts import pledge_amounts
from sync.sponsors.money_exports import COLUMNS
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge, format_reference
from sync.settings import set_setting
from sync.workbooks import sheet_title
from tests.central.test_results import BOM, run
from tests.pg import register

HEADERS = {"en": {"Accept-Language": "en-US,en;q=0.9"}, "de": {"Accept-Language": "de-DE,de;q=0.9"}}
# The sponsors page's money: "€1,234.50" in English, "1.234,50 €" in German.
PAGE_MONEY = {"en": re.compile(r"€([\d,]+\.\d\d)"), "de": re.compile(r"([\d.]+,\d\d)\xa0€")}
FORMATS = {"en": '"€"#,##0.00', "de": '#,##0.00 "€"'}
# Headings already in the German catalogue; "Overpaid" and "All pledges" wait for theirs.
GERMAN_HEADINGS = {"sponsor": "Sponsor", "email": "E-Mail", "start_number": "Startnummer",
                   "name": "Name", "class": "Klasse", "kind": "Art", "rate": "Zusage",
                   "cap": "Höchstbetrag", "laps": "Runden", "distance_m": "Strecke (m)",
                   "amount": "Betrag", "paid": "Bezahlt", "outstanding": "Offen",
                   "reference": "Verwendungszweck", "address": "Adresse"}
FIGURES = ("amount", "paid", "outstanding", "overpaid")
ADDRESS = "Gartenweg 3\n12345 Musterstadt"


@pytest.fixture
def pledges(central_db, device_token) -> dict:
    """Anna (5a, 10 laps), Ben (6b, 3 laps), 400 m a lap; Oma paid part, Tante Eva 5 € too much."""
    set_setting(central_db, "metres_per_lap", 400)
    ids = run(central_db, device_token, [(1, "Anna Berg", "5a", 10), (2, "Ben Cruz", "6b", 3)])
    found = {
        "oma": add_pledge(central_db, None, ids["Anna Berg"], {
            "sponsor_name": "Oma", "kind": "per_lap", "rate_cents": "0,50",
            "email": "oma@example.org", "address": ADDRESS}),
        "firma": add_pledge(central_db, None, ids["Anna Berg"], {
            "sponsor_name": '=HYPERLINK("x")', "kind": "per_km", "rate_cents": "1,25", "cap_cents": "4"}),
        "eva": add_pledge(central_db, None, ids["Ben Cruz"], {
            "sponsor_name": "Tante Eva; Köln", "kind": "fixed", "rate_cents": "20"}),
    }
    for pledge, amount in (("oma", "1,50"), ("eva", "25")):
        add_payment(central_db, None, found[pledge], {"amount_cents": amount, "paid_on": "2025-07-01",
                                                      "method": "transfer", "reference": "", "note": ""})
    return found


def references(conn) -> dict[str, str]:
    """Return each pledge's reference as its letter prints it, by pledge id."""
    return {r["id"]: format_reference(r["reference"]) for r in pledge_amounts(conn)}


def number(text: str, lang: str) -> Decimal:
    """Read a figure written the language's way: 1,234.50 or 1.234,50."""
    if lang == "de":
        text = text.replace(".", "").replace(",", ".")
    return Decimal(text.replace(",", ""))


def page_figures(client, lang: str) -> dict[str, Decimal]:
    """Return raised, paid, outstanding and overpaid as the sponsors page's summary states them."""
    page = client.get("/sponsors/", headers=HEADERS[lang]).get_data(as_text=True)
    summary = page.split('id="money-total"', 1)[1].split("</p>", 1)[0]
    found = [number(text, lang) for text in PAGE_MONEY[lang].findall(summary)]
    assert len(found) == 4, summary                   # the overpayment is shown apart
    return dict(zip(FIGURES, found))


def sheet_rows(sheet) -> list[list]:
    """Return a worksheet's rows as lists of values."""
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def figures(row: list) -> dict[str, Decimal]:
    """Return the money figures of a workbook row as exact decimals."""
    return {key: Decimal(str(row[COLUMNS.index(key)])) for key in FIGURES}


def column_sums(rows: list[list], parse=lambda value: Decimal(str(value))) -> dict[str, Decimal]:
    """Return the sum of each money figure's column over pledge rows."""
    return {key: sum((parse(row[COLUMNS.index(key)]) for row in rows), Decimal(0)) for key in FIGURES}


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_workbook_adds_up_to_the_sponsors_page(central_viewer, central_db, pledges, lang):
    response = central_viewer.get("/sponsors/amounts.xlsx", headers=HEADERS[lang])
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="amounts.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(response.get_data()))
    assert book.sheetnames[1:] == ["5a", "6b"]                 # every pledge first, then a sheet a class
    header, *rows, total = sheet_rows(book.worksheets[0])
    page = page_figures(central_viewer, lang)
    assert page == {"amount": 29, "paid": Decimal("26.50"), "outstanding": Decimal("7.50"),
                    "overpaid": 5}
    assert figures(total) == page == column_sums(rows)        # 4.00 + 3.50, not 4.00 + 3.50 - 5.00
    assert total[0] == {"en": "Total", "de": "Summe"}[lang]
    assert min(row[COLUMNS.index("outstanding")] for row in rows) == 0
    class_totals = [figures(sheet_rows(book[name])[-1]) for name in ("5a", "6b")]
    assert {key: sum(t[key] for t in class_totals) for key in FIGURES} == page
    assert class_totals[1] == {"amount": 20, "paid": 25, "outstanding": 0, "overpaid": 5}
    if lang == "de":
        assert {c: header[COLUMNS.index(c)] for c in GERMAN_HEADINGS} == GERMAN_HEADINGS
    else:
        assert header[COLUMNS.index("overpaid")] == "Overpaid" and book.sheetnames[0] == "All pledges"
    sheet = book.worksheets[0]
    amount_cell = sheet.cell(row=2, column=COLUMNS.index("amount") + 1)
    assert amount_cell.data_type == "n" and amount_cell.number_format == FORMATS[lang]


def test_the_workbook_carries_reference_address_and_text_as_text(central_viewer, central_db, pledges):
    book = openpyxl.load_workbook(io.BytesIO(central_viewer.get("/sponsors/amounts.xlsx").get_data()))
    sponsors = {row[0]: row for row in sheet_rows(book.worksheets[0])[1:-1]}
    refs = references(central_db)
    assert sponsors["Oma"] == ["Oma", "oma@example.org", 1, "Anna Berg", "5a", "per lap", 0.5, None,
                               10, 4000, 5, 1.5, 3.5, 0, refs[pledges["oma"]], ADDRESS, None, "yes"]
    assert sponsors['=HYPERLINK("x")'][5:14] == ["per km", 1.25, 4, 10, 4000, 4, 0, 4, 0]  # text, no formula
    assert sponsors["Tante Eva; Köln"][10:15] == [20, 25, 0, 5, refs[pledges["eva"]]]
    assert book.worksheets[0].cell(row=3, column=COLUMNS.index("address") + 1).alignment.wrap_text


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_german_csv_adds_up_to_the_german_page(central_viewer, central_db, pledges, lang):
    response = central_viewer.get("/sponsors/amounts-de.csv", headers=HEADERS[lang])
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="betraege.csv"'
    data = response.get_data()
    assert data.startswith(BOM)
    header, *rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert {c: header[COLUMNS.index(c)] for c in GERMAN_HEADINGS} == GERMAN_HEADINGS  # German either way
    assert column_sums(rows, lambda text: number(text, "de")) == page_figures(central_viewer, "de")
    refs = references(central_db)
    text = data.decode("utf-8-sig")
    assert ('"Tante Eva; Köln";"";2;"Ben Cruz";"6b";"fest";20,00;"";3;1200;20,00;25,00;0,00;5,00;'
            f'"{refs[pledges["eva"]]}";"";"";"ja"\r\n') in text
    assert (f'"pro Runde";0,50;"";10;4000;5,00;1,50;3,50;0,00;"{refs[pledges["oma"]]}";"{ADDRESS}";'
            '"";"ja"\r\n') in text


def test_amounts_csv_bytes(central_viewer, central_db, pledges):
    response = central_viewer.get("/sponsors/amounts.csv", headers=HEADERS["de"])   # English either way
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="amounts.csv"'
    refs = references(central_db)
    assert response.get_data() == (
        "\ufeff"
        '"sponsor","email","start_number","name","class","kind","rate","cap","laps","distance_m",'
        '"amount","paid","outstanding","overpaid","reference","address","did_not_run","letter"\r\n'
        f'"\'=HYPERLINK(""x"")","",1,"Anna Berg","5a","per_km",1.25,4.00,10,4000,4.00,0.00,4.00,0.00,'
        f'"{refs[pledges["firma"]]}","","","yes"\r\n'
        '"Oma","oma@example.org",1,"Anna Berg","5a","per_lap",0.50,"",10,4000,5.00,1.50,3.50,0.00,'
        f'"{refs[pledges["oma"]]}","{ADDRESS}","","yes"\r\n'
        '"Tante Eva; Köln","",2,"Ben Cruz","6b","fixed",20.00,"",3,1200,20.00,25.00,0.00,5.00,'
        f'"{refs[pledges["eva"]]}","","","yes"\r\n'
    ).encode("utf-8")


@pytest.mark.parametrize("lang, first, second", [("de", "amounts-de-link", "amounts-csv-link"),
                                                 ("en", "amounts-csv-link", "amounts-de-link")])
def test_the_sponsors_page_offers_the_german_file_first_in_german(central_viewer, lang, first, second):
    page = central_viewer.get("/sponsors/", headers=HEADERS[lang]).get_data(as_text=True)
    assert 'href="/sponsors/amounts-de.csv"' in page and 'href="/sponsors/amounts.xlsx"' in page
    assert page.index(f'id="{first}"') < page.index(f'id="{second}"')


def test_files_are_named_after_the_event(central_viewer, central_db):
    set_setting(central_db, "event_name", "Sponsorenlauf Müllerstraße 2025")
    names = [central_viewer.get(f"/sponsors/{path}").headers["Content-Disposition"]
             for path in ("amounts.csv", "amounts-de.csv", "amounts.xlsx")]
    assert names == [f'attachment; filename="{stem}-Sponsorenlauf-Mullerstrasse-2025.{suffix}"'
                     for stem, suffix in (("amounts", "csv"), ("betraege", "csv"), ("amounts", "xlsx"))]


def test_sheet_titles_are_valid_and_unique():
    used: set[str] = set()
    assert [sheet_title(name, used) for name in ("5a", "5A", "a/b:c", "x" * 40, "x" * 40)] == [
        "5a", "5A (2)", "a_b_c", "x" * 31, "x" * 27 + " (2)"]


def test_exports_without_pledges(central_viewer):
    for path in ("amounts.csv", "amounts-de.csv"):
        assert central_viewer.get(f"/sponsors/{path}").get_data().count(b"\r\n") == 1
    book = openpyxl.load_workbook(io.BytesIO(central_viewer.get("/sponsors/amounts.xlsx").get_data()))
    assert book.sheetnames == ["All pledges"]
    assert sheet_rows(book.worksheets[0])[1] == ["Total"] + [None] * 9 + [0, 0, 0, 0] + [None] * 4


def test_an_overpaid_pledge_shows_what_was_overpaid_not_a_negative_outstanding(
        central_viewer, central_db, pledges):
    # Eva pledged 20 € fixed and paid 25 €: owed nothing, overpaid by 5 €, on every page.
    pledge = central_viewer.get(f"/sponsors/{pledges['eva']}").get_data(as_text=True)
    outstanding = pledge.split('id="outstanding">', 1)[1].split("</td>", 1)[0]
    assert "overpaid by €5.00" in outstanding and "-" not in outstanding
    class_list = central_viewer.get("/sponsors/classes/6b/list").get_data(as_text=True)
    assert "overpaid by €5.00" in class_list and "-€5.00" not in class_list


def test_pledges_of_a_runner_who_did_not_run_are_marked_last_with_whether_a_letter_goes_out(
        central_viewer, central_db, pledges):
    carl = run(central_db, register(central_db, "laptop-b"), [(3, "Carl Dorn", "6b", 0)])["Carl Dorn"]
    for name, kind, rate in (("Onkel Lap", "per_lap", "1"), ("Bäckerei Dorn", "fixed", "10")):
        add_pledge(central_db, None, carl, {"sponsor_name": name, "kind": kind, "rate_cents": rate})
    files = {"en": ("amounts.csv", ",", "did_not_run", ("yes", "no")),
             "de": ("amounts-de.csv", ";", "Nicht gelaufen", ("ja", "nein"))}
    for path, delimiter, heading, (yes, no) in files.values():
        text = central_viewer.get(f"/sponsors/{path}").get_data().decode("utf-8-sig")
        header, *rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        assert len(header) == len(COLUMNS) and header[-2] == heading, path
        marks = {row[0]: row[-2:] for row in rows}
        assert marks == {"Onkel Lap": [yes, no], "Bäckerei Dorn": [yes, yes], "Oma": ["", yes],
                         '\'=HYPERLINK("x")': ["", yes], "Tante Eva; Köln": ["", yes]}, path
        assert {row[0]: row[COLUMNS.index("address")] for row in rows}["Oma"] == ADDRESS
    for lang, (yes, no) in (("en", ("yes", "no")), ("de", ("ja", "nein"))):
        book = openpyxl.load_workbook(io.BytesIO(central_viewer.get(
            "/sponsors/amounts.xlsx", headers=HEADERS[lang]).get_data()))
        header, *rows, total = sheet_rows(book["6b"])
        assert header[-2] == {"en": "Did not run", "de": "Nicht gelaufen"}[lang]
        assert header[-1] == "Letter" or lang == "de"
        assert total[-2:] == [None, None]
        assert {row[0]: row[-2:] for row in rows} == {
            "Onkel Lap": [yes, no], "Bäckerei Dorn": [yes, yes], "Tante Eva; Köln": [None, yes]}


def test_the_german_files_head_the_letter_column_brief(central_viewer, central_db):
    # Needs the German catalogue's "Letter" -> "Brief".
    text = central_viewer.get("/sponsors/amounts-de.csv").get_data().decode("utf-8-sig")
    assert text.splitlines()[0].endswith('"Nicht gelaufen";"Brief"')
    book = openpyxl.load_workbook(io.BytesIO(central_viewer.get(
        "/sponsors/amounts.xlsx", headers=HEADERS["de"]).get_data()))
    assert sheet_rows(book.worksheets[0])[0][-2:] == ["Nicht gelaufen", "Brief"]

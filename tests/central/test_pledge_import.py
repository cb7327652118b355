"""Pledge import from CSV and XLSX: German and English headers and values, all lines or none,
a report for every bad line (the command and the upload page)."""
from __future__ import annotations

import io

import pytest

from lapsync.sheets import SheetError, read_sheet
from sync.sponsors.amounts import pledge_amounts
from sync.sponsors.pledge_import import import_pledges
from tests.central.cli import refused_then_imported
from tests.central.test_results import run
from tests.core.test_roster_file import xlsx
from tests.pg import register


@pytest.fixture
def runners(central_db, device_token) -> dict:
    """Runners 1 (Anna, 10 laps) and 2 (Ben, 4 laps)."""
    central_db.execute("SELECT 1")
    return run(central_db, device_token, [(1, "Anna Berg", "5a", 10), (2, "Ben Cruz", "6b", 4)])


def state(conn) -> list[tuple]:
    """Return every pledge and the money log, to show that a refused file changed nothing."""
    return (conn.execute("SELECT * FROM pledge ORDER BY id").fetchall(),
            conn.execute("SELECT * FROM money_log ORDER BY id").fetchall())


GERMAN = ("Startnummer;Sponsor;E-Mail;Art;Betrag;Höchstbetrag\n"
          "1;Oma Berg;oma@example.org;pro Runde;0,50;4\n"
          "1;Firma Hill;;fest;20;\n"
          "2;Opa Cruz;;pro km;1.25;\n")


def summary(conn) -> list[tuple]:
    """Return (number, sponsor, kind, rate, cap, email, amount) of every live pledge."""
    return [(r["start_number"], r["sponsor_name"], r["kind"], r["rate_cents"], r["cap_cents"],
             r["email"], r["amount_cents"]) for r in pledge_amounts(conn)]


EXPECTED = [(1, "Firma Hill", "fixed", 2000, None, None, 2000),
            (1, "Oma Berg", "per_lap", 50, 400, "oma@example.org", 400),
            (2, "Opa Cruz", "per_km", 125, None, None, 0)]      # no metres per lap set


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp1252"])
def test_a_german_csv_is_imported(central_db, runners, encoding):
    assert import_pledges(central_db, None, GERMAN.encode(encoding), "karten.csv") == 3
    assert summary(central_db) == EXPECTED
    [entry] = central_db.execute("SELECT by_name, action, details FROM money_log").fetchall()
    assert entry == {"by_name": "command line", "action": "pledge_import",
                     "details": {"count": 3, "file": "karten.csv"}}


def test_an_english_csv_and_an_xlsx_are_imported(central_db, runners):
    english = ("start_number,sponsor,email,kind,amount,cap\n"
               '1,"Hill, Firma",,fixed,20,\n2,Opa Cruz,,per_km,"1,25",\n')
    assert import_pledges(central_db, None, english.encode(), "cards.csv") == 2
    book = xlsx([["Sponsor", "Art", "Betrag", "Startnummer", "E-Mail"],      # any column order
                 ["Oma Berg", "pro Runde", 0.5, 1, "oma@example.org"],
                 [None, None, None, None, None],                               # a blank row
                 ["Tante Eva", "fest", "12,5", 2, None]])
    assert import_pledges(central_db, None, book, "karten.xlsx") == 2
    assert [(r["sponsor_name"], r["rate_cents"]) for r in pledge_amounts(central_db)] == [
        ("Hill, Firma", 2000), ("Oma Berg", 50), ("Opa Cruz", 125), ("Tante Eva", 1250)]


BAD_FILES = {
    "wrong header": ("Nummer,Sponsor,E-Mail,Art,Betrag\n1,Oma,,fest,20\n",
                     [(1, "Wrong header: expected Startnummer,Sponsor,E-Mail,Art,Betrag[,Höchstbetrag]")]),
    "no lines": ("Startnummer,Sponsor,E-Mail,Art,Betrag\n", [(1, "The file has a header but no pledges.")]),
    "each bad line": ("Startnummer;Sponsor;E-Mail;Art;Betrag;Höchstbetrag\n"
                      "1;Oma;;pro Runde;0,50;\n"            # good
                      "1;Opa;;stündlich;1;\n"               # bad kind
                      "2;Eva;;fest;zwanzig;\n"              # bad amount
                      "99;Max;;fest;5;\n"                   # unknown start number
                      "2;Ina;kein-mail;pro km;1;\n"         # bad e-mail
                      "2;;;fest;5;\n"                       # no sponsor
                      "1;Oma;;pro Runde;0,50;\n"            # the same pledge as line 2
                      "2;Udo;;fest;5;3\n"                   # a cap on a fixed sum
                      "2;Kai;;pro Runde;1;0\n"              # a cap of 0
                      "x;Lea;;fest;5;\n",                   # a start number that is no number
                      [(3, "The kind must be per lap"), (4, "The amount must be above 0"),
                       (5, "No runner has start number 99."), (6, "This is not an e-mail address"),
                       (7, "The sponsor's name must be"), (8, "The same pledge is also on line 2."),
                       (9, "A fixed amount takes no cap."), (10, "The cap must be empty"),
                       (11, "The start number 'x' is not valid")]),
    "not text": (b"\x00\x01\x02PK", [(1, "The file contains NUL bytes")]),
    "broken xlsx": (b"PK\x03\x04 not really a zip", [(1, "The file cannot be read as an Excel workbook")]),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_file_changes_nothing_and_reports_each_bad_line(central_db, runners, name):
    data, expected = BAD_FILES[name]
    before = state(central_db)
    with pytest.raises(SheetError) as caught:
        import_pledges(central_db, None, data if isinstance(data, bytes) else data.encode(), "f.csv")
    got = [(p.line, p.message) for p in caught.value.problems]
    assert [line for line, _m in got] == [line for line, _m in expected]
    for (_l, message), (_e, start) in zip(got, expected):
        assert message.startswith(start), (message, start)
    assert state(central_db) == before


def test_a_bad_xlsx_reports_its_rows(central_db, runners):
    book = xlsx([["start_number", "sponsor", "email", "kind", "amount"],
                 [1, "Oma", None, "per_lap", 0.5], [3, "Opa", None, "per_lap", 1],
                 [2, "Eva", None, "weekly", 1], [2, "Ida", None, "fixed", 0.001]])
    with pytest.raises(SheetError) as caught:
        import_pledges(central_db, None, book, "f.xlsx")
    assert [p.line for p in caught.value.problems] == [3, 4, 5]
    assert state(central_db) == ([], [])


def test_importing_a_file_twice_refuses_the_second(central_db, runners):
    import_pledges(central_db, None, GERMAN.encode(), "karten.csv")
    before = state(central_db)
    with pytest.raises(SheetError) as caught:
        import_pledges(central_db, None, GERMAN.encode(), "karten.csv")
    assert [p.line for p in caught.value.problems] == [2, 3, 4]
    assert "already on file" in caught.value.problems[0].message
    assert state(central_db) == before


def test_a_shared_start_number_is_refused(central_db, runners):
    run(central_db, register(central_db, "laptop-b"), [(2, "Ben Other", "7c", 0)])
    with pytest.raises(SheetError) as caught:
        import_pledges(central_db, None, GERMAN.encode(), "karten.csv")
    assert [p.line for p in caught.value.problems] == [4]
    assert "belongs to 2 runners" in caught.value.problems[0].message


def test_the_command_imports_or_prints_the_report(central_app, central_db, runners, tmp_path):
    good, bad = tmp_path / "karten.csv", tmp_path / "bad.xlsx"
    good.write_text(GERMAN, encoding="utf-8")
    bad.write_bytes(xlsx([["Startnummer", "Sponsor", "E-Mail", "Art", "Betrag"], [5, "X", None, "fest", 1]]))
    refused, imported = refused_then_imported(central_app, "import-pledges", bad, good)
    assert "line 2: No runner has start number 5." in refused
    assert "Imported 3 pledges from karten.csv." in imported
    assert summary(central_db) == EXPECTED


def test_the_upload_page_imports_or_shows_the_report(central_admin, central_db, runners):
    bad = central_admin.post("/sponsors/import", data={
        "csrf_token": central_admin.csrf,
        "file": (io.BytesIO("Startnummer,Sponsor,E-Mail,Art,Betrag\n7,X,,fest,1\n".encode()), "bad.csv")},
        headers={"Accept-Language": "de"})
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert "bad.csv: Die Datei wurde nicht importiert" in page and "Startnummer 7" in page
    good = central_admin.post("/sponsors/import", data={
        "csrf_token": central_admin.csrf, "file": (io.BytesIO(xlsx([
            ["Startnummer", "Sponsor", "E-Mail", "Art", "Betrag"], [1, "Oma", None, "fest", 5]])), "k.xlsx")})
    assert good.status_code == 302
    assert [r["sponsor_name"] for r in pledge_amounts(central_db)] == ["Oma"]
    entry = central_db.execute("SELECT by_name, details FROM money_log").fetchone()
    assert entry == {"by_name": "ada", "details": {"count": 1, "file": "k.xlsx"}}


def test_read_sheet_gives_lines_as_a_person_counts_them():
    data = 'a,b\n\n"x\ny",2\n3,4\n'.encode()
    assert read_sheet(data) == [(1, ["a", "b"]), (3, ["x\ny", "2"]), (5, ["3", "4"])]
    assert read_sheet(xlsx([["a", 1.0, 2.5], [None], [None, 17, None]])) == [
        (1, ["a", "1", "2.5"]), (3, ["", "17"])]

"""Results for German Excel (results-de.csv) and as workbooks, a sheet per class (XLSX)."""
from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest

from sync.settings import set_setting
from tests.central.test_results import BOM, run
from tests.pg import register

DE = {"Accept-Language": "de-DE,de;q=0.9"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
GERMAN_HEADER = ('"Startnummer";"Name";"Klasse";"Jahrgang";"Runden";"Strecke (m)";"Strecke (km)";'
                 '"Nicht gelaufen"')


@pytest.fixture
def event(central_db, device_token) -> dict:
    """Five runners in three classes (10a after 5a), 400 m a lap, a hostile name among them."""
    set_setting(central_db, "metres_per_lap", 400)
    set_setting(central_db, "event_name", "Sponsorenlauf Müllerstraße 2025")
    return run(central_db, device_token, [
        (1, "Anna Müller", "10a", 3), (2, "Ben Cohn; Jr.", "5a", 5), (3, "=1+2", "5a", 7),
        (4, "Dana Eck", "5b", 2), (5, 'Ömer "Öz" Kaya', "5a", 1)])


def german_lines(response) -> list[str]:
    """Return the lines of a German CSV download after checking its BOM and line ends."""
    data = response.get_data()
    assert data.startswith(BOM)
    text = data.decode("utf-8-sig")
    assert text.endswith("\r\n")
    return text.split("\r\n")[:-1]


def test_german_csv_has_semicolons_german_headers_and_decimal_commas(central_viewer, event):
    response = central_viewer.get("/admin/results-de.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    assert german_lines(response) == [
        GERMAN_HEADER,
        '3;"\'=1+2";"5a";5;7;2800;2,8;""',
        '2;"Ben Cohn; Jr.";"5a";5;5;2000;2;""',
        '5;"Ömer ""Öz"" Kaya";"5a";5;1;400;0,4;""',
        '4;"Dana Eck";"5b";5;2;800;0,8;""',
        '1;"Anna Müller";"10a";1;3;1200;1,2;""',
    ]
    disposition = response.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="ergebnisse-Sponsorenlauf-Mullerstrasse-2025.csv"'


def test_german_csv_reads_back_cell_by_cell_with_a_semicolon_reader(central_viewer, event):
    rows = list(csv.reader(io.StringIO(
        central_viewer.get("/admin/results-de.csv").get_data().decode("utf-8-sig"), newline=""),
        delimiter=";"))
    assert all(len(row) == 8 for row in rows)
    assert rows[2][1] == "Ben Cohn; Jr." and rows[3][1] == 'Ömer "Öz" Kaya'


def test_german_csv_writes_fractional_metres_with_a_comma(central_viewer, central_db, event):
    set_setting(central_db, "metres_per_lap", 333.33)
    lines = german_lines(central_viewer.get("/admin/results-de.csv"))
    assert '"Anna Müller";"10a";1;3;999,99;1' in lines[-1]
    assert lines[1].endswith(';7;2333,31;2,333;""')


def test_german_csv_without_a_lap_length_leaves_the_distance_empty(central_viewer, central_db,
                                                                     device_token):
    run(central_db, device_token, [(9, "Eva", "7a", 2)])
    assert german_lines(central_viewer.get("/admin/results-de.csv"))[1] == '9;"Eva";"7a";7;2;"";"";""'


def test_english_results_csv_is_unchanged(central_viewer, event):
    text = central_viewer.get("/admin/results.csv").get_data().decode("utf-8-sig")
    assert text.splitlines()[:2] == [
        '"start_number","name","class","grade","laps","distance_m","did_not_run"',
        '3,"\'=1+2","5a",5,7,2800,""']


def test_results_page_offers_the_german_csv_first_in_german_and_also_in_english(central_viewer,
                                                                                  event):
    german = central_viewer.get("/admin/results", headers=DE).get_data(as_text=True)
    assert "Für deutsches Excel herunterladen (Semikolons, Dezimalkomma)" in german
    assert german.index('id="csv-de-link"') < german.index('id="csv-link"')
    english = central_viewer.get("/admin/results").get_data(as_text=True)
    assert "Download for German Excel (semicolons, decimal comma)" in english
    assert english.index('id="csv-link"') < english.index('id="csv-de-link"')
    for page in (german, english):
        assert 'href="/admin/results-de.csv"' in page and 'href="/admin/results.xlsx"' in page


def workbook(response) -> openpyxl.Workbook:
    """Open an XLSX download."""
    assert response.status_code == 200 and response.mimetype == XLSX
    return openpyxl.load_workbook(io.BytesIO(response.get_data()))


def values(sheet) -> list[list]:
    """Return a sheet's rows as lists of values."""
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def test_results_workbook_has_a_sheet_per_class_in_natural_order(central_viewer, event):
    response = central_viewer.get("/admin/results.xlsx", headers=DE)
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="results-Sponsorenlauf-Mullerstrasse-2025.xlsx"')
    book = workbook(response)
    assert book.sheetnames == ["5a", "5b", "10a"]
    assert values(book["5a"]) == [
        ["Startnummer", "Name", "Klasse", "Jahrgang", "Runden", "Strecke (m)", "Nicht gelaufen"],
        [3, "=1+2", "5a", 5, 7, 2800, None], [2, "Ben Cohn; Jr.", "5a", 5, 5, 2000, None],
        [5, 'Ömer "Öz" Kaya', "5a", 5, 1, 400, None]]
    assert values(book["10a"])[1] == [1, "Anna Müller", "10a", 1, 3, 1200, None]
    assert book["5a"].freeze_panes == "A2"


def test_a_name_like_a_formula_is_a_text_cell_in_the_workbook(central_viewer, event):
    sheet = workbook(central_viewer.get("/admin/results.xlsx"))["5a"]
    assert sheet["B2"].value == "=1+2" and sheet["B2"].data_type == "s"
    assert values(sheet)[0][0] == "Start number"  # English headers for an English reader


def test_ceremony_workbook_ranks_each_class_and_takes_one_class(central_viewer, event):
    book = workbook(central_viewer.get("/admin/results/classes.xlsx", headers=DE))
    assert book.sheetnames == ["5a", "5b", "10a"]
    assert values(book["5a"]) == [["Platz", "Startnummer", "Name", "Runden", "Strecke (m)"],
                                  [1, 3, "=1+2", 7, 2800], [2, 2, "Ben Cohn; Jr.", 5, 2000],
                                  [3, 5, 'Ömer "Öz" Kaya', 1, 400]]
    one = workbook(central_viewer.get("/admin/results/classes.xlsx?class=5b"))
    assert one.sheetnames == ["5b"] and values(one["5b"])[1] == [1, 4, "Dana Eck", 2, 800]


def test_a_runner_who_did_not_run_is_listed_apart_without_a_rank_in_the_workbooks(
        central_viewer, central_db, device_token, event):
    run(central_db, register(central_db, "laptop-b"),
        [(6, "Nils Null", "5b", 0), (7, "Vera Voided", "5b", 2)],
        voids={"Vera Voided": 2})                        # every lap voided: she did not run
    sheet = workbook(central_viewer.get("/admin/results/classes.xlsx?class=5b"))["5b"]
    # The ranked rows, an empty row, then a block of its own under a heading in bold.
    assert values(sheet)[1:] == [[1, 4, "Dana Eck", 2, 800], [None] * 5,
                                 ["Did not run (no lap that counts):"] + [None] * 4,
                                 [None, 6, "Nils Null", None, None],
                                 [None, 7, "Vera Voided", None, None]]
    assert sheet["A4"].font.bold and not sheet["A2"].font.bold
    rows = values(workbook(central_viewer.get("/admin/results.xlsx"))["5b"])
    assert [row[1] for row in rows[1:]] == ["Dana Eck", "Nils Null", "Vera Voided"]


def test_ceremony_workbook_of_an_unknown_class_is_a_404(central_viewer, event):
    response = central_viewer.get("/admin/results/classes.xlsx?class=9z", headers=DE)
    assert response.status_code == 404
    assert "Klasse 9z" in response.get_data(as_text=True)


def test_workbooks_of_an_empty_roster_have_one_sheet_with_the_header(central_viewer):
    book = workbook(central_viewer.get("/admin/results.xlsx"))
    assert len(book.sheetnames) == 1 and values(book.worksheets[0])[0][0] == "Start number"


@pytest.mark.parametrize("path", ["/admin/results-de.csv", "/admin/results.xlsx",
                                  "/admin/results/classes.xlsx"])
def test_exports_need_a_login(central_client, path):
    response = central_client.get(path)
    assert response.status_code in (302, 401) and not re.search(r"Anna", response.get_data(as_text=True))


def test_every_results_file_marks_a_runner_who_did_not_run_in_a_last_column(
        central_viewer, central_db, device_token, event):
    run(central_db, register(central_db, "laptop-b"),
        [(6, "Nils Null", "5b", 0), (7, "Vera Voided", "5b", 2)],
        voids={"Vera Voided": 2})                        # every lap voided: she did not run
    english = list(csv.DictReader(io.StringIO(
        central_viewer.get("/admin/results.csv").get_data().decode("utf-8-sig"), newline="")))
    assert list(english[0]) == ["start_number", "name", "class", "grade", "laps", "distance_m",
                                "did_not_run"]
    assert {row["name"]: row["did_not_run"] for row in english if row["class"] == "5b"} == {
        "Dana Eck": "", "Nils Null": "yes", "Vera Voided": "yes"}
    assert sum(row["did_not_run"] == "yes" for row in english) == 2
    german = list(csv.DictReader(io.StringIO(
        central_viewer.get("/admin/results-de.csv").get_data().decode("utf-8-sig"),
        newline=""), delimiter=";"))
    assert list(german[0])[-1] == "Nicht gelaufen" and len(german[0]) == 8
    assert {row["Name"]: (row["Runden"], row["Nicht gelaufen"]) for row in german
            if row["Klasse"] == "5b"} == {"Dana Eck": ("2", ""), "Nils Null": ("0", "ja"),
                                          "Vera Voided": ("0", "ja")}
    sheet = values(workbook(central_viewer.get("/admin/results.xlsx"))["5b"])
    assert sheet[0][-1] == "Did not run"
    assert [(row[1], row[4], row[6]) for row in sheet[1:]] == [
        ("Dana Eck", 2, None), ("Nils Null", 0, "yes"), ("Vera Voided", 0, "yes")]


def test_the_ceremony_workbook_says_when_nobody_in_a_class_ran(
        central_viewer, central_db, device_token, event):
    run(central_db, register(central_db, "laptop-b"),
        [(6, "Nils Null", "6c", 0), (7, "Vera Voided", "6c", 2)], voids={"Vera Voided": 2})
    book = workbook(central_viewer.get("/admin/results/classes.xlsx"))
    assert values(book["6c"]) == [
        ["Rank", "Start number", "Name", "Laps", "Distance (m)"],
        ["Nobody in 6c ran."] + [None] * 4, [None] * 5,
        ["Did not run (no lap that counts):"] + [None] * 4,
        [None, 6, "Nils Null", None, None], [None, 7, "Vera Voided", None, None]]
    assert values(book["5a"])[-1] == [3, 5, 'Ömer "Öz" Kaya', 1, 400]   # all ran: no block
    german = workbook(central_viewer.get("/admin/results/classes.xlsx?class=6c", headers=DE))
    assert values(german["6c"])[3][0] == "Nicht gelaufen (keine zählende Runde):"

"""The laptop imports a roster from an Excel workbook: the upload page and import-runners."""
from __future__ import annotations

import io

from lapsync.laptop.runners import search_runners
from tests.core.test_roster_file import HEADER, xlsx

DE = {"Accept-Language": "de-DE,de;q=0.9"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def upload(client, data: bytes, filename: str = "klassen.xlsx", **kwargs):
    """Post a file to the import page."""
    form = {"file": (io.BytesIO(data), filename, XLSX), "csrf_token": client.csrf}
    return client.post("/runners/import", data=form, content_type="multipart/form-data", **kwargs)


def count(db, table: str) -> int:
    """Return how many runners (or changes of runners) a table holds."""
    where = " WHERE entity = 'runner'" if table == "change" else ""
    return db.execute(f"SELECT count(*) FROM [{table}]{where}").fetchone()[0]


def test_upload_page_imports_a_workbook(admin, db):
    data = xlsx([HEADER, ["Anna Müller", "5a", 5, 17], ["Ömer Öz", "10b", 10, None]])
    response = upload(admin, data)
    assert response.status_code == 302
    assert {(r["start_number"], r["name"], r["class"]) for r in search_runners(db)} == {
        (17, "Anna Müller", "5a"), (90000, "Ömer Öz", "10b")}
    assert count(db, "change") == 2  # both go to central with the next push


def test_upload_page_reports_a_bad_workbook_by_sheet_row_in_german(admin, db):
    data = xlsx([HEADER, ["Anna", "5a", 5, 17], [], ["Ben", "5a", 99, None]])
    response = upload(admin, data, headers=DE)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<td>4</td><td>Der Jahrgang muss zwischen 1 und 13 liegen.</td>" in html
    assert "in einer Excel-Datei ist die Zeile die Zeilennummer des Tabellenblatts" in html
    assert count(db, "runner") == 0 and count(db, "change") == 0


def test_import_page_says_that_excel_works(admin):
    html = admin.get("/runners/import", headers=DE).get_data(as_text=True)
    assert "Läufer aus CSV oder Excel importieren" in html
    assert "Eine Excel-Arbeitsmappe (.xlsx) geht auch" in html and ".xlsx" in html


def test_import_runners_command_reads_a_workbook(app, db, tmp_path):
    good, bad = tmp_path / "klassen.xlsx", tmp_path / "falsch.xlsx"
    good.write_bytes(xlsx([HEADER, ["Eva", "7a", 7, 5], ["Finn", "7a", 7, 6]]))
    bad.write_bytes(xlsx([HEADER, ["Gil", "7a", "sieben", 7]]))
    result = app.test_cli_runner().invoke(args=["import-runners", str(bad)])
    assert result.exit_code == 1
    assert "line 2: The grade must be a whole number." in result.output
    result = app.test_cli_runner().invoke(args=["import-runners", str(good)])
    assert result.exit_code == 0 and "Imported 2 runners from" in result.output
    assert [r["name"] for r in search_runners(db)] == ["Eva", "Finn"]

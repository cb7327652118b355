"""Central imports a roster from an Excel workbook: the upload page and import-runners."""
from __future__ import annotations

import io

from sync.roster import search_runners
from tests.central.cli import refused_then_imported
from tests.core.test_roster_file import HEADER, xlsx

DE = {"Accept-Language": "de-DE,de;q=0.9"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def upload(client, data: bytes, filename: str = "klassen.xlsx", **kwargs):
    """Post a file to central's import page."""
    form = {"file": (io.BytesIO(data), filename, XLSX), "csrf_token": client.csrf}
    return client.post("/runners/import", data=form, content_type="multipart/form-data", **kwargs)


def names(conn) -> list[str]:
    """Return central's runners' names as the roster lists them."""
    return [r["name"] for r in search_runners(conn)]


def test_upload_page_imports_a_workbook_for_every_laptop(central_admin, central_db):
    data = xlsx([HEADER, ["Anna Müller", "10a", 10, 17], ["Ömer Öz", "5b", 5, None]])
    assert upload(central_admin, data).status_code == 302
    rows = central_db.execute("SELECT start_number, name, class, change_id FROM runner "
                              "ORDER BY start_number").fetchall()
    assert [(r["start_number"], r["name"], r["class"]) for r in rows] == [
        (17, "Anna Müller", "10a"), (18, "Ömer Öz", "5b")]
    assert all(r["change_id"] for r in rows)
    assert names(central_db) == ["Ömer Öz", "Anna Müller"]  # 5b before 10a


def test_upload_page_reports_a_bad_workbook_by_sheet_row_and_changes_nothing(central_admin,
                                                                            central_db):
    data = xlsx([[], HEADER, ["Anna", "5a", 5, 17], ["Ben", "5a", 5, 17]])
    response = upload(central_admin, data, headers=DE)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<td>4</td><td>Die Startnummer 17 steht auch in Zeile 3.</td>" in html
    assert names(central_db) == []


def test_import_runners_command_reads_csv_and_workbooks(central_app, central_db, tmp_path):
    good, bad = tmp_path / "klassen.xlsx", tmp_path / "falsch.csv"
    good.write_bytes(xlsx([HEADER, ["Eva", "7a", 7, 5], ["Finn", "7a", 7, 6]]))
    bad.write_text("Name,Klasse,Jahrgang\nGil,7a,sieben\n", encoding="utf-8")
    refused, imported = refused_then_imported(central_app, "import-runners", bad, good)
    assert "line 2: The grade must be a whole number." in refused
    assert "Imported 2 runners from" in imported
    assert names(central_db) == ["Eva", "Finn"]
    assert "XLSX" in central_app.test_cli_runner().invoke(args=["import-runners", "--help"]).output

"""Rosters as Excel workbooks (lapsync/roster_file.py): the CSV's rules, the sheet's row numbers."""
from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lapsync import roster_csv
from lapsync.roster_csv import MAX_ROWS, NumberPool, RosterError
from lapsync.roster_file import parse_roster
from lapsync.runners import validate_runner

HEADER = ["Name", "Klasse", "Jahrgang", "Startnummer"]


def xlsx(rows: list[list], *more_sheets: list[list]) -> bytes:
    """Return a workbook whose first sheet holds rows (None: an empty cell)."""
    book = openpyxl.Workbook(write_only=True)
    for sheet_rows in (rows, *more_sheets):
        sheet = book.create_sheet()
        for row in sheet_rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def problems(data: bytes, existing=(), **kwargs) -> list[tuple[int, str]]:
    """Return the report of a refused roster as (line, message) pairs."""
    with pytest.raises(RosterError) as caught:
        parse_roster(data, list(existing), validate_runner, **kwargs)
    return [(p.line, p.message) for p in caught.value.problems]


def test_a_workbook_imports_like_its_csv():
    rows = [HEADER, ["Anna Müller", "5a", 5, 17], ["Ben Öz", "10b", 10, None],
            ["Cem Groß", "Q1", "11", ""]]
    from_xlsx = parse_roster(xlsx(rows), [], validate_runner)
    csv_text = "\n".join(",".join("" if c is None else str(c) for c in row) for row in rows)
    assert from_xlsx == roster_csv.parse_roster(csv_text.encode(), [], validate_runner)
    assert from_xlsx[0] == {"start_number": 17, "name": "Anna Müller", "class": "5a", "grade": 5}
    assert [r["start_number"] for r in from_xlsx] == [17, 18, 19]


def test_numbers_typed_as_numbers_or_text_and_columns_in_any_order():
    rows = [["jahrgang", " KLASSE ", "name"], [5.0, 5, "Eva"], ["6", "6b", "Finn"]]
    assert parse_roster(xlsx(rows), [], validate_runner) == [
        {"start_number": 1, "name": "Eva", "class": "5", "grade": 5},
        {"start_number": 2, "name": "Finn", "class": "6b", "grade": 6}]


def test_the_report_names_the_sheets_row_numbers():
    rows = [[], ["Titel: Klassenliste 2025"], [], HEADER]  # the first filled row is the header
    assert problems(xlsx(rows)) == [(2, "Wrong header (unknown column 'titel: klassenliste "
                                        "2025'; missing Name, Klasse, Jahrgang): expected Name, "
                                        "Klasse, Jahrgang and optionally Startnummer.")]
    rows = [HEADER, ["Anna", "5a", 5, 17], [], [], ["Ben", "5a", 99, None],
            ["Cem", "5a", 5, 17], ["Dana", "5a", 5, "x7"]]
    assert problems(xlsx(rows)) == [
        (5, "The grade must be 1 to 13."),
        (6, "Start number 17 is also on line 2."),
        (7, "The start number 'x7' is not valid: use digits only, e.g. 17.")]


def test_empty_cells_at_the_end_are_empty_columns_but_a_filled_extra_cell_is_refused():
    rows = [["Name", "Klasse", "Jahrgang", "Startnummer"], ["Anna", "5a", 5],
            ["Ben", "5a", 5, None, None, None], ["Cem", "5a", 5, 3, None, "Notiz"]]
    assert problems(xlsx(rows)) == [(4, "Expected 4 columns, found 6.")]
    assert len(parse_roster(xlsx(rows[:3]), [], validate_runner)) == 2


def test_only_the_first_sheet_is_read():
    data = xlsx([HEADER, ["Anna", "5a", 5, 1]], [["Unsinn"], ["x", "y", "z", "w", "v"]])
    assert [r["name"] for r in parse_roster(data, [], validate_runner)] == ["Anna"]


@pytest.mark.parametrize("rows, expected", [
    ([], (1, "The file is empty: expected the header Name,Klasse,Jahrgang and one line per runner.")),
    ([HEADER], (1, "The file has a header but no runners.")),
    ([["Name", "Klasse", "Name"]], (1, "Wrong header (missing Jahrgang; column Name twice): "
                                       "expected Name, Klasse, Jahrgang and optionally Startnummer.")),
])
def test_an_empty_or_headless_workbook_is_refused(rows, expected):
    assert problems(xlsx(rows)) == [expected]


def test_runners_already_on_the_roster_and_a_used_up_pool_are_reported():
    rows = [HEADER, ["Anna Berg", "5a", 5, None], ["Ben", "5a", 5, None], ["Cem", "5a", 5, None]]
    pool = NumberPool(90, 91, lambda needed, free: f"{needed} need numbers, {free} free")
    assert problems(xlsx(rows), [(90, "anna  berg", "5A")], pool=pool) == [
        (2, "Anna Berg (5a) is already on the roster with start number 90."),
        (3, "3 need numbers, 1 free")]


def test_too_many_rows_are_refused_at_the_first_row_too_many(monkeypatch):
    monkeypatch.setattr(roster_csv, "MAX_ROWS", 20)  # the CSV's limit, 10,000, made small
    rows = [HEADER, []] + [[f"K{i}", "5a", 5, None] for i in range(21)]
    assert problems(xlsx(rows)) == [(23, "Too many rows: at most 20 runners per file.")]
    assert len(parse_roster(xlsx(rows[:-1]), [], validate_runner)) == 20
    assert MAX_ROWS == 10_000


def test_a_zip_that_is_no_workbook_and_a_too_large_file_are_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    assert problems(out.getvalue()) == [(1, "The file cannot be read as an Excel workbook (XLSX).")]
    big = b"PK\x03\x04" + b"\0" * roster_csv.MAX_BYTES
    assert problems(big) == [(1, "The file is larger than 4 MB.")]



def test_a_workbook_that_unpacks_to_more_than_64_mb_is_refused_before_it_is_read():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", b" " * (65 * 1024 * 1024))
    assert len(out.getvalue()) < roster_csv.MAX_BYTES  # small packed: a zip bomb
    assert problems(out.getvalue()) == [(1, "The file is larger than 64 MB.")]


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp",
                                                                   "Co", "Cn")),
                min_size=1, max_size=30).filter(lambda s: s.strip() and s.strip()[0] not in "=")


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(names, st.sampled_from(["5a", "10b", "Q1"]), st.integers(1, 13)),
                min_size=1, max_size=8, unique_by=lambda r: (r[0].strip().casefold(), r[1])))
def test_any_roster_reads_the_same_from_csv_and_xlsx(rows):
    data = [["Name", "Klasse", "Jahrgang"], *[[name, class_, grade] for name, class_, grade in rows]]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(data)
    try:
        expected = roster_csv.parse_roster(buffer.getvalue().encode(), [], validate_runner)
    except RosterError as exc:
        expected = [p.as_dict() for p in exc.problems]
    try:
        got = parse_roster(xlsx(data), [], validate_runner)
    except RosterError as exc:
        got = [p.as_dict() for p in exc.problems]
    assert got == expected

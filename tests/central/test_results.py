"""Results out: the Excel-safe CSV export, ceremony lists per class, certificates."""
from __future__ import annotations

import csv
import io

import pytest

from lapsync.ids import new_id
from lapsync.protocol import validate_push
from sync.devices import find_device
from sync.push import push
from sync.results import distance_m, excel_safe, export_filename
from sync.settings import set_setting
from tests.pg import Outbox, register

BOM = b"\xef\xbb\xbf"


def run(conn, token: str, runners: list[tuple[int, str, str, int]], voids: dict | None = None) -> dict:
    """Push runners (number, name, class, laps) from one laptop, voiding voids[name] laps."""
    box, ids = Outbox(), {}
    for number, name, class_, laps in runners:
        ids[name] = box.runner(number, name, class_, int(class_[:1]) if class_[:1].isdigit() else 5)
        lap_ids = [box.lap(ids[name]) for _ in range(laps)]
        for lap_id in lap_ids[:(voids or {}).get(name, 0)]:
            box.void(lap_id)
    push(conn, find_device(conn, token), validate_push(box.body()))
    return ids


def late_laps(conn, runner_id: str, laps: int) -> None:
    """Push laps for a runner central knows from another laptop, as if typed late."""
    box = Outbox()
    for _ in range(laps):
        box.lap(runner_id)
    push(conn, find_device(conn, register(conn, f"late-{new_id()[:6]}")), validate_push(box.body()))


def read_csv(response, data: bytes | None = None) -> list[list[str]]:
    """Parse a CSV download the way Excel's importer would: UTF-8 with BOM."""
    data = response.get_data() if data is None else data
    assert data.startswith(BOM)
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def ranking(page: str, *columns: str) -> list[tuple[str, ...]]:
    """Return the text of the given cells (by class) of every ranked row of a page."""
    return [tuple(row.split(f'class="{column}">')[1].split("<")[0] for column in columns)
            for row in page.split("<tr data-runner")[1:]]


@pytest.fixture
def event(central_db, device_token) -> dict:
    """Four runners in two classes with laps (two voided), 400 m per lap, a named event."""
    set_setting(central_db, "metres_per_lap", 400)
    set_setting(central_db, "event_name", "Sponsorenlauf Müllerstraße 2025")
    set_setting(central_db, "event_date", "2025-06-27")
    return run(central_db, device_token, [
        (1, "Anna Berg", "10a", 3), (2, "Ben Cohn", "5a", 5), (3, "Cem Demir", "5a", 7),
        (4, "Dana Eck", "5a", 5)], voids={"Cem Demir": 2})


# --- results.csv ------------------------------------------------------------------------

def test_csv_has_the_columns_and_rows_sorted_by_class_then_laps(central_viewer, event):
    response = central_viewer.get("/admin/results.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    assert read_csv(response) == [
        ["start_number", "name", "class", "grade", "laps", "distance_m", "did_not_run"],
        ["2", "Ben Cohn", "5a", "5", "5", "2000", ""],
        ["3", "Cem Demir", "5a", "5", "5", "2000", ""],  # 7 laps, 2 voided
        ["4", "Dana Eck", "5a", "5", "5", "2000", ""],
        ["1", "Anna Berg", "10a", "1", "3", "1200", ""],
    ]


def test_csv_file_name_carries_the_sanitised_event_name(central_viewer, event):
    disposition = central_viewer.get("/admin/results.csv").headers["Content-Disposition"]
    assert disposition == 'attachment; filename="results-Sponsorenlauf-Mullerstrasse-2025.csv"'


FORMULAS = ['=HYPERLINK("http://x.example","click")', "+1", "-2", "@SUM(A1)", "=1+2"]


def test_csv_neutralises_formulas(central_admin, central_db, device_token):
    run(central_db, device_token, [(n, name, "-5a", 1) for n, name in enumerate(FORMULAS, 1)]
        + [(99, "Plain Name", "5a", 0)])
    rows = read_csv(central_admin.get("/admin/results.csv"))
    cells = {int(row[0]): row for row in rows[1:]}
    for number, name in enumerate(FORMULAS, 1):
        assert cells[number][1:3] == ["'" + name, "'-5a"]
    assert cells[99][1:3] == ["Plain Name", "5a"]


def test_csv_distance_follows_metres_per_lap(central_admin, central_db, device_token):
    run(central_db, device_token, [(1, "Anna", "5a", 3)])
    assert read_csv(central_admin.get("/admin/results.csv"))[1][5] == ""  # no setting yet
    set_setting(central_db, "metres_per_lap", 400.5)
    assert read_csv(central_admin.get("/admin/results.csv"))[1][4:] == ["3", "1201.5", ""]


def test_csv_streams_thousands_of_runners_in_chunks(central_admin, central_db):
    central_db.execute(
        "INSERT INTO runner (id, start_number, name, class, grade, hlc, origin, change_id) "
        "SELECT 'r' || n, n, 'Runner ' || n, '7b', 7, '0', 'x', n FROM generate_series(1, 2500) n")
    central_db.execute("INSERT INTO runner_total (runner_id, laps, change_id) "
                       "SELECT 'r' || n, n % 50, n FROM generate_series(1, 2500) n")
    response = central_admin.get("/admin/results.csv")
    chunks = list(response.iter_encoded())
    assert len(chunks) >= 3  # BOM and header go out with the first rows, then 1000 at a time
    rows = read_csv(response, b"".join(chunks))
    assert len(rows) == 2501 and rows[1][4] == "49" and rows[-1][4] == "0"
    assert sorted(int(r[0]) for r in rows[1:]) == list(range(1, 2501))


def test_csv_of_an_empty_roster_is_just_the_header(central_viewer):
    response = central_viewer.get("/admin/results.csv")
    assert read_csv(response) == [["start_number", "name", "class", "grade", "laps", "distance_m",
                                   "did_not_run"]]
    assert 'filename="results.csv"' in response.headers["Content-Disposition"]


def test_results_need_a_login(central_client):
    for path in ("/admin/results", "/admin/results.csv", "/admin/results/classes",
                 "/admin/certificates/runner/x", "/admin/certificates/class/5a"):
        response = central_client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("value, expected", [
    ("=A1", "'=A1"), ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("Anna", "Anna"), ("a=b", "a=b"), ("", ""), (17, 17),
    # German Excel splits on ";": each piece after one is neutralised too
    ("x;=1+1;", "x;'=1+1;"), ("a;+b;-c;@d", "a;'+b;'-c;'@d"), ("=a;=b", "'=a;'=b"),
    ("a; =b", "a; =b"), ("a,=b", "a,=b"), ("Müller; Anna", "Müller; Anna"), (1.5, 1.5)])
def test_excel_safe(value, expected):
    assert excel_safe(value) == expected


@pytest.mark.parametrize("event_name, filename", [
    (None, "results.csv"), ("", "results.csv"), ("€€€", "results.csv"),
    ('Lauf "2025"/../x; evil\r\n', "results-Lauf-2025-x-evil.csv"),
    ("Spendenlauf Grundschule Äpfelweg", "results-Spendenlauf-Grundschule-Apfelweg.csv"),
    ("x" * 100, "results-" + "x" * 60 + ".csv")])
def test_export_filename(event_name, filename):
    assert export_filename(event_name) == filename


def test_distance_m():
    assert distance_m(3, 400) == 1200 and isinstance(distance_m(3, 400), int)
    assert distance_m(3, 400.1) == 1200.3 and distance_m(2, 400.0) == 800
    assert distance_m(5, None) is None


# --- ceremony lists ---------------------------------------------------------------------

def test_class_lists_rank_by_laps_one_class_per_page(central_viewer, central_db, device_token, event):
    page = central_viewer.get("/admin/results/classes").get_data(as_text=True)
    assert page.index('data-class="5a"') < page.index('data-class="10a"')
    assert page.count('class="class-block class-list"') == 2
    five_a = page[page.index('data-class="5a"'):page.index('data-class="10a"')]
    assert ranking(five_a, "rank", "name") == [("1.", "Ben Cohn"), ("1.", "Cem Demir"),
                                               ("1.", "Dana Eck")]
    assert "2 km" in five_a and "Sponsorenlauf Müllerstraße 2025" in page


def test_ranks_skip_after_a_tie(central_viewer, central_db, device_token):
    set_setting(central_db, "metres_per_lap", 250)
    run(central_db, device_token, [(1, "A", "6a", 4), (2, "B", "6a", 9), (3, "C", "6a", 4),
                                   (4, "D", "6a", 1)])
    page = central_viewer.get("/admin/results/classes?class=6a").get_data(as_text=True)
    assert ranking(page, "rank", "name", "distance") == [
        ("1.", "B", "2.25 km"), ("2.", "A", "1 km"), ("2.", "C", "1 km"), ("4.", "D", "250 m")]


def test_a_runner_who_did_not_run_is_listed_apart_without_a_rank(central_viewer, central_db,
                                                                  device_token):
    ids = run(central_db, device_token, [(1, "A", "6a", 4), (2, "Nils Null", "6a", 0),
                                         (3, "Vera Voided", "6a", 2), (4, "D", "6a", 1)],
              voids={"Vera Voided": 2})
    page = central_viewer.get("/admin/results/classes?class=6a").get_data(as_text=True)
    assert ranking(page, "rank", "name") == [("1.", "A"), ("2.", "D")]
    absent = page[page.index('class="did-not-run"'):]
    assert "Did not run (no lap that counts):" in absent
    assert f'data-absent="{ids["Nils Null"]}">Nils Null (2)' in absent
    assert f'data-absent="{ids["Vera Voided"]}">Vera Voided (3)' in absent
    late_laps(central_db, ids["Nils Null"], 5)                    # his laps arrive after all
    page = central_viewer.get("/admin/results/classes?class=6a").get_data(as_text=True)
    assert ranking(page, "rank", "name") == [("1.", "Nils Null"), ("2.", "A"), ("3.", "D")]
    assert "data-absent" in page and "Nils Null (2)" not in page


def test_class_list_of_an_unknown_class_is_a_404(central_viewer, event):
    assert central_viewer.get("/admin/results/classes?class=9z").status_code == 404


def test_print_css_breaks_pages_per_class_and_certificate(central_client):
    css = "".join(central_client.get(sheet).get_data(as_text=True)  # the page links both
                  for sheet in ("/web-static/lapsync.css", "/static/central.css"))
    assert ".class-block { break-before: page; }" in css
    assert "@page certificate { size: A4 portrait" in css
    assert ".certificate { page: certificate; height: 270mm; margin: 0; break-after: page; }" in css


# --- certificates -----------------------------------------------------------------------

def test_runner_certificate_names_event_runner_laps_and_distance(central_viewer, event):
    page = central_viewer.get(f"/admin/certificates/runner/{event['Cem Demir']}").get_data(as_text=True)
    assert page.count('<article class="certificate"') == 1
    for text in ("Sponsorenlauf Müllerstraße 2025", "June 27, 2025", "Cem Demir", "Class 5a",
                 "5 laps", "2 km"):
        assert text in page


def test_certificate_in_german(central_viewer, event):
    page = central_viewer.get(f"/admin/certificates/runner/{event['Anna Berg']}",
                              headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "27. Juni 2025" in page and "1,2 km" in page


def test_certificate_without_metres_per_lap_leaves_out_the_distance(central_viewer, central_db,
                                                                     device_token):
    ids = run(central_db, device_token, [(1, "Anna", "5a", 1)])
    page = central_viewer.get(f"/admin/certificates/runner/{ids['Anna']}").get_data(as_text=True)
    assert "1 lap<" in page and "cert-distance" not in page


def test_class_certificates_one_per_runner(central_viewer, central_db, device_token, event):
    page = central_viewer.get("/admin/certificates/class/5a").get_data(as_text=True)
    assert page.count('<article class="certificate"') == 3
    assert page.index("Ben Cohn") < page.index("Cem Demir") < page.index("Dana Eck")
    assert "Anna Berg" not in page


def test_no_certificate_for_a_runner_who_did_not_run_and_the_page_says_so(
        central_viewer, central_db, device_token, event):
    ids = run(central_db, register(central_db, "laptop-b"),
              [(8, "Nils Null", "5a", 0), (9, "Vera Voided", "5a", 1)], voids={"Vera Voided": 1})
    page = central_viewer.get("/admin/certificates/class/5a").get_data(as_text=True)
    assert page.count('<article class="certificate"') == 3 and "3 certificates" in page
    note = page[page.index('id="did-not-run"'):page.index("</p>", page.index('id="did-not-run"'))]
    assert "2 runners have no lap that counts and get no certificate (did not run)" in note
    assert "Nils Null (8)" in note and "Vera Voided (9)" in note
    assert "0 laps" not in page
    one = central_viewer.get(f"/admin/certificates/runner/{ids['Nils Null']}").get_data(as_text=True)
    assert '<article class="certificate"' not in one and "0 certificates" not in one
    assert "Nils Null did not run (no lap that counts) and gets no certificate." in one
    assert 'data-action="print"' not in one                 # no button to print a blank page
    late_laps(central_db, ids["Nils Null"], 2)                        # laps typed late: he ran
    page = central_viewer.get("/admin/certificates/class/5a").get_data(as_text=True)
    assert page.count('<article class="certificate"') == 4 and "Vera Voided (9)" in page


def test_class_with_a_slash_in_its_name(central_viewer, central_db, device_token):
    run(central_db, device_token, [(1, "Anna", "5/6 b", 2)])
    assert "Anna" in central_viewer.get("/admin/certificates/class/5/6 b").get_data(as_text=True)
    index = central_viewer.get("/admin/results").get_data(as_text=True)
    assert "/admin/certificates/class/5/6%20b" in index


def test_unknown_runner_or_class_is_a_404(central_viewer, event):
    assert central_viewer.get(f"/admin/certificates/runner/{new_id()}").status_code == 404
    assert central_viewer.get("/admin/certificates/class/9z").status_code == 404


# --- the results page -------------------------------------------------------------------

def test_results_page_lists_classes_and_finds_a_runner(central_viewer, event):
    page = central_viewer.get("/admin/results").get_data(as_text=True)
    assert "/admin/results.csv" in page and 'data-class="5a"' in page
    assert page.index('data-class="5a"') < page.index('data-class="10a"')
    found = central_viewer.get("/admin/results?q=cem").get_data(as_text=True)
    assert f"/admin/certificates/runner/{event['Cem Demir']}" in found
    none = central_viewer.get("/admin/results?q=zzz").get_data(as_text=True)
    assert "No runner matches" in none


def test_merged_runners_leave_the_results(central_viewer, central_db, event):
    # Regression: a runner merged in the review queue showed up with 0 laps.
    central_db.execute("UPDATE runner SET merged_into = %s WHERE id = %s",
                       [event["Ben Cohn"], event["Dana Eck"]])
    names = [row[1] for row in read_csv(central_viewer.get("/admin/results.csv"))[1:]]
    assert "Dana Eck" not in names and "Ben Cohn" in names
    assert central_viewer.get(f"/admin/certificates/runner/{event['Dana Eck']}").status_code == 404
    assert "Dana Eck" not in central_viewer.get("/admin/results/classes").get_data(as_text=True)


def test_a_class_where_nobody_ran_gets_no_empty_printout(central_viewer, central_db,
                                                         device_token, event):
    run(central_db, register(central_db, "laptop-b"),
        [(8, "Nils Null", "6c", 0), (9, "Vera Voided", "6c", 1)], voids={"Vera Voided": 1})
    certificates = central_viewer.get("/admin/certificates/class/6c").get_data(as_text=True)
    assert "Nobody in 6c ran." in certificates and "0 certificates" not in certificates
    assert 'data-action="print"' not in certificates and "<article" not in certificates
    assert "Nils Null (8)" in certificates and "Vera Voided (9)" in certificates
    ceremony = central_viewer.get("/admin/results/classes?class=6c").get_data(as_text=True)
    assert '<p class="nobody-ran">Nobody in 6c ran.</p>' in ceremony
    assert 'class="list ranking"' not in ceremony                 # no empty table
    assert "Nils Null (8)" in ceremony[ceremony.index("nobody-ran"):]
    every = central_viewer.get("/admin/results/classes").get_data(as_text=True)
    assert every.count('class="list ranking"') == 2 and every.count("nobody-ran") == 1
    ran = central_viewer.get("/admin/certificates/class/5a").get_data(as_text=True)
    assert "3 certificates, one per A4 page." in ran and 'data-action="print"' in ran
    assert "Nobody" not in ran

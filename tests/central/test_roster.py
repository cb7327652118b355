"""Central roster: CSV import (laptop rules), add and edit runners, start-number sheets, labels."""
from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image, ImageDraw

from lapsync.protocol import validate_push
from sync.clock import node_id
from sync.devices import find_device
from sync.labels import code128_svg
from sync.pull import pull
from sync.push import push
from tests.pg import Outbox, snapshot


def upload(client, data: bytes, filename: str = "roster.csv", csrf: bool = True, **headers):
    """Post a roster file to the import form."""
    form = {"file": (io.BytesIO(data), filename)}
    if csrf:
        form["csrf_token"] = client.csrf
    return client.post("/runners/import", data=form, content_type="multipart/form-data",
                       headers=headers)


def runners(conn) -> list[dict]:
    """Return central's runners by start number."""
    return conn.execute("SELECT * FROM runner ORDER BY start_number").fetchall()


def pulled_runners(conn, token: str) -> dict:
    """Return {runner id: data} of the runners a laptop would pull from scratch."""
    page = pull(conn, find_device(conn, token), 0, 1000)
    return {c["id"]: c["data"] for c in page["changes"] if c["entity"] == "runner"}


_boxes: dict[str, Outbox] = {}


def pushed_runner(conn, token: str, start_number: int, name: str, class_: str = "5a",
                  runner_id: str | None = None) -> str:
    """Add (or edit) a runner on the laptop of token and push it; return its id."""
    box = _boxes.setdefault(token, Outbox())
    runner_id = box.runner(start_number, name, class_, runner_id=runner_id)
    push(conn, find_device(conn, token), validate_push(box.body()))
    return runner_id


def add(client, **fields):
    """Post the add-runner form."""
    form = {"start_number": "", "name": "Mia", "class": "5a", "grade": "5", **fields}
    return client.post("/runners/new", data={**form, "csrf_token": client.csrf})


# --- CSV import -------------------------------------------------------------------------

def test_import_adds_every_runner_for_every_laptop_to_pull(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 40, "Lena Alt")
    before = central_db.execute("SELECT last_value FROM change_id_seq").fetchone()["last_value"]
    response = upload(central_admin, "Name,Klasse,Jahrgang,Startnummer\nAnna Berg,5a,5,\n"
                      "Ben Cohn,6b,6,50\nCem Demir,5a,5,\n".encode())
    assert response.status_code == 302
    rows = runners(central_db)
    assert [(r["start_number"], r["name"]) for r in rows] == [
        (40, "Lena Alt"), (50, "Ben Cohn"), (51, "Anna Berg"), (52, "Cem Demir")]
    imported = [r for r in rows if r["name"] != "Lena Alt"]
    assert all(r["origin"] == node_id(central_db) and r["change_id"] > before for r in imported)
    assert len({r["change_id"] for r in imported}) == 3
    pulled = pulled_runners(central_db, device_token)
    assert {pulled[r["id"]]["name"] for r in imported} == {"Anna Berg", "Ben Cohn", "Cem Demir"}
    assert "Imported 3 runners from roster.csv" in central_admin.get("/runners/").get_data(as_text=True)


def test_import_reads_the_school_office_encodings(central_admin, central_db):
    files = {"windows-1252 with semicolons": "Name;Klasse;Jahrgang\nJürgen Öz;5a;5\n".encode("cp1252"),
             "UTF-8 with BOM": "\ufeffName,Klasse,Jahrgang\nÄda Ünal,5a,5\n".encode("utf-8"),
             "any column order, CRLF": "Jahrgang,Name,Klasse\r\n6,SSara Œ,6b\r\n".encode("utf-8"),
             "UTF-16 is refused": "Name,Klasse,Jahrgang\nX,5a,5\n".encode("utf-16")}
    statuses = {label: upload(central_admin, data).status_code for label, data in files.items()}
    assert statuses == dict.fromkeys(list(files)[:3], 302) | {"UTF-16 is refused": 422}
    assert [(r["start_number"], r["name"], r["class"], r["grade"]) for r in runners(central_db)] == [
        (1, "Jürgen Öz", "5a", 5), (2, "Äda Ünal", "5a", 5), (3, "SSara Œ", "6b", 6)]


def test_a_bad_file_is_refused_whole_with_every_bad_line(central_admin, central_db):
    before = snapshot(central_db)
    response = upload(central_admin, b"Name,Klasse,Jahrgang\nAnna,5a,5\nBen,6b,14\n,5a,5\n")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Nothing was changed" in page and "2 problems" in page
    assert "<td>3</td>" in page and "<td>4</td>" in page
    assert snapshot(central_db) == before


def test_a_start_number_in_use_at_central_is_refused(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 17, "Lena Alt")
    before = snapshot(central_db)
    response = upload(central_admin, b"Name,Klasse,Jahrgang,Startnummer\nAnna,5a,5,17\n")
    assert response.status_code == 422 and "already used" in response.get_data(as_text=True)
    assert snapshot(central_db) == before


def test_a_runner_already_at_central_is_refused(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 3, "Lena Alt", "5a")
    response = upload(central_admin, b"Name,Klasse,Jahrgang\nlena  alt,5A,5\n")
    assert response.status_code == 422 and "already on the roster" in response.get_data(as_text=True)


def test_import_report_as_json_for_json_clients(central_admin, central_db):
    response = upload(central_admin, b"Name,Klasse\nAnna,5a\n", Accept="application/json")
    body = response.get_json()
    assert response.status_code == 422 and body["error"] == "invalid_roster"
    assert body["problems"][0]["line"] == 1 and runners(central_db) == []


def test_import_without_a_file_is_a_400(central_admin, central_db):
    response = central_admin.post("/runners/import", data={"csrf_token": central_admin.csrf})
    assert response.status_code == 400 and "Choose a CSV or Excel file" in response.get_data(as_text=True)


def test_import_leaves_existing_clashes_alone_and_adds_none(central_admin, central_db, device_token):
    first = pushed_runner(central_db, device_token, 9, "Ida")
    second = pushed_runner(central_db, device_token, 9, "Ole")
    assert upload(central_admin, b"Name,Klasse,Jahrgang\nAnna,5a,5\nBen,5a,5\n").status_code == 302
    clashes = central_db.execute("SELECT kind, runner_a, runner_b FROM clash").fetchall()
    assert clashes == [{"kind": "start_number", "runner_a": min(first, second),
                        "runner_b": max(first, second)}]


def test_viewer_may_not_import(central_viewer, central_db):
    assert central_viewer.get("/runners/import").status_code == 403
    response = upload(central_viewer, b"Name,Klasse,Jahrgang\nAnna,5a,5\n")
    assert response.status_code == 403 and runners(central_db) == []


def test_import_without_csrf_token_is_a_400(central_admin, central_db):
    response = upload(central_admin, b"Name,Klasse,Jahrgang\nAnna,5a,5\n", csrf=False)
    assert response.status_code == 400 and runners(central_db) == []


def test_anonymous_users_go_to_login(central_client):
    for path in ("/runners/", "/runners/new", "/runners/import", "/runners/sheets", "/runners/labels"):
        response = central_client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- add and edit -----------------------------------------------------------------------

def test_add_takes_the_next_number_after_the_highest(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 41, "Lena Alt")
    response = add(central_admin, name="  Mia Sommer ", **{"class": "6c"}, grade="6")
    assert response.status_code == 302
    mia = runners(central_db)[-1]
    assert (mia["start_number"], mia["name"], mia["class"], mia["grade"]) == (42, "Mia Sommer", "6c", 6)
    assert mia["origin"] == node_id(central_db)
    assert pulled_runners(central_db, device_token)[mia["id"]]["hlc"] == mia["hlc"]


def test_a_runner_with_the_highest_number_leaves_the_forms_open_and_numbers_from_below(
        central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 1, "Lena Alt")
    response = add(central_admin, start_number="999999", name="Zoe Ende", **{"class": "6c"},
                   grade="6")
    assert response.status_code == 302
    zoe = runners(central_db)[-1]
    assert central_admin.get("/runners/new").status_code == 200
    assert central_admin.get(f"/runners/{zoe['id']}/edit").status_code == 200
    assert add(central_admin, name="Mia Sommer", **{"class": "6c"}, grade="6").status_code == 302
    assert upload(central_admin, "Name,Klasse,Jahrgang,Startnummer\nAnna Berg,5a,5,\n".encode()
                  ).status_code == 302
    assert [(r["start_number"], r["name"]) for r in runners(central_db)] == [
        (1, "Lena Alt"), (2, "Mia Sommer"), (3, "Anna Berg"), (999999, "Zoe Ende")]


BAD_FIELDS = [
    ({"start_number": "abc"}, "whole number"),
    ({"start_number": "0"}, "Start numbers run from 1"),
    ({"start_number": "1000000"}, "Start numbers run from 1"),
    ({"name": "   "}, "The name must be"),
    ({"name": "x" * 101}, "The name must be"),
    ({"name": "Mia\tSommer"}, "line breaks or tabs"),
    ({"class": ""}, "The class must be"),
    ({"grade": "14"}, "The grade must be"),
    ({"grade": "５"}, "The grade must be a whole number"),
]


def test_add_refuses_bad_input_and_changes_nothing(central_admin, central_db):
    before = snapshot(central_db)
    for fields, message in BAD_FIELDS:
        response = add(central_admin, **fields)
        assert response.status_code == 422, fields
        assert message in response.get_data(as_text=True), fields
    assert snapshot(central_db) == before


def test_add_refuses_a_taken_start_number(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 17, "Lena Alt")
    before = snapshot(central_db)
    response = add(central_admin, start_number="17")
    assert response.status_code == 409 and "17 is taken" in response.get_data(as_text=True)
    assert snapshot(central_db) == before


def test_add_answers_json_clients_with_json(central_admin, central_db):
    response = central_admin.post("/runners/new", headers={"Accept": "application/json"},
                                  data={"csrf_token": central_admin.csrf, "name": "Mia",
                                        "class": "5a", "grade": "x"})
    assert response.status_code == 422 and response.get_json()["error"] == "invalid_grade"


def test_add_records_a_name_clash_for_review(central_admin, central_db, device_token):
    lena = pushed_runner(central_db, device_token, 1, "Lena Alt", "5a")
    assert add(central_admin, name="Lena Alt").status_code == 302
    clash = central_db.execute("SELECT kind, runner_a, runner_b FROM clash").fetchone()
    assert clash["kind"] == "name" and lena in (clash["runner_a"], clash["runner_b"])


def edit(client, runner: dict, **fields):
    """Post the edit form of a runner as loaded (its change id is the version)."""
    form = {"start_number": runner["start_number"], "name": runner["name"],
            "class": runner["class"], "grade": runner["grade"], "version": runner["change_id"],
            **fields}
    return client.post(f"/runners/{runner['id']}/edit", data={**form, "csrf_token": client.csrf})


def test_edit_of_a_laptop_runner_wins_on_every_laptop(central_admin, central_db, device_token):
    runner_id = pushed_runner(central_db, device_token, 5, "Lena Alt")
    old = runners(central_db)[0]
    page = central_admin.get(f"/runners/{runner_id}/edit").get_data(as_text=True)
    assert f'name="version" value="{old["change_id"]}"' in page
    assert edit(central_admin, old, name="Lena Neu", grade="6").status_code == 302
    new = runners(central_db)[0]
    assert (new["name"], new["grade"], new["origin"]) == ("Lena Neu", 6, node_id(central_db))
    assert (new["hlc"], new["origin"]) > (old["hlc"], old["origin"])
    assert new["change_id"] > old["change_id"]
    assert pulled_runners(central_db, device_token)[runner_id]["name"] == "Lena Neu"


def test_edit_of_a_runner_changed_meanwhile_is_refused(central_admin, central_db, device_token):
    runner_id = pushed_runner(central_db, device_token, 5, "Lena Alt")
    stale = runners(central_db)[0]
    pushed_runner(central_db, device_token, 5, "Lena Laptop", runner_id=runner_id)
    before = snapshot(central_db)
    response = edit(central_admin, stale, name="Lena Admin")
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "changed by someone else" in page
    assert 'value="Lena Laptop"' in page  # the form shows what is stored now
    assert snapshot(central_db) == before


def test_edit_refuses_a_taken_number_and_bad_input(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 5, "Lena Alt")
    pushed_runner(central_db, device_token, 6, "Ole Berg")
    lena = runners(central_db)[0]
    before = snapshot(central_db)
    assert edit(central_admin, lena, start_number="6").status_code == 409
    assert edit(central_admin, lena, grade="0").status_code == 422
    assert edit(central_admin, lena, version="").status_code == 409
    assert snapshot(central_db) == before


def test_edit_resolves_a_start_number_clash(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 17, "Ida")
    pushed_runner(central_db, device_token, 17, "Ole")
    ole = next(r for r in runners(central_db) if r["name"] == "Ole")
    assert edit(central_admin, ole, start_number="18").status_code == 302
    clash = central_db.execute("SELECT resolved_at FROM clash").fetchone()
    assert clash["resolved_at"] is not None


def test_edit_of_an_unknown_runner_is_a_404(central_admin):
    assert central_admin.get("/runners/nobody/edit").status_code == 404
    response = central_admin.post("/runners/nobody/edit", data={
        "csrf_token": central_admin.csrf, "start_number": "1", "name": "A", "class": "5a",
        "grade": "5", "version": "1"})
    assert response.status_code == 404


def test_viewer_sees_the_list_but_may_not_add_or_edit(central_viewer, central_db, device_token):
    runner_id = pushed_runner(central_db, device_token, 5, "Lena Alt")
    page = central_viewer.get("/runners/")
    assert page.status_code == 200 and "Lena Alt" in page.get_data(as_text=True)
    assert "/runners/new" not in page.get_data(as_text=True)
    before = snapshot(central_db)
    assert central_viewer.get("/runners/new").status_code == 403
    assert add(central_viewer, name="Mia").status_code == 403
    assert edit(central_viewer, runners(central_db)[0], name="X").status_code == 403
    assert central_viewer.get(f"/runners/{runner_id}/edit").status_code == 403
    assert snapshot(central_db) == before


def test_add_without_csrf_token_is_a_400(central_admin, central_db):
    response = central_admin.post("/runners/new", data={"name": "Mia", "class": "5a", "grade": "5"})
    assert response.status_code == 400 and runners(central_db) == []


def test_list_searches_by_name_number_and_class(central_admin, central_db, device_token):
    for number, name, class_ in [(1, "Anna", "10a"), (2, "Ben", "5a"), (3, "Anton", "5a")]:
        pushed_runner(central_db, device_token, number, name, class_)
    page = central_admin.get("/runners/?q=an").get_data(as_text=True)
    assert "Anna" in page and "Anton" in page and "Ben" not in page
    page = central_admin.get("/runners/?q=2").get_data(as_text=True)
    assert "Ben" in page and "Anna" not in page
    page = central_admin.get("/runners/?class=5a").get_data(as_text=True)
    assert "Ben" in page and "Anton" in page and "Anna" not in page
    classes = central_admin.get("/runners/").get_data(as_text=True)
    assert classes.index('<option value="5a"') < classes.index('<option value="10a"')


# --- start-number sheets ----------------------------------------------------------------

def test_sheets_print_one_big_number_per_runner(central_viewer, central_db, device_token):
    central_db.execute("INSERT INTO setting (key, value, change_id) VALUES "
                       "('event_name', '\"Sponsorenlauf 2025\"', 1)")
    for number, name, class_ in [(7, "Anna", "5a"), (8, "Ben", "6b"), (9, "Cem", "5a")]:
        pushed_runner(central_db, device_token, number, name, class_)
    page = central_viewer.get("/runners/sheets").get_data(as_text=True)
    assert page.count('class="bib-sheet"') == 3 and "per-page-1" in page
    assert '<p class="bib-number digits-1">7</p>' in page and "Sponsorenlauf 2025" in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))                      # no id twice (a barcode's, say)
    one_class = central_viewer.get("/runners/sheets?class=5a&per_page=2").get_data(as_text=True)
    assert one_class.count('class="bib-sheet"') == 2 and "per-page-2" in one_class
    assert "Ben" not in one_class and "Class 5a" in one_class


def test_sheets_refuse_an_unknown_class_and_a_bad_layout(central_viewer):
    assert central_viewer.get("/runners/sheets?class=9z").status_code == 404
    assert central_viewer.get("/runners/sheets?per_page=3").status_code == 400


def test_print_css_puts_each_sheet_on_its_own_page(central_client):
    css = central_client.get("/static/central.css").get_data(as_text=True)
    assert "@page bib-one" in css and ".per-page-1 .bib-sheet { page: bib-one" in css


def test_a_merged_runner_leaves_the_roster_and_frees_its_number(central_admin, central_db,
                                                                   device_token):
    # Regression: merged runners were listed and kept their start number taken.
    survivor = pushed_runner(central_db, device_token, 30, "Ida Sommer")
    merged = pushed_runner(central_db, device_token, 31, "Ida Sommer (2)")
    central_db.execute("UPDATE runner SET merged_into = %s WHERE id = %s", [survivor, merged])
    page = central_admin.get("/runners/").get_data(as_text=True)
    assert "Ida Sommer (2)" not in page and "Ida Sommer" in page
    assert add(central_admin, start_number="31", name="Jan Neu").status_code == 302


# --- barcodes and label sheets ------------------------------------------------------------

def scan(svg: str) -> list[str]:
    """Paint an SVG's bars at 10 pixels per mm and read them as a scanner would; return the texts."""
    width = float(re.search(r'<svg[^>]* width="([0-9.]+)mm"', svg).group(1))
    image = Image.new("L", (round(width * 10), 60), 255)
    draw = ImageDraw.Draw(image)
    for x, bar in re.findall(r'<rect x="([0-9.]+)mm" y="[0-9.]+mm" width="([0-9.]+)mm"', svg):
        draw.rectangle((round(float(x) * 10), 0, round((float(x) + float(bar)) * 10) - 1, 59), fill=0)
    return [code.text for code in zxingcpp.read_barcodes(image, try_rotate=False)
            if code.format == zxingcpp.BarcodeFormat.Code128]


# Every length, and every way a number may start with 99: python-barcode 0.16.1 dropped a
# leading pair 99 (999 scanned as 9, another runner's number).
NUMBERS = [*range(1, 13), 99, 100, 990, 999, 1000, 9900, 9999, 10_000, 12_345, 99_000, 99_999,
           100_000, 123_456, 990_099, 999_998, 999_999]


@pytest.mark.parametrize("size", ["sheet", "label"])
def test_every_kind_of_start_number_scans_back_from_its_barcode(size):
    assert {number: scan(code128_svg(number, size)) for number in NUMBERS} == {
        number: [str(number)] for number in NUMBERS}


def test_barcode_is_inline_svg_of_bars_in_mm_with_quiet_zones():
    svg = code128_svg(123456, "label")
    assert svg.startswith('<svg class="barcode barcode-label" aria-hidden="true" ') and "<?xml" not in svg
    bars = [float(x) for x in re.findall(r'<rect x="([0-9.]+)mm"', svg)]
    assert min(bars) == pytest.approx(4.8)            # 12 modules of 0.4 mm before the first bar
    assert 'height="12.000mm"' in svg and "<text" not in svg


def test_sheets_carry_a_barcode_with_the_digits_under_it(central_viewer, central_db, device_token):
    for number, name in [(7, "Anna"), (123456, "Ben")]:
        pushed_runner(central_db, device_token, number, name)
    page = central_viewer.get("/runners/sheets?per_page=2").get_data(as_text=True)
    assert page.count('<svg class="barcode barcode-sheet"') == 2
    assert re.search(r'<div class="bib-code"><svg [^>]*>.*?</svg><p class="bib-digits">123456</p></div>',
                     page, re.S)
    sheets = re.findall(r'<section class="bib-sheet".*?</section>', page, re.S)
    assert [scan(sheet) for sheet in sheets] == [["7"], ["123456"]]


LABEL = re.compile(r'<section class="label" data-runner="[^"]+" data-number="(\d+)" data-column="(\d)"'
                   r'\s+data-row="(\d)" style="left: ([0-9.]+)mm; top: ([0-9.]+)mm">')


def label_sheets(client, query: str = "") -> list[list[tuple]]:
    """Return each A4 page's labels as (number, column, row, left mm, top mm)."""
    page = client.get(f"/runners/labels{query}").get_data(as_text=True)
    return [[(int(n), int(c), int(r), float(x), float(y)) for n, c, r, x, y in LABEL.findall(sheet)]
            for sheet in page.split('<div class="label-page"')[1:]]


def test_labels_fill_a4_sheets_of_3_by_8_row_by_row(central_viewer, central_db, device_token):
    for i in range(26):                  # classes 5a and 10a, names in the opposite order of numbers
        pushed_runner(central_db, device_token, 100 - i, f"Runner {i:02d}", "10a" if i % 2 else "5a")
    by_class = label_sheets(central_viewer)
    assert [len(sheet) for sheet in by_class] == [24, 2]
    numbers = [label[0] for sheet in by_class for label in sheet]
    assert numbers == [100 - i for i in range(0, 26, 2)] + [100 - i for i in range(1, 26, 2)]
    first = by_class[0]
    assert first[:4] == [(100, 1, 1, 0, 4.5), (98, 2, 1, 70, 4.5), (96, 3, 1, 140, 4.5),
                         (94, 1, 2, 0, 40.5)]
    assert first[23][1:] == (3, 8, 140, 256.5) and by_class[1][0][1:] == (1, 1, 0, 4.5)
    by_number = label_sheets(central_viewer, "?order=number&layout=3474")
    assert [label[0] for sheet in by_number for label in sheet] == list(range(75, 101))
    assert by_number[0][3][1:] == (1, 2, 0, 37.5)
    page = central_viewer.get("/runners/labels?order=number").get_data(as_text=True)
    assert "Avery Zweckform 3475: 3 × 8 labels of 70 × 36 mm per A4 page." in page
    assert "26 labels on 2 pages." in page and "@page { size: A4; margin: 0; }" in page


def test_labels_of_one_class_and_the_link_on_the_roster_page(central_viewer, central_db, device_token):
    pushed_runner(central_db, device_token, 5, "Anna", "5a")
    pushed_runner(central_db, device_token, 6, "Ben", "6b")
    assert [[label[0] for label in sheet] for sheet in label_sheets(central_viewer, "?class=6b")] == [[6]]
    roster = central_viewer.get("/runners/?class=6b").get_data(as_text=True)
    assert re.search(r'<a href="/runners/labels\?class=6b" id="labels-link">Label sheets of class 6b</a>',
                     roster)
    page = central_viewer.get("/runners/labels?class=6b",
                              headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Etikettenbögen" in page and "1 Etikett auf 1 Seite." in page


@pytest.mark.parametrize("query, status, message", [
    ("?order=size", 400, "Order the labels by class or by start number."),
    ("?layout=L7160", 400, "Unknown label sheet L7160: choose one of 3475, 3474."),
    ("?layout=%3Cb%3Ex", 400, "Unknown label sheet &lt;b&gt;x: choose one of 3475, 3474."),
    ("?class=9z", 404, "There are no runners in class 9z."),
])
def test_labels_refuse_bad_parameters_with_a_clear_page(central_viewer, central_db, device_token,
                                                         query, status, message):
    pushed_runner(central_db, device_token, 5, "Anna", "5a")
    response = central_viewer.get(f"/runners/labels{query}")
    assert response.status_code == status and message in response.get_data(as_text=True)
    assert "<!doctype html>" in response.get_data(as_text=True)


def test_labels_refuse_bad_parameters_to_json_clients_with_json(central_viewer):
    response = central_viewer.get("/runners/labels?order=x", headers={"Accept": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_order"


def test_labels_of_an_empty_roster_say_so(central_viewer):
    page = central_viewer.get("/runners/labels").get_data(as_text=True)
    assert "No runners on the roster yet." in page and 'class="label-page"' not in page

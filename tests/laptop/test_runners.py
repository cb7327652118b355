"""Runners page: search, grouping, lap counts, add/edit, roles and CSV import (web and CLI)."""
from __future__ import annotations

import io
import json
import re

import pytest

from lapsync.laptop.runners import add_runner, import_runners_command, search_runners

JSON = {"Accept": "application/json"}
CSV_HEADER = "Name,Klasse,Jahrgang"


def count(db, table: str) -> int:
    """Return how many rows a table holds."""
    return db.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0]


def snapshot(db) -> tuple:
    """Return every runner and change row, to show a refused write changed nothing."""
    return (db.execute("SELECT * FROM runner ORDER BY id").fetchall(),
            db.execute("SELECT * FROM change ORDER BY seq").fetchall())


def runner_row(db, start_number: int) -> dict:
    """Return the runner with this start number."""
    return next(db.query("SELECT * FROM runner WHERE start_number = ?", [start_number]))


def numbers_on_page(html: str) -> list[int]:
    """Return the start numbers listed on a runners page, in page order."""
    return [int(n) for n in re.findall(r'<tr data-runner="[^"]+">\s*<td>(\d+)</td>', html)]


def upload(client, data: bytes, filename: str = "klassen.csv", **kwargs):
    """Post a CSV file to the import page."""
    form = {"file": (io.BytesIO(data), filename), "csrf_token": client.csrf}
    return client.post("/runners/import", data=form, content_type="multipart/form-data", **kwargs)


def add_lap(db, runner_id: str, voided: bool = False) -> None:
    """Insert one lap straight into the table (lap entry has its own tests)."""
    user_id = db.execute("SELECT id FROM user LIMIT 1").fetchone()[0]
    lap_id = f"lap{count(db, 'lap')}"
    db.execute("INSERT INTO lap (id, runner_id, created_by, time, device_id, voided_at) "
               "VALUES (?, ?, ?, 1, 'dev', ?)", [lap_id, runner_id, user_id, 2 if voided else None])
    db.conn.commit()


# --- the list: search, grouping, counts -------------------------------------------------------

def test_list_is_grouped_by_class_sorted_by_class_then_name(teacher, db, runners):
    add_runner(db, 30, "Zoë Adler", "10a", 10)
    add_runner(db, 31, "Aaron Zorn", "6b", 6)
    add_runner(db, 32, "aaron abel", "5a", 5)
    html = teacher.get("/runners/").get_data(as_text=True)
    classes = re.findall(r'<section class="class-block" data-class="([^"]+)">', html)
    assert classes == ["5a", "6b", "10a"]  # natural order: 10a after 6b
    assert numbers_on_page(html) == [32, 1, 2, 31, 17, 30]
    assert "5 runners on the roster" not in html and "6 runners on the roster" in html


def test_lap_counts_leave_out_voided_laps(teacher, db, runners):
    for _ in range(3):
        add_lap(db, runners[1])
    add_lap(db, runners[1], voided=True)
    add_lap(db, runners[17])
    counts = {r["start_number"]: r["laps"] for r in search_runners(db)}
    assert counts == {1: 3, 2: 0, 17: 1}
    html = teacher.get("/runners/?q=1").get_data(as_text=True)
    assert re.search(r'<td class="laps" data-own="3">3</td>', html)


def test_lap_counts_come_from_one_query(db, runners):
    statements = []
    db.conn.set_trace_callback(statements.append)
    search_runners(db)
    db.conn.set_trace_callback(None)
    assert sum("FROM runner" in s for s in statements) == 1
    assert not any("FROM lap" in s and "JOIN" not in s for s in statements)


@pytest.mark.parametrize("query, expected", [
    ("anna", [1]),
    ("ANNA BERG", [1]),
    ("  cruz ", [2]),
    ("e", [1, 2, 17, 40]),
    ("17", [17]),
    ("2", [2]),
    ("99", []),
    ("öz", [40]),
    ("ÖZTÜRK", [40]),
    ("%", []),
    ("_", []),
    ("' OR 1=1 --", []),
])
def test_search_by_name_substring_or_exact_number(teacher, db, runners, query, expected):
    add_runner(db, 40, "Jürgen Öztürk", "7c", 7)
    response = teacher.get("/runners/", query_string={"q": query})
    assert response.status_code == 200
    assert sorted(numbers_on_page(response.get_data(as_text=True))) == expected


def test_number_search_is_exact_not_a_substring(teacher, db, runners):
    add_runner(db, 117, "Hundred Seventeen", "8a", 8)
    html = teacher.get("/runners/?q=17").get_data(as_text=True)
    assert numbers_on_page(html) == [17]
    assert "1 runner match" in html


def test_page_is_printable_one_class_per_block(teacher, runners):
    html = teacher.get("/runners/").get_data(as_text=True)
    assert html.count('class="class-block"') == 2
    css = teacher.get("/web-static/lapsync.css").get_data(as_text=True)
    assert re.search(r"@media print\s*{[^}]*}[^@]*\.class-block\s*{\s*break-before:\s*page", css)


def test_viewer_sees_the_list_without_admin_links(client, runners):
    from tests.conftest import login
    login(client, "vic")
    html = client.get("/runners/").get_data(as_text=True)
    assert numbers_on_page(html) == [1, 2, 17]
    assert "/runners/new" not in html and "/edit" not in html and "/runners/import" not in html


def test_admin_sees_add_import_and_edit_links(admin, runners):
    html = admin.get("/runners/").get_data(as_text=True)
    assert "/runners/new" in html and "/runners/import" in html
    assert f"/runners/{runners[17]}/edit" in html


# --- roles and CSRF --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/runners/", "/runners/new", "/runners/import", "/runners/x/edit"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", ["tom", "vic"])
@pytest.mark.parametrize("method, path", [
    ("get", "/runners/new"), ("post", "/runners/new"), ("get", "/runners/import"),
    ("post", "/runners/import"), ("get", "/runners/{id}/edit"), ("post", "/runners/{id}/edit"),
])
def test_teacher_and_viewer_may_not_add_edit_or_import(client, db, runners, role, method, path):
    from tests.conftest import login
    token = login(client, role)
    before = snapshot(db)
    url = path.format(id=runners[1])
    if method == "get":
        response = client.get(url)
    elif path.endswith("import"):
        client.csrf = token
        response = upload(client, f"{CSV_HEADER}\nEva,7a,7\n".encode())
    else:
        response = client.post(url, data={"csrf_token": token, "name": "Eva", "class": "7a",
                                          "grade": "7", "start_number": "1"})
    assert response.status_code == 403
    assert snapshot(db) == before


@pytest.mark.parametrize("path", ["/runners/new", "/runners/import", "/runners/{id}/edit"])
def test_post_without_csrf_token_is_refused(admin, db, runners, path):
    before = snapshot(db)
    response = admin.post(path.format(id=runners[1]),
                          data={"name": "Eva", "class": "7a", "grade": "7", "start_number": "1",
                                "file": (io.BytesIO(b"Name,Klasse,Jahrgang\nEva,7a,7\n"), "a.csv")},
                          content_type="multipart/form-data")
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert snapshot(db) == before


# --- add and edit ----------------------------------------------------------------------------

def post_form(client, path: str, **fields):
    """Post the runner form with the client's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **fields})


def test_add_runner_with_a_number(admin, db, runners):
    response = post_form(admin, "/runners/new", start_number="40", name="  Eva Fink ",
                         **{"class": "7a"}, grade="7")
    assert response.status_code == 302
    row = runner_row(db, 40)
    assert (row["name"], row["class"], row["grade"]) == ("Eva Fink", "7a", 7)
    change = next(db.query("SELECT * FROM change WHERE entity_id = ?", [row["id"]]))
    assert change["entity"] == "runner" and json.loads(change["payload"])["hlc"] == row["hlc"]
    page = admin.get("/runners/").get_data(as_text=True)
    assert "Added Eva Fink (7a) with start number 40." in page


def test_add_runner_without_a_number_takes_the_local_ranges_first_before_any_sync(admin, db,
                                                                                   runners):
    post_form(admin, "/runners/new", start_number=" ", name="Eva", **{"class": "7a"}, grade="7")
    assert runner_row(db, 90000)["name"] == "Eva"  # not 18: another laptop may give out 18


def test_first_runner_without_a_number_gets_one(admin, db):
    response = post_form(admin, "/runners/new", name="Eva", **{"class": "7a"}, grade="7")
    assert response.status_code == 302 and runner_row(db, 90000)["name"] == "Eva"


def test_add_form_shows_the_next_free_number(admin, runners):
    html = admin.get("/runners/new").get_data(as_text=True)
    assert "the next free one: 90000" in html and 'name="csrf_token"' in html


BAD_FIELDS = [
    ({"name": ""}, 422, "name must be 1 to 100"),
    ({"name": "   "}, 422, "name must be 1 to 100"),
    ({"name": "x" * 101}, 422, "name must be 1 to 100"),
    ({"name": "Eva\nFink"}, 422, "line breaks"),
    ({"class": ""}, 422, "class must be"),
    ({"class": "x" * 21}, 422, "class must be"),
    ({"grade": "0"}, 422, "grade must be 1 to 13"),
    ({"grade": "14"}, 422, "grade must be 1 to 13"),
    ({"grade": "x"}, 422, "grade must be a whole number"),
    ({"grade": ""}, 422, "grade must be a whole number"),
    ({"start_number": "abc"}, 422, "start number must be a whole number"),
    ({"start_number": "-3"}, 422, "start number must be a whole number"),
    ({"start_number": "1.5"}, 422, "start number must be a whole number"),
    ({"start_number": "+5"}, 422, "start number must be a whole number"),
    ({"start_number": "0"}, 422, "Start numbers run from 1"),
    ({"start_number": "1000000"}, 422, "Start numbers run from 1"),
    ({"start_number": "9" * 5000}, 422, "start number must be a whole number"),
    ({"start_number": "17"}, 409, "Start number 17 is taken"),
]


@pytest.mark.parametrize("bad, status, message", BAD_FIELDS)
def test_add_refuses_bad_input_and_changes_nothing(admin, db, runners, bad, status, message):
    before = snapshot(db)
    fields = {"start_number": "40", "name": "Eva", "class": "7a", "grade": "7", **bad}
    response = post_form(admin, "/runners/new", **fields)
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert message in html and 'role="alert"' in html
    assert '<form method="post"' in html  # the form again, to fix the value
    assert snapshot(db) == before


@pytest.mark.parametrize("bad, status, message",
                         [b for b in BAD_FIELDS if b[0] != {"start_number": "17"}]
                         + [({"start_number": ""}, 422, "start number must be a whole number"),
                            ({"start_number": "2"}, 409, "Start number 2 is taken")])
def test_edit_refuses_bad_input_and_changes_nothing(admin, db, runners, bad, status, message):
    before = snapshot(db)
    fields = {"start_number": "1", "name": "Anna", "class": "5a", "grade": "5", **bad}
    response = post_form(admin, f"/runners/{runners[1]}/edit", **fields)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert snapshot(db) == before


def test_bad_input_as_json_gets_the_json_error_shape(admin, db, runners):
    response = admin.post("/runners/new", headers={**JSON, "X-CSRFToken": admin.csrf},
                          data={"name": "Eva", "class": "7a", "grade": "14"})
    assert response.status_code == 422
    assert response.get_json() == {"error": "invalid_grade", "message": "The grade must be 1 to 13."}


def test_edit_saves_with_a_new_hlc_and_an_outbox_change(admin, db, runners):
    old = runner_row(db, 1)
    changes_before = count(db, "change")
    form = admin.get(f"/runners/{runners[1]}/edit").get_data(as_text=True)
    assert 'value="Anna Berg"' in form and 'value="1"' in form
    response = post_form(admin, f"/runners/{runners[1]}/edit", start_number="5",
                         name="Anna Berg-Lund", **{"class": "6a"}, grade="6")
    assert response.status_code == 302
    new = next(db.query("SELECT * FROM runner WHERE id = ?", [runners[1]]))
    assert (new["start_number"], new["name"], new["class"], new["grade"]) == (5, "Anna Berg-Lund", "6a", 6)
    assert new["hlc"] > old["hlc"]
    assert count(db, "change") == changes_before + 1
    change = next(db.query("SELECT * FROM change ORDER BY seq DESC LIMIT 1"))
    assert change["entity_id"] == runners[1]
    assert json.loads(change["payload"])["name"] == "Anna Berg-Lund"


def test_edit_may_keep_the_runners_own_number(admin, db, runners):
    response = post_form(admin, f"/runners/{runners[17]}/edit", start_number="17",
                         name="Cleo Dahl", **{"class": "6c"}, grade="6")
    assert response.status_code == 302 and runner_row(db, 17)["class"] == "6c"


@pytest.mark.parametrize("method", ["get", "post"])
def test_edit_of_an_unknown_runner_is_404(admin, db, runners, method):
    before = snapshot(db)
    data = {"csrf_token": admin.csrf, "start_number": "50", "name": "Eva", "class": "7a",
            "grade": "7"}
    response = getattr(admin, method)("/runners/nosuchrunner/edit", data=data)
    assert response.status_code == 404
    assert snapshot(db) == before


# --- CSV import on the web -------------------------------------------------------------------

def test_import_utf8_file_numbers_rows_from_the_local_range_before_the_first_pull(admin, db, runners):
    response = upload(admin, f"{CSV_HEADER}\nEva Fink,7a,7\nFinn Gro,7a,7\n".encode())
    assert response.status_code == 302
    assert runner_row(db, 90000)["name"] == "Eva Fink" and runner_row(db, 90001)["name"] == "Finn Gro"
    page = admin.get("/runners/").get_data(as_text=True)
    assert "Imported 2 runners from klassen.csv." in page


def test_import_cp1252_semicolon_file_with_start_numbers(admin, db, runners):
    data = "Startnummer;Name;Klasse;Jahrgang\r\n100;Jürgen Öztürk;7c;7\r\n;Zoë Weiß;7c;7\r\n"
    response = upload(admin, data.encode("cp1252"), follow_redirects=True)
    assert response.status_code == 200 and "Imported 2 runners" in response.get_data(as_text=True)
    assert runner_row(db, 100)["name"] == "Jürgen Öztürk"
    assert runner_row(db, 90000)["name"] == "Zoë Weiß"


def test_import_utf8_bom_file(admin, db):
    upload(admin, "\ufeffName,Klasse,Jahrgang\nZoë,5a,5\n".encode("utf-8"))
    assert runner_row(db, 90000)["name"] == "Zoë"


def test_every_imported_runner_gets_its_own_outbox_change(admin, db, runners):
    before = count(db, "change")
    upload(admin, f"{CSV_HEADER}\nA,7a,7\nB,7a,7\nC,7b,7\n".encode())
    ids = {r[0] for r in db.execute("SELECT id FROM runner WHERE class IN ('7a', '7b')")}
    changed = {r[0] for r in db.execute("SELECT entity_id FROM change WHERE seq > ? "
                                        "AND entity = 'runner'", [before])}
    assert len(ids) == 3 and changed == ids and count(db, "change") == before + 3


@pytest.mark.parametrize("bad_row, line, fragment", [
    ("Bad Grade,7a,14,", 5, "grade must be 1 to 13"),
    (",7a,7,", 5, "name must be 1 to 100"),
    ("Bad Number,7a,7,x", 5, "'x' is not valid"),
    ("Taken,7a,7,17", 5, "Start number 17 is already used"),
    ("Double,7a,7,50", 5, "Start number 50 is also on line 2"),
    ("Too,Many,Cells,7,1", 5, "Expected 4 columns, found 5"),
    ("Anna Berg,5a,5,", 5, "already on the roster with start number 1"),
])
def test_one_bad_row_imports_nothing(admin, db, runners, bad_row, line, fragment):
    good = ["Eva,7a,7,50", "Finn,7a,7,", "Gerd,7a,7,", "Hana,7b,7,"]
    rows = good[:3] + [bad_row] + good[3:]
    before = snapshot(db)
    response = upload(admin, ("Name,Klasse,Jahrgang,Startnummer\n" + "\n".join(rows) + "\n").encode())
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(rf"<tr><td>{line}</td><td>[^<]*{re.escape(fragment)}", html.replace("&#39;", "'")), html
    assert "Nothing was changed" in html
    assert snapshot(db) == before


def test_five_good_rows_and_one_bad_row_import_nothing(admin, db, runners):
    rows = "".join(f"Kind {i},8a,8\n" for i in range(5)) + "Kind 5,8a,0\n"
    runners_before, changes_before = count(db, "runner"), count(db, "change")
    response = upload(admin, f"{CSV_HEADER}\n{rows}".encode())
    assert response.status_code == 422 and "<tr><td>7</td>" in response.get_data(as_text=True)
    assert count(db, "runner") == runners_before and count(db, "change") == changes_before


@pytest.mark.parametrize("data, fragment", [
    (b"", "empty"),
    (b"Vorname,Klasse\nAnna,5a\n", "Wrong header"),
    (b"Name,Klasse,Jahrgang\nAnna\x81,5a,5\n", "neither UTF-8 nor Windows-1252"),
])
def test_unreadable_files_are_refused_with_the_report(admin, db, runners, data, fragment):
    before = snapshot(db)
    response = upload(admin, data)
    assert response.status_code == 422 and fragment in response.get_data(as_text=True)
    assert snapshot(db) == before


def test_import_report_as_json_lists_the_lines(admin, db, runners):
    response = admin.post("/runners/import", headers={**JSON, "X-CSRFToken": admin.csrf},
                          data={"file": (io.BytesIO(b"Name,Klasse,Jahrgang\nA,5a,0\n"), "a.csv")},
                          content_type="multipart/form-data")
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid_roster"
    assert body["problems"] == [{"line": 2, "message": "The grade must be 1 to 13."}]


def test_import_without_a_file_is_refused(admin, db, runners):
    before = snapshot(db)
    response = admin.post("/runners/import", data={"csrf_token": admin.csrf},
                          content_type="multipart/form-data")
    assert response.status_code == 400 and "Choose a CSV or Excel file" in response.get_data(as_text=True)
    assert snapshot(db) == before


def test_importing_the_same_file_twice_adds_nobody_twice(admin, db, runners):
    data = f"{CSV_HEADER}\nEva,7a,7\nFinn,7a,7\n".encode()
    assert upload(admin, data).status_code == 302
    before = snapshot(db)
    again = upload(admin, data)
    assert again.status_code == 422 and "already on the roster" in again.get_data(as_text=True)
    assert snapshot(db) == before


def test_oversized_upload_is_refused(app, admin, db, runners):
    before = snapshot(db)
    big = CSV_HEADER.encode() + b"\n" + b"x" * app.config["MAX_UPLOAD_BYTES"]
    response = upload(admin, big)
    assert response.status_code == 413
    assert snapshot(db) == before


# --- CSV import on the command line ----------------------------------------------------------

def test_cli_imports_a_good_file(app, db, runners, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("Name;Klasse;Jahrgang\nJürgen Öztürk;7c;7\n".encode("cp1252"))
    result = app.test_cli_runner().invoke(args=["import-runners", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 1 runner from" in result.output
    assert runner_row(db, 90000)["name"] == "Jürgen Öztürk"


def test_cli_refuses_a_bad_file_whole_with_the_report(app, db, runners, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(f"{CSV_HEADER},Startnummer\nEva,7a,7,\nFinn,7a,13,\nGerd,7a,x,\n"
                    "Hana,7a,7,2\n", encoding="utf-8")
    before = snapshot(db)
    result = app.test_cli_runner().invoke(args=["import-runners", str(path)])
    assert result.exit_code == 1
    assert "line 4: The grade must be a whole number." in result.output
    assert "line 5: Start number 2 is already used" in result.output
    assert snapshot(db) == before


def test_cli_missing_file_is_a_usage_error(app, tmp_path):
    result = app.test_cli_runner().invoke(args=["import-runners", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_cli_help_is_the_docstring(app):
    result = app.test_cli_runner().invoke(args=["import-runners", "--help"])
    assert result.exit_code == 0
    assert "Name,Klasse,Jahrgang" in result.output
    assert import_runners_command.help.splitlines()[0] in result.output

"""One class, one spelling: "8B", "8b" and "8 b" on a roster are class 8B on every page.

A school's roster mixes spellings (one teacher types "8b", the office "8B"); the import,
the runner form and a laptop's push give each runner the spelling its class has, so the
money pages, standings, class lists, certificates, letters and exports show one class.
"""
from __future__ import annotations

import csv
import io
import re

import pytest

from sync.clock import node_id
from sync.devices import find_device
from sync.pull import pull
from sync.sponsors.pledges import add_pledge
from tests.central.test_results import late_laps
from tests.central.test_roster import (_boxes, add, edit, pulled_runners, pushed_runner, runners,
                                       upload)

MIXED = ("Name,Klasse,Jahrgang,Startnummer\nAnna Berg,8B,8,1\nBen Cruz,8b,8,2\n"
         "Cleo Dahl,8 b,8,3\nDora Eck,8B,8,4\nEmil Fuchs,7a,7,5\n").encode()


def classes(conn) -> list[tuple[int, str]]:
    """Return (start number, class) of every runner at central."""
    return [(r["start_number"], r["class"]) for r in runners(conn)]


def flashes(client) -> list[str]:
    """Return the messages the next page shows."""
    page = client.get("/runners/").get_data(as_text=True)
    return re.findall(r'<p class="flash good" role="status">([^<]*)</p>', page)


def test_a_mixed_roster_is_one_class_with_every_runner_on_every_page(
        central_admin, central_db, central_users):
    assert upload(central_admin, MIXED).status_code == 302
    assert flashes(central_admin) == [
        "Imported 5 runners from roster.csv.",
        "8b, 8 b written as 8B, as most of the file has it: 2 runners"]
    assert classes(central_db) == [(1, "8B"), (2, "8B"), (3, "8B"), (4, "8B"), (5, "7a")]
    ids = {r["start_number"]: r["id"] for r in runners(central_db)}
    for number, runner_id in ids.items():
        late_laps(central_db, runner_id, number + 2)
        add_pledge(central_db, central_users["ada"], runner_id,
                   {"sponsor_name": f"Sponsor {number}", "kind": "fixed", "rate_cents": "10"})
    page = lambda path: central_admin.get(path).get_data(as_text=True)  # noqa: E731
    groups = re.findall(r'<tr data-group="([^"]*)" data-runners="(\d+)" data-did-not-run="0" data-laps="(\d+)"',
                        page("/standings/classes?sort=name"))
    assert groups == [("7a", "1", "7"), ("8B", "4", "18")]
    assert len(re.findall(r"<tr data-pledge=", page("/sponsors/?class=8B"))) == 4
    assert len(re.findall(r"<tr data-pledge=", page("/sponsors/classes/8B/list"))) == 4
    assert len(re.findall(r'<article class="certificate"', page("/admin/certificates/class/8B"))) == 4
    assert re.findall(r'<tr data-class="([^"]*)"', page("/sponsors/letters")) == ["7a", "8B"]
    assert len(re.findall(r'<article class="letter"', page("/sponsors/letters?class=8B"))) == 4
    exported = list(csv.DictReader(io.StringIO(
        central_admin.get("/sponsors/amounts.csv").get_data().decode("utf-8-sig"))))
    class_column = next(name for name in exported[0] if name.lower() in ("class", "klasse"))
    assert sorted(row[class_column] for row in exported) == ["7a", "8B", "8B", "8B", "8B"]


def test_an_import_takes_the_roster_s_spelling_and_says_so(central_admin, central_db,
                                                            device_token):
    pushed_runner(central_db, device_token, 40, "Lena Alt", "8B")
    pushed_runner(central_db, device_token, 41, "Mia Berg", "10 c")
    data = ("Name,Klasse,Jahrgang\nAnna Berg,8b,8\nBen Cruz,8 b,8\nCleo Dahl,10C,10\n"
            "Dora Eck,8B,8\n").encode()
    assert upload(central_admin, data).status_code == 302
    assert flashes(central_admin) == [
        "Imported 4 runners from roster.csv.",
        "8b, 8 b written as 8B, as on the roster: 2 runners",
        "10C written as 10 c, as on the roster: 1 runner"]
    assert sorted({c for _n, c in classes(central_db)}) == ["10 c", "8B"]
    # Imported runners are central's: every laptop pulls them with the roster's spelling.
    assert sorted(d["class"] for d in pulled_runners(central_db, device_token).values()) == [
        "10 c", "8B", "8B", "8B"]


def test_the_command_line_import_says_so_too(central_app, central_db, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes(MIXED)
    result = central_app.test_cli_runner().invoke(args=["import-runners", str(path)])
    assert result.exit_code == 0, result.output
    assert "8b, 8 b written as 8B, as most of the file has it: 2 runners" in result.output
    assert {c for _n, c in classes(central_db)} == {"8B", "7a"}


def test_the_runner_form_takes_the_class_s_spelling(central_admin, central_db, device_token):
    pushed_runner(central_db, device_token, 40, "Lena Alt", "8B")
    pushed_runner(central_db, device_token, 41, "Mia Berg", "8B")
    assert add(central_admin, name="Nina Cohn", **{"class": " 8 b "}, grade="8").status_code == 302
    assert classes(central_db)[-1] == (42, "8B")
    assert "Added Nina Cohn (8B) with start number 42." in flashes(central_admin)
    lena = runners(central_db)[0]
    assert edit(central_admin, lena, **{"class": "８b"}).status_code == 302  # full-width 8
    assert runners(central_db)[0]["class"] == "8B"


def test_the_only_runner_of_a_class_may_change_its_spelling(central_admin, central_db,
                                                            device_token):
    pushed_runner(central_db, device_token, 40, "Lena Alt", "8B")
    pushed_runner(central_db, device_token, 41, "Mia Berg", "9a")
    assert edit(central_admin, runners(central_db)[1], **{"class": "9A"}).status_code == 302
    assert classes(central_db) == [(40, "8B"), (41, "9A")]


def test_a_pushed_runner_gets_the_class_s_spelling_and_its_laptop_pulls_it(
        central_db, device_token):
    pushed_runner(central_db, device_token, 40, "Lena Alt", "8B")
    late = pushed_runner(central_db, device_token, 90001, "Nina Cohn", "8 b")
    stamp = _boxes[device_token].changes[-1]["data"]["hlc"]
    stored = next(r for r in runners(central_db) if r["id"] == late)
    # Central's own edit, stamped after the laptop's, so that the laptop takes it back.
    assert (stored["class"], stored["origin"]) == ("8B", node_id(central_db))
    assert stored["hlc"] > stamp
    assert pulled_runners(central_db, device_token)[late]["class"] == "8B"


def pulled_since(conn, token: str, cursor: int) -> dict:
    """Return {runner id: data} of the runners a laptop pulls after cursor."""
    page = pull(conn, find_device(conn, token), cursor, 1000)
    return {c["id"]: c["data"] for c in page["changes"] if c["entity"] == "runner"}


def test_the_school_s_file_outvotes_a_spelling_typed_once_on_a_laptop(
        central_admin, central_db, device_token):
    paul = pushed_runner(central_db, device_token, 90001, "Paul Pohl", "9 a")
    before = next(r for r in runners(central_db) if r["id"] == paul)
    central_db.execute("INSERT INTO class_teacher (class_name, email, updated_ms) "
                       "VALUES ('9 a', 'teacher@school.example', 1)")
    central_db.execute("INSERT INTO mail_out (to_addr, subject, body_text, kind, class_name, "
                       "status, created_ms) VALUES ('teacher@school.example', 'List', 'x', "
                       "'class_list', '9 a', 'queued', 1)")
    cursor = central_db.execute("SELECT max(change_id) AS n FROM runner").fetchone()["n"]
    data = "Name,Klasse,Jahrgang\nQuirin Quast,9A,9\nRita Rot,9A,9\nSven Sauer,9a,9\n".encode()
    assert upload(central_admin, data).status_code == 302
    assert flashes(central_admin) == [
        "Imported 3 runners from roster.csv.",
        "9 a, 9a written as 9A, as most of the roster and the file have it: 2 runners"]
    assert {c for _n, c in classes(central_db)} == {"9A"}
    after = next(r for r in runners(central_db) if r["id"] == paul)
    # Central's own edit, with the import's stamp: every laptop pulls the new spelling.
    quirin = next(r for r in runners(central_db) if r["name"] == "Quirin Quast")
    assert (after["hlc"], after["origin"]) == (quirin["hlc"], node_id(central_db))
    assert after["hlc"] > before["hlc"] and after["change_id"] > before["change_id"]
    pulled = pulled_since(central_db, device_token, cursor)
    assert pulled[paul]["class"] == "9A"
    assert sorted(d["class"] for d in pulled.values()) == ["9A"] * 4
    # The class teacher's address and the queued class list go with the class.
    assert central_db.execute("SELECT class_name, email FROM class_teacher").fetchall() == [
        {"class_name": "9A", "email": "teacher@school.example"}]
    assert central_db.execute("SELECT class_name FROM mail_out").fetchone() == {"class_name": "9A"}


def test_a_tie_keeps_the_roster_s_spelling_and_changes_no_runner_of_the_roster(
        central_admin, central_db, device_token):
    paul = pushed_runner(central_db, device_token, 90001, "Paul Pohl", "9 a")
    before = next(r for r in runners(central_db) if r["id"] == paul)
    assert upload(central_admin, b"Name,Klasse,Jahrgang\nQuirin Quast,9A,9\n").status_code == 302
    assert flashes(central_admin) == ["Imported 1 runner from roster.csv.",
                                      "9A written as 9 a, as on the roster: 1 runner"]
    assert {c for _n, c in classes(central_db)} == {"9 a"}
    assert next(r for r in runners(central_db) if r["id"] == paul) == before


def mixed_event(client, conn, users) -> None:
    """Import MIXED (class 8B of 4 runners and 7a) with a lap and a pledge for each runner."""
    assert upload(client, MIXED).status_code == 302
    for runner in runners(conn):
        late_laps(conn, runner["id"], 2)
        add_pledge(conn, users["ada"], runner["id"],
                   {"sponsor_name": f"Sponsor {runner['start_number']}", "kind": "fixed",
                    "rate_cents": "100"})


# (the page asked for in another spelling, the page of the class's spelling, what it shows)
OTHER_SPELLINGS = [
    ("/sponsors/classes/8b/list", "/sponsors/classes/8B/list", r"<tr data-pledge="),
    ("/sponsors/classes/8%20b/list", "/sponsors/classes/8B/list", r"<tr data-pledge="),
    ("/sponsors/letters?class=8b", "/sponsors/letters?class=8B", r'<article class="letter"'),
    ("/admin/certificates/class/8b", "/admin/certificates/class/8B",
     r'<article class="certificate"'),
    ("/sponsors/outstanding?class=8+b", "/sponsors/outstanding?class=8B", r"<tr data-pledge="),
    ("/sponsors/?class=8b&page=1", "/sponsors/?class=8B&page=1", r"<tr data-pledge="),
    ("/standings/?class=8b&sort=name", "/standings/?class=8B&sort=name", r"<tr data-runner="),
    ("/runners/?class=8b", "/runners/?class=8B", r"<tr data-runner="),
    ("/runners/sheets?class=8b&per_page=2", "/runners/sheets?class=8B&per_page=2",
     r'class="bib-digits"'),
    ("/admin/results/classes?class=%EF%BC%98b", "/admin/results/classes?class=8B",
     r"<tr data-runner="),
]


@pytest.mark.parametrize(("asked", "shown", "row"), OTHER_SPELLINGS)
def test_a_class_in_another_spelling_in_a_url_goes_to_the_class_s_page(
        central_admin, central_db, central_users, asked, shown, row):
    mixed_event(central_admin, central_db, central_users)
    answer = central_admin.get(asked)
    assert answer.status_code == 302 and answer.headers["Location"] == shown
    page = central_admin.get(shown).get_data(as_text=True)
    assert len(re.findall(row, page)) >= 4


def test_a_class_as_spelled_or_unknown_is_the_page_s_to_answer(central_admin, central_db,
                                                                central_users):
    mixed_event(central_admin, central_db, central_users)
    assert central_admin.get("/sponsors/classes/8B/list").status_code == 200
    answer = central_admin.get("/sponsors/classes/9z/list")
    assert answer.status_code == 404 and "There is no class 9z." in answer.get_data(as_text=True)
    assert central_admin.get("/standings/?class=9z").status_code == 200
    assert central_admin.get("/sponsors/letters?class=").status_code == 200
    # A form posted with another spelling is not sent elsewhere (a redirect would drop it).
    answer = central_admin.post("/sponsors/classes/8b/teacher",
                                data={"email": "", "csrf_token": central_admin.csrf})
    assert answer.status_code == 404


def test_a_visitor_logs_in_first(central_app, central_admin, central_db, central_users):
    mixed_event(central_admin, central_db, central_users)
    answer = central_app.test_client().get("/sponsors/classes/8b/list")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]

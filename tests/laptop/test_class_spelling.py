"""One class, one spelling on the laptop: a runner added as "8 b" joins class 8B."""
from __future__ import annotations

import json
import re

from lapsync.ids import new_id
from lapsync.laptop.client.pull import apply_runner
from lapsync.laptop.db import transaction
from lapsync.laptop.runners import add_runner, import_runners_command
from tests.laptop.test_runners import runner_row, upload


def flashes(client) -> list[str]:
    """Return the messages the runners page shows next."""
    page = client.get("/runners/").get_data(as_text=True)
    return re.findall(r'<p class="flash good" role="status">([^<]*)</p>', page)


def outbox_classes(db) -> list[str]:
    """Return the class of every runner change waiting to be pushed, in order."""
    return [json.loads(row[0])["class"] for row in
            db.execute("SELECT payload FROM change WHERE entity = 'runner' ORDER BY seq")]


def test_the_add_form_writes_8_b_as_the_8B_on_the_roster(admin, db):
    add_runner(db, 1, "Anna Berg", "8B", 8)
    add_runner(db, 2, "Ben Cruz", "8B", 8)
    answer = admin.post("/runners/new", data={"start_number": "3", "name": "Cleo Dahl",
                                              "class": "8 b", "grade": "8",
                                              "csrf_token": admin.csrf})
    assert answer.status_code == 302
    assert runner_row(db, 3)["class"] == "8B"
    assert outbox_classes(db) == ["8B", "8B", "8B"]  # central gets the roster's spelling
    assert "Added Cleo Dahl (8B) with start number 3." in flashes(admin)


def test_the_edit_form_keeps_the_class_s_spelling(admin, db):
    add_runner(db, 1, "Anna Berg", "8B", 8)
    cleo = add_runner(db, 3, "Cleo Dahl", "7a", 7)
    answer = admin.post(f"/runners/{cleo}/edit", data={"start_number": "3", "name": "Cleo Dahl",
                                                       "class": "8b", "grade": "8",
                                                       "csrf_token": admin.csrf})
    assert answer.status_code == 302
    assert runner_row(db, 3)["class"] == "8B"


def test_a_mixed_roster_file_is_one_class_and_the_report_says_so(admin, db):
    add_runner(db, 1, "Anna Berg", "8B", 8)
    data = "Name,Klasse,Jahrgang,Startnummer\nBen Cruz,8b,8,2\nCleo Dahl,8 B,8,3\n"
    assert upload(admin, data.encode()).status_code == 302
    assert flashes(admin) == ["Imported 2 runners from klassen.csv.",
                              "8b, 8 B written as 8B, as on the roster: 2 runners"]
    assert {row["class"] for row in db.query("SELECT class FROM runner")} == {"8B"}


def test_the_command_line_import_says_so_too(app, db, tmp_path):
    path = tmp_path / "klassen.csv"
    path.write_text("Name,Klasse,Jahrgang,Startnummer\nBen Cruz,8b,8,2\nCleo Dahl,8B,8,3\n"
                    "Dora Eck,8B,8,4\n")
    result = app.test_cli_runner().invoke(import_runners_command, [str(path)])
    assert result.exit_code == 0, result.output
    assert "8b written as 8B, as most of the file has it: 1 runner" in result.output
    assert {row["class"] for row in db.query("SELECT class FROM runner")} == {"8B"}


def pulled(db, number: int, name: str, class_: str) -> None:
    """Apply a runner pulled from central, as the sync does."""
    with transaction(db):
        apply_runner(db, {"id": new_id(), "start_number": number, "name": name, "class": class_,
                          "grade": 8, "hlc": "1700000000000.0001", "origin": new_id()}, "me")


def test_the_runners_page_shows_two_spellings_of_a_class_as_one(teacher, db):
    # A runner added before the roster came keeps its own spelling until central's answer
    # comes back; pulled runners keep central's. The list shows one class all the same.
    add_runner(db, 90001, "Zoë Adler", "8 b", 8)
    pulled(db, 1, "Anna Berg", "8B")
    pulled(db, 2, "Ben Cruz", "8B")
    assert sorted(row["class"] for row in db.query("SELECT class FROM runner")) == ["8 b", "8B", "8B"]
    html = teacher.get("/runners/").get_data(as_text=True)
    assert re.findall(r'<section class="class-block" data-class="([^"]+)">', html) == ["8B"]
    assert len(re.findall(r'<tr data-runner="', html)) == 3

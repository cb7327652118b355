"""Start numbers of runners added on the laptop (by the form or a roster CSV): the block
central reserved for it (pulled), the local range before any pull, a block used up, and a
bad block set aside."""
from __future__ import annotations

import io

import pytest

from lapsync.errors import InputError
from lapsync.laptop.client.pull import apply_page, pull
from lapsync.laptop.client.transport import SyncResult
from lapsync.laptop.db import get_meta
from lapsync.laptop.numbers import number_source
from lapsync.laptop.runners import add_runner, create_runner, next_start_number


def post_form(client, path: str, **data):
    """Post a form with the client's CSRF token."""
    return client.post(path, data=data, headers={"X-CSRFToken": client.csrf})


def numbers(db) -> list[int]:
    """Return every start number in use here."""
    return sorted(r[0] for r in db.execute("SELECT start_number FROM runner"))


def test_a_laptop_that_never_pulled_numbers_from_the_local_range_and_says_so(admin, db):
    assert number_source(db) == {"kind": "local", "first": 90000, "last": 90999, "next": 90000}
    html = admin.get("/runners/new").get_data(as_text=True)
    assert 'data-kind="local"' in html and "local range 90000–90999" in html
    create_runner(db, "", "Eva", "7a", 7)
    assert next_start_number(db) == 90001


def test_a_pulled_block_gives_the_numbers_lowest_free_first(admin, db, runners):
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9002})
    assert get_meta(db, "number_block") == "9000-9002"
    add_runner(db, 9000, "Typed", "7a", 7)  # typed by hand into the block: skipped
    html = admin.get("/runners/new").get_data(as_text=True)
    assert "block 9000–9002 from central: 9001" in html and 'data-kind="block"' in html
    response = post_form(admin, "/runners/new", start_number="", name="Eva", grade="7",
                         **{"class": "7a"})
    assert response.status_code == 302
    create_runner(db, " ", "Finn", "7a", 7)
    assert numbers(db) == [1, 2, 17, 9000, 9001, 9002]


def test_a_used_up_block_asks_for_a_typed_number_and_takes_one(admin, db):
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9000})
    create_runner(db, "", "Eva", "7a", 7)
    assert next_start_number(db) is None
    html = admin.get("/runners/new").get_data(as_text=True)
    assert "The block 9000–9000 that central reserved for this laptop is used up" in html
    refused = post_form(admin, "/runners/new", start_number="", name="Finn", grade="7",
                        **{"class": "7a"})
    assert refused.status_code == 409 and "are all given out: type a start number" in \
        refused.get_data(as_text=True)
    assert numbers(db) == [9000]
    assert post_form(admin, "/runners/new", start_number="55", name="Finn", grade="7",
                     **{"class": "7a"}).status_code == 302
    assert numbers(db) == [55, 9000]


def test_used_up_local_numbers_are_refused_with_their_own_message(db):
    db.execute("WITH RECURSIVE n(v) AS (SELECT 90000 UNION ALL SELECT v + 1 FROM n "
               "WHERE v < 90999) INSERT INTO runner (id, start_number, name, class, grade, "
               "hlc, origin) SELECT 'r' || v, v, 'R', '1a', 1, '0000000000000.0000', 'x' FROM n")
    with pytest.raises(InputError) as refused:
        create_runner(db, "", "Eva", "7a", 7)
    assert refused.value.status == 409 and "local start numbers 90000–90999" in \
        refused.value.message


@pytest.mark.parametrize("block", [
    {"first": 0, "last": 5}, {"first": 7, "last": 6}, {"first": 1, "last": 1_000_000},
    {"first": "9000", "last": 9099}, {"first": 9000}, {"first": 1, "last": 2, "x": 3},
    {"first": True, "last": 2}, [9000, 9099], "9000-9099",
])
def test_a_bad_block_is_set_aside_and_the_last_good_one_kept(db, block):
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9099})
    apply_page(db, [], 2, SyncResult(), block)
    apply_page(db, [], 3, SyncResult(), block)  # every page brings it again: one row kept
    assert get_meta(db, "number_block") == "9000-9099" and get_meta(db, "pull_cursor") == "3"
    assert db.execute("SELECT entity FROM rejected_pull").fetchall() == [("number_block",)]


def test_no_block_in_a_page_keeps_the_block(db):
    apply_page(db, [], 1, SyncResult(), {"first": 9100, "last": 9199})
    apply_page(db, [], 2, SyncResult(), None)
    apply_page(db, [], 3, SyncResult())
    assert get_meta(db, "number_block") == "9100-9199"


class OnePage:
    """Central answering one pull page with a number block."""

    def pull(self, cursor: int):
        """Return the page."""
        return 200, {"protocol": 1, "changes": [], "next_cursor": 4, "more": False,
                     "number_block": {"first": 12000, "last": 12099}}


def test_pull_stores_the_block_of_the_page(db):
    pull(db, OnePage(), SyncResult())
    assert number_source(db)["next"] == 12000 and get_meta(db, "pull_cursor") == "4"


# ---- a roster CSV imported on the laptop numbers from the same range --------------------

def upload(client, text: str, as_json: bool = False):
    """Post a roster CSV to the laptop's import page (as a form, or as a JSON client)."""
    headers = {"Accept": "application/json"} if as_json else {}
    return client.post("/runners/import", content_type="multipart/form-data",
                       headers={"X-CSRFToken": client.csrf, **headers},
                       data={"file": (io.BytesIO(text.encode()), "klassen.csv"),
                             "csrf_token": client.csrf})


def snapshot(db) -> tuple:
    """Return every runner and change row, to show a refused import changed nothing."""
    return (db.execute("SELECT * FROM runner ORDER BY id").fetchall(),
            db.execute("SELECT * FROM change ORDER BY seq").fetchall())


def by_name(db) -> dict[str, int]:
    """Return each runner's start number by name."""
    return dict(db.execute("SELECT name, start_number FROM runner"))


def test_import_numbers_rows_from_the_pulled_block_lowest_free_first(admin, db, runners):
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9004})
    add_runner(db, 9001, "Typed", "7a", 7)  # already in the block: skipped
    response = upload(admin, "Name,Klasse,Jahrgang,Startnummer\nEva,7a,7,\nFinn,7a,7,9000\n"
                             "Gerd,7a,7,\nHana,7a,7,55\nIda,7a,7,\n")
    assert response.status_code == 302
    names = by_name(db)
    assert [names[n] for n in ("Eva", "Finn", "Gerd", "Hana", "Ida")] == [9002, 9000, 9003, 55, 9004]
    assert next_start_number(db) is None  # the block is used up now, as the add form says


def test_import_never_numbers_after_the_highest_outside_the_block(admin, db, runners):
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9099})
    add_runner(db, 12000, "Central's runner", "9a", 9)  # a number central gave out, pulled
    assert upload(admin, "Name,Klasse,Jahrgang\nEva,7a,7\n").status_code == 302
    assert by_name(db)["Eva"] == 9000


def test_import_needing_more_numbers_than_the_block_has_free_is_refused_whole(admin, db, runners):
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9002})
    add_runner(db, 9000, "Typed", "7a", 7)
    before = snapshot(db)
    text = "Name,Klasse,Jahrgang,Startnummer\nEva,7a,7,\nFinn,7a,7,60\nGerd,7a,7,\nHana,7a,7,\n"
    refused = upload(admin, text)
    assert refused.status_code == 422 and snapshot(db) == before
    html = refused.get_data(as_text=True)
    assert "Nothing was changed" in html and "<tr><td>5</td><td>3 runners in the file have no " \
        "start number, but the block 9000–9002 that central reserved for this laptop has only " \
        "2 free." in html
    assert "Type the start numbers into the file (column Startnummer), or ask an admin at " \
        "central for more numbers on the devices page" in html
    problems = upload(admin, text, as_json=True).get_json()["problems"]
    assert [p["line"] for p in problems] == [5] and snapshot(db) == before


def test_import_beyond_the_local_range_is_refused_and_says_to_connect(admin, db):
    db.execute("WITH RECURSIVE n(v) AS (SELECT 90000 UNION ALL SELECT v + 1 FROM n "
               "WHERE v < 90998) INSERT INTO runner (id, start_number, name, class, grade, "
               "hlc, origin) SELECT 'r' || v, v, 'R' || v, '1a', 1, '0000000000000.0000', 'x' FROM n")
    before = snapshot(db)
    refused = upload(admin, "Name,Klasse,Jahrgang\nEva,7a,7\nFinn,7a,7\n", as_json=True)
    assert refused.status_code == 422 and snapshot(db) == before
    assert refused.get_json()["problems"] == [{"line": 3, "message": (
        "2 runners in the file have no start number, but the local start numbers 90000–90999 "
        "have only 1 free. Type the start numbers into the file (column Startnummer), or "
        "connect this laptop to central and sync: central reserves a block of numbers for it.")}]
    assert upload(admin, "Name,Klasse,Jahrgang\nEva,7a,7\n").status_code == 302  # one fits
    assert by_name(db)["Eva"] == 90999


def test_import_page_says_where_rows_without_a_number_get_theirs(admin, db):
    assert "free numbers of the local range 90000–90999" in \
        admin.get("/runners/import").get_data(as_text=True)
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9099})
    assert "free numbers of the block 9000–9099 that central reserved for this laptop" in \
        admin.get("/runners/import").get_data(as_text=True)


def test_cli_import_takes_the_block_and_refuses_a_file_it_cannot_number(app, db, runners, tmp_path):
    apply_page(db, [], 1, SyncResult(), {"first": 9000, "last": 9001})
    path = tmp_path / "roster.csv"
    path.write_text("Name;Klasse;Jahrgang\nEva;7a;7\nFinn;7a;7\nGerd;7a;7\n", encoding="utf-8")
    before = snapshot(db)
    result = app.test_cli_runner().invoke(args=["import-runners", str(path)])
    assert result.exit_code == 1 and snapshot(db) == before
    assert "line 4: 3 runners in the file have no start number, but the block 9000–9001" in \
        result.output
    path.write_text("Name;Klasse;Jahrgang\nEva;7a;7\nFinn;7a;7\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-runners", str(path)])
    assert result.exit_code == 0, result.output
    assert by_name(db)["Eva"] == 9000 and by_name(db)["Finn"] == 9001

"""Start numbers of runners added on the laptop: the block central reserved for it (pulled),
the local range before any pull, a block used up, and a bad block set aside."""
from __future__ import annotations

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

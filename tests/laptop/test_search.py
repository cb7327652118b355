"""The laptop's runner search folds accents and German spellings; classes sort naturally."""
from __future__ import annotations

import re
import time

import pytest

from lapsync.ids import new_id
from lapsync.laptop.runners import import_roster, search_runners
from tests.rosters import big_roster

RUNNERS = [("Anna Müller", "10a"), ("Ben Mueller", "5b"), ("Cem Muller", "Q1"),
           ("Ömer Yılmaz", "5a"), ("Oemer Kaya", "10b"), ("Jürgen Groß", "EF"),
           ("Zoë Straßer", "Q11"), ("Joel Berg", "Q2"), ("Lea Weiß", "6c")]
CLASS_ORDER = ["5a", "5b", "6c", "10a", "10b", "EF", "Q1", "Q2", "Q11"]


def roster_csv(rows) -> bytes:
    """Return a roster CSV of (name, class) rows."""
    return "\n".join(["Name,Klasse,Jahrgang"] + [f"{n},{c},5" for n, c in rows]).encode()


@pytest.fixture
def filled(db):
    """The laptop's roster of RUNNERS, imported as a school office file."""
    import_roster(db, roster_csv(RUNNERS))
    return db


@pytest.mark.parametrize("query, found", [
    ("muller", {"Anna Müller", "Ben Mueller", "Cem Muller"}),
    ("mueller", {"Anna Müller", "Ben Mueller", "Cem Muller"}),
    ("MÜLLER", {"Anna Müller", "Ben Mueller", "Cem Muller"}),
    ("oemer", {"Ömer Yılmaz", "Oemer Kaya"}), ("omer", {"Ömer Yılmaz", "Oemer Kaya"}),
    ("yilmaz", {"Ömer Yılmaz"}), ("gross", {"Jürgen Groß"}), ("juergen", {"Jürgen Groß"}),
    ("zoe", {"Zoë Straßer"}), ("weiss", {"Lea Weiß"}),
    ("el", {"Joel Berg", "Ben Mueller"}), ("xyz", set()),
])
def test_search_folds_accents_and_german_spellings(filled, query, found):
    assert {r["name"] for r in search_runners(filled, query)} == found


def test_runners_page_finds_mueller_and_lists_classes_in_natural_order(admin, filled):
    html = admin.get("/runners/?q=mueller").get_data(as_text=True)
    assert "Anna Müller" in html and "Ben Mueller" in html and "Cem Muller" in html
    assert "Lea Weiß" not in html
    assert list(dict.fromkeys(r["class"] for r in search_runners(filled))) == CLASS_ORDER
    page = admin.get("/runners/").get_data(as_text=True)
    shown = [c for c in re.findall(r"<h2[^>]*>\s*(?:Klasse |Class )?([^<\s]+)", page)
             if c in CLASS_ORDER]
    assert shown == CLASS_ORDER


def test_search_stays_fast_with_5000_runners(db):
    rows = big_roster()
    # Pulled from central, as a big school's roster arrives: straight into the table.
    db.table("runner").insert_all(
        {"id": new_id(), "start_number": number, "name": name, "class": class_, "grade": 5,
         "hlc": "1700000000000.0000", "origin": "central"}
        for number, (name, class_) in enumerate(rows, 1))
    timings = []
    for query, letters in (("mueller", "Müller"), ("oemer", "Ömer"), ("gross", "Groß"), ("x", "x")):
        started = time.perf_counter()
        found = search_runners(db, query)
        timings.append(time.perf_counter() - started)
        assert {r["name"] for r in found} == {name for name, _c in rows if letters in name}
    # Every name folded once (cached): later searches fold only the query.
    assert sorted(timings)[1] < 0.25, timings

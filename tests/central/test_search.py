"""Search and class order at central (sync/search.py): PostgreSQL folds and sorts as Python does.

The SQL functions are built from lapsync/text.py; here they are compared with it letter by
letter and on random names, and every list of central is searched and ordered through them.
"""
from __future__ import annotations

import random
import re
import time

import pytest

from lapsync.protocol import validate_push
from lapsync.text import class_key, fold, plain
from sync import charts, results, roster, search, standings
from sync.db import init_schema
from sync.devices import find_device
from sync.sponsors.pledges import add_pledge
from sync.push import push
from tests.pg import Outbox, register
from tests.rosters import big_roster

RUNNERS = [("Anna Müller", "10a"), ("Ben Mueller", "5b"), ("Cem Muller", "Q1"),
           ("Ömer Yılmaz", "5a"), ("Oemer Kaya", "10b"), ("Jürgen Groß", "EF"),
           ("Zoë Straßer", "Q11"), ("Joel Berg", "Q2"), ("Lea Weiß", "6c")]
CLASS_ORDER = ["5a", "5b", "6c", "10a", "10b", "EF", "Q1", "Q2", "Q11"]


def roster_csv(rows) -> bytes:
    """Return a roster CSV of (name, class) rows."""
    lines = ["Name,Klasse,Jahrgang"] + [f"{name},{class_},5" for name, class_ in rows]
    return "\n".join(lines).encode()


@pytest.fixture
def filled(central_db):
    """Central's roster of RUNNERS, imported as a school office file."""
    roster.import_roster(central_db, roster_csv(RUNNERS))
    return central_db


def sql_folds(conn, texts: list[str]) -> list[tuple]:
    """Return (text, plain, fold, class key) of each text as PostgreSQL makes them."""
    return [tuple(row.values()) for row in conn.execute(
        "SELECT t, lapsync_plain(t) AS p, lapsync_fold(t) AS f, lapsync_class_key(t) AS k "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n", [texts])]


def test_sql_functions_equal_python_for_every_letter_of_the_blocks(central_db):
    letters = [chr(code) for first, last in search.BLOCKS for code in range(first, last + 1)]
    letters += [chr(code) for code in range(1, 128)]
    differ = [row for row in sql_folds(central_db, letters)
              if row[1:] != (plain(row[0]), fold(row[0]), class_key(row[0]))]
    assert not differ, differ[:20]


def test_sql_functions_equal_python_on_random_names(central_db):
    alphabet = ([chr(code) for first, last in search.BLOCKS for code in range(first, last + 1)]
                + list("abcdefghijklmnopqrstuvwxyzAEOU aeou-'0123456789") * 20)
    rng = random.Random(15)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25))) for _ in range(3000)]
    texts += ["Müller", "MUELLER", "Ömer", "Straße", "Q11", "5a", "10B", "Klasse 07"]
    differ = [row for row in sql_folds(central_db, texts)
              if row[1:] != (plain(row[0]), fold(row[0]), class_key(row[0]))]
    assert not differ, differ[:20]


@pytest.mark.parametrize("query, found", [
    ("muller", {"Anna Müller", "Ben Mueller", "Cem Muller"}),
    ("mueller", {"Anna Müller", "Ben Mueller", "Cem Muller"}),
    ("MÜLLER", {"Anna Müller", "Ben Mueller", "Cem Muller"}),
    ("oemer", {"Ömer Yılmaz", "Oemer Kaya"}), ("omer", {"Ömer Yılmaz", "Oemer Kaya"}),
    ("Ömer", {"Ömer Yılmaz", "Oemer Kaya"}), ("yilmaz", {"Ömer Yılmaz"}),
    ("gross", {"Jürgen Groß"}), ("juergen", {"Jürgen Groß"}), ("STRASSER", {"Zoë Straßer"}),
    ("zoe", {"Zoë Straßer"}), ("weiss", {"Lea Weiß"}), ("el", {"Joel Berg", "Ben Mueller"}), ("xyz", set()),
])
def test_roster_standings_and_results_search_fold_accents_and_spellings(filled, query, found):
    assert {r["name"] for r in roster.search_runners(filled, query)} == found
    filters = standings.parse_runner_filters({"q": query})
    assert {r["name"] for r in standings.runner_standings(filled, filters)[0]} == found


@pytest.mark.parametrize("path", ["/runners/?q=mueller", "/standings/?q=mueller",
                                  "/admin/results?q=mueller"])
def test_every_search_page_finds_mueller_by_mueller(central_admin, filled, path):
    html = central_admin.get(path).get_data(as_text=True)
    assert "Anna Müller" in html and "Ben Mueller" in html and "Cem Muller" in html
    assert "Lea Weiß" not in html


def test_the_sponsors_search_folds_sponsors_and_runners_too(central_viewer, filled):
    ids = {r["name"]: r["id"] for r in roster.search_runners(filled)}
    add_pledge(filled, None, ids["Lea Weiß"], {"sponsor_name": "Bäckerei Größer", "kind": "fixed",
                                              "rate_cents": "20"})
    add_pledge(filled, None, ids["Anna Müller"], {"sponsor_name": "Oma", "kind": "per_lap",
                                                 "rate_cents": "0,50"})
    for query, shown, hidden in (("baeckerei groesser", "Bäckerei Größer", ">Oma<"),
                                 ("mueller", ">Oma<", "Bäckerei Größer")):
        page = central_viewer.get(f"/sponsors/?q={query}").get_data(as_text=True)
        assert shown in page and hidden not in page, query


def test_every_class_list_is_in_natural_order(filled):
    in_order = lambda rows: list(dict.fromkeys(r["class"] for r in rows))  # noqa: E731
    assert roster.list_classes(filled) == CLASS_ORDER
    assert in_order(roster.search_runners(filled)) == CLASS_ORDER
    assert standings.class_names(filled) == CLASS_ORDER
    assert [g["key"] for g in standings.group_standings(filled, "class", "name")] == CLASS_ORDER
    # Equal laps: the tie goes in class order too.
    assert [g["key"] for g in standings.group_standings(filled, "class", "laps")] == CLASS_ORDER
    assert [name for name, _rows in results.class_results(filled)] == CLASS_ORDER
    assert [row["class"] for row in results.class_summary(filled)] == CLASS_ORDER
    assert [row["class"] for row in charts.laps_per_class(filled)] == CLASS_ORDER


def test_results_csv_is_in_natural_class_order(central_admin, filled):
    text = central_admin.get("/admin/results.csv").get_data(as_text=True)
    classes = [line.split(",")[2].strip('"') for line in text.splitlines()[1:]]
    assert list(dict.fromkeys(classes)) == CLASS_ORDER


def test_a_runner_written_any_way_gets_its_folded_name(filled):
    token = register(filled, "laptop-a")
    box = Outbox()
    runner_id = box.runner(77, "Ülrike Öztürk", "7a")
    push(filled, find_device(filled, token), validate_push(box.body()))
    row = filled.execute("SELECT name_folded, name_plain, class_key FROM runner WHERE id = %s",
                         [runner_id]).fetchone()
    assert row == {"name_folded": "ulrike ozturk", "name_plain": "ulrike ozturk",
                   "class_key": class_key("7a")}


def test_new_rules_recompute_the_stored_columns(filled):
    # As if the last release folded differently: wrong stored values and another digest.
    filled.execute("CREATE OR REPLACE FUNCTION lapsync_fold(text) RETURNS text "
                   "LANGUAGE sql IMMUTABLE AS $$ SELECT 'stale' $$")
    filled.execute("UPDATE runner SET name = name")
    filled.execute("UPDATE meta SET value = 'rules of an older release' WHERE key = 'search_rules'")
    assert {r["name_folded"] for r in filled.execute("SELECT name_folded FROM runner")} == {"stale"}
    init_schema(filled)
    folded = {r["name"]: r["name_folded"] for r in filled.execute("SELECT name, name_folded FROM runner")}
    assert folded["Anna Müller"] == "anna muller" and folded["Ömer Yılmaz"] == "omer yilmaz"


def test_search_and_class_order_stay_fast_with_5000_runners(central_db):
    rows = big_roster()
    roster.import_roster(central_db, roster_csv(rows))
    timings = []
    for query in ("mueller", "oemer", "gross", "zoe", "x"):
        started = time.perf_counter()
        found = roster.search_runners(central_db, query)
        standings.runner_standings(central_db, standings.parse_runner_filters({"q": query}))
        timings.append(time.perf_counter() - started)
        expected = {name for name, _class in rows if re.search(
            {"mueller": "Müller", "oemer": "Ömer", "gross": "Groß", "zoe": "Zoë", "x": "x"}[query],
            name)}
        assert {r["name"] for r in found} == expected
    # Each search at central reads 5,000 stored folded names: milliseconds, not a second.
    assert sorted(timings)[2] < 0.25, timings

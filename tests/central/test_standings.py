"""Central standings: runners, classes, grades, one runner's laps (real PostgreSQL)."""
from __future__ import annotations

import html
import re

import pytest

from lapsync.protocol import validate_push
from sync.devices import find_device
from sync.push import push
from sync.settings import set_setting
from sync.standings import local_time
from tests.pg import Outbox, register

T0 = 1_700_000_100_000


def send(conn, token: str, box: Outbox, now: int, device_time: int | None = None) -> None:
    """Push all of an outbox's changes through central's real push, received at `now`."""
    push(conn, find_device(conn, token), validate_push(box.body(device_time=device_time)), now)


def rows(page: str, attribute: str = "data-runner") -> list[dict]:
    """Return the data-* attributes of every table row that has `attribute`, in page order."""
    found = []
    for tag in re.findall(rf"<tr {attribute}=[^>]*>", page):
        found.append({k: html.unescape(v) for k, v in re.findall(r'data-([\w-]+)="([^"]*)"', tag)})
    return found


def text(response) -> str:
    """Return a response body as text."""
    return response.get_data(as_text=True)


@pytest.fixture
def event(central_db):
    """Three classes in two grades; Anna has 3 laps with one voided, Ben 4, Cleo and Dora 0."""
    device_token = register(central_db, "laptop-a", manage_users=True)  # tina reaches central
    box = Outbox()
    box.user_id = box.user("tina")
    ids = {"anna": box.runner(1, "Anna Berg", "5a", 5), "ben": box.runner(2, "Ben Cruz", "5b", 5),
           "cleo": box.runner(17, "Cleo Dahl", "6a", 6), "dora": box.runner(170, "Dora Ek", "6a", 6)}
    anna = [box.lap(ids["anna"], time=T0 + i * 120_000) for i in range(3)]
    for i in range(4):
        box.lap(ids["ben"], time=T0 + i * 90_000)
    box.void(anna[1])
    send(central_db, device_token, box, now=T0 + 600_000, device_time=T0 + 595_000)
    return {**ids, "box": box, "anna_laps": anna}


def test_runners_show_laps_that_count_and_distance(viewer, central_db, event):
    set_setting(central_db, "metres_per_lap", 400)
    page = text(viewer.get("/standings/"))
    shown = rows(page)
    assert [r["runner"] for r in shown] == [event["ben"], event["anna"], event["cleo"], event["dora"]]
    assert [r["laps"] for r in shown] == ["4", "2", "0", "0"]   # Anna's voided lap never counts
    assert [r["distance-m"] for r in shown] == ["1600", "800", "0", "0"]
    assert "1.60" in page and "0.80" in page
    assert 'href="/standings/runner/%s"' % event["anna"] in page


def test_distance_with_fractional_metres_per_lap(viewer, central_db, event):
    set_setting(central_db, "metres_per_lap", 333.5)
    shown = {r["runner"]: r for r in rows(text(viewer.get("/standings/")))}
    assert shown[event["ben"]]["distance-m"] == "1334"
    assert shown[event["anna"]]["distance-m"] == "667"
    assert "1.33" in text(viewer.get("/standings/?q=ben"))


def test_standings_write_metres_to_the_cm_as_results_and_certificates_do(viewer, central_db, event):
    set_setting(central_db, "metres_per_lap", 333.33)         # Ben 4 laps, Anna 2 that count
    shown = {r["runner"]: r for r in rows(text(viewer.get("/standings/")))}
    assert (shown[event["ben"]]["distance-m"], shown[event["anna"]]["distance-m"]) == ("1333.32", "666.66")
    page = text(viewer.get("/standings/?q=anna"))
    assert "666.66" in page and "666.7" not in page
    exported = text(viewer.get("/admin/results.csv"))
    assert "666.66" in exported and "1333.32" in exported      # the same figures


def test_without_metres_per_lap_distance_is_blank_and_explained(viewer, event):
    page = text(viewer.get("/standings/"))
    assert all("distance-m" not in r for r in rows(page))
    assert "metres per lap is set" in page


def test_class_aggregates(viewer, central_db, event):
    set_setting(central_db, "metres_per_lap", 400)
    page = text(viewer.get("/standings/classes"))
    assert "<h1>Standings by class</h1>" in page and "Standings by class –" in page
    groups = rows(page, "data-group")
    # Runners: who ran; 6a's two did not, so it has no average.
    assert [(g["group"], g["runners"], g["did-not-run"], g["laps"], g["average"], g["distance-m"])
            for g in groups] == [("5b", "1", "0", "4", "4.00", "1600"),
                                 ("5a", "1", "0", "2", "2.00", "800"),
                                 ("6a", "0", "2", "0", "", "0")]
    by_name = rows(text(viewer.get("/standings/classes?sort=name")), "data-group")
    assert [g["group"] for g in by_name] == ["5a", "5b", "6a"]


def test_grade_aggregates(viewer, central_db, event):
    set_setting(central_db, "metres_per_lap", 250)
    groups = rows(text(viewer.get("/standings/grades")), "data-group")
    assert [(g["group"], g["runners"], g["did-not-run"], g["laps"], g["average"], g["distance-m"])
            for g in groups] == [("5", "2", "0", "6", "3.00", "1500"), ("6", "0", "2", "0", "", "0")]
    by_average = rows(text(viewer.get("/standings/grades?sort=average")), "data-group")
    assert by_average[0]["group"] == "5"


@pytest.mark.parametrize("query,expected", [
    ("q=CLEO", ["cleo"]),                     # name substring, any case
    ("q=berg", ["anna"]),
    ("q=17", ["cleo"]),                       # an exact start number, not 170
    ("q=170", ["dora"]),
    ("q=%25", []),                            # LIKE wildcards are plain text
    ("class=6a", ["cleo", "dora"]),
    ("class=6a&sort=number", ["cleo", "dora"]),
    ("grade=5", ["ben", "anna"]),
    ("grade=5&q=R", ["ben", "anna"]),
    ("grade=6&q=ek", ["dora"]),
    ("grade=6&class=5a", []),
    ("class=nope", []),
    ("sort=name", ["anna", "ben", "cleo", "dora"]),
    ("sort=number", ["anna", "ben", "cleo", "dora"]),
    ("sort=laps", ["ben", "anna", "cleo", "dora"]),
])
def test_search_filter_and_sort(viewer, event, query, expected):
    shown = rows(text(viewer.get(f"/standings/?{query}")))
    assert [r["runner"] for r in shown] == [event[name] for name in expected]


def test_long_lists_come_in_pages_of_100(viewer, central_db, device_token):
    box = Outbox()
    ids = [box.runner(n, f"Runner {n:03d}", "5a" if n % 2 else "5b") for n in range(1, 206)]
    box.lap(ids[-1])
    send(central_db, device_token, box, now=T0)
    first = text(viewer.get("/standings/?sort=number"))
    assert [r["runner"] for r in rows(first)] == ids[:100]
    assert "Runners 1 to 100 of 205." in first and "Page 1 of 3" in first
    assert 'href="/standings/?sort=number&amp;page=2"' in first and 'rel="prev"' not in first
    last = text(viewer.get("/standings/?sort=number&page=3"))
    assert [r["runner"] for r in rows(last)] == ids[200:] and 'rel="next"' not in last
    top = rows(text(viewer.get("/standings/")))
    assert top[0]["runner"] == ids[-1] and top[0]["laps"] == "1"
    in_class = text(viewer.get("/standings/?class=5b&page=2"))
    assert len(rows(in_class)) == 2 and "Runners 101 to 102 of 102." in in_class
    past = text(viewer.get("/standings/?page=7"))
    assert rows(past) == [] and "past the end of the list" in past and 'rel="prev"' in past
    assert "Page 7 of 3" in past


def places(page: str) -> list[str]:
    """Return the place cell of every runner row: a number, or – for one who did not run."""
    return [re.sub(r"<[^>]+>", "", cell) for cell in
            re.findall(r"<tr data-runner=[^>]*><td>(.*?)</td>", page)]


def test_place_is_ranked_within_the_class_or_grade_filter(viewer, central_db, event):
    box = Outbox()
    box.lap(event["cleo"], time=T0)
    box.lap(event["dora"], time=T0)
    send(central_db, register(central_db, "laptop-c"), box, now=T0 + 700_000)
    assert places(text(viewer.get("/standings/?grade=6"))) == ["1", "1"]  # a tie
    assert places(text(viewer.get("/standings/?grade=5"))) == ["1", "2"]


def test_a_runner_without_a_lap_that_counts_did_not_run_and_has_no_place(viewer, central_db,
                                                                          event):
    page = text(viewer.get("/standings/"))
    assert places(page) == ["1", "2", "–", "–"]                 # Ben, Anna; Cleo, Dora: 0 laps
    assert "did not run: they get no place" in page and 'title="did not run"' in page
    box = Outbox()
    box.lap(event["cleo"], time=T0)                              # a lap arrives later: she ran
    box.void(box.lap(event["dora"], time=T0))                    # a voided lap counts for nothing
    send(central_db, register(central_db, "laptop-c"), box, now=T0 + 700_000)
    shown = rows(page := text(viewer.get("/standings/")))
    assert [r["runner"] for r in shown[2:]] == [event["cleo"], event["dora"]]
    assert places(page) == ["1", "2", "3", "–"]
    assert places(text(viewer.get("/standings/?sort=name"))) == ["2", "1", "3", "–"]
    anna_only = text(viewer.get("/standings/?class=5a"))
    assert places(anna_only) == ["1"] and "did not run" not in anna_only


@pytest.mark.parametrize("query,message", [
    ("sort=evil", "Sort by laps, name or number"),
    ("sort=laps;DROP TABLE runner", "Sort by laps, name or number"),
    ("grade=x", "grade must be a whole number"),
    ("grade=14", "grade must be a whole number"),
    ("grade=-1", "grade must be a whole number"),
    ("q=" + "x" * 101, "at most 100 characters"),
    ("page=0", "page must be a whole number"),
    ("page=abc", "page must be a whole number"),
    ("page=99999999999999999999", "page must be a whole number"),
])
def test_bad_query_arguments_get_400_and_the_unfiltered_list(viewer, central_db, event,
                                                             query, message):
    response = viewer.get(f"/standings/?{query}")
    assert response.status_code == 400 and message in text(response)
    assert len(rows(text(response))) == 4
    assert central_db.execute("SELECT count(*) AS n FROM runner").fetchone()["n"] == 4


@pytest.mark.parametrize("path", ["/standings/classes?sort=evil", "/standings/grades?sort=1"])
def test_bad_group_sort_gets_400(viewer, event, path):
    response = viewer.get(path)
    assert response.status_code == 400 and "Sort by laps, average or name" in text(response)
    assert rows(text(response), "data-group")


def test_runner_page_lists_every_lap_with_device_helper_times_and_void(viewer, central_db,
                                                                       event):
    set_setting(central_db, "metres_per_lap", 400)
    page = text(viewer.get(f"/standings/runner/{event['anna']}"))
    laps = rows(page, 'id="lap-[^"]+" data-lap')
    assert [lap["lap"] for lap in laps] == event["anna_laps"]  # one push: the laptop's order
    assert [lap["voided"] for lap in laps] == ["false", "true", "false"]
    assert 'class="voided"' in page and "voided by tina at" in page and "double count" in page
    assert "laptop-a" in page and event["box"].laptop_id in page and "tina" in page
    assert local_time(T0 + 120_000) in page              # device time
    assert local_time(T0 + 600_000) in page              # receipt time
    assert "+5.0 s" in page                              # clock offset of that push
    assert '<dd id="laps">2</dd>' in page and "800 m (0.80 km)" in page


def test_runner_page_orders_by_receipt_time_not_device_clock(viewer, central_db, event):
    late = Outbox(clock_ms=T0 - 3_600_000)               # a laptop whose clock is an hour behind
    token = register(central_db, "laptop-b")
    early_lap = late.lap(event["ben"], time=T0 - 3_600_000)   # earliest device time of all...
    send(central_db, token, late, now=T0 + 900_000, device_time=T0 - 2_700_000)  # ...received last
    page = text(viewer.get(f"/standings/runner/{event['ben']}"))
    laps = [lap["lap"] for lap in rows(page, 'id="lap-[^"]+" data-lap')]
    assert len(laps) == 5 and laps[-1] == early_lap
    assert "laptop-b" in page and ">helper<" in page   # central's teacher, by name
    assert "+3600.0 s" in page


def test_a_helper_central_does_not_know_is_unknown_on_the_runner_page(viewer, central_db, event):
    box = Outbox()
    box.user_id = box.user("chef2", role="admin")        # refused: only central makes users
    box.void(box.lap(event["cleo"], time=T0))
    send(central_db, register(central_db, "laptop-c"), box, now=T0 + 700_000)
    page = text(viewer.get(f"/standings/runner/{event['cleo']}"))
    assert f"voided by unknown user {box.user_id} at" in page
    helper = re.search(r'<tr id="lap-[^>]*>(?:\s*<td>.*?</td>){2}\s*<td>(.*?)</td>', page, re.DOTALL)
    assert re.sub(r"<[^>]+>", " ", helper[1]).split() == ["unknown", box.user_id]


def test_a_merged_runner_leaves_the_standings_and_points_to_its_survivor(viewer, central_db,
                                                                         event):
    central_db.execute("UPDATE runner SET merged_into = %s WHERE id = %s",
                       [event["cleo"], event["dora"]])
    shown = [r["runner"] for r in rows(text(viewer.get("/standings/")))]
    assert event["dora"] not in shown and len(shown) == 3
    assert rows(text(viewer.get("/standings/classes")), "data-group")[2]["did-not-run"] == "1"
    page = text(viewer.get(f"/standings/runner/{event['dora']}"))
    assert 'id="merged"' in page and "Cleo Dahl" in page


def test_laps_of_a_runner_central_does_not_know_yet_are_mentioned(viewer, central_db, event):
    box = Outbox()
    box.lap(box.new_id())
    box.lap(box.new_id())
    send(central_db, register(central_db, "laptop-c"), box, now=T0 + 700_000)
    assert "2 laps belong to runners central does not know yet" in text(
        viewer.get("/standings/"))


@pytest.mark.parametrize("runner_id", ["nosuchrunner0000000000000", "x" * 300, "%00"])
def test_unknown_runner_is_a_404_page(viewer, event, runner_id):
    response = viewer.get(f"/standings/runner/{runner_id}")
    assert response.status_code == 404 and "There is no runner with this id" in text(response)


def test_empty_event_pages(viewer):
    assert "No runner matches" in text(viewer.get("/standings/"))
    assert "No runners yet" in text(viewer.get("/standings/classes"))


@pytest.mark.parametrize("path", ["/standings/", "/standings/classes", "/standings/grades",
                                  "/standings/runner/abc"])
def test_anonymous_is_sent_to_login(central_client, path):
    response = central_client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_class_and_grade_averages_are_over_the_runners_who_ran(viewer, central_db, event):
    box = Outbox()
    box.lap(box.runner(18, "Emil Engel", "6a", 6))          # 6a: Emil ran 1 lap, two did not
    for i in range(5):
        box.lap(box.runner(30 + i, f"Kind {i}", "5a", 5))   # 5a: Anna 2 laps, these 1 each
    box.runner(40, "Fritz Fehlt", "5a", 5)                  # ... and one who did not run
    send(central_db, register(central_db, "laptop-b"), box, now=T0 + 900_000)
    page = text(viewer.get("/standings/classes?sort=average"))
    assert "Average laps per runner who ran" in page and ">Did not run<" in page
    groups = {g["group"]: g for g in rows(page, "data-group")}
    assert [(groups[c]["runners"], groups[c]["did-not-run"], groups[c]["laps"],
             groups[c]["average"]) for c in ("5a", "5b", "6a")] == [
        ("6", "1", "7", "1.17"), ("1", "0", "4", "4.00"), ("1", "2", "1", "1.00")]
    assert [g["group"] for g in rows(page, "data-group")] == ["5b", "5a", "6a"]
    grades = {g["group"]: g for g in rows(text(viewer.get("/standings/grades")), "data-group")}
    assert (grades["6"]["runners"], grades["6"]["did-not-run"], grades["6"]["average"]) == \
        ("1", "2", "1.00")
    results = text(viewer.get("/admin/results"))
    row = results[results.index('<tr data-class="6a"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="runners">1</td><td class="did-not-run">2</td><td>1</td>' in row


def test_a_class_where_nobody_ran_has_no_average_and_sorts_last_by_average(viewer, event):
    page = text(viewer.get("/standings/classes?sort=average"))
    assert [g["group"] for g in rows(page, "data-group")] == ["5b", "5a", "6a"]
    row = page[page.index('<tr data-group="6a"'):]
    assert '<td class="num average">–</td>' in row[:row.index("</tr>")]

"""Closing the event: a freeze of each pledge's figures, the changes after it, the admin's say."""
from __future__ import annotations

import re

import pytest

from lapsync.errors import InputError
from lapsync.protocol import validate_push
from sync.devices import find_device
from sync.sponsors.freeze import changes, current_freeze, decide, freeze_results, letter_rows
from sync.sponsors.letters import letters
from sync.sponsors.money_log import money_log
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge, delete_pledge, edit_pledge
from sync.push import push
from sync.review import lap_state, merge, runners_by_id, void_lap
from sync.settings import set_setting
from sync.sponsors.thaw import kept_cases
from tests.pg import Outbox


@pytest.fixture
def event(central_db, device_token, central_users):
    """Anna (10 laps) and Ben (4 laps) with three pledges; returns ids and a lap pusher."""
    box, device = Outbox(), find_device(central_db, device_token)
    sent = {"last": 0}

    def send():
        push(central_db, device, validate_push(box.body(first=sent["last"] + 1)))
        sent["last"] = len(box.changes)
    set_setting(central_db, "metres_per_lap", 400)
    anna, ben = box.runner(1, "Anna", "5a"), box.runner(2, "Ben", "5a")
    laps = {anna: [box.lap(anna) for _ in range(10)], ben: [box.lap(ben) for _ in range(4)]}
    send()
    admin = central_users["ada"]
    pledges = {
        "oma": add_pledge(central_db, admin, anna, {"sponsor_name": "Oma", "kind": "per_lap",
                                                    "rate_cents": "0,50"}),
        "firma": add_pledge(central_db, admin, anna, {"sponsor_name": "Firma", "kind": "fixed",
                                                      "rate_cents": "20"}),
        "tante": add_pledge(central_db, admin, ben, {"sponsor_name": "Tante", "kind": "per_lap",
                                                     "rate_cents": "1"}),
    }
    return {"box": box, "send": send, "anna": anna, "ben": ben, "laps": laps, "admin": admin,
            **pledges}


def letter_amounts(conn) -> dict[str, int]:
    """Return what each pledge's letter says it owes, by pledge id."""
    return {row["id"]: row["amount_cents"] for row in letter_rows(conn)}


def by_sponsor(conn) -> dict[str, dict]:
    """Return the changes page's cases by sponsor name."""
    return {case["sponsor_name"]: case for case in changes(conn)}


def post(client, path: str, **form):
    """Post a form with the client's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **form})


def test_letters_keep_the_frozen_figures_and_changes_are_listed_with_their_cause(
        central_admin, central_db, event):
    assert post(central_admin, "/sponsors/freeze").status_code == 302  # not the page's button
    assert current_freeze(central_db) is None
    assert post(central_admin, "/sponsors/freeze", confirm="yes").status_code == 302
    assert current_freeze(central_db)["frozen_by_name"] == "ada"
    frozen = {event["oma"]: 500, event["firma"]: 2000, event["tante"]: 400}
    assert letter_amounts(central_db) == frozen and changes(central_db) == []
    # Central voids one of Anna's laps: the letter stays, the change is listed.
    lap = lap_state(central_db, event["laps"][event["anna"]][0])
    void_lap(central_db, event["admin"], lap["id"], lap["version"])
    assert letter_amounts(central_db) == frozen
    case = by_sponsor(central_db)["Oma"]
    assert case["old"] == {"laps": 10, "distance_m": 4000, "amount_cents": 500}
    assert case["new"] == {"laps": 9, "distance_m": 3600, "amount_cents": 450}
    assert any("Voided a lap of" in cause for cause in case["causes"])
    firma = by_sponsor(central_db)["Firma"]           # a fixed pledge's letter states laps too
    assert (firma["old"], firma["new"]) == ({"laps": 10, "distance_m": 4000, "amount_cents": 2000},
                                            {"laps": 9, "distance_m": 3600, "amount_cents": 2000})
    assert set(by_sponsor(central_db)) == {"Oma", "Firma"}
    # Ben is merged into Anna: Tante's pledge now counts Anna's 13 laps.
    rows = runners_by_id(central_db, [event["anna"], event["ben"]])
    merge(central_db, event["admin"], event["anna"], rows[event["anna"]]["version"], event["ben"],
          rows[event["ben"]]["version"])
    cases = by_sponsor(central_db)
    assert cases["Tante"]["new"]["amount_cents"] == 1300 and cases["Oma"]["new"]["laps"] == 13
    assert any("Merged 2 Ben (5a) into 1 Anna (5a)" in cause for cause in cases["Tante"]["causes"])
    page = central_admin.get("/sponsors/changes").get_data(as_text=True)
    assert "Changes since the freeze: 3" in page and "Merged 2 Ben (5a) into 1 Anna (5a)" in page
    # Accept Oma's new figure: her letter changes. Keep Tante's frozen one: it stays.
    assert post(central_admin, f"/sponsors/changes/{event['oma']}", decision="accept").status_code == 302
    assert post(central_admin, f"/sponsors/changes/{event['tante']}", decision="keep").status_code == 302
    assert post(central_admin, f"/sponsors/changes/{event['firma']}", decision="accept").status_code == 302
    assert letter_amounts(central_db) == {event["oma"]: 650, event["firma"]: 2000,
                                          event["tante"]: 400}
    assert {row["id"]: row["laps"] for row in letter_rows(central_db)}[event["firma"]] == 13
    assert changes(central_db) == []
    log = central_db.execute("SELECT by_name, action, details FROM money_log WHERE action LIKE "
                             "'freeze%%' ORDER BY id").fetchall()
    assert [(r["by_name"], r["action"]) for r in log] == [
        ("ada", "freeze"), ("ada", "freeze_accept"), ("ada", "freeze_keep"), ("ada", "freeze_accept")]
    assert log[1]["details"]["from"]["amount_cents"] == 500
    assert log[1]["details"]["to"]["amount_cents"] == 650
    # A later lap changes both again; the kept case comes back, with its cause.
    event["box"].lap(event["anna"])
    event["send"]()
    cases = by_sponsor(central_db)
    assert cases["Tante"]["old"]["amount_cents"] == 400 and cases["Tante"]["new"]["amount_cents"] == 1400
    assert "1 lap arrived after the freeze." in cases["Tante"]["causes"]
    assert cases["Oma"]["old"]["amount_cents"] == 650


def test_pledges_added_or_deleted_after_the_freeze(central_db, event):
    freeze_results(central_db, event["admin"])
    new = add_pledge(central_db, event["admin"], event["ben"], {"sponsor_name": "Opa",
                                                                "kind": "fixed", "rate_cents": "5"})
    delete_pledge(central_db, event["admin"], event["firma"])
    cases = by_sponsor(central_db)
    assert cases["Opa"]["old"] is None and cases["Opa"]["causes"] == ["Pledge added after the freeze."]
    assert cases["Firma"]["new"] is None and cases["Firma"]["causes"] == ["Pledge deleted after the freeze."]
    with pytest.raises(InputError):
        decide(central_db, event["admin"], new, accept=False)   # nothing frozen to keep
    decide(central_db, event["admin"], new, accept=True)
    decide(central_db, event["admin"], event["firma"], accept=True)
    assert changes(central_db) == []
    rows = {r["id"]: r for r in letter_rows(central_db)}
    assert rows[new]["frozen"] and rows[new]["amount_cents"] == 500 and event["firma"] not in rows


def test_freezing_twice_is_refused_and_unfreezing_asks_first(central_admin, central_db, event):
    freeze_results(central_db, event["admin"])
    response = central_admin.post("/sponsors/freeze", headers={"Accept": "application/json"},
                                  data={"csrf_token": central_admin.csrf, "confirm": "yes"})
    assert response.status_code == 409 and response.get_json()["error"] == "frozen_already"
    lap = lap_state(central_db, event["laps"][event["anna"]][0])
    void_lap(central_db, event["admin"], lap["id"], lap["version"])
    assert letter_amounts(central_db)[event["oma"]] == 500
    asked = post(central_admin, "/sponsors/unfreeze")
    assert asked.status_code == 302 and "confirm=unfreeze" in asked.headers["Location"]
    page = central_admin.get(asked.headers["Location"]).get_data(as_text=True)
    assert "Lift the freeze?" in page and current_freeze(central_db) is not None
    unseen = post(central_admin, "/sponsors/unfreeze", confirm="yes")   # not the page's form
    assert "confirm=unfreeze" in unseen.headers["Location"] and current_freeze(central_db)
    seen = re.search(r'name="seen" value="([0-9a-f]+)"', page).group(1)
    assert post(central_admin, "/sponsors/unfreeze", confirm="yes", seen=seen).status_code == 302
    assert current_freeze(central_db) is None
    assert letter_amounts(central_db)[event["oma"]] == 450       # live figures again
    actions = [r["action"] for r in central_db.execute(
        "SELECT action FROM money_log WHERE action IN ('freeze', 'unfreeze') ORDER BY id")]
    assert actions == ["freeze", "unfreeze"]
    # A new freeze takes the figures of now.
    freeze_results(central_db, event["admin"])
    assert letter_amounts(central_db)[event["oma"]] == 450 and changes(central_db) == []


def test_a_viewer_sees_the_changes_but_decides_nothing(central_viewer, central_db, event):
    freeze_results(central_db, event["admin"])
    lap = lap_state(central_db, event["laps"][event["anna"]][0])
    void_lap(central_db, event["admin"], lap["id"], lap["version"])
    page = central_viewer.get("/sponsors/changes").get_data(as_text=True)
    assert "Changes since the freeze: 2" in page and "Accept the new figure" not in page  # Oma, Firma
    for path, form in [(f"/sponsors/changes/{event['oma']}", {"decision": "accept"}),
                       ("/sponsors/unfreeze", {"confirm": "yes"}), ("/sponsors/freeze", {"confirm": "yes"})]:
        assert post(central_viewer, path, **form).status_code == 403
    assert current_freeze(central_db) is not None and len(changes(central_db)) == 2


def test_every_money_page_owes_what_the_letter_says_once_a_frozen_figure_is_kept(
        central_admin, central_db, event):
    assert post(central_admin, "/sponsors/freeze", confirm="yes").status_code == 302
    edit_pledge(central_db, event["admin"], event["firma"], {
        "sponsor_name": "Firma", "kind": "fixed", "rate_cents": "25"})    # 20 -> 25 after the freeze
    assert post(central_admin, f"/sponsors/changes/{event['firma']}",
                decision="keep").status_code == 302                    # the letter keeps 20
    add_payment(central_db, event["admin"], event["firma"], {
        "amount_cents": "20", "paid_on": "2025-07-01", "method": "transfer"})  # what it asked for
    outstanding = central_admin.get("/sponsors/outstanding").get_data(as_text=True)
    assert "2 pledges with money due: €9.00" in outstanding            # Oma and Tante, not Firma
    sponsors = central_admin.get("/sponsors/").get_data(as_text=True)
    assert "raised €29.00, paid €20.00, outstanding €9.00." in sponsors  # 5 + 20 + 4
    assert "frozen; live €25.00" in sponsors                           # the edit is not hidden
    rows = {r["id"]: r for r in letter_rows(central_db)}
    assert (rows[event["firma"]]["amount_cents"], rows[event["firma"]]["live_amount_cents"]) \
        == (2000, 2500)
    exported = central_admin.get("/sponsors/amounts.csv").get_data(as_text=True)
    assert '"fixed",25.00,"",10,4000,20.00,20.00,0.00,0.00,' in exported  # rate now; owes 20, paid


def confirm_unfreeze(client) -> tuple[str, str]:
    """Ask to lift the freeze as the page does; return the confirmation page and what it saw."""
    asked = post(client, "/sponsors/unfreeze")
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    seen = re.search(r'name="seen" value="([0-9a-f]*)"', page)
    return page, seen.group(1) if seen else ""


def row_of(page: str, table: str, sponsor: str) -> str:
    """Return the text of one sponsor's row in one of the page's tables ('' if absent)."""
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0] if f'id="{table}"' in page \
        else ""
    return next((re.sub(r"<[^>]+>", "", row) for row in body.split("<tr")[1:]
                 if f"<td>{sponsor}</td>" in row), "")


def test_kept_figures_survive_lifting_the_freeze_and_freezing_again(
        central_admin, central_app, central_db, event):
    """Regression: a kept figure was lost on unfreeze, unlisted, and refrozen live."""
    admin, box = event["admin"], event["box"]
    massmann = add_pledge(central_db, admin, event["ben"], {
        "sponsor_name": "Firma Maßmann", "kind": "per_km", "rate_cents": "0,50"})  # 1.6 km: 0.80
    assert post(central_admin, "/sponsors/freeze", confirm="yes").status_code == 302
    box.lap(event["ben"])                                  # Ben: 5 laps, 2 km
    event["send"]()
    lap = lap_state(central_db, event["laps"][event["anna"]][0])
    void_lap(central_db, admin, lap["id"], lap["version"])  # Anna: 9 laps
    add_payment(central_db, admin, event["oma"], {          # Oma pays what her letter asked
        "amount_cents": "5", "paid_on": "2025-07-01", "method": "transfer"})
    for pledge in (event["oma"], massmann):
        assert post(central_admin, f"/sponsors/changes/{pledge}", decision="keep").status_code == 302
    assert set(by_sponsor(central_db)) == {"Tante", "Firma"}   # Firma: 20 € for 9 laps, not 10
    assert post(central_admin, f"/sponsors/changes/{event['firma']}", decision="accept").status_code == 302
    assert set(by_sponsor(central_db)) == {"Tante"}        # 4.00 -> 5.00, not decided
    kept = {c["sponsor_name"]: c for c in kept_cases(central_db)}
    assert {name: (c["old"]["amount_cents"], c["new"]["amount_cents"])
            for name, c in kept.items()} == {"Oma": (500, 450), "Firma Maßmann": (80, 100)}
    # The confirmation lists what changes (Tante) and what stays as kept (Oma, Maßmann).
    page, seen = confirm_unfreeze(central_admin)
    assert "1 letter changes what it states:" in page
    assert "€4.00" in row_of(page, "unfreeze-changing", "Tante")
    assert "€5.00" in row_of(page, "unfreeze-changing", "Tante")
    assert "2 figures you kept stay as their letters say:" in page
    assert "€0.80" in row_of(page, "unfreeze-kept", "Firma Maßmann")
    assert post(central_admin, "/sponsors/unfreeze", confirm="yes", seen=seen).status_code == 302
    assert current_freeze(central_db) is None
    expected = {event["oma"]: 500, event["firma"]: 2000, event["tante"]: 500, massmann: 80}
    assert letter_amounts(central_db) == expected
    rows = {r["id"]: r for r in letter_rows(central_db)}
    assert rows[event["oma"]]["outstanding_cents"] == 0    # not "0.50 overpaid"
    assert rows[massmann]["pinned"] and rows[massmann]["live_amount_cents"] == 100
    assert "kept; live €1.00" in central_admin.get("/sponsors/").get_data(as_text=True)
    reminders = central_admin.get("/sponsors/letters?kind=reminder&class=5a").get_data(as_text=True)
    assert "the figures are the live ones. 1 letter keeps the figure you kept." in reminders
    # Freezing again takes the kept figures over, kept: nothing to decide, letters unchanged.
    assert post(central_admin, "/sponsors/freeze", confirm="yes").status_code == 302
    assert letter_amounts(central_db) == expected and changes(central_db) == []
    assert {c["sponsor_name"] for c in kept_cases(central_db)} == {"Oma", "Firma Maßmann"}
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        reminders = {r["row"]["sponsor_name"]: r["outstanding"]
                     for r in letters(central_db, class_name="5a", kind="reminder")}
    assert reminders == {"Firma": 2000, "Tante": 500, "Firma Maßmann": 80}
    totals = central_admin.get("/sponsors/").get_data(as_text=True)
    assert "raised €30.80, paid €5.00, outstanding €25.80." in totals
    # A later lap moves Maßmann's live figure again: the kept case is back for a decision.
    box.lap(event["ben"])
    event["send"]()
    case = by_sponsor(central_db)["Firma Maßmann"]
    assert (case["old"]["amount_cents"], case["new"]["amount_cents"]) == (80, 120)
    log = [r["action"] for r in central_db.execute(
        "SELECT action FROM money_log WHERE action LIKE '%%freeze%%' ORDER BY id")]
    assert log == ["freeze", "freeze_keep", "freeze_keep", "freeze_accept", "unfreeze", "freeze"]


def test_lifting_the_freeze_is_refused_when_the_list_changed_and_a_kept_figure_given_up(
        central_admin, central_db, event):
    freeze_results(central_db, event["admin"])
    edit_pledge(central_db, event["admin"], event["firma"], {
        "sponsor_name": "Firma", "kind": "fixed", "rate_cents": "25"})
    decide(central_db, event["admin"], event["firma"], accept=False)
    page, seen = confirm_unfreeze(central_admin)
    assert "No letter changes what it states." in page
    # A void arrives while the admin reads: the list shown is no longer what would change.
    lap = lap_state(central_db, event["laps"][event["anna"]][0])
    void_lap(central_db, event["admin"], lap["id"], lap["version"])
    answer = post(central_admin, "/sponsors/unfreeze", confirm="yes", seen=seen)
    assert "confirm=unfreeze" in answer.headers["Location"] and current_freeze(central_db)
    page, seen = confirm_unfreeze(central_admin)
    assert "€4.50" in row_of(page, "unfreeze-changing", "Oma")
    assert post(central_admin, "/sponsors/unfreeze", confirm="yes", seen=seen).status_code == 302
    assert letter_amounts(central_db)[event["oma"]] == 450
    assert letter_amounts(central_db)[event["firma"]] == 2000      # kept while unfrozen
    # Giving the kept figure up is its own, logged choice.
    assert post(central_admin, f"/sponsors/kept/{event['firma']}").status_code == 302
    assert letter_amounts(central_db)[event["firma"]] == 2500 and kept_cases(central_db) == []
    freeze_results(central_db, event["admin"])
    assert letter_amounts(central_db)[event["firma"]] == 2500 and changes(central_db) == []
    texts = [entry["text"].replace("\xa0", "") for entry in money_log(central_db)]
    assert "Gave up the kept figure of Firma for 1 Anna: €25.00 (was €20.00)." in texts
    assert ("Lifted the freeze of the results. Letters that changed: Oma for 1 Anna "
            "€5.00 → €4.50. Kept figures that stay: 1.") in texts


def test_the_changes_page_says_did_not_run_not_0_laps(central_admin, central_db, event):
    carl = event["box"].runner(3, "Carl", "5a")          # on the roster, never ran
    event["send"]()
    freeze_results(central_db, event["admin"])
    for lap_id in event["laps"][event["ben"]]:           # every lap of Ben's voided in review
        lap = lap_state(central_db, lap_id)
        void_lap(central_db, event["admin"], lap["id"], lap["version"])
    bakery = add_pledge(central_db, event["admin"], carl, {"sponsor_name": "Bäckerei",
                                                           "kind": "fixed", "rate_cents": "10"})
    page = central_admin.get("/sponsors/changes", headers={"Accept-Language": "en"}).get_data(
        as_text=True)

    def cells(pledge_id: str) -> tuple[str, str]:
        """Return a case's frozen and new figures as the page writes them, tags stripped."""
        row = page[page.index(f'<tr data-pledge="{pledge_id}"'):]
        row = row[:row.index("</tr>")]
        return tuple(re.sub(r"<[^>]+>", "", re.search(f'<td class="{which}">(.*?)</td>', row,
                                                      re.S).group(1)) for which in ("old", "new"))
    assert cells(event["tante"]) == ("4 laps, 1.60 km: €4.00", "did not run: €0.00")
    assert cells(bakery) == ("–", "did not run: €10.00")
    assert "0 laps" not in page

"""One bank transfer for several pledges: booked to each its open amount when they add up,
else split by an admin on the statement page (all or nothing), undone whole.

The sponsor of this file: Oma Kühn pledged for two grandchildren, got two letters
with two RF references and paid both in one transfer whose purpose names both.
"""
from __future__ import annotations

import io
import re
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.rows import dict_row

from lapsync.errors import InputError
from sync.sponsors.freeze import freeze_results, letter_rows
from sync.sponsors.letters import letters
from sync.sponsors.pledges import add_pledge, format_reference
from sync.sponsors.statement import find_references, import_statement, open_lines, split_line
from tests.central.test_results import late_laps, run

HEADER = "Buchungstag;Verwendungszweck;Betrag;Auftraggeber\r\n"


@pytest.fixture
def kuehn(central_db, device_token, central_users):
    """Anna (4 laps, 0,50 € per lap: 2,00 €) and Ben (fixed 1,67 €), both sponsored by Oma
    Kühn; Herr Lang owes 3,00 € for Anna. Returns pledge ids and references by key."""
    runners = run(central_db, device_token, [(7, "Anna Berg", "5a", 4), (8, "Ben Berg", "5a", 2)])
    admin = central_users["ada"]
    ids = {
        "anna": add_pledge(central_db, admin, runners["Anna Berg"],
                           {"sponsor_name": "Oma Kühn", "kind": "per_lap", "rate_cents": "0,50"}),
        "ben": add_pledge(central_db, admin, runners["Ben Berg"],
                          {"sponsor_name": "Oma Kühn", "kind": "fixed", "rate_cents": "1,67"}),
        "lang": add_pledge(central_db, admin, runners["Anna Berg"],
                           {"sponsor_name": "Herr Lang", "kind": "fixed", "rate_cents": "3"})}
    refs = {key: central_db.execute("SELECT reference FROM pledge WHERE id = %s",
                                    [pid]).fetchone()["reference"] for key, pid in ids.items()}
    return {"ids": ids, "refs": refs, "runners": runners, "admin": admin}


def statement(kuehn, amount: str = "3,67", second: str | None = None) -> bytes:
    """A bank file: one credit naming both of Oma Kühn's references as letters print them."""
    second = second or format_reference(kuehn["refs"]["ben"])
    purpose = f"Sponsorenlauf {format_reference(kuehn['refs']['anna'])} und {second}"
    return (HEADER + f"11.12.2026;{purpose};{amount};Max Müller\r\n").encode("cp1252")


def upload(client, data: bytes, name: str = "stmt2.csv", **headers) -> str:
    """Upload a statement on the page as the admin does; return the page it leads to."""
    return client.post("/sponsors/statement/", data={
        "csrf_token": client.csrf, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data", follow_redirects=True,
        headers=headers).get_data(as_text=True)


def payments(conn) -> list[tuple]:
    """Return (sponsor, runner number, cents, statement line) of every payment, by amount."""
    return [tuple(r.values()) for r in conn.execute(
        "SELECT p.sponsor_name, r.start_number, y.amount_cents, y.statement_line_id "
        "FROM payment y JOIN pledge p ON p.id = y.pledge_id JOIN runner r ON r.id = p.runner_id "
        "ORDER BY y.amount_cents")]


def outstanding(conn, kuehn) -> dict[str, int]:
    """Return what each pledge of the fixture still owes, by key."""
    rows = {r["id"]: r["outstanding_cents"] for r in letter_rows(conn)}
    return {key: rows[pid] for key, pid in kuehn["ids"].items()}


def reminders(client) -> str:
    """Return the reminder letters of class 5a as the page prints them."""
    return client.get("/sponsors/letters?class=5a&kind=reminder",
                      headers={"Accept-Language": "en"}).get_data(as_text=True)


def test_one_transfer_for_two_pledges_is_booked_to_each_its_open_amount(
        central_admin, central_db, kuehn):
    before = reminders(central_admin)
    assert before.count("Dear Oma Kühn,") == 2 and "Dear Herr Lang," in before
    page = upload(central_admin, statement(kuehn), headers={"Accept-Language": "en"})
    # One line, two payments recorded.
    assert ("stmt2.csv – bookings read: 1; payments recorded by their reference: 2; new credits "
            "left to assign: 0; imported before: 0; debits skipped: 0.") in page
    line = central_db.execute("SELECT * FROM statement_line").fetchone()
    assert payments(central_db) == [("Oma Kühn", 8, 167, line["id"]), ("Oma Kühn", 7, 200, line["id"])]
    assert line["payment_id"] is not None and line["matched_by"] == "reference"
    assert open_lines(central_db) == []
    assert outstanding(central_db, kuehn) == {"anna": 0, "ben": 0, "lang": 300}
    notes = [r["note"] for r in central_db.execute("SELECT note FROM payment ORDER BY amount_cents")]
    assert all(note.startswith("Bank statement, part of €3.67: Sponsorenlauf RF") for note in notes)
    # The same file again: nothing changes.
    page = upload(central_admin, statement(kuehn), headers={"Accept-Language": "en"})
    assert "payments recorded by their reference: 0;" in page and "imported before: 1;" in page
    assert len(payments(central_db)) == 2 and open_lines(central_db) == []
    after = reminders(central_admin)
    assert "Dear Oma Kühn," not in after and "Dear Herr Lang," in after


def test_the_report_counts_payments_and_names_credits_that_overpay(central_admin, central_db,
                                                                   kuehn):
    refs = {key: format_reference(ref) for key, ref in kuehn["refs"].items()}
    data = statement(kuehn) + (
        f"12.12.2026;Für Anna {refs['lang']};5,00;Karl Lang\r\n"          # owes 3,00
        f"13.12.2026;Nochmal {refs['ben']};0,50;\r\n"                     # paid in full above
        f"14.12.2026;Für Ben {refs['lang']};3,00;Karl Lang\r\n").encode("cp1252")
    page = upload(central_admin, data, headers={"Accept-Language": "en"})
    # Four lines: the split two payments, then one each.
    assert ("stmt2.csv – bookings read: 4; payments recorded by their reference: 5; new credits "
            "left to assign: 0; imported before: 0; debits skipped: 0.") in page
    assert len(payments(central_db)) == 5
    assert re.findall(r'<p class="flash warn" role="status">([^<]*)</p>', page) == [
        "€5.00 from Karl Lang booked to Herr Lang for 7 Anna Berg (5a): paid more than it owes "
        "(overpaid by €2.00).",
        "€0.50 from – booked to Oma Kühn for 8 Ben Berg (5a): paid more than it owes (overpaid "
        "by €0.50).",
        "€3.00 from Karl Lang booked to Herr Lang for 7 Anna Berg (5a): paid more than it owes "
        "(overpaid by €5.00)."]
    log = central_db.execute("SELECT details FROM money_log WHERE action = 'statement_import'")
    assert log.fetchone()["details"]["matched"] == 5
    assert "Imported the bank statement stmt2.csv: 5 payments recorded" in central_admin.get(
        "/sponsors/log", headers={"Accept-Language": "en"}).get_data(as_text=True)


def test_the_letters_figures_count_while_the_results_are_frozen(central_db, kuehn):
    freeze_results(central_db, kuehn["admin"])
    late_laps(central_db, kuehn["runners"]["Anna Berg"], 2)    # live 3,00 €, the letter 2,00 €
    report = import_statement(central_db, None, statement(kuehn), "stmt2.csv")
    assert report["matched"] == 2
    assert [p[2] for p in payments(central_db)] == [167, 200]


@pytest.mark.parametrize("amount,second", [
    ("3,50", None),                              # the parts do not add up
    ("3,67", "RF23 CWFL 56SM 43"),               # the second reference is no pledge's
    ("5,67", "RF23 CWFL 56SM 43"),               # ... even when the first alone would not fit
])
def test_a_transfer_that_does_not_add_up_waits_for_the_organiser(central_db, kuehn, amount,
                                                                 second):
    report = import_statement(central_db, None, statement(kuehn, amount, second), "s.csv")
    assert (report["matched"], report["unmatched"]) == (0, 1)
    assert payments(central_db) == [] and len(open_lines(central_db)) == 1


def test_a_pledge_paid_already_is_not_paid_again(central_db, kuehn):
    import_statement(central_db, None, statement(kuehn), "first.csv")
    again = statement(kuehn).replace(b"11.12.2026", b"12.12.2026")     # a second transfer
    assert import_statement(central_db, None, again, "second.csv")["unmatched"] == 1
    assert len(payments(central_db)) == 2


def test_references_named_in_order_and_what_else_looks_like_one():
    known = {"RF18539007547034", "RF71ABC", "RF45RF23XY"}
    assert find_references("RF71 ABC und rf18 5390 0754 7034, RF71ABC", known) == (
        ["RF71ABC", "RF18539007547034"], False)
    assert find_references("Sponsorenlauf RF18539007547034 und RF23 CWFL 56SM 43", known) == (
        ["RF18539007547034"], True)
    # "RF23" inside a reference, or inside a word, is no second reference.
    assert find_references("RF45 RF23 XY", known) == (["RF45RF23XY"], False)
    assert find_references("Surf 12 Club RF71ABC", known) == (["RF71ABC"], False)


def split_page(client, line_id: int, language: str = "en", query: str = "") -> str:
    """Return the statement page with a line chosen (and searched for, if query)."""
    return client.get(f"/sponsors/statement/?line={line_id}&q={query}",
                      headers={"Accept-Language": language}).get_data(as_text=True)


def post_split(client, line_id: int, parts: dict[str, str], **headers):
    """Post the split form of a line: amounts by pledge id."""
    data = {"csrf_token": client.csrf, **{f"part-{pid}": text for pid, text in parts.items()}}
    return client.post(f"/sponsors/statement/lines/{line_id}/assign", data=data,
                       headers={"Accept-Language": "en", **headers})


def test_the_split_form_names_the_pledges_with_their_open_amounts(central_admin, central_db,
                                                                  kuehn):
    import_statement(central_db, None, statement(kuehn, "3,50"), "s.csv")
    line = open_lines(central_db)[0]["id"]
    ids = kuehn["ids"]
    for language, anna, ben in [("en", "2.00", "1.67"), ("de-DE", "2,00", "1,67")]:
        page = split_page(central_admin, line, language)
        assert re.search(rf'name="part-{ids["anna"]}" value="{re.escape(anna)}"', page)
        assert re.search(rf'name="part-{ids["ben"]}" value="{re.escape(ben)}"', page)
        assert f'name="part-{ids["lang"]}"' not in page
    # A search adds the pledges found, empty.
    page = split_page(central_admin, line, query="Lang")
    assert re.search(rf'name="part-{ids["lang"]}" value=""', page)


@pytest.mark.parametrize("parts,message", [
    ({"anna": "2,00", "ben": "1,67"}, "The parts add up to €3.67, but the credit is €3.50"),
    ({"anna": "2,00", "ben": "1.5", "lang": "0,01"}, "The parts add up to €3.51"),
    ({"anna": "2,00", "ben": "zwölf"}, "Each part must be an amount like 12,50"),
    ({"anna": "", "ben": "0,00"}, "Type an amount for at least one pledge"),
])
def test_a_split_that_is_refused_books_nothing(central_admin, central_db, kuehn, parts, message):
    import_statement(central_db, None, statement(kuehn, "3,50"), "s.csv")
    line = open_lines(central_db)[0]["id"]
    response = post_split(central_admin, line, {kuehn["ids"][k]: v for k, v in parts.items()})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and message in page and "Nothing was booked." in page
    # The form comes back as typed.
    for key, text in parts.items():
        assert f'name="part-{kuehn["ids"][key]}" value="{text}"' in page
    assert payments(central_db) == [] and len(open_lines(central_db)) == 1
    assert central_db.execute("SELECT count(*) AS n FROM money_log "
                              "WHERE action = 'payment_add'").fetchone()["n"] == 0


def test_a_split_is_recorded_whole_and_undone_whole(central_admin, central_db, kuehn):
    import_statement(central_db, None, statement(kuehn, "3,50"), "s.csv")
    line = open_lines(central_db)[0]["id"]
    ids = kuehn["ids"]
    response = post_split(central_admin, line, {ids["anna"]: "2,00", ids["ben"]: "1.50",
                                                ids["lang"]: ""})
    assert response.status_code == 302
    assert payments(central_db) == [("Oma Kühn", 8, 150, line), ("Oma Kühn", 7, 200, line)]
    assert open_lines(central_db) == []
    assert central_db.execute("SELECT matched_by FROM statement_line").fetchone()["matched_by"] == "admin"
    assert post_split(central_admin, line, {ids["lang"]: "3,50"}).status_code == 409
    assert len(payments(central_db)) == 2
    # Deleting one part on the pledge's page deletes the other too: the line waits again.
    page = central_admin.get(f"/sponsors/{ids['ben']}", headers={"Accept-Language": "en"})
    text = " ".join(page.get_data(as_text=True).split())
    assert "Part of one bank transfer split over 2 pledges" in text
    # The confirmation names every part the deletion takes, the other pledge's too.
    assert ('name="confirm" value="1" required> Yes, delete all 2 parts of this bank transfer: '
            "€2.00 from Oma Kühn for Anna Berg (7); €1.50 from Oma Kühn for Ben Berg (8)</label>") in text
    part = central_db.execute("SELECT id FROM payment WHERE pledge_id = %s", [ids["ben"]]).fetchone()
    assert central_admin.post(f"/sponsors/payments/{part['id']}/delete",
                              data={"csrf_token": central_admin.csrf}).status_code == 400
    assert len(payments(central_db)) == 2
    page = central_admin.post(f"/sponsors/payments/{part['id']}/delete",
                              data={"csrf_token": central_admin.csrf, "confirm": "1"},
                              follow_redirects=True,
                              headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "and the other parts of the same bank transfer (2 payments in all)" in page
    assert payments(central_db) == [] and [r["id"] for r in open_lines(central_db)] == [line]
    assert central_db.execute("SELECT count(*) AS n FROM money_log "
                              "WHERE action = 'payment_delete'").fetchone()["n"] == 2


def test_a_split_answers_json_and_names_an_unknown_pledge(central_admin, central_db, kuehn):
    import_statement(central_db, None, statement(kuehn, "3,50"), "s.csv")
    line = open_lines(central_db)[0]["id"]
    response = post_split(central_admin, line, {kuehn["ids"]["anna"]: "3"},
                          Accept="application/json")
    assert response.status_code == 422 and response.get_json()["error"] == "split_mismatch"
    unknown = post_split(central_admin, line, {"nosuchpledge": "3,50"})
    assert unknown.status_code == 404 and payments(central_db) == []


def test_a_viewer_sees_no_split_form_and_cannot_post_one(central_viewer, central_db, kuehn):
    import_statement(central_db, None, statement(kuehn, "3,50"), "s.csv")
    line = open_lines(central_db)[0]["id"]
    assert "part-" not in split_page(central_viewer, line)
    assert post_split(central_viewer, line, {kuehn["ids"]["anna"]: "3,50"}).status_code == 403
    assert payments(central_db) == []


def test_the_reminders_leave_out_pledges_paid_by_a_split(central_app, central_admin, central_db,
                                                         kuehn):
    import_statement(central_db, None, statement(kuehn, "3,67", "RF23 CWFL 56SM 43"), "s.csv")
    line = open_lines(central_db)[0]["id"]
    ids = kuehn["ids"]
    post_split(central_admin, line, {ids["anna"]: "2", ids["ben"]: "1,67"})
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        due = [letter["row"]["sponsor_name"] for letter in letters(central_db, kind="reminder")]
    assert due == ["Herr Lang"]


def test_two_admins_splitting_one_credit_at_once_book_it_once(central_app, central_db, pg_url,
                                                              kuehn):
    import_statement(central_db, None, statement(kuehn, "3,50"), "s.csv")
    line, ids, admin = open_lines(central_db)[0]["id"], kuehn["ids"], kuehn["admin"]

    def second(conn) -> int:
        """Split the same line on another connection; return the refusal's status."""
        with central_app.test_request_context():
            try:
                split_line(conn, admin, line, {ids["lang"]: "3,50"})
            except InputError as exc:
                return exc.status
        return 200

    with psycopg.connect(pg_url, autocommit=True, row_factory=dict_row) as other, \
            ThreadPoolExecutor(1) as pool:
        with central_app.test_request_context(), central_db.transaction():
            split_line(central_db, admin, line, {ids["anna"]: "2", ids["ben"]: "1,50"})
            later = pool.submit(second, other)
            time.sleep(0.3)
            assert not later.done()                  # waits for the first split's lock
        assert later.result(timeout=10) == 409
    assert [p[2] for p in payments(central_db)] == [150, 200]

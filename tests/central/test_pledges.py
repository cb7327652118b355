"""Pledge pages at central: list with amounts, add, edit, delete, the fast-entry form, the runner
lookup, roles (viewers see, only admins change: 403 page otherwise) and the money log."""
from __future__ import annotations

import re

import pytest

from sync import clock
from sync.sponsors.amounts import pledge_amounts
from sync.db import write_transaction
from sync.sponsors.payments import add_payment
from sync.sponsors.pledges import add_pledge, parse_cents, parse_kind
from sync.settings import set_setting
from tests.central.test_results import run
from tests.pg import central_login, register
from stdnum import iso11649


@pytest.fixture
def runners(central_db, device_token) -> dict:
    """Anna (5a, 10 laps), Ben (5a, 4 laps), Cleo (6b, 7 laps); 400 m per lap."""
    set_setting(central_db, "metres_per_lap", 400)
    return run(central_db, device_token, [(1, "Anna Berg", "5a", 10), (2, "Ben Cruz", "5a", 4),
                                          (17, "Cleo Dahl", "6b", 7)])


def post(client, path: str, **form):
    """Post a form with the client's CSRF token."""
    return client.post(path, data={"csrf_token": client.csrf, **form})


@pytest.mark.parametrize("text, cents", [("0,50", 50), ("1.25", 125), ("20", 2000), (" 3,5 ", 350),
                                         ("1000", 100000), ("0.01", 1), ("2 €", 200), (0.5, 50),
                                         (20, 2000),
                                         # A thousands separator beside decimals is unambiguous.
                                         ("1.000,00", 100000), ("1,000.00", 100000),
                                         ("12.345,6", 1234560), ("99,999.99 €", 9999999),
                                         ("1 000,00", 100000), ("100.000,00", 10000000)])
def test_amounts_are_read_with_comma_or_point(text, cents):
    assert parse_cents(text) == cents


@pytest.mark.parametrize("text", ["", "0", "0,00", "-1", "1,234", "abc", "1e3", "½",
                                  "100000,01", True, 0.001,
                                  # 1 or 1000? Grouping without decimals, mixed or misplaced.
                                  "1.000", "1,000", "1.000.000", "1.000.00", "1,000,00",
                                  "1.00,00", "1,000,5", "01.000,00", "1.0000,00", ",50.000,00",
                                  "100.000,01", "1.000,001", "-1.000,00"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(ValueError):
        parse_cents(text)


@pytest.mark.parametrize("text, kind", [("pro Runde", "per_lap"), ("PRO  runde", "per_lap"),
                                        ("per_lap", "per_lap"), ("pro km", "per_km"),
                                        ("per_km", "per_km"), ("fest", "fixed"), ("Fixed", "fixed")])
def test_kinds_in_german_and_english(text, kind):
    assert parse_kind(text) == kind


def test_each_pledge_gets_its_own_valid_creditor_reference(central_db, runners, central_users):
    ids = [add_pledge(central_db, None, runners["Anna Berg"], {"sponsor_name": f"S{i}", "kind": "fixed",
                                                              "rate_cents": "5"}) for i in range(20)]
    references = [r["reference"] for r in pledge_amounts(central_db, pledge_ids=ids)]
    assert len(set(references)) == 20
    assert all(iso11649.is_valid(r) and r.startswith("RF") and r == r.upper() for r in references)


def test_a_pledge_with_payments_is_not_deleted_until_they_are(central_admin, central_db, runners):
    pledge_id = add_pledge(central_db, None, runners["Anna Berg"], {
        "sponsor_name": "Herr Schäfer", "kind": "fixed", "rate_cents": "0,80"})
    add_payment(central_db, None, pledge_id, {"amount_cents": "12,50", "paid_on": "2025-07-01",
                                              "method": "transfer"})
    page = central_admin.get(f"/sponsors/{pledge_id}").get_data(as_text=True)
    assert 'id="delete-hint"' in page and "Delete this pledge" not in page
    refused = post(central_admin, f"/sponsors/{pledge_id}/delete", confirm="1")
    assert refused.status_code == 409
    assert "This pledge has a payment recorded (€12.50): delete the payment first" in \
        refused.get_data(as_text=True)
    [row] = pledge_amounts(central_db)
    assert (row["id"], row["paid_cents"]) == (pledge_id, 1250)       # nothing was deleted
    payment = central_db.execute("SELECT id FROM payment").fetchone()["id"]
    assert post(central_admin, f"/sponsors/payments/{payment}/delete", confirm="1").status_code == 302
    page = central_admin.get(f"/sponsors/{pledge_id}").get_data(as_text=True)
    assert "Yes, delete the pledge of Herr Schäfer" in page
    assert post(central_admin, f"/sponsors/{pledge_id}/delete", confirm="1").status_code == 302
    assert pledge_amounts(central_db) == []


def test_an_admin_adds_edits_and_deletes_a_pledge(central_admin, central_db, runners):
    response = post(central_admin, "/sponsors/new", start_number="1", sponsor_name="Oma Berg",
                    email="oma@example.org", address="Hauptstr. 1\n12345 Berlin", kind="per_lap",
                    rate_cents="0,50", cap_cents="4")
    assert response.status_code == 302
    pledge_id = response.headers["Location"].rsplit("/", 1)[1]
    page = central_admin.get(f"/sponsors/{pledge_id}").get_data(as_text=True)
    assert "Oma Berg" in page and "Anna Berg" in page
    assert re.search(r'id="amount">\s*€4.00<', page)                  # 10 x 0.50 = 5.00, cap 4.00
    response = post(central_admin, f"/sponsors/{pledge_id}/edit", sponsor_name="Oma Berg",
                    email="", address="", kind="per_km", rate_cents="1", cap_cents="")
    assert response.status_code == 302
    [row] = pledge_amounts(central_db)
    assert (row["kind"], row["rate_cents"], row["cap_cents"], row["email"], row["amount_cents"]) \
        == ("per_km", 100, None, None, 400)
    assert post(central_admin, f"/sponsors/{pledge_id}/delete").status_code == 400  # not ticked
    assert len(pledge_amounts(central_db)) == 1
    assert post(central_admin, f"/sponsors/{pledge_id}/delete", confirm="1").status_code == 302
    assert pledge_amounts(central_db) == []
    assert central_admin.get(f"/sponsors/{pledge_id}").status_code == 404
    log = central_admin.get("/sponsors/log").get_data(as_text=True)
    for text in ("Added the pledge of Oma Berg for 1 Anna Berg (5a).",
                 "Changed the pledge of Oma Berg for 1 Anna Berg (5a): address Hauptstr. 1 12345 "
                 "Berlin → –; cap €4.00 → –; e-mail oma@example.org → –; kind per lap → per km; "
                 "amount €0.50 → €1.00.", "Deleted the pledge of Oma Berg for 1 Anna Berg (5a)."):
        assert text in log
    assert log.count(">ada<") == 3


def test_a_pledge_typed_for_the_wrong_number_moves_to_the_right_runner_with_its_payment(
        central_admin, central_db, runners):
    response = post(central_admin, "/sponsors/new", start_number="1", sponsor_name="Oma Berg",
                    email="", address="", kind="per_lap", rate_cents="0,50", cap_cents="")
    pledge_id = response.headers["Location"].rsplit("/", 1)[1]
    form = central_admin.get(f"/sponsors/{pledge_id}/edit").get_data(as_text=True)
    assert re.search(r'name="start_number"[^>]*value="1"', form)           # the number to correct
    assert post(central_admin, f"/sponsors/{pledge_id}/pay", amount_cents="5", paid_on="2026-06-26",
                method="transfer", reference="", note="").status_code == 302
    card = {"sponsor_name": "Oma Berg", "email": "", "address": "", "kind": "per_lap",
            "rate_cents": "0,50", "cap_cents": ""}
    refused = post(central_admin, f"/sponsors/{pledge_id}/edit", start_number="99", **card)
    assert refused.status_code == 404 and "No runner has start number 99." in refused.get_data(as_text=True)
    assert [row["amount_cents"] for row in pledge_amounts(central_db)] == [500]  # unchanged
    assert post(central_admin, f"/sponsors/{pledge_id}/edit", start_number="17",
                **card).status_code == 302
    [row] = pledge_amounts(central_db)
    assert (row["start_number"], row["amount_cents"], row["paid_cents"]) == (17, 350, 500)
    log = central_admin.get("/sponsors/log").get_data(as_text=True)
    assert "Changed the pledge of Oma Berg for 17 Cleo Dahl (6b): runner 1 Anna Berg (5a) → " \
           "17 Cleo Dahl (6b)." in log


def test_a_merged_runner_s_number_says_whom_to_type_instead(central_admin, central_db, runners):
    central_db.execute("UPDATE runner SET merged_into = (SELECT id FROM runner WHERE start_number = 1) "
                       "WHERE start_number = 2")
    refused = post(central_admin, "/sponsors/new", start_number="2", sponsor_name="Oma",
                   email="", address="", kind="per_lap", rate_cents="1", cap_cents="")
    assert refused.status_code == 404
    assert "Start number 2 was merged into 1 Anna Berg (5a): type 1." in refused.get_data(as_text=True)
    assert central_db.execute("SELECT count(*) AS n FROM pledge").fetchone()["n"] == 0


@pytest.mark.parametrize("field, value, message", [
    ("start_number", "99", "No runner has start number 99."),
    ("start_number", "x", "A start number is a whole number"),
    ("sponsor_name", "", "The sponsor&#39;s name must be"),
    ("sponsor_name", "Bad\u202eName", "The sponsor&#39;s name must be"),
    ("kind", "hourly", "The kind must be per lap"),
    ("rate_cents", "0", "The amount must be above 0"),
    ("cap_cents", "-3", "The cap must be empty"),
    ("email", "not-an-address", "This is not an e-mail address"),
])
def test_a_bad_pledge_form_saves_nothing_and_says_why(central_admin, central_db, runners, field,
                                                      value, message):
    form = {"start_number": "1", "sponsor_name": "Oma", "kind": "per_lap", "rate_cents": "1",
            "cap_cents": "", "email": "", "address": "", field: value}
    response = post(central_admin, "/sponsors/new", **form)
    assert 400 <= response.status_code < 500
    assert message in response.get_data(as_text=True)
    assert central_db.execute("SELECT count(*) AS n FROM pledge").fetchone()["n"] == 0


def test_a_fixed_pledge_takes_no_cap(central_admin, central_db, runners):
    response = post(central_admin, "/sponsors/new", start_number="1", sponsor_name="Firma",
                    kind="fixed", rate_cents="20", cap_cents="10")
    assert response.status_code == 422 and "A fixed amount takes no cap." in response.get_data(as_text=True)


def test_the_list_shows_amounts_totals_and_searches(central_viewer, central_db, runners):
    add_pledge(central_db, None, runners["Anna Berg"], {"sponsor_name": "Oma", "kind": "per_lap", "rate_cents": "0,50"})
    add_pledge(central_db, None, runners["Cleo Dahl"], {"sponsor_name": "Firma Hill", "kind": "fixed", "rate_cents": "20"})
    page = central_viewer.get("/sponsors/").get_data(as_text=True)
    assert "2 pledges" in page and "raised €25.00, paid €0.00, outstanding €25.00." in page
    page = central_viewer.get("/sponsors/?q=hill").get_data(as_text=True)
    assert "Firma Hill" in page and "Oma" not in page
    page = central_viewer.get("/sponsors/?q=1").get_data(as_text=True)   # a start number
    assert "Oma" in page and "Firma Hill" not in page
    page = central_viewer.get("/sponsors/?class=6b").get_data(as_text=True)
    assert "Firma Hill" in page and ">Oma<" not in page


def test_german_money_format(central_viewer, central_db, runners):
    add_pledge(central_db, None, runners["Anna Berg"], {"sponsor_name": "Oma", "kind": "fixed", "rate_cents": "1234,5"})
    page = central_viewer.get("/sponsors/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "1.234,50\xa0€" in page
    assert "€1,234.50" in central_viewer.get("/sponsors/").get_data(as_text=True)


def test_the_currency_setting_is_used_and_never_pulled(central_admin, central_db, runners, device_token):
    add_pledge(central_db, None, runners["Anna Berg"], {"sponsor_name": "Oma", "kind": "fixed", "rate_cents": "10"})
    assert post(central_admin, "/sponsors/settings", currency="chf", certificate_raised="1").status_code == 302
    assert "CHF" in central_admin.get("/sponsors/").get_data(as_text=True)
    pulled = central_admin.get("/api/v1/pull?cursor=0", headers={"Authorization": f"Bearer {device_token}"})
    assert pulled.status_code == 200
    assert "currency" not in pulled.get_data(as_text=True) and "certificate_raised" not in pulled.get_data(as_text=True)
    assert post(central_admin, "/sponsors/settings", currency="EURO").status_code == 422


def test_set_setting_takes_the_money_settings(central_app, central_db):
    runner = central_app.test_cli_runner()
    assert runner.invoke(args=["set-setting", "currency", "chf"]).output.strip() == 'currency = "CHF"'
    assert runner.invoke(args=["set-setting", "certificate_raised", "true"]).output.strip() \
        == "certificate_raised = true"
    assert runner.invoke(args=["set-setting", "currency", "XYZ"]).exit_code != 0
    values = {r["key"]: r["value"] for r in central_db.execute("SELECT key, value FROM central_setting")}
    assert values == {"currency": "CHF", "certificate_raised": True}


def test_fast_entry_saves_a_card_all_lines_or_none(central_admin, central_db, runners):
    answer = central_admin.get("/sponsors/runner?number=17", headers={"Accept": "application/json"})
    assert answer.json["runner"]["name"] == "Cleo Dahl" and answer.json["pledges"] == []
    bad = post(central_admin, "/sponsors/entry", runner_id=runners["Cleo Dahl"],
               sponsor_name_0="Oma", kind_0="per_lap", rate_cents_0="0,50",
               sponsor_name_1="Opa", kind_1="per_km", rate_cents_1="zwei")
    assert bad.status_code == 422 and "The amount must be above 0" in bad.get_data(as_text=True)
    assert central_db.execute("SELECT count(*) AS n FROM pledge").fetchone()["n"] == 0
    json_bad = central_admin.post("/sponsors/entry", headers={"Accept": "application/json"}, data={
        "csrf_token": central_admin.csrf, "runner_id": runners["Cleo Dahl"],
        "sponsor_name_3": "Opa", "kind_3": "per_km", "rate_cents_3": "zwei"})
    assert json_bad.status_code == 422 and list(json_bad.json["lines"]) == ["3"]
    assert list(json_bad.json["lines"]["3"]) == ["rate_cents"]
    good = post(central_admin, "/sponsors/entry", runner_id=runners["Cleo Dahl"],
                sponsor_name_0="Oma", kind_0="per_lap", rate_cents_0="0,50",
                sponsor_name_2="Opa", kind_2="per_km", rate_cents_2="2", cap_cents_2="5",
                email_2="opa@example.org")
    assert good.status_code == 302
    rows = pledge_amounts(central_db)
    assert [(r["sponsor_name"], r["amount_cents"]) for r in rows] == [("Oma", 350), ("Opa", 500)]
    answer = central_admin.get("/sponsors/runner?number=17", headers={"Accept": "application/json"})
    assert [p["sponsor_name"] for p in answer.json["pledges"]] == ["Oma", "Opa"]
    assert central_admin.get("/sponsors/runner?number=99").status_code == 404


def test_the_runner_lookup_refuses_a_shared_number(central_admin, central_db, runners):
    run(central_db, register(central_db, "laptop-b"), [(17, "Cleo Other", "7c", 0)])
    answer = central_admin.get("/sponsors/runner?number=17", headers={"Accept": "application/json"})
    assert answer.status_code == 409 and "belongs to 2 runners" in answer.json["message"]


ADMIN_POSTS = ["/sponsors/new", "/sponsors/entry", "/sponsors/import", "/sponsors/settings",
               "/sponsors/{pledge}/edit", "/sponsors/{pledge}/delete", "/sponsors/{pledge}/pay"]


@pytest.mark.parametrize("path", ADMIN_POSTS)
def test_a_viewer_sees_amounts_but_gets_403_on_every_change(central_viewer, central_db, runners, path):
    pledge = add_pledge(central_db, None, runners["Anna Berg"], {"sponsor_name": "Oma", "kind": "fixed", "rate_cents": "10"})
    assert central_viewer.get(f"/sponsors/{pledge}").status_code == 200
    assert central_viewer.get("/sponsors/outstanding").status_code == 200
    response = post(central_viewer, path.format(pledge=pledge), start_number="1", sponsor_name="X",
                    kind="fixed", rate_cents="1", amount_cents="1", paid_on="2025-06-27",
                    method="cash", currency="CHF")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Your role may not do this." in page and "<html" in page
    assert central_db.execute("SELECT count(*) AS n FROM pledge").fetchone()["n"] == 1
    assert central_db.execute("SELECT count(*) AS n FROM payment").fetchone()["n"] == 0
    assert central_db.execute("SELECT count(*) AS n FROM money_log").fetchone()["n"] == 1


def test_a_teacher_may_look_but_not_change(central_client, central_db, central_users, runners):
    hash_ = central_db.execute("SELECT password_hash FROM app_user WHERE name = 'ada'").fetchone()["password_hash"]
    with write_transaction(central_db):
        central_db.execute("INSERT INTO app_user (id, name, password_hash, role, created_at, hlc, origin, "
                           "change_id) VALUES ('teacher00000000000000001', 'tina', %s, 'teacher', 0, %s, "
                           "%s, nextval('change_id_seq'))", [hash_, clock.tick(central_db),
                                                             clock.node_id(central_db)])
    central_client.csrf = central_login(central_client, "tina")
    assert central_client.get("/sponsors/").status_code == 200
    assert post(central_client, "/sponsors/new", start_number="1", sponsor_name="X", kind="fixed",
                rate_cents="1").status_code == 403


def cells(page: str, css: str) -> list[str]:
    """Return the text of every cell with the given class."""
    return re.findall(rf'class="[^"]*\b{css}\b[^"]*">([^<]*)<', page)


def test_totals_on_the_standings_and_results_pages(central_admin, central_db, runners):
    for page in ("/standings/", "/standings/classes", "/admin/results"):
        assert "Raised" not in central_admin.get(page).get_data(as_text=True)   # no pledges: as before
    add_pledge(central_db, None, runners["Anna Berg"], {"sponsor_name": "Oma", "kind": "per_lap", "rate_cents": "0,50"})
    add_pledge(central_db, None, runners["Cleo Dahl"], {"sponsor_name": "Firma", "kind": "fixed", "rate_cents": "20"})
    page = central_admin.get("/standings/?sort=number").get_data(as_text=True)
    assert cells(page, "raised") == ["€5.00", "€0.00", "€20.00"]                # Anna, Ben, Cleo
    assert "Raised by all runners: €25.00 from 2 pledges (paid €0.00)." in page
    page = central_admin.get("/standings/classes?sort=name").get_data(as_text=True)
    assert cells(page, "raised") == ["€5.00", "€20.00"]                         # 5a, 6b
    page = central_admin.get("/standings/grades?sort=name").get_data(as_text=True)
    assert cells(page, "raised") == ["€5.00", "€20.00"]                         # 5, 6
    page = central_admin.get("/admin/results").get_data(as_text=True)
    assert cells(page, "raised") == ["€5.00", "€20.00"] and "€25.00" in page


def test_certificates_show_raised_only_when_set(central_admin, central_db, runners):
    add_pledge(central_db, None, runners["Anna Berg"], {"sponsor_name": "Oma", "kind": "per_lap", "rate_cents": "0,50"})
    path = f"/admin/certificates/runner/{runners['Anna Berg']}"
    assert "cert-raised" not in central_admin.get(path).get_data(as_text=True)
    post(central_admin, "/sponsors/settings", currency="EUR", certificate_raised="1")
    assert "raised €5.00 for a good cause" in central_admin.get(path).get_data(as_text=True)
    page = central_admin.get("/admin/certificates/class/5a", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert page.count("cert-raised") == 1                                       # Ben has no pledge

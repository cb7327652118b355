"""English and German from Accept-Language; the catalog complete and compiled.

The catalog lives in lapsync/translations (one for both apps). To update it after
changing or adding messages (run from the repository root):

    .venv/bin/pybabel extract -F babel.cfg -k lazy_gettext -k _l -c TRANSLATORS: \\
        --add-location=file --sort-by-file -w 100 -o lapsync/translations/messages.pot .
    .venv/bin/pybabel update -i lapsync/translations/messages.pot \\
        -d lapsync/translations -N -w 100
    (translate the new entries in lapsync/translations/de/LC_MESSAGES/messages.po)
    .venv/bin/pybabel compile -d lapsync/translations --statistics

and commit the .pot, .po and .mo together: the laptop never compiles at start
(it may run from a read-only or offline install), and the tests below fail when
a lapsync message lacks a German translation or the .mo lags behind the .po.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from lapsync import roster_csv
from lapsync.errors import InputError
from lapsync.laptop import lapform
from lapsync.laptop.client.status import sync_status
from lapsync.laptop.db import set_meta, transaction
from lapsync.laptop.runners import add_runner, validate_runner

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "lapsync" / "translations"
PO = CATALOG / "de" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
DE = {"Accept-Language": "de-DE,de;q=0.9"}
JSON_DE = {**DE, "Accept": "application/json"}


def page(response) -> str:
    """Return a response's HTML with entities for quotes undone."""
    return response.get_data(as_text=True).replace("&#34;", '"').replace("&#39;", "'")


def js_block(html: str) -> dict:
    """Return the JSON strings block that laps.js reads."""
    match = re.search(r'<script type="application/json" id="i18n">(.*?)</script>', html, re.S)
    assert match, "the lap page has no i18n block"
    return json.loads(match.group(1))


def post_lap(client, number: str, headers: dict | None = None, **extra):
    """Post a start number as the lap form does."""
    return client.post("/laps", data={"start_number": number, "csrf_token": client.csrf, **extra},
                       headers={"X-CSRFToken": client.csrf, **(headers or {})})


# --- the lap page ------------------------------------------------------------------------------

def test_lap_page_in_german(teacher, runners):
    response = teacher.get("/", headers=DE)
    html = page(response)
    assert response.status_code == 200 and '<html lang="de">' in html
    for text in ("Startnummer", "Runde zählen", "Letzte Runden auf diesem Laptop", "Runden",
                 "Läufer", "Abmelden", "Nr.", "Klasse", "Synchronisation mit der Zentrale",
                 "nicht mit der Zentrale verbunden", "(Lehrkraft)"):
        assert text in html, text
    for english in ("Start number", "Count lap", "Recent laps", "Log out", "not connected"):
        assert english not in html, english


@pytest.mark.parametrize("language", [None, "en-US,en;q=0.9", "fr-FR,fr;q=0.9", "xx"])
def test_lap_page_in_english_by_default_and_for_unknown_languages(teacher, runners, language):
    headers = {"Accept-Language": language} if language else {}
    html = page(teacher.get("/", headers=headers))
    assert '<html lang="en">' in html
    assert "Start number" in html and "Count lap" in html and "Startnummer" not in html
    assert js_block(html)["void"] == "Void"


def test_too_soon_warning_in_german_as_a_page(teacher, runners):
    assert post_lap(teacher, "1", DE).status_code == 302
    response = post_lap(teacher, "1", DE)
    html = page(response)
    assert response.status_code == 409
    assert re.search(r"Anna Berg \(1\) wurde vor \d+ s gezählt\. Diese Runde trotzdem zählen\?", html)
    assert "Ja, zählen" in html


def test_too_soon_warning_in_german_as_json_keeps_the_english_code(teacher, runners):
    assert post_lap(teacher, "1", JSON_DE).status_code == 201
    response = post_lap(teacher, "1", JSON_DE)
    body = response.get_json()
    assert response.status_code == 409 and body["error"] == "too_soon"
    assert re.fullmatch(r"Anna Berg \(1\) wurde vor \d+ s gezählt\. Diese Runde trotzdem zählen\?",
                        body["message"])


def test_unknown_number_in_german_as_json(teacher, runners, db):
    response = post_lap(teacher, "99", JSON_DE)
    assert response.status_code == 404
    assert response.get_json() == {"error": "unknown_runner", "message":
                                   "Kein Läufer hat die Startnummer 99. Es wurde nichts gezählt."}
    assert db.execute("SELECT count(*) FROM lap").fetchone()[0] == 0


def test_unknown_number_in_german_as_a_page(teacher, runners):
    response = post_lap(teacher, "99", DE)
    assert response.status_code == 404
    assert "Kein Läufer hat die Startnummer 99. Es wurde nichts gezählt." in page(response)


@pytest.mark.parametrize("language", ["en-US,en;q=0.9", "fr"])
def test_unknown_number_in_english_for_other_languages(teacher, runners, language):
    response = post_lap(teacher, "99", {"Accept": "application/json", "Accept-Language": language})
    assert response.get_json()["message"] == "No runner has start number 99. Nothing was recorded."


def test_bad_number_and_missing_number_in_german(teacher, runners):
    assert post_lap(teacher, "abc", JSON_DE).get_json() == {
        "error": "invalid_start_number", "message": "'abc' ist keine Startnummer: nur Ziffern. Es wurde nichts gezählt."}
    assert post_lap(teacher, "", JSON_DE).get_json()["message"] == \
        "Bitte geben Sie eine Startnummer ein."


def test_recorded_lap_is_confirmed_in_german(teacher, runners):
    response = post_lap(teacher, "17", DE)
    html = page(teacher.get(response.headers["Location"], headers=DE))
    assert '<span class="count">1</span> Cleo Dahl (17, 6b) – erste Runde' in html
    assert "Streichen" in html  # the void button of the new row


def test_void_and_restore_in_german(teacher, runners, db):
    post_lap(teacher, "2", DE)
    lap_id = db.execute("SELECT id FROM lap").fetchone()[0]
    asked = page(teacher.post(f"/laps/{lap_id}/void", data={"csrf_token": teacher.csrf}, headers=DE))
    assert "Diese Runde streichen?" in asked and "Ja, streichen" in asked  # the page asks first
    teacher.post(f"/laps/{lap_id}/void", data={"csrf_token": teacher.csrf, "confirm": "1"},
                 headers=DE)
    html = page(teacher.get("/", headers=DE))
    assert "Runde gestrichen." in html and "Wiederherstellen" in html
    bad = teacher.post(f"/laps/{lap_id}/void", headers={**JSON_DE, "X-CSRFToken": teacher.csrf},
                       data={"reason": "x" * 1000})
    assert bad.status_code == 422 and bad.get_json()["error"] == "invalid_reason"
    assert bad.get_json()["message"].startswith("Der Grund darf höchstens")


def test_js_strings_block_in_german_covers_every_key_of_the_lap_page_scripts(teacher, runners):
    strings = js_block(page(teacher.get("/", headers=DE)))
    assert strings["void"] == "Streichen" and strings["restore"] == "Wiederherstellen"
    assert strings["first_lap"] == "erste Runde"
    assert strings["since_last_lap"] == "{time} seit der letzten Runde"
    assert strings["confirm_hint"] == "Enter zählt die Runde, Esc überspringt sie."
    assert "{number}" in strings["saving"] and "{number}" in strings["checking"]
    assert all(isinstance(v, str) and v for v in strings.values())
    scripts = (ROOT / "lapsync" / "laptop" / "static").glob("lap*.js")  # laps, lap_voids, lap_common
    used = {key for script in scripts
            for key in re.findall(r'\bt\("([a-z_]+)"', script.read_text(encoding="utf-8"))}
    assert used and used <= set(strings), used - set(strings)


def test_js_strings_block_escapes_html(teacher, runners):
    html = page(teacher.get("/", headers=DE))
    block = re.search(r'id="i18n">(.*?)</script>', html, re.S).group(1)
    assert "<" not in block and "</" not in block


def test_sync_status_text_in_german(app, teacher, db):
    body = teacher.get("/sync/status", headers=JSON_DE).get_json()
    assert body["state"] == "not_connected"
    assert re.fullmatch(r"nicht mit der Zentrale verbunden – \d+ Änderungen warten "
                        r"\(älteste seit \d+ (s|min|h \d+ min)\)", body["text"]), body["text"]
    with transaction(db):
        set_meta(db, "last_error_ms", "1")
    with app.test_request_context(headers=DE):
        status = sync_status(db, "http://central", "fp", now=10_000_000)
    assert status["state"] == "offline"
    assert status["text"].startswith("offline – ")


def test_waiting_and_age_texts_in_german(app):
    from lapsync.laptop.client.status import status_text, waiting_text
    from lapsync.text import age
    with app.test_request_context(headers=DE):
        assert waiting_text(3, 3, 0, 14 * 60_000) == "3 Runden warten (älteste seit 14 min)"
        assert waiting_text(1, 0, None, 0) == "1 Änderung wartet"
        assert age(3 * 86_400_000) == "3 Tagen"
        assert status_text({"last_success_ms": "1"}, "http://c", None, "", 0, 5001) == \
            ("synced", "vor 5 s synchronisiert")
    with app.test_request_context():
        assert waiting_text(3, 3, 0, 14 * 60_000) == "3 laps waiting (oldest 14 min)"


# --- other pages -------------------------------------------------------------------------------

def test_runners_page_in_german(admin, runners):
    html = page(admin.get("/runners/", headers=DE))
    for text in ("<h1>Läufer</h1>", "3 Läufer auf der Läuferliste.", "Klasse 5a", "(2 Läufer)",
                 "Jahrgang", "Läufer hinzufügen", "CSV importieren", "Bearbeiten", "Suchen"):
        assert text in html, text
    found = page(admin.get("/runners/?q=anna", headers=DE))
    assert "1 Läufer passt zu „anna“." in found


def test_runner_form_errors_in_german(admin, runners, db):
    response = admin.post("/runners/new", headers=DE, data={
        "csrf_token": admin.csrf, "start_number": "", "name": "Zoe", "class": "5a", "grade": "14"})
    assert response.status_code == 422
    assert "Der Jahrgang muss zwischen 1 und 13 liegen." in page(response)
    taken = admin.post("/runners/new", headers=JSON_DE, data={
        "csrf_token": admin.csrf, "start_number": "17", "name": "Zoe", "class": "5a", "grade": "5"})
    assert taken.status_code == 409 and taken.get_json() == {
        "error": "duplicate_start_number", "message": "Die Startnummer 17 ist schon vergeben."}
    assert db.execute("SELECT count(*) FROM runner").fetchone()[0] == 3


def upload(client, data: bytes, headers: dict):
    """Post a roster CSV to the import form."""
    return client.post("/runners/import", headers={**headers, "X-CSRFToken": client.csrf},
                       data={"file": (io.BytesIO(data), "klasse7.csv"), "csrf_token": client.csrf},
                       content_type="multipart/form-data")


def test_csv_report_in_german(admin, runners, db):
    data = "Name;Klasse;Jahrgang;Startnummer\nEva;7a;7;17\nFinn;7a;x;\nAnna Berg;5a;5;\n"
    response = upload(admin, data.encode(), DE)
    html = page(response)
    assert response.status_code == 422
    assert "klasse7.csv: Die Datei wurde nicht importiert: 3 Probleme gefunden. " \
           "Es wurde nichts geändert." in html
    assert "<th>Zeile</th><th>Problem</th>" in html
    assert "<tr><td>2</td><td>Die Startnummer 17 hat schon ein Läufer auf der Läuferliste." in html
    assert "<tr><td>3</td><td>Der Jahrgang muss eine ganze Zahl sein." in html
    assert "Anna Berg (5a) steht schon mit der Startnummer 1 auf der Läuferliste." in html
    assert db.execute("SELECT count(*) FROM runner").fetchone()[0] == 3


def test_csv_report_in_german_as_json_and_wrong_header(admin, runners):
    response = upload(admin, b"Vorname,Klasse\nAnna,5a\n", JSON_DE)
    body = response.get_json()
    assert response.status_code == 422 and body["error"] == "invalid_roster"
    assert body["message"] == ("Die Datei wurde nicht importiert: 1 Problem gefunden. "
                               "Es wurde nichts geändert.")
    assert body["problems"] == [{"line": 1, "message": (
        "Falsche Kopfzeile (unbekannte Spalte 'vorname'; fehlend: Name, Jahrgang): "
        "erwartet wird Name, Klasse, Jahrgang und optional Startnummer.")}]


def test_csv_row_limit_is_written_the_german_way(app):
    rows = "".join(f"K{i},5a,5\n" for i in range(roster_csv.MAX_ROWS + 1))
    with app.test_request_context(headers=DE), pytest.raises(InputError) as caught:
        roster_csv.parse_roster(f"Name,Klasse,Jahrgang\n{rows}".encode(), [], validate_runner)
    assert caught.value.problems[-1].message == "Zu viele Zeilen: höchstens 10.000 Läufer pro Datei."


def test_import_page_and_success_flash_in_german(admin, runners):
    html = page(admin.get("/runners/import", headers=DE))
    assert "Läufer aus CSV oder Excel importieren" in html and "Der Export aus dem Sekretariat" in html
    response = upload(admin, b"Name,Klasse,Jahrgang\nEva,7a,7\nFinn,7a,7\n", DE)
    assert response.status_code == 302
    assert "2 Läufer aus klasse7.csv importiert." in page(admin.get("/runners/", headers=DE))


def test_login_and_users_pages_in_german(client, admin):
    assert "Anmelden" in page(client.get("/login", headers=DE))
    html = page(admin.get("/users", headers=DE))
    assert '<option value="teacher" selected>Lehrkraft</option>' in html and "Benutzer anlegen" in html
    bad = admin.post("/users", headers=DE, data={"csrf_token": admin.csrf, "name": "neu",
                                                 "role": "teacher", "password": "kurz"})
    assert bad.status_code == 422 and "Das Passwort muss 8 bis 200 Zeichen lang sein." in page(bad)


def test_wrong_password_and_role_errors_in_german(app, teacher):
    other = app.test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page(other.get("/login"))).group(1)
    wrong = other.post("/login", headers=DE,
                       data={"name": "tom", "password": "falsch!!", "csrf_token": token})
    assert wrong.status_code == 401 and "Name oder Passwort ist falsch." in page(wrong)
    forbidden = teacher.get("/users", headers=JSON_DE)
    assert forbidden.status_code == 403 and forbidden.get_json() == {
        "error": "forbidden", "message": "Das ist mit Ihrer Rolle nicht erlaubt."}


def test_http_and_csrf_errors_in_german_with_english_codes(teacher):
    missing = teacher.get("/nowhere", headers=JSON_DE)
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "not_found", "message": "Diese Seite gibt es nicht."}
    assert "Etwas stimmt nicht" in page(teacher.get("/nowhere", headers=DE))
    no_token = teacher.post("/laps", data={"start_number": "1"}, headers=JSON_DE)
    assert no_token.status_code == 400 and no_token.get_json()["error"] == "csrf"
    assert no_token.get_json()["message"].startswith("Das Formular ist abgelaufen")


# --- central ------------------------------------------------------------------------------------

def test_central_pages_in_german_and_english(central_admin):
    html = page(central_admin.get("/standings/", headers=DE))
    assert '<html lang="de">' in html and "Wertung" in html and "Kein Läufer passt." in html
    review = page(central_admin.get("/review/", headers=DE))
    assert "Vermutete Doppelzählungen" in review and "Entscheidungsprotokoll" in review
    english = page(central_admin.get("/standings/", headers={"Accept-Language": "fr"}))
    assert '<html lang="en">' in english and "Standings" in english


def test_central_messages_in_german_with_english_codes(central_admin):
    bad = central_admin.post("/settings/", headers=JSON_DE, data={
        "csrf_token": central_admin.csrf, "event_name": "Lauf", "event_date": "2025-02-30",
        "min_lap_seconds": "60", "metres_per_lap": "400"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_setting"
    assert bad.get_json()["message"] == \
        "Das Datum muss ein gültiges Datum sein, geschrieben wie 2025-06-27."
    roster = upload(central_admin, b"Name,Klasse,Jahrgang\nEva,7a,x\n", JSON_DE)
    assert roster.status_code == 422 and roster.get_json()["problems"] == [
        {"line": 2, "message": "Der Jahrgang muss eine ganze Zahl sein."}]


# --- outside a request: English, never an error ------------------------------------------------

def test_domain_messages_without_any_context_are_english(db):
    with pytest.raises(InputError) as caught:
        add_runner(db, 5, "Zoe", "5a", 14)
    assert caught.value.message == "The grade must be 1 to 13."


def test_domain_messages_in_an_app_context_without_a_request_are_english(app):
    with app.app_context(), pytest.raises(InputError) as caught:
        lapform.parse_start_number("x")
    assert caught.value.message == "'x' is not a start number: digits only. Nothing was recorded."


def test_cli_commands_answer_in_english(app, db, runners, tmp_path, monkeypatch):
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LANGUAGE", "de")
    cli = app.test_cli_runner()
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Klasse,Jahrgang\nEva,7a,x\n", encoding="utf-8")
    result = cli.invoke(args=["import-runners", str(bad)])
    assert result.exit_code == 1
    assert "The file was not imported: 1 problem found." in result.output
    assert "line 2: The grade must be a whole number." in result.output
    good = tmp_path / "good.csv"
    good.write_text("Name,Klasse,Jahrgang\nEva,7a,7\nFinn,7a,7\n", encoding="utf-8")
    result = cli.invoke(args=["import-runners", str(good)])
    assert result.exit_code == 0 and "Imported 2 runners from" in result.output
    status = cli.invoke(args=["sync-status"])
    assert status.exit_code == 0 and "not connected to central" in status.output
    short = cli.invoke(args=["create-user", "neu", "--role", "teacher", "--password", "kurz"])
    assert short.exit_code == 1 and "The password must be 8 to 200 characters." in short.output


# --- the catalog -------------------------------------------------------------------------------

def lapsync_messages() -> dict[str, set[str]]:
    """Extract lapsync's messages as `pybabel extract -F babel.cfg` does: msgid -> files."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
    package = ROOT / "lapsync"
    found: dict[str, set[str]] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords,
            directory_filter=lambda path: package in (Path(path), *Path(path).parents)):
        if filename.startswith("lapsync/"):
            msgid = message[0] if isinstance(message, tuple) else message
            found.setdefault(msgid, set()).add(filename)
    return found


def test_extraction_finds_the_lapsync_messages():
    messages = lapsync_messages()
    assert "Count lap" in messages and "%(num)s runner on the roster." in messages
    assert "No runner has start number %(number)s. Nothing was recorded." in messages
    assert "{time} since last lap" in messages  # laps.js's strings come from laps.py


def test_every_lapsync_message_has_a_german_translation():
    catalog = read_po(PO.open("rb"), locale="de")
    missing = []
    for msgid, files in sorted(lapsync_messages().items()):
        entry = catalog.get(msgid)
        strings = () if entry is None else \
            entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry is None or entry.fuzzy or not strings or not all(s.strip() for s in strings):
            missing.append(f"{msgid!r} ({', '.join(sorted(files))})")
    assert not missing, "untranslated in messages.po:\n" + "\n".join(missing)


def test_german_catalog_passes_babels_format_checks():
    catalog = read_po(PO.open("rb"), locale="de")
    problems = [f"{message.id!r}: {errors}" for message, errors in catalog.check()]
    assert not problems, "\n".join(problems)


def test_compiled_catalog_matches_the_po(tmp_path):
    fresh = tmp_path / "messages.mo"
    with fresh.open("wb") as handle:
        write_mo(handle, read_po(PO.open("rb"), locale="de"))

    def messages(path: Path) -> dict:
        with path.open("rb") as handle:
            return {tuple(m.id) if isinstance(m.id, list) else m.id:
                    tuple(m.string) if isinstance(m.string, list) else m.string
                    for m in read_mo(handle) if m.id}

    committed, expected = messages(MO), messages(fresh)
    stale = sorted(str(k) for k in committed.keys() ^ expected.keys()) + sorted(
        str(k) for k in committed.keys() & expected.keys() if committed[k] != expected[k])
    assert not stale, ("messages.mo is out of date with messages.po: run "
                       "`.venv/bin/pybabel compile -d lapsync/translations`\n" + "\n".join(stale))

"""lapsync/runners.py: a runner's fields checked from both sides, the roster upload and the
add/edit form served (on a bare app with stand-in templates and an importer/save of the test)."""
from __future__ import annotations

import io

import pytest

from lapsync.errors import InputError
from lapsync.roster_csv import Problem, RosterError
from lapsync.classes import Respelled
from lapsync.runners import (
    Imported,
    RunnerForm,
    added_text,
    imported_text,
    roster_upload,
    runner_form_fields,
    saved_text,
    typed_runner,
    validate_runner,
)
from tests.core.bare_app import bare_app

JSON = {"Accept": "application/json"}
OK = (7, "Anna Berg", "5a", 5)


def refused(*fields) -> InputError:
    """Return the InputError validate_runner raises for these fields."""
    with pytest.raises(InputError) as exc:
        validate_runner(*fields)
    assert exc.value.status == 422 and exc.value.extra == {}
    return exc.value


# ---- validate_runner ------------------------------------------------------------

def test_valid_fields_come_back_cleaned():
    assert validate_runner(" 0042 ", "  Anna Berg ", " 5a\t", "05") == {
        "start_number": 42, "name": "Anna Berg", "class": "5a", "grade": 5}
    assert validate_runner(*OK) == {"start_number": 7, "name": "Anna Berg", "class": "5a",
                                    "grade": 5}


@pytest.mark.parametrize("number, expected", [(1, 1), ("1", 1), (999_999, 999_999),
                                              ("999999", 999_999)])
def test_start_numbers_1_to_999999(number, expected):
    assert validate_runner(number, "A", "5a", 5)["start_number"] == expected


@pytest.mark.parametrize("number", [0, "0", 1_000_000, "1000000", -1])
def test_start_numbers_out_of_range(number):
    exc = refused(number, "A", "5a", 5)
    assert exc.code == "invalid_start_number"
    assert exc.message == "Start numbers run from 1 to 999999."


@pytest.mark.parametrize("number", ["", None, "x", "1.5", "+1", True, 1.0, "1 2", "1234567890"])
def test_start_numbers_that_are_no_whole_number(number):
    exc = refused(number, "A", "5a", 5)
    assert exc.code == "invalid_start_number"
    assert exc.message == "The start number must be a whole number."


@pytest.mark.parametrize("name", ["A", "x" * 100, " " + "x" * 100 + " "])
def test_names_of_1_to_100_characters(name):
    assert validate_runner(1, name, "5a", 5)["name"] == name.strip()


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 101])
def test_names_empty_or_too_long(name):
    exc = refused(1, name, "5a", 5)
    assert exc.code == "invalid_name" and exc.message == "The name must be 1 to 100 characters."


@pytest.mark.parametrize("class_", ["5", "x" * 20, " 5a "])
def test_classes_of_1_to_20_characters(class_):
    assert validate_runner(1, "A", class_, 5)["class"] == class_.strip()


@pytest.mark.parametrize("class_", ["", " ", None, "x" * 21, "5\na", "5a\x00", "\x7f5a"])
def test_classes_empty_too_long_or_on_two_lines(class_):
    exc = refused(1, "A", class_, 5)
    assert exc.code == "invalid_class"
    assert exc.message == "The class must be 1 to 20 characters on one line."


@pytest.mark.parametrize("grade, expected", [(1, 1), ("1", 1), (13, 13), (" 13 ", 13)])
def test_grades_1_to_13(grade, expected):
    assert validate_runner(1, "A", "5a", grade)["grade"] == expected


@pytest.mark.parametrize("grade", [0, "0", 14, "14", -1])
def test_grades_out_of_range(grade):
    exc = refused(1, "A", "5a", grade)
    assert exc.code == "invalid_grade" and exc.message == "The grade must be 1 to 13."


@pytest.mark.parametrize("grade", ["", None, "5a", "5.0", 5.0])
def test_grades_that_are_no_whole_number(grade):
    exc = refused(1, "A", "5a", grade)
    assert exc.code == "invalid_grade" and exc.message == "The grade must be a whole number."


def test_fields_are_checked_in_order():
    assert refused(0, "", "", 0).code == "invalid_start_number"
    assert refused(1, "", "", 0).code == "invalid_name"
    assert refused(1, "A", "", 0).code == "invalid_class"


# Control characters: C0 and DEL refused inside a name, but str.strip() takes the
# whitespace ones (tab, line breaks, \x1c-\x1f) off the ends first. Zero-width, bidi and
# C1 characters are no CONTROL_CHARS: kept wherever they stand (the current rule).
@pytest.mark.parametrize("name", ["\x00Anna", "An\x00na", "Anna\x00", "An\nna", "An\tna",
                                  "An\rna", "\x01Anna", "Anna\x1b", "An\x7fna", "An\x1fna"])
def test_names_with_control_characters_are_refused(name):
    exc = refused(1, name, "5a", 5)
    assert exc.code == "invalid_name"
    assert exc.message == "The name must not contain line breaks or tabs."


@pytest.mark.parametrize("name, kept", [
    ("\tAnna\n", "Anna"), ("\x1fAnna\x1c", "Anna"), ("\rAnna\x0b", "Anna"), ("\u0085Anna", "Anna"),
    ("Zoë Åsa", "Zoë Åsa"), ("Zoe\u0308", "Zoë"), ("Anna\u00a0Berg", "Anna\u00a0Berg"),
])
def test_names_are_stripped_and_nfc_normalised(name, kept):
    assert validate_runner(1, name, "5a", 5)["name"] == kept


# Zero-width, bidi override and isolate, C1, line separator and byte-order mark characters:
# a name that shows one thing and sorts, compares or prints as another is refused.
@pytest.mark.parametrize("name, char", [
    ("\u200bAnna", "U+200B"), ("An\u200cna", "U+200C"), ("An\u200dna", "U+200D"),
    ("Anna\u200e", "U+200E"), ("An\u200fna", "U+200F"), ("\u202aAnna", "U+202A"),
    ("An\u202ena", "U+202E"), ("Anna\u2066", "U+2066"), ("An\u2069na", "U+2069"),
    ("An\u0085na", "U+0085"), ("An\u2028na", "U+2028"), ("An\u2029na", "U+2029"),
    ("\ufeffAnna", "U+FEFF"), ("An\u00adna", "U+00AD"), ("An\u3164na", "U+3164"),
])
def test_names_with_invisible_characters_are_refused(name, char):
    exc = refused(1, name, "5a", 5)
    assert exc.code == "invalid_name"
    assert exc.message == f"The name must not contain invisible characters such as {char}."


@pytest.mark.parametrize("class_, kept", [("\t5a\n", "5a"), ("5a\u0308", "5ä")])
def test_classes_are_stripped_and_nfc_normalised(class_, kept):
    assert validate_runner(1, "A", class_, 5)["class"] == kept


@pytest.mark.parametrize("class_", ["5\u200ba", "5a\u202e", "5\u2028a"])
def test_classes_with_invisible_characters_are_refused(class_):
    exc = refused(1, "A", class_, 5)
    assert exc.code == "invalid_class" and "invisible characters" in exc.message


def test_texts_in_german():
    app = bare_app()
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert refused(0, "A", "5a", 5).message == "Startnummern gehen von 1 bis 999999."
        assert imported_text(2, "k.csv") == "2 Läufer aus k.csv importiert."


def test_texts_about_runners():
    assert imported_text(1, "a.csv") == "Imported 1 runner from a.csv."
    assert imported_text(3, "b.csv") == "Imported 3 runners from b.csv."
    runner = {"name": "Anna", "class": "5a", "start_number": 7}
    assert added_text(runner) == "Added Anna (5a) with start number 7."
    assert saved_text(runner) == "Saved Anna."


# ---- the form's fields ------------------------------------------------------------

def test_form_fields_in_validate_runners_order_and_typed_again():
    app = bare_app()
    form = {"name": "Anna", "grade": "5", "class": "5a", "start_number": "7", "other": "x"}
    with app.test_request_context("/", method="POST", data=form):
        assert runner_form_fields() == ("7", "Anna", "5a", "5")
        assert typed_runner() == {"start_number": "7", "name": "Anna", "class": "5a",
                                  "grade": "5"}
        assert typed_runner(id="r1", name="B") == {"start_number": "7", "name": "B",
                                                   "class": "5a", "grade": "5", "id": "r1"}
    with app.test_request_context("/", method="POST", data={}):
        assert runner_form_fields() == ("", "", "", "")


# ---- roster_upload -----------------------------------------------------------------

class Importer:
    """The app's import function: records what it was given, says what it wrote or refuses."""

    def __init__(self, result, respelled: list[Respelled] | None = None):
        self.result, self.respelled, self.calls = result, respelled or [], []

    def __call__(self, db, data: bytes) -> Imported:
        self.calls.append((db, data))
        if isinstance(self.result, Exception):
            raise self.result
        return Imported(self.result, self.respelled)


def upload_app(importer):
    """A bare app with /import (roster_upload) and /list."""
    app = bare_app(templates={
        "import.html": "import|{{ error.code if error }}|{{ report.code if report }}"
                       "|{{ report.problems|length if report }}|{{ filename }}"})
    app.add_url_rule("/import", "import_csv", lambda: roster_upload(
        "import.html", importer, "the db", "listing"), methods=["GET", "POST"])
    app.add_url_rule("/list", "listing", lambda: "list")
    return app.test_client()


def test_upload_form_is_shown_on_get():
    importer = Importer(1)
    response = upload_app(importer).get("/import")
    assert response.status_code == 200 and response.get_data(as_text=True) == "import||||"
    assert importer.calls == []


@pytest.mark.parametrize("nameless", [False, True])
def test_upload_without_a_file(nameless):
    importer = Importer(1)
    client = upload_app(importer)
    data = {"file": (io.BytesIO(b"x"), "")} if nameless else {}
    response = client.post("/import", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "import|missing_file|||"
    response = client.post("/import", data={}, headers=JSON, content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json() == {"error": "missing_file",
                                   "message": "Choose a CSV or Excel file to import."}
    assert importer.calls == []


def test_upload_imports_and_goes_back_to_the_list_with_a_message():
    importer = Importer(3)
    client = upload_app(importer)
    response = client.post("/import", data={"file": (io.BytesIO(b"Name,Klasse\n"), "k.csv")})
    assert response.status_code == 302 and response.headers["Location"] == "/list"
    assert importer.calls == [("the db", b"Name,Klasse\n")]
    with client.session_transaction() as session:
        assert session["_flashes"] == [("message", "Imported 3 runners from k.csv.")]


def test_upload_says_which_classes_it_wrote_as_spelled_already_one_line_each():
    importer = Importer(5, [Respelled("8B", True, ["8b", "8 b"], 3), Respelled("9c", False, ["9C"], 1)])
    client = upload_app(importer)
    client.post("/import", data={"file": (io.BytesIO(b"Name,Klasse\n"), "k.csv")})
    with client.session_transaction() as session:
        assert [message for _category, message in session["_flashes"]] == [
            "Imported 5 runners from k.csv.",
            "8b, 8 b written as 8B, as on the roster: 3 runners",
            "9C written as 9c, as most of the file has it: 1 runner"]


def test_upload_reads_one_byte_past_the_roster_limit():
    importer = Importer(1)
    limit = 4 * 1024 * 1024
    upload_app(importer).post("/import", data={"file": (io.BytesIO(b"x" * (limit + 5)), "k")})
    assert len(importer.calls[0][1]) == limit + 1


def test_upload_refused_shows_the_report_or_answers_json():
    error = RosterError([Problem(3, "bad"), Problem(2, "worse")])
    client = upload_app(Importer(error))
    response = client.post("/import", data={"file": (io.BytesIO(b"x"), "k.csv")})
    assert response.status_code == 422
    assert response.get_data(as_text=True) == "import||invalid_roster|2|k.csv"
    response = client.post("/import", data={"file": (io.BytesIO(b"x"), "k.csv")}, headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {
        "error": "invalid_roster",
        "message": "The file was not imported: 2 problems found. Nothing was changed.",
        "problems": [{"line": 2, "message": "worse"}, {"line": 3, "message": "bad"}]}


# ---- RunnerForm ----------------------------------------------------------------------

def form_app(save, runner=None):
    """A bare app with /new and /edit served by a RunnerForm, and /list."""
    app = bare_app(templates={
        "form.html": "{{ runner|tojson }}|{{ error.code if error }}|{{ next_number }}"})
    numbers = iter(range(40, 50))
    form = RunnerForm("form.html", lambda: next(numbers), "listing")
    app.add_url_rule("/new", "new", lambda: form.serve(
        {}, save, lambda exc: typed_runner(), added_text), methods=["GET", "POST"])
    app.add_url_rule("/edit", "edit", lambda: form.serve(
        runner, save, lambda exc: typed_runner(id="r1", why=exc.code), saved_text),
        methods=["GET", "POST"])
    app.add_url_rule("/list", "listing", lambda: "list")
    return app.test_client()


def saving(*fields) -> dict:
    """Save the fields as validate_runner reads them."""
    return validate_runner(*fields)


FIELDS = {"start_number": "8", "name": "Ben", "class": "6b", "grade": "6"}


def test_form_shows_the_runner_and_the_next_free_number():
    client = form_app(saving, {"name": "Anna"})
    response = client.get("/new")
    assert response.status_code == 200 and response.get_data(as_text=True) == "{}||40"
    assert client.get("/edit").get_data(as_text=True) == '{"name": "Anna"}||41'


def test_form_of_no_runner_is_404():
    client = form_app(saving, None)
    assert client.get("/edit", headers=JSON).get_json() == {
        "error": "not_found", "message": "There is no such runner."}
    assert client.post("/edit", data=FIELDS).status_code == 404


def test_form_saves_and_goes_back_to_the_list_with_a_message():
    client = form_app(saving, {"name": "Anna"})
    response = client.post("/new", data=FIELDS)
    assert response.status_code == 302 and response.headers["Location"] == "/list"
    with client.session_transaction() as session:
        assert session.pop("_flashes") == [("message", "Added Ben (6b) with start number 8.")]
    client.post("/edit", data=FIELDS)
    with client.session_transaction() as session:
        assert session["_flashes"] == [("message", "Saved Ben.")]


def test_form_refused_shows_the_typed_fields_with_the_error():
    client = form_app(saving, {"name": "Anna"})
    response = client.post("/edit", data={**FIELDS, "grade": "14"})
    assert response.status_code == 422
    assert response.get_data(as_text=True) == (
        '{"class": "6b", "grade": "14", "id": "r1", "name": "Ben", "start_number": "8", '
        '"why": "invalid_grade"}|invalid_grade|40')


def test_form_refused_with_the_errors_status_as_json():
    def duplicate(*fields):
        raise InputError("duplicate_start_number", "Taken.", 409, start_number=8)

    client = form_app(duplicate)
    response = client.post("/new", data=FIELDS, headers=JSON)
    assert response.status_code == 409
    assert response.get_json() == {"error": "duplicate_start_number", "message": "Taken.",
                                   "start_number": 8}
    response = client.post("/new", data=FIELDS)
    assert response.status_code == 409
    assert response.get_data(as_text=True).endswith("|duplicate_start_number|40")

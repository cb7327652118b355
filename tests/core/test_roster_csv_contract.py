"""The roster CSV contract from both sides (lapsync/roster_csv.py): limits, encodings,
characters and the line numbers of the report.

Every limit is written here as a number on purpose, never imported from the code under
test: exactly the limit is accepted, one past it refused. The validator is the caller's
(the laptop and central pass theirs); `echo` below hands back what parse_roster gives
it, so these tests see exactly what reaches the validator: text fields verbatim, the
grade as text, the start number as read or assigned.
"""
from __future__ import annotations

import pytest
from flask import Flask
from flask_babel import Babel

from lapsync.errors import InputError
from lapsync.roster_csv import RosterError, number_text, parse_roster

HEADER = "Name,Klasse,Jahrgang"
MIB = 1024 * 1024


def echo(start_number, name, class_, grade) -> dict:
    """A validator that hands back what it was given, untouched."""
    return {"start_number": start_number, "name": name, "class": class_, "grade": grade}


def parse(data: str | bytes, existing=(), **kwargs) -> list[dict]:
    """Parse a roster (text is encoded as UTF-8) with the echo validator."""
    data = data.encode("utf-8") if isinstance(data, str) else data
    return parse_roster(data, existing, echo, **kwargs)


def report(data: str | bytes, existing=(), **kwargs) -> list[tuple[int, str]]:
    """Return the report of a refused roster as (line, message) pairs."""
    with pytest.raises(RosterError) as caught:
        parse(data, existing, **kwargs)
    return [(p.line, p.message) for p in caught.value.problems]


def babel_app(locale: str) -> Flask:
    """A bare Flask app with Babel in LOCALE: the page's language, not the laptop app."""
    app = Flask(__name__)
    app.config["BABEL_DEFAULT_LOCALE"] = locale
    Babel(app)
    return app


def rows(count: int) -> str:
    """COUNT distinct runners, one line each."""
    return "".join(f"Runner {i},5a,5\n" for i in range(count))


def roster_of_size(size: int) -> bytes:
    """A valid UTF-8 roster of 1,000 runners that is exactly SIZE bytes long."""
    head = (HEADER + "\n").encode()
    per_row = (size - len(head)) // 1000
    lines = [f"Runner {i:04d} ".ljust(per_row - len(",5a,5\n"), "x") + ",5a,5\n"
             for i in range(1000)]
    lines[-1] = lines[-1][:-len(",5a,5\n")].ljust(
        size - len(head) - per_row * 999 - len(",5a,5\n"), "y") + ",5a,5\n"
    data = head + "".join(lines).encode()
    assert len(data) == size
    return data


# ---- file size: 4 MiB ------------------------------------------------------------------

def test_a_file_of_exactly_4_mib_is_read_whole():
    runners = parse(roster_of_size(4 * MIB))
    assert len(runners) == 1000
    assert runners[0]["name"].startswith("Runner 0000 xxx")
    assert runners[-1]["name"].endswith("yyy")
    assert [r["start_number"] for r in runners] == list(range(1, 1001))


def test_one_byte_past_4_mib_is_refused_before_anything_else():
    assert report(roster_of_size(4 * MIB + 1)) == [(1, "The file is larger than 4 MB.")]


def test_the_size_is_checked_before_the_encoding():
    data = b"\xff\xfe" + b"x" * (4 * MIB - 1)
    assert report(data) == [(1, "The file is larger than 4 MB.")]
    assert report(data[:-1])[0][1].startswith("The file is UTF-16 text")


# ---- rows: 10,000 runners ----------------------------------------------------------------

def test_exactly_10000_runners_are_accepted():
    runners = parse(f"{HEADER}\n{rows(10_000)}")
    assert len(runners) == 10_000
    assert runners[-1] == {"start_number": 10_000, "name": "Runner 9999", "class": "5a",
                           "grade": "5"}


def test_the_10001st_runner_is_refused_on_its_own_line():
    assert report(f"{HEADER}\n{rows(10_001)}") == [
        (10_002, "Too many rows: at most 10,000 runners per file.")]


def test_blank_lines_do_not_count_as_rows():
    text = f"{HEADER}\n\n{rows(10_000)}\n\n,,\n , , \n\t,\t,\t\n"
    assert len(parse(text)) == 10_000


def test_rows_with_a_wrong_column_count_count_as_rows_and_stay_in_the_report():
    text = f"{HEADER}\n{rows(9_999)}Short,5a\nRunner 10000,5a,5\n"
    assert report(text) == [(10_001, "Expected 3 columns, found 2."),
                            (10_002, "Too many rows: at most 10,000 runners per file.")]


def test_the_row_limit_is_written_the_page_s_way():
    text = f"{HEADER}\n{rows(10_001)}"
    with babel_app("de").app_context():
        assert report(text) == [(10_002, "Too many rows: at most 10.000 runners per file.")]
    with babel_app("en").app_context():
        assert report(text) == [(10_002, "Too many rows: at most 10,000 runners per file.")]


@pytest.mark.parametrize("locale, text", [("de", "10.000"), ("en", "10,000"),
                                          ("de", "1.234.567")])
def test_number_text_follows_the_page_s_locale(locale, text):
    with babel_app(locale).app_context():
        assert number_text(int(text.replace(".", "").replace(",", ""))) == text


def test_number_text_outside_a_request_uses_commas():
    assert number_text(10_000) == "10,000"
    assert number_text(999) == "999"


# ---- start numbers: at most 7 digits ----------------------------------------------------

@pytest.mark.parametrize("raw, number", [
    ("1234567", 1_234_567), ("9999999", 9_999_999), ("0000001", 1), ("42", 42), (" 42 ", 42),
    ("\t7\t", 7), ("\u00a05", 5), ("0", 0),
])
def test_a_start_number_of_up_to_7_ascii_digits_is_read(raw, number):
    runners = parse(f"Startnummer,{HEADER}\n{raw},Anna,5a,5\n", highest=9_999_999)
    assert runners == [{"start_number": number, "name": "Anna", "class": "5a", "grade": "5"}]


@pytest.mark.parametrize("raw", [
    "12345678", "00000001", "-1", "+1", "1_0", "1.0", "4 2", "abc", "0x1F", "１７", "²", "١٢",
    "42\u200b", "\u200b42", "4\u200b2", "\u202e42", "42\u202e", "4\x7f2", "\x0142",
])
def test_anything_else_is_not_a_start_number(raw):
    assert report(f"Startnummer,{HEADER}\n{raw},Anna,5a,5\n") == [
        (2, f"The start number {raw!r} is not valid: use digits only, e.g. 17.")]


def test_a_long_bad_start_number_is_quoted_to_20_characters():
    assert report(f"Startnummer,{HEADER}\n{'a' * 25},Anna,5a,5\n") == [
        (2, f"The start number {'a' * 20!r} is not valid: use digits only, e.g. 17.")]


# ---- characters in the text fields: handed on verbatim ---------------------------------

ODD = ["\x01", "\x1f", "\x7f", "\x85", "\u202e", "\u200b", "\u200d", "\ufeff", "\u00a0", "\t",
       "\u2028"]


def place(char: str, where: str) -> str:
    """Put CHAR at the start, in the middle or at the end of a field."""
    return {"start": f"{char}Anna Berg", "middle": f"Anna{char}Berg", "end": f"Anna Berg{char}"}[where]


@pytest.mark.parametrize("char", ODD, ids=[f"U+{ord(c):04X}" for c in ODD])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
@pytest.mark.parametrize("field", ["name", "class", "grade"])
def test_control_bidi_and_zero_width_characters_reach_the_validator_untouched(char, where, field):
    cells = {"name": "Anna", "class": "5a", "grade": "5"}
    cells[field] = place(char, where)
    runners = parse(f"{HEADER}\n{cells['name']},{cells['class']},{cells['grade']}\n")
    assert runners == [{"start_number": 1, **cells}]


def test_spaces_around_fields_reach_the_validator_untouched():
    assert parse(f"{HEADER}\n  Anna Berg , 5a ,  5 \n") == [
        {"start_number": 1, "name": "  Anna Berg ", "class": " 5a ", "grade": "  5 "}]


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_a_quoted_line_break_reaches_the_validator_as_written(newline):
    text = f'{HEADER}\r\n"Anna{newline}Berg","5a{newline}",5\r\n'
    assert parse(text) == [{"start_number": 1, "name": f"Anna{newline}Berg",
                            "class": f"5a{newline}", "grade": "5"}]


def test_a_zero_width_space_makes_a_different_name_a_control_character_does_not():
    """Duplicates compare names split on whitespace: U+001F counts as whitespace, U+200B not."""
    assert len(parse(f"{HEADER}\nAnna Berg,5a,5\nAnna\u200b Berg,5a,5\n")) == 2
    assert report(f"{HEADER}\nAnna Berg,5a,5\n\x1fAnna Berg,5a,5\n") == [
        (3, "Anna Berg (5a) is also on line 2.")]


@pytest.mark.parametrize("text, line", [
    ("\x00Name,Klasse,Jahrgang\nAnna,5a,5\n", 1),
    ("Name,Klasse,Jahrgang\x00\nAnna,5a,5\n", 1),
    ("Name,Klasse,Jahrgang\nAn\x00na,5a,5\nBen,5a,5\n", 2),
    ("Name,Klasse,Jahrgang\r\nAnna,5a,5\r\nBen,5a,5\r\nCem,5a,5\x00", 4),
    ("Name,Klasse,Jahrgang\n\"Anna\nBerg\",5a,5\nBen,5a,\x005\n", 4),
])
def test_a_nul_byte_refuses_the_file_on_its_line(text, line):
    assert report(text) == [(line, "The file contains NUL bytes: it is not a text CSV.")]


def test_a_nul_byte_in_a_windows_1252_file_is_found_on_its_line():
    data = "Name,Klasse,Jahrgang\nJürgen,5a,5\nZoë,5a,5\x00\n".encode("cp1252")
    assert report(data) == [(3, "The file contains NUL bytes: it is not a text CSV.")]


# ---- encodings ----------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_utf8_with_or_without_bom_and_windows_1252_read_alike(encoding):
    data = f"{HEADER}\nJürgen Öztürk,7c,7\nZoë Weiß,7c,7\nCafé „€“,7c,7\n".encode(encoding)
    assert [r["name"] for r in parse(data)] == ["Jürgen Öztürk", "Zoë Weiß", "Café „€“"]


def test_a_bom_does_not_spoil_the_first_column_name():
    data = "\ufeffStartnummer;Name;Klasse;Jahrgang\r\n5;Anna;5a;5\r\n".encode("utf-8")
    assert parse(data) == [{"start_number": 5, "name": "Anna", "class": "5a", "grade": "5"}]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_a_bom_is_refused_with_advice(encoding):
    data = f"{HEADER}\nAnna,5a,5\n".encode(encoding)
    if encoding != "utf-16":
        data = ("\ufeff" + f"{HEADER}\nAnna,5a,5\n").encode(encoding)
    assert report(data) == [(1, "The file is UTF-16 text: save it as 'CSV UTF-8' or "
                                "'CSV (semicolon separated)'.")]


def test_utf16_without_a_bom_is_refused_for_its_nul_bytes():
    data = f"{HEADER}\nAnna,5a,5\n".encode("utf-16-le")
    assert report(data) == [(1, "The file contains NUL bytes: it is not a text CSV.")]


@pytest.mark.parametrize("byte", [0x81, 0x8D, 0x8F, 0x90, 0x9D])
def test_bytes_neither_utf8_nor_windows_1252_are_refused_on_their_line(byte):
    data = f"{HEADER}\nJürgen,5a,5\nBen,5b,5\n".encode("cp1252") + b"B" + bytes([byte]) + b"rg,5a,5\n"
    assert report(data) == [(4, "The file is neither UTF-8 nor Windows-1252 text "
                                f"(byte 0x{byte:02X} cannot be read).")]


def test_an_unreadable_byte_in_the_header_is_on_line_1():
    assert report(b"Na\x8dme,Klasse,Jahrgang\nAnna,5a,5\n") == [
        (1, "The file is neither UTF-8 nor Windows-1252 text (byte 0x8D cannot be read).")]


# ---- line numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_numbers_count_physical_lines_whatever_the_line_ends(newline):
    text = newline.join([HEADER, "Anna,5a,5", "", "Ben,5b", "Cem,5c,5,x", ""])
    assert report(text) == [(4, "Expected 3 columns, found 2."), (5, "Expected 3 columns, found 4.")]


def test_a_quoted_line_break_moves_the_following_lines_on():
    text = f'{HEADER}\n"Anna\nBerg",5a\n"Ben\r\nCruz\nDorn",5b,5\n\nCem,5c\n'
    assert report(text) == [(2, "Expected 3 columns, found 2."), (8, "Expected 3 columns, found 2.")]


def test_the_validator_s_refusals_are_reported_on_their_lines_in_order():
    def refuse_grade_13(start_number, name, class_, grade):
        if grade == "13":
            raise InputError("invalid_grade", f"Grade {grade} is not run.")
        return echo(start_number, name, class_, grade)

    text = f"{HEADER}\nAnna,5a,13\n\nBen,5b,5\n\"Cem\nCruz\",5c,13\n"
    with pytest.raises(RosterError) as caught:
        parse_roster(text.encode(), [], refuse_grade_13)
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (2, "Grade 13 is not run."), (5, "Grade 13 is not run.")]

"""Roster CSV (lapsync/roster_csv.py): the header, start numbering, doubles and the report.

Numbers are written here as numbers, never imported from the code under test. The
validator `echo` hands back what parse_roster gives it; `refuse` refuses every runner
and says what it was given, so the report shows what reached the validator.
"""
from __future__ import annotations

import pytest

from lapsync.errors import InputError
from lapsync.roster_csv import Problem, RosterError, format_report, parse_roster

HEADER = "Name,Klasse,Jahrgang"
EXPECTED = "expected Name, Klasse, Jahrgang and optionally Startnummer."


def echo(start_number, name, class_, grade) -> dict:
    """A validator that hands back what it was given, untouched."""
    return {"start_number": start_number, "name": name, "class": class_, "grade": grade}


def refuse(start_number, name, class_, grade) -> dict:
    """A validator that refuses every runner, saying what it was given."""
    raise InputError("invalid_runner", f"got {start_number!r} {name!r} {class_!r} {grade!r}")


def parse(text: str, existing=(), validate=echo, **kwargs) -> list[dict]:
    """Parse a UTF-8 roster."""
    return parse_roster(text.encode("utf-8"), existing, validate, **kwargs)


def report(text: str, existing=(), validate=echo, **kwargs) -> list[tuple[int, str]]:
    """Return the report of a refused roster as (line, message) pairs."""
    with pytest.raises(RosterError) as caught:
        parse(text, existing, validate, **kwargs)
    return [(p.line, p.message) for p in caught.value.problems]


def numbers(text: str, existing=(), **kwargs) -> list[int]:
    """Return the start numbers the runners of a roster get."""
    return [r["start_number"] for r in parse(text, existing, **kwargs)]


# ---- the header ---------------------------------------------------------------------------

def test_the_header_is_case_insensitive_trimmed_and_in_any_order():
    assert parse(" JAHRGANG , klasse ,Name , StartNummer\n5,5a,Anna,42\n") == [
        {"start_number": 42, "name": "Anna", "class": "5a", "grade": "5"}]


@pytest.mark.parametrize("header, details", [
    ("Name,Klasse", "missing Jahrgang"),
    ("Klasse", "missing Name, Jahrgang"),
    ("Name,Klasse,Jahrgang,Alter", "unknown column 'alter'"),
    ("Name,Klasse,Jahrgang,Alter,Email", "unknown columns 'alter', 'email'"),
    ("Name,Klasse,Jahrgang,name", "column Name twice"),
    ("Name,Klasse,Jahrgang,Klasse,Name", "columns Klasse, Name twice"),
    ("Vorname,Klasse,Klasse", "unknown column 'vorname'; missing Name, Jahrgang; column Klasse twice"),
    ("Name,Klasse;Jahrgang", "unknown column 'klasse;jahrgang'; missing Klasse, Jahrgang"),
    ("Name;Klasse,Jahrgang", "unknown column 'name;klasse'; missing Name, Klasse"),
])
def test_a_wrong_header_is_one_problem_on_line_1_naming_every_fault(header, details):
    assert report(f"{header}\nAnna,5a,5\n") == [(1, f"Wrong header ({details}): {EXPECTED}")]


def test_a_leading_blank_line_is_taken_for_an_empty_header():
    assert report(f"\n{HEADER}\nAnna,5a,5\n") == [
        (1, f"Wrong header (missing Name, Klasse, Jahrgang): {EXPECTED}")]


def test_more_semicolons_than_commas_in_the_header_make_a_semicolon_file():
    text = 'Name;Klasse;Jahrgang\n"A, B, C, D, E, F, G";5a;5\n'
    assert parse(text) == [{"start_number": 1, "name": "A, B, C, D, E, F, G", "class": "5a",
                            "grade": "5"}]


@pytest.mark.parametrize("text", ["", " ", "\n\n", " \r\n\t\n"])
def test_an_empty_file_asks_for_the_header(text):
    assert report(text) == [(1, "The file is empty: expected the header Name,Klasse,Jahrgang "
                                "and one line per runner.")]


@pytest.mark.parametrize("text", [f"{HEADER}\n", HEADER, f"{HEADER}\n\n,,\n  ,\t, \n"])
def test_a_header_without_runners_is_refused(text):
    assert report(text) == [(1, "The file has a header but no runners.")]


def test_a_field_over_python_s_csv_limit_is_a_line_that_cannot_be_read():
    text = f"{HEADER}\nAnna,5a,5\n\"{'B' * 131_073}\",5a,5\n"
    assert report(text) == [
        (3, "The line cannot be read as CSV (field larger than field limit (131072)).")]
    assert parse(f"{HEADER}\n{'B' * 131_072},5a,5\n")[0]["name"] == "B" * 131_072


def test_rows_with_a_wrong_column_count_are_each_reported_and_nothing_else():
    assert report(f"{HEADER}\nAnna,5a\nBen,5b,5,x\nCem\n") == [
        (2, "Expected 3 columns, found 2."), (3, "Expected 3 columns, found 4."),
        (4, "Expected 3 columns, found 1.")]
    assert report(f"Startnummer,{HEADER}\n1,Anna,5a\n") == [(2, "Expected 4 columns, found 3.")]


# ---- start numbers -----------------------------------------------------------------------

def test_runners_without_a_number_get_the_next_after_the_highest_in_use():
    assert numbers(f"{HEADER}\nA,5a,5\nB,5a,5\nC,5a,5\n") == [1, 2, 3]
    assert numbers(f"{HEADER}\nA,5a,5\nB,5a,5\n", [(5, "X", "1a"), (9, "Y", "1a")]) == [10, 11]


def test_numbers_in_the_file_count_wherever_they_stand():
    text = f"Startnummer,{HEADER}\n,A,5a,5\n20,B,5a,5\n,C,5a,5\n7,D,5a,5\n"
    assert numbers(text, [(3, "X", "1a")]) == [21, 20, 22, 7]


def test_the_highest_valid_number_in_use_still_counts():
    assert numbers(f"{HEADER}\nA,5a,5\n", [(100, "X", "1a")], highest=100) == [101]
    assert numbers(f"Startnummer,{HEADER}\n100,A,5a,5\n,B,5a,5\n", highest=100) == [100, 101]


def test_numbers_above_the_highest_valid_one_are_skipped_when_counting_on():
    assert numbers(f"{HEADER}\nA,5a,5\n", [(101, "X", "1a"), (4, "Y", "1a")], highest=100) == [5]
    assert numbers(f"Startnummer,{HEADER}\n101,A,5a,5\n,B,5a,5\n", highest=100) == [101, 1]


def test_the_default_highest_number_is_999999():
    assert numbers(f"{HEADER}\nA,5a,5\n", [(999_999, "X", "1a")]) == [1_000_000]
    assert numbers(f"{HEADER}\nA,5a,5\n", [(1_000_000, "X", "1a"), (8, "Y", "1a")]) == [9]
    assert numbers(f"Startnummer,{HEADER}\n999999,A,5a,5\n,B,5a,5\n") == [999_999, 1_000_000]
    assert numbers(f"Startnummer,{HEADER}\n1000000,A,5a,5\n,B,5a,5\n") == [1_000_000, 1]


def test_a_start_number_zero_is_handed_on_and_numbering_starts_at_one():
    assert numbers(f"Startnummer,{HEADER}\n0,A,5a,5\n,B,5a,5\n") == [0, 1]


def test_a_number_twice_in_the_file_names_its_first_line_each_time():
    text = f"Startnummer,{HEADER}\n5,A,5a,5\n6,B,5a,5\n5,C,5a,5\n5,D,5a,5\n"
    assert report(text) == [(4, "Start number 5 is also on line 2."),
                            (5, "Start number 5 is also on line 2.")]


def test_a_number_in_use_on_the_roster_is_refused_once_per_file():
    text = f"Startnummer,{HEADER}\n5,A,5a,5\n5,B,5a,5\n6,C,5a,5\n"
    assert report(text, [(5, "X", "1a")]) == [
        (2, "Start number 5 is already used by a runner on the roster."),
        (3, "Start number 5 is also on line 2.")]


def test_a_bad_number_takes_no_number_and_the_validator_sees_a_stand_in_1():
    text = f"Startnummer,{HEADER}\nx,A,5a,5\n,B,5a,5\n9,C,5a,5\n,D,5a,5\n"
    assert report(text, validate=refuse) == [
        (2, "The start number 'x' is not valid: use digits only, e.g. 17."),
        (2, "got 1 'A' '5a' '5'"),
        (3, "got 10 'B' '5a' '5'"),
        (4, "got 9 'C' '5a' '5'"),
        (5, "got 11 'D' '5a' '5'"),
    ]


def test_every_problem_of_the_file_is_reported_sorted_by_line():
    text = (f"Startnummer,{HEADER}\n3,Anna,5a,5\nzz,Ben,5b\n3,Cem,5c,5\n,Anna,5a,5\n"
            f"4,Dana,5d,5\n")
    assert report(text, [(4, "Eve", "6a")]) == [
        (3, "Expected 4 columns, found 3."),
        (4, "Start number 3 is also on line 2."),
        (5, "Anna (5a) is also on line 2."),
        (6, "Start number 4 is already used by a runner on the roster."),
    ]


# ---- the same runner twice ---------------------------------------------------------------

def test_a_runner_already_on_the_roster_is_refused_with_its_number():
    assert report(f"{HEADER}\n anna  BERG , 5A ,5\n", [(7, "Anna Berg", "5a")]) == [
        (2, "anna  BERG (5A) is already on the roster with start number 7.")]


def test_a_runner_twice_in_the_file_names_the_first_line():
    text = f"{HEADER}\nAnna Berg,5a,5\nBen,5a,5\nANNA   berg ,5a ,5\nanna berg, 5 a ,5\n"
    assert report(text) == [(4, "ANNA   berg (5a) is also on line 2."),
                            (5, "anna berg (5 a) is also on line 2.")]  # one class: 5a


def test_names_are_compared_word_by_word_not_letter_by_letter():
    """Two people: 'Anna Berg' and 'Ann Aberg' are not one name without the spaces."""
    assert len(parse(f"{HEADER}\nAnna Berg,5a,5\nAnn Aberg,5a,5\nAnnaBerg,5a,5\n")) == 3
    assert len(parse(f"{HEADER}\nAnn Aberg,5a,5\n", [(1, "Anna Berg", "5a")])) == 1


def test_a_class_is_one_class_case_and_spaces_aside():
    """'5 a', '5A' and '5a' are one class (lapsync.names.class_fold), as the review takes them."""
    assert report(f"{HEADER}\nAnna,5 a,5\nBen,8B,8\n", [(1, "Anna", "5a"), (2, "Ben", "8 b")]) == [
        (2, "Anna (5 a) is already on the roster with start number 1."),
        (3, "Ben (8B) is already on the roster with start number 2.")]


def test_the_same_name_in_another_class_is_another_runner():
    assert numbers(f"{HEADER}\nAnna Berg,5a,5\nAnna Berg,5b,5\n", [(1, "Anna Berg", "6a")]) == [2, 3]


def test_rows_without_a_name_are_never_doubles_the_validator_decides():
    assert report(f"{HEADER}\n,5a,5\n ,5a,6\n", [(1, "", "5a")], validate=refuse) == [
        (2, "got 2 '' '5a' '5'"), (3, "got 3 ' ' '5a' '6'")]


def test_existing_runners_may_come_as_a_one_pass_iterator():
    existing = iter([(7, "Anna Berg", "5a")])
    assert report(f"Startnummer,{HEADER}\n7,Anna Berg,5a,5\n", existing) == [
        (2, "Start number 7 is already used by a runner on the roster."),
        (2, "Anna Berg (5a) is already on the roster with start number 7.")]


# ---- the report -----------------------------------------------------------------------------

def test_the_error_is_an_input_error_with_every_problem_as_data():
    with pytest.raises(RosterError) as caught:
        parse(f"{HEADER}\nAnna,5a\nBen,5b\n")
    error = caught.value
    assert isinstance(error, InputError)
    assert (error.code, error.status) == ("invalid_roster", 422)
    assert error.message == "The file was not imported: 2 problems found. Nothing was changed."
    assert error.extra == {"problems": [
        {"line": 2, "message": "Expected 3 columns, found 2."},
        {"line": 3, "message": "Expected 3 columns, found 2."}]}


def test_one_problem_is_said_in_the_singular():
    error = RosterError([Problem(4, "Bad.")])
    assert error.message == "The file was not imported: 1 problem found. Nothing was changed."
    assert error.problems == [Problem(4, "Bad.")]
    assert Problem(4, "Bad.").as_dict() == {"line": 4, "message": "Bad."}


def test_problems_are_sorted_by_line_keeping_the_order_within_a_line():
    error = RosterError([Problem(9, "c"), Problem(2, "a"), Problem(9, "b"), Problem(1, "z")])
    assert [(p.line, p.message) for p in error.problems] == [(1, "z"), (2, "a"), (9, "c"), (9, "b")]


def test_format_report_is_the_message_then_one_line_per_problem():
    error = RosterError([Problem(3, "Second."), Problem(2, "First.")])
    assert format_report(error) == ("The file was not imported: 2 problems found. Nothing was "
                                    "changed.\nline 2: First.\nline 3: Second.")

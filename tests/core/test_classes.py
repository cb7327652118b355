"""One spelling per class (lapsync/classes.py): the key, the spelling kept, the import's report."""
from __future__ import annotations

import pytest

from lapsync.classes import (most_used, preferred, respelled_text, spelled, tallied, unify,
                             unify_with_roster)
from lapsync.names import class_fold


@pytest.mark.parametrize("typed", ["8B", "8b", "8 b", " 8 B ", "8\u00a0b", "８ｂ", "8\tB"])
def test_case_spaces_and_full_width_letters_make_no_other_class(typed):
    assert class_fold(typed) == "8b"


@pytest.mark.parametrize("other", ["8c", "18b", "8", "8b1", "B8"])
def test_another_letter_or_number_is_another_class(other):
    assert class_fold(other) != class_fold("8b")


def test_the_roster_s_most_used_spelling_is_kept_ties_to_the_first():
    assert preferred([("8b", 1), ("8B", 3), ("8 b", 3), ("7a", 2), ("7A", 2)]) == {
        "8b": "8B", "7a": "7a"}
    assert most_used(["8 b", "8B", "8B", "8b"]) == "8B"
    assert most_used(["8 b", "8B"]) == "8 b"


def test_a_new_class_keeps_what_was_typed():
    assert spelled("9 c", {"8b": "8B"}) == "9 c"
    assert spelled("8 b", {"8b": "8B"}) == "8B"


def test_an_import_takes_the_roster_s_spelling_else_the_file_s_most_used():
    runners = [{"class": c} for c in ["8b", "8 b", "8b", "9C", "9c", "9c", "5a"]]
    notes = unify(runners, {"8b": "8B", "5a": "5a"})
    assert [r["class"] for r in runners] == ["8B", "8B", "8B", "9c", "9c", "9c", "5a"]
    assert [(n.typed, n.written, n.on_roster, n.runners) for n in notes] == [
        (["8b", "8 b"], "8B", True, 3), (["9C"], "9c", False, 1)]
    assert [respelled_text(n) for n in notes] == [
        "8b, 8 b written as 8B, as on the roster: 3 runners",
        "9C written as 9c, as most of the file has it: 1 runner"]


def test_an_import_in_one_spelling_reports_nothing():
    runners = [{"class": "8B"}, {"class": "7a"}]
    assert unify(runners, {"8b": "8B"}) == []
    assert [r["class"] for r in runners] == ["8B", "7a"]


def rows(*classes_and_numbers):
    """Return import rows of (class, start number)."""
    return [{"class": c, "start_number": n} for c, n in classes_and_numbers]


def test_central_s_import_counts_the_roster_and_the_file_together():
    runners = rows(("9A", 11), ("9A", 12), ("9a", 13))
    notes, moved = unify_with_roster(runners, [("9 a", 1, 9000), ("8B", 2, 1)])
    assert [r["class"] for r in runners] == ["9A", "9A", "9A"]
    assert moved == {"9 a": "9A"}  # the roster's runners of 9 a are re-spelled; 8B untouched
    assert [(n.typed, n.written, n.runners, n.roster_runners) for n in notes] == [
        (["9 a", "9a"], "9A", 2, 1)]
    assert respelled_text(notes[0]) == (
        "9 a, 9a written as 9A, as most of the roster and the file have it: 2 runners")


def test_central_s_import_ties_to_the_roster_s_spelling_then_to_the_lowest_number():
    assert tallied([("9 a", 1, 50)], rows(("9A", 11))) == {"9a": "9 a"}
    assert tallied([("9 a", 1, 50), ("9a", 1, 40)], rows(("9A", 11))) == {"9a": "9a"}
    assert tallied([], rows(("9A", 12), ("9 a", 11))) == {"9a": "9 a"}
    # Spellings of the roster tie among themselves as in migration 0013: the lowest number.
    assert tallied([("7C", 1, 702), ("7c", 1, 701)], rows(("7 c", 703))) == {"7c": "7c"}


def test_central_s_import_in_the_roster_s_spelling_reports_and_moves_nothing():
    runners = rows(("8B", 5))
    assert unify_with_roster(runners, [("8B", 3, 1), ("7a", 2, 4)]) == ([], {})

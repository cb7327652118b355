"""One spelling per class: "8b" and "8 B" typed for a class the roster spells "8B" become "8B".

Both apps group money pages, standings, letters and lists by the class as stored, so two
spellings of one class (case and spaces aside: lapsync.names.class_fold) would split it in
two. Every writer of a runner (roster import, runner form, central's push) gives the runner
the spelling its class already has: the one most of its runners have, ties to the runner of
the lowest start number (central's migration 0013 mends stored data by the same rule). A
class new to the roster takes the spelling most of the file's rows have (ties: the first).

Central's import counts the roster and the file together (tallied): a class takes the
spelling most of the roster's runners and the file's rows have, ties to a spelling the
roster has, then to the lowest start number, and the roster's runners of that class are
re-spelled when the file's spelling wins. With no file this is migration 0013's rule. A
laptop's import keeps the roster's spelling (unify): the roster's runners are central's,
which a laptop may not re-spell; the organiser renames a class at central.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask_babel import ngettext

from .names import class_fold


def preferred(spellings: Iterable[tuple[str, int]]) -> dict[str, str]:
    """Map each class key to its most used spelling; (spelling, runners) come in roster order."""
    best: dict[str, tuple[str, int]] = {}
    for name, runners in spellings:
        key = class_fold(name)
        if key not in best or runners > best[key][1]:  # a tie keeps the earlier one
            best[key] = (name, runners)
    return {key: name for key, (name, _runners) in best.items()}


def counted(classes: Iterable[str]) -> list[tuple[str, int]]:
    """Return each spelling with its number of runners, in the order first met."""
    return list(Counter(classes).items())


def most_used(spellings: Iterable[str]) -> str:
    """Return the spelling most of one class's runners have (ties: the first given)."""
    return max(counted(spellings), key=lambda item: item[1])[0]


@dataclass
class Respelled:
    """Runners of an import whose class was written as their class is spelled already."""

    written: str
    on_roster: bool                       # the spelling is the roster's (else the file's)
    typed: list[str] = field(default_factory=list)
    runners: int = 0
    roster_runners: int = 0               # of runners, those on the roster before the import


def unify(runners: list[dict], roster: dict[str, str]) -> list[Respelled]:
    """Give each runner (in file order) its class's spelling: the roster's, else the file's most used.

    roster maps class keys to the roster's spellings (preferred()); the runners' "class"
    is rewritten in place. Returns one Respelled per class some runner was re-spelled in.
    """
    from_file = preferred(counted(runner["class"] for runner in runners))
    written = {key: roster.get(key) or spelling for key, spelling in from_file.items()}
    return _respell(runners, written, set(roster), {})


def tallied(roster: Iterable[tuple[str, int, int]], runners: list[dict]) -> dict[str, str]:
    """Map each class key of the runners to the spelling most of the roster's and theirs have.

    roster gives each stored spelling with its runners and lowest start number; ties go to a
    spelling the roster has, then to the lowest start number (then the spelling itself).
    """
    keys = {class_fold(runner["class"]) for runner in runners}
    tally = {name: [count, True, first] for name, count, first in roster if class_fold(name) in keys}
    for runner in runners:
        entry = tally.setdefault(runner["class"], [0, False, runner["start_number"]])
        entry[0], entry[2] = entry[0] + 1, min(entry[2], runner["start_number"])
    best: dict[str, tuple] = {}
    for name, (count, on_roster, first) in tally.items():
        rank = (-count, not on_roster, first, name)
        best[class_fold(name)] = min(best.get(class_fold(name), rank), rank)
    return {key: rank[3] for key, rank in best.items()}


def unify_with_roster(runners: list[dict], roster: list[tuple[str, int, int]]
                      ) -> tuple[list[Respelled], dict[str, str]]:
    """Give each runner and each roster runner of its class the spelling tallied() keeps.

    The runners' "class" is rewritten in place. Returns the report's notes and, for the
    roster's runners to re-spell, {stored spelling: spelling to write}.
    """
    written = tallied(roster, runners)
    moved = {name: written[class_fold(name)] for name, _count, _first in roster
             if written.get(class_fold(name), name) != name}
    notes: dict[str, Respelled] = {}
    for name, count, _first in roster:
        if name in moved:
            note = notes.setdefault(class_fold(name), Respelled(moved[name], True))
            note.typed.append(name)
            note.runners, note.roster_runners = note.runners + count, note.roster_runners + count
    on_roster = {class_fold(name) for name, _count, _first in roster}
    return _respell(runners, written, on_roster, notes), moved


def _respell(runners: list[dict], written: dict[str, str], on_roster: set[str],
             notes: dict[str, Respelled]) -> list[Respelled]:
    """Write each runner's class as written[its key]; add to notes, returned in file order."""
    order = list(dict.fromkeys(class_fold(runner["class"]) for runner in runners))
    for runner in runners:
        key = class_fold(runner["class"])
        if written[key] == runner["class"]:
            continue
        note = notes.setdefault(key, Respelled(written[key], key in on_roster))
        if runner["class"] not in note.typed:
            note.typed.append(runner["class"])
        note.runners += 1
        runner["class"] = written[key]
    return [notes[key] for key in order if key in notes]


def spelled(class_: str, roster: dict[str, str]) -> str:
    """Return the spelling a class has on the roster (class_ itself when the class is new)."""
    return roster.get(class_fold(class_), class_)


def respelled_text(note: Respelled) -> str:
    """Say, in one line, that an import wrote a class's other spellings as the kept one."""
    typed = ", ".join(note.typed)
    if note.roster_runners:
        return ngettext("%(typed)s written as %(written)s, as most of the roster and the file "
                        "have it: %(num)s runner",
                        "%(typed)s written as %(written)s, as most of the roster and the file "
                        "have it: %(num)s runners",
                        note.runners, typed=typed, written=note.written)
    if note.on_roster:
        return ngettext("%(typed)s written as %(written)s, as on the roster: %(num)s runner",
                        "%(typed)s written as %(written)s, as on the roster: %(num)s runners",
                        note.runners, typed=typed, written=note.written)
    return ngettext("%(typed)s written as %(written)s, as most of the file has it: %(num)s runner",
                    "%(typed)s written as %(written)s, as most of the file has it: %(num)s runners",
                    note.runners, typed=typed, written=note.written)

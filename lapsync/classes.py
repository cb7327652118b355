"""One spelling per class: "8b" and "8 B" typed for a class the roster spells "8B" become "8B".

Both apps group money pages, standings, letters and lists by the class as stored, so two
spellings of one class (case and spaces aside: lapsync.names.class_fold) would split it in
two. Every writer of a runner (roster import, runner form, central's push) gives the runner
the spelling its class already has: the one most of its runners have, ties to the runner of
the lowest start number (central's migration 0013 mends stored data by the same rule). A
class new to the roster takes the spelling most of the file's rows have (ties: the first).
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


def unify(runners: list[dict], roster: dict[str, str]) -> list[Respelled]:
    """Give each runner (in file order) its class's spelling: the roster's, else the file's most used.

    roster maps class keys to the roster's spellings (preferred()); the runners' "class"
    is rewritten in place. Returns one Respelled per class some runner was re-spelled in.
    """
    from_file = preferred(counted(runner["class"] for runner in runners))
    notes: dict[str, Respelled] = {}
    for runner in runners:
        key = class_fold(runner["class"])
        written = roster.get(key) or from_file[key]
        if written == runner["class"]:
            continue
        note = notes.setdefault(key, Respelled(written, key in roster))
        if runner["class"] not in note.typed:
            note.typed.append(runner["class"])
        note.runners += 1
        runner["class"] = written
    return list(notes.values())


def spelled(class_: str, roster: dict[str, str]) -> str:
    """Return the spelling a class has on the roster (class_ itself when the class is new)."""
    return roster.get(class_fold(class_), class_)


def respelled_text(note: Respelled) -> str:
    """Say, in one line, that an import wrote a class's other spellings as the kept one."""
    typed = ", ".join(note.typed)
    if note.on_roster:
        return ngettext("%(typed)s written as %(written)s, as on the roster: %(num)s runner",
                        "%(typed)s written as %(written)s, as on the roster: %(num)s runners",
                        note.runners, typed=typed, written=note.written)
    return ngettext("%(typed)s written as %(written)s, as most of the file has it: %(num)s runner",
                    "%(typed)s written as %(written)s, as most of the file has it: %(num)s runners",
                    note.runners, typed=typed, written=note.written)

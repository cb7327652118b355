"""Names people read (users, runners, classes): one line, NFC, nothing invisible; look-alikes.

A name is shown on pages, lists, CSV exports and the laptops' screens. Characters that
show nothing or reorder what follows (controls, bidi overrides and isolates, zero-width
characters, line and paragraph separators, the byte-order mark, soft hyphens) let one
name pass for another or break a line, so no name may hold them. Two user names that
differ only in look-alike letters ("admin" and "аdmin" with a Cyrillic а) are confusable:
central refuses the second. Class names that differ only in case or spaces ("8B", "8b",
"8 b") are one class (class_fold).
"""
from __future__ import annotations

import functools
import unicodedata

from confusable_homoglyphs.confusables import confusables_data

# Unicode categories no name may hold: controls (Cc: C0 and C1, NEL too), format
# characters (Cf: U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+FEFF, U+00AD, ...),
# line and paragraph separators (Zl, Zp: U+2028, U+2029), surrogates and private use.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
# Letters that render as nothing although Unicode files them as letters or symbols.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Marks some homoglyphs carry in the confusables data to keep right-to-left text apart.
DIRECTION_MARKS = str.maketrans("", "", "\u200e\u200f")


def refused_character(text: str) -> str | None:
    """Return the first character no name may hold (as U+XXXX), or None if there is none."""
    if text.isprintable() and not BLANK_LETTERS.intersection(text):
        return None  # the usual name: one C-level scan
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES or char in BLANK_LETTERS:
            return f"U+{ord(char):04X}"
    return None


def clean_name(value: object) -> str:
    """Return a name stripped and NFC-normalised; raise ValueError naming a refused character."""
    name = unicodedata.normalize("NFC", str(value or "").strip())
    refused = refused_character(name)
    if refused:
        raise ValueError(refused)
    return name


@functools.cache
def _prototypes() -> dict[str, str]:
    """Map each confusable character to one representative of its look-alike class."""
    parent: dict[str, str] = {}

    def root(char: str) -> str:
        """Return the representative of char's class so far."""
        while parent.get(char, char) != char:
            char = parent[char]
        return char

    for char, glyphs in confusables_data.items():
        for glyph in glyphs:
            other = glyph["c"].translate(DIRECTION_MARKS)
            if len(char) == 1 and len(other) == 1:  # sequences ("rn" for "m") are left out
                a, b = root(char), root(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {char: root(char) for char in parent}


def _shape(name: str) -> str:
    """Return a name compatibility-normalised (NFKC: full-width 'Ｂ' is 'B') without any spaces."""
    return "".join(unicodedata.normalize("NFKC", name).split())


def class_fold(name: str) -> str:
    """Return what makes two spellings one class: case and spaces aside ('8 b', '8B' -> '8b')."""
    return _shape(name).casefold()


def skeletons(name: str) -> tuple[str, str]:
    """Return what a name looks like: each look-alike by one of its class, as typed and case folded."""
    # Both: "Ian" and "lan" differ only when folded, "ADMIN" and "admin" only as typed.
    prototypes = _prototypes()
    shape = _shape(name)
    return ("".join(prototypes.get(char, char) for char in shape),
            "".join(prototypes.get(char, char) for char in shape.casefold()))


def confusable(name: str, others: list[str]) -> str | None:
    """Return the first of others that looks like name but is not it, or None."""
    shapes = skeletons(name)
    for other in others:
        if other != name and any(a == b for a, b in zip(shapes, skeletons(other))):
            return other
    return None

"""Names people read (lapsync/names.py): one line, NFC, nothing invisible; look-alike names."""
from __future__ import annotations

import pytest

from lapsync import authcore
from lapsync.names import clean_name, confusable, refused_character

INVISIBLE = [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A),
             0x2028, 0x2029, 0xFEFF, 0x00AD, 0x0085, 0x001B, 0x3164, 0x115F]


@pytest.mark.parametrize("code", INVISIBLE, ids=lambda c: f"U+{c:04X}")
def test_every_invisible_character_is_refused_wherever_it_stands(code):
    for text in (f"{chr(code)}Anna", f"An{chr(code)}na", f"Anna{chr(code)}"):
        assert refused_character(text) == f"U+{code:04X}"


@pytest.mark.parametrize("text", ["Anna Berg", "Zoë Åsa", "名前", "عربي", "Anna\u00a0Berg",
                                  "O'Neil-Smith", "🏃", "Ünal Çelik"])
def test_names_people_write_pass(text):
    assert refused_character(text) is None


def test_clean_name_strips_and_composes():
    assert clean_name("  Zoe\u0308  ") == "Zoë"
    with pytest.raises(ValueError, match=r"U\+202E"):
        clean_name("\u202eAnna")


@pytest.mark.parametrize("name, other", [("admin", "\u0430dmin"), ("Ian", "lan"),
                                         ("ADA", "ada"), ("vic", "v\u0456c"), ("Ole", "01e"),
                                         ("Anna Berg", "AnnaBerg"), ("Jörg", "Jo\u0308rg")])
def test_look_alike_names_are_confusable(name, other):
    assert confusable(other, ["tom", name]) == name


@pytest.mark.parametrize("name, other", [("tom", "tim"), ("ada", "adam"), ("Bob", "B0b"),
                                         ("ada", "ada")])
def test_different_names_and_the_same_name_are_not(name, other):
    assert confusable(other, [name]) is None


def test_only_a_hash_with_the_apps_own_parameters_is_its_own():
    own = authcore.hash_password("correct-horse")
    assert authcore.has_own_parameters(own)
    prefix, salt, digest = own.rsplit("$", 2)
    for other in (own.replace("argon2id", "argon2i"), f"{prefix}$${digest}",
                  f"{prefix}${salt}A${digest}", f"{prefix}${salt}${digest}A", own + "\n",
                  prefix.replace("m=", "m=0") + f"${salt}${digest}", "$argon2id$x", None):
        assert not authcore.has_own_parameters(other), other
    assert prefix == "$argon2id$v=19$m=1024,t=1,p=1"  # this process's (tests/conftest.py)
    assert authcore.hash_parameters() == "argon2id, m=1024, t=1, p=1"

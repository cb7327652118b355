"""Lap ids: cuid2 with a fast seeded generator that a forked process does not share, and
the digits of its hash written out as cuid2 writes them."""
from __future__ import annotations

import os
from hashlib import sha3_512

from cuid2 import is_cuid
from cuid2.utils import base36_encode, create_hash
from hypothesis import given, settings
from hypothesis import strategies as st

from lapsync import ids


def test_ids_are_cuid2_and_distinct():
    made = [ids.new_id() for _ in range(2_000)]
    assert all(is_cuid(made_id) and len(made_id) == 24 for made_id in made)
    assert len(set(made)) == len(made)


def test_a_forked_child_draws_other_random_numbers_than_its_parent():
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report its next draws and leave at once
        os.write(writer, repr([ids._random.random() for _ in range(4)]).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        theirs = pipe.read()
    os.waitpid(child, 0)
    assert theirs != repr([ids._random.random() for _ in range(4)])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2 ** 512 - 1))
def test_base36_writes_numbers_as_cuid2_does(number):
    assert ids.base36(number) == base36_encode(number)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(min_value=0, max_value=2 ** 512 - 1),
                 st.integers(min_value=0, max_value=36 ** 26)))
def test_the_hash_keeps_the_digits_cuid2_keeps(number):
    # cuid2: first letter + create_hash(data)[1:length]; create_hash drops base36's first digit.
    assert ids.hash_digits(number) == base36_encode(number)[1:][1:ids.LENGTH]


def test_an_id_is_the_letter_and_digits_of_cuid2s_hash_of_the_same_input():
    data = "lrx1k2m3" + "a" * 24 + "9z" + "f" * 32
    digest = int.from_bytes(sha3_512(data.encode()).digest(), "big")
    assert ids.hash_digits(digest) == create_hash(data)[1:ids.LENGTH]
    assert len(ids.hash_digits(digest)) == ids.LENGTH - 1

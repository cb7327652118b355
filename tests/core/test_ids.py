"""Lap ids: cuid2 with a fast seeded generator that a forked process does not share."""
from __future__ import annotations

import os

from cuid2 import is_cuid

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

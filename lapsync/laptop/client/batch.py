"""Read the outbox into push bodies with the core's encoder (lapsync.protocol.encode)."""
from __future__ import annotations

import sqlite_utils

from lapsync.protocol import limits
from lapsync.protocol.encode import Batch, BatchEncoder, push_head

from ..db import device_id, now_ms


def head_bytes(db: sqlite_utils.Database) -> int:
    """Return an upper bound of a push body's size without its changes."""
    return len(push_head(device_id(db), 10 ** 14 - 1)) + 2


def encode_batch(db: sqlite_utils.Database, start: int, compact: bool = False) -> Batch:
    """Encode the outbox rows from seq START (one query) within the batch limits.

    Rows are read as they are encoded, not fetched all at once: a batch's rows as
    Python tuples would take several times the memory of its encoded text.
    """
    encoder = BatchEncoder(limits.MAX_BATCH_BYTES - head_bytes(db), compact)
    rows = db.execute("SELECT seq, entity, entity_id, payload FROM change WHERE seq >= ? "
                      "ORDER BY seq LIMIT ?", [start, limits.MAX_BATCH_CHANGES])
    try:
        for row in rows:
            if not encoder.add(*row):
                break
    finally:
        rows.close()  # ends the read (a WAL snapshot) even when the batch is full early
    return encoder.batch()


def build_batch(db: sqlite_utils.Database, start: int,
                compact: bool = False) -> tuple[bytes, list[int]]:
    """Encode the outbox rows from seq START as one push body within the batch limits.

    compact: consecutive laps travel as compact lap runs (lapsync.protocol), which only a
    central that announced "laps" in its encodings accepts.
    """
    batch = encode_batch(db, start, compact)
    return batch.body(device_id(db), now_ms()), batch.seqs

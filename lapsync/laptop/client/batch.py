"""Read the outbox into push bodies with the core's encoders: JSON (lapsync.protocol.encode)
or columnar (lapsync.protocol.encode_columns), whichever central takes."""
from __future__ import annotations

import sqlite_utils

from lapsync.protocol import LAP_RUN, limits
from lapsync.protocol.columns import COLUMNS_TYPE, MAGIC, head_section
from lapsync.protocol.encode import Batch, BatchEncoder, push_head
from lapsync.protocol.encode_columns import ColumnBatch, ColumnEncoder

from ..db import device_id, now_ms

ROWS_AT_ONCE = 512  # outbox rows the columnar encoder takes apart together
OUTBOX_ROWS = "SELECT seq, entity, entity_id, payload FROM change WHERE seq >= ? ORDER BY seq LIMIT ?"


def head_bytes(db: sqlite_utils.Database) -> int:
    """Return an upper bound of a push body's size without its changes."""
    return len(push_head(device_id(db), 10 ** 14 - 1)) + 2


def encode_batch(db: sqlite_utils.Database, start: int, compact: bool = False) -> Batch:
    """Encode the outbox rows from seq START (one query) within the batch limits.

    Rows are read as they are encoded, not fetched all at once: a batch's rows as
    Python tuples would take several times the memory of its encoded text.
    """
    encoder = BatchEncoder(limits.MAX_BATCH_BYTES - head_bytes(db), compact)
    rows = db.execute(OUTBOX_ROWS, [start, limits.MAX_BATCH_CHANGES])
    try:
        for row in rows:
            if not encoder.add(*row):
                break
    finally:
        rows.close()  # ends the read (a WAL snapshot) even when the batch is full early
    return encoder.batch()


def encode_columns(db: sqlite_utils.Database, start: int) -> ColumnBatch:
    """Encode the outbox rows from seq START as a columnar batch within the batch limits."""
    head = len(MAGIC) + len(head_section(device_id(db), 10 ** 14 - 1))
    encoder = ColumnEncoder(limits.MAX_BATCH_BYTES - head)
    rows = db.execute(OUTBOX_ROWS, [start, limits.MAX_BATCH_CHANGES])
    try:
        while chunk := rows.fetchmany(ROWS_AT_ONCE):
            if not encoder.add_rows(chunk):
                break
    finally:
        rows.close()  # ends the read (a WAL snapshot) even when the batch is full early
    return encoder.batch()


def encode_for(db: sqlite_utils.Database, start: int, encodings: set[str],
               content_types: set[str]) -> Batch | ColumnBatch:
    """Encode from seq START in the leanest form central takes: columnar, compact runs or verbose.

    The columnar body carries lap runs: a central that stopped taking runs gets JSON.
    """
    if COLUMNS_TYPE in content_types and LAP_RUN in encodings:
        return encode_columns(db, start)
    return encode_batch(db, start, LAP_RUN in encodings)


def build_batch(db: sqlite_utils.Database, start: int,
                compact: bool = False) -> tuple[bytes, list[int]]:
    """Encode the outbox rows from seq START as one push body within the batch limits.

    compact: consecutive laps travel as compact lap runs (lapsync.protocol), which only a
    central that announced "laps" in its encodings accepts.
    """
    batch = encode_batch(db, start, compact)
    return batch.body(device_id(db), now_ms()), batch.seqs

"""Group commit: laps posted at the same moment share one transaction and its fsync.

A lap is answered only after the COMMIT that holds it, with the connection's
synchronous=FULL: what a helper sees counted survives a power cut. One request at a
time writes (the leader). It takes every piece of work queued while the previous
leader was committing, runs each in a savepoint of one transaction (a refused lap is
rolled back alone), commits once and hands each request its own result. The others
wait on a lock here rather than in SQLite's busy handler, which polls with sleeps of
up to 100 ms.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlite_utils

Work = Callable[[sqlite_utils.Database], Any]


class Entry:
    """One request's work and, once its transaction ended, its result or error."""

    __slots__ = ("work", "value", "error", "done")

    def __init__(self, work: Work):
        self.work, self.value, self.error, self.done = work, None, None, False


class GroupCommit:
    """The write queue of one database file in this process."""

    def __init__(self) -> None:
        """Start with nothing queued."""
        self.queue_lock = threading.Lock()  # guards queued
        self.writing = threading.Lock()     # held by the leader from BEGIN to COMMIT
        self.queued: list[Entry] = []

    def run(self, db: sqlite_utils.Database, work: Work) -> Any:
        """Run work(db) in a write transaction, maybe shared; return its result once committed."""
        entry = Entry(work)
        with self.queue_lock:
            self.queued.append(entry)
        with self.writing:
            if not entry.done:  # no leader took it: lead, with everything queued meanwhile
                with self.queue_lock:
                    batch, self.queued = self.queued, []
                write_batch(db, batch)
        if entry.error is not None:
            raise entry.error
        return entry.value


def write_batch(db: sqlite_utils.Database, batch: list[Entry]) -> None:
    """Run each entry's work in one transaction; an entry that raises is rolled back alone."""
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        if len(batch) == 1:  # nothing to keep apart: a refusal rolls back the transaction
            batch[0].value = batch[0].work(db)
        else:
            for entry in batch:
                run_in_savepoint(conn, db, entry)
        conn.execute("COMMIT")
    except BaseException as exc:  # nothing of the batch was committed: each request hears why
        if conn.in_transaction:
            conn.rollback()
        for entry in batch:
            entry.value, entry.error = None, exc
    finally:
        for entry in batch:
            entry.done = True


def run_in_savepoint(conn, db: sqlite_utils.Database, entry: Entry) -> None:
    """Run one entry's work; on an Exception keep it as the entry's error and undo its writes."""
    conn.execute("SAVEPOINT entry")
    try:
        entry.value = entry.work(db)
    except Exception as exc:
        conn.execute("ROLLBACK TO entry")
        entry.error = exc
    conn.execute("RELEASE entry")

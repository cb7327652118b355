"""Group commit: laps posted at the same moment share one transaction and its fsync.

A lap is answered only after the COMMIT that holds it, with the connection's
synchronous=FULL: what a helper sees counted survives a power cut. One request at a
time writes (the leader). It takes every piece of work queued while the previous
leader was committing, runs each in a savepoint of one transaction (a refused lap is
rolled back alone), commits once and hands each request its own result. The others
wait on a lock here rather than in SQLite's busy handler, which polls with sleeps of
up to 100 ms.

The leader writes on the group's own connection, not its request's: in WAL mode a
connection drops its whole page cache whenever another connection committed since
its last transaction, so laps written by turns on the pool's connections would read
every index page anew.

Checkpoints (copying the WAL's pages into the database file, with an fsync) run on a
thread of their own every CHECKPOINT_LAPS laps, not inside the COMMIT of whichever
lap crossed SQLite's threshold: that lap, and every lap of its batch, waited for them.
On Linux that thread runs at a lower priority (nice): a checkpoint takes ~10 ms of CPU
at 1M laps, and a helper's lap answered meanwhile would wait for its share of the core.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from .db import connect

Work = Callable[[sqlite_utils.Database], Any]
CACHE_KIB = 16_384  # the writer's page cache (SQLite's default is 2 MiB)
CHECKPOINT_LAPS = 100  # ~1,000 WAL pages at 1M laps: SQLite's own autocheckpoint size
IDLE_S = 10.0          # the checkpoint thread ends after this long without laps
CHECKPOINT_NICE = 10   # how much lower the checkpoint thread's priority is (Linux)
log = logging.getLogger(__name__)


class Entry:
    """One request's work and, once its transaction ended, its result or error."""

    __slots__ = ("work", "value", "error", "done")

    def __init__(self, work: Work):
        self.work, self.value, self.error, self.done = work, None, None, False


class GroupCommit:
    """The write queue of one database file in this process, with its writing connection."""

    def __init__(self, path: str | Path, synchronous: str, prepare: Work | None = None) -> None:
        """Start with nothing queued; the connection is opened by the first leader.

        prepare(db) runs at the start of each batch's transaction, outside the entries'
        savepoints, so that what it writes stays even if every entry is refused; it
        returns whether it wrote anything.
        """
        self.path, self.synchronous, self.prepare = path, synchronous, prepare
        self.db: sqlite_utils.Database | None = None
        self.queue_lock = threading.Lock()  # guards queued
        self.writing = threading.Lock()     # held by the leader from BEGIN to COMMIT
        self.queued: list[Entry] = []
        self.checkpoints = Checkpoints(path, synchronous)

    def run(self, work: Work) -> Any:
        """Run work(db) in a write transaction, maybe shared; return its result once committed."""
        entry = Entry(work)
        with self.queue_lock:
            self.queued.append(entry)
        with self.writing:
            if not entry.done:  # no leader took it: lead, with everything queued meanwhile
                if self.db is None:
                    self.db = connect(self.path, self.synchronous)
                    self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
                    self.db.execute("PRAGMA wal_autocheckpoint=0")  # Checkpoints does it
                with self.queue_lock:
                    batch, self.queued = self.queued, []
                write_batch(self.db, batch, self.prepare)
                self.checkpoints.count(len(batch))
        if entry.error is not None:
            raise entry.error
        return entry.value

    def close(self) -> None:
        """Close the writing connection (a later run opens it again)."""
        with self.writing:
            if self.db is not None:
                self.db.close()
                self.db = None


class Checkpoints:
    """The checkpoint thread of one database file: started by laps, ended when idle."""

    def __init__(self, path: str | Path, synchronous: str) -> None:
        """Start with no thread and no laps counted."""
        self.path, self.synchronous = path, synchronous
        self.laps, self.wanted, self.thread = 0, threading.Event(), None

    def count(self, laps: int) -> None:
        """Count committed laps; ask for a checkpoint every CHECKPOINT_LAPS (the leader calls)."""
        self.laps += laps
        if self.laps < CHECKPOINT_LAPS:
            return
        self.laps = 0
        self.wanted.set()
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self.loop, name="lapsync-checkpoint", daemon=True)
            self.thread.start()

    def loop(self) -> None:
        """Checkpoint whenever asked, on a connection of its own; end after IDLE_S without."""
        lower_priority()
        db = connect(self.path, self.synchronous)
        try:
            while self.wanted.wait(IDLE_S):
                self.wanted.clear()
                try:  # PASSIVE: never waits for, nor blocks, the laps being written
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception:  # noqa: BLE001 - the next checkpoint tries again
                    log.exception("WAL checkpoint failed")
        finally:
            db.close()


def lower_priority() -> None:
    """Lower this thread's CPU priority by CHECKPOINT_NICE (Linux: nice applies per thread)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECKPOINT_NICE)
        except OSError:  # not allowed here: checkpoints run at the app's own priority
            log.warning("could not lower the checkpoint thread's priority", exc_info=True)


def write_batch(db: sqlite_utils.Database, batch: list[Entry], prepare: Work | None = None) -> None:
    """Run each entry's work in one transaction; an entry that raises is rolled back alone."""
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        prepared = bool(prepare(db)) if prepare else False
        if len(batch) == 1 and not prepared:  # nothing to keep: a refusal rolls back the transaction
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

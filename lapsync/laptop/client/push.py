"""Push the outbox to central in bounded, pipelined batches; mark what it acknowledged."""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlite_utils

from lapsync import hlc, protocol
from lapsync.protocol.encode_columns import ColumnBatch

from .. import clock, clockwatch
from ..db import PENDING, device_id, get_meta, move_pushed_mark, now_ms, set_meta, transaction
from ..new_event import EVENT_KEY
from .batch import Batch, encode_batch, encode_for
from .realign import close_hole_below, realign, replaced_database, start_over
from .transport import PROTOCOL, REFUSED, Central, EventChanged, SyncError, SyncResult, as_seq

MAX_BATCHES_PER_RUN = 10_000      # a run always ends
# Batches sent before the first of them is answered: central reads and checks the next
# while it applies one (it applies them one at a time, in seq order: sync/push.py).
IN_FLIGHT = 2
PIPELINE_FROM = 5_000            # changes in a batch that may go before the one before is answered


def first_pending(db: sqlite_utils.Database) -> int | None:
    """Return the lowest seq not yet acknowledged by central."""
    return db.execute(f"SELECT min(seq) FROM change WHERE {PENDING}").fetchone()[0]


def pending_count(db: sqlite_utils.Database) -> int:
    """Return how many outbox rows wait for central."""
    return db.execute(f"SELECT count(*) FROM change WHERE {PENDING}").fetchone()[0]


def check_acked(db: sqlite_utils.Database, acked: int) -> None:
    """Refuse an acknowledgement of seqs this laptop never wrote."""
    last = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
    if acked > last:
        raise SyncError(PROTOCOL, f"central acknowledges seq {acked} but this laptop's last "
                        f"change is {last}: is this device token used by another laptop?")


def mark_pushed(db: sqlite_utils.Database, acked: int, rejected: list | None = None,
                fingerprint: str | None = None, central: Central | None = None) -> int:
    """Mark rows up to ACKED as pushed and store rejected items, in one transaction."""
    with transaction(db):
        count = mark_up_to(db, acked)
        for item in rejected or []:
            store_rejected(db, item)
        if fingerprint:  # central has bound this token to this laptop
            set_meta(db, "push_bound", fingerprint)
        if central is not None:
            remember_encodings(db, central)
    return count


def mark_up_to(db: sqlite_utils.Database, acked: int) -> int:
    """Mark the pending rows up to ACKED pushed (inside the caller's transaction); return how many.

    The outbox mark moves (one row written); the changes' rows stay as they are.
    """
    count = db.execute(f"SELECT count(*) FROM change WHERE {PENDING} AND seq <= ?",
                       [acked]).fetchone()[0]
    move_pushed_mark(db, acked)
    return count


def store_rejected(db: sqlite_utils.Database, item: Any) -> None:
    """Keep one item central refused for good (inside the caller's transaction)."""
    if not isinstance(item, dict) or isinstance(item.get("seq"), bool) \
            or not isinstance(item.get("seq"), int):
        return
    row = db.execute("SELECT entity, entity_id, json_extract(payload, '$.hlc') FROM change "
                     "WHERE seq = ?", [item["seq"]]).fetchone()
    entity, entity_id, stamp = row if row else ("?", "?", None)
    db.execute("INSERT OR REPLACE INTO rejected_change (seq, entity, entity_id, error, message, "
               "rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
               [item["seq"], entity, entity_id, str(item.get("error") or "rejected")[:100],
                str(item.get("message") or "")[:500], now_ms()])
    if item.get("error") == hlc.CLOCK_AHEAD and isinstance(stamp, str):
        clock.forget_refused(db, entity, entity_id, stamp)


def store_clock_offset(db: sqlite_utils.Database, server_time: Any, sent: int, received: int) -> None:
    """Estimate central's clock minus this laptop's from one round trip."""
    if isinstance(server_time, int) and not isinstance(server_time, bool):
        with transaction(db):
            set_meta(db, "clock_offset_ms", str(server_time - (sent + received) // 2))


def learn_encodings(central: Central, answer: dict) -> None:
    """Take the optional push encodings central's answer announces (none if it lists none)."""
    encodings = answer.get("encodings")
    central.encodings = {e for e in encodings if isinstance(e, str)} \
        if isinstance(encodings, list) else set()


def remember_encodings(db: sqlite_utils.Database, central: Central) -> None:
    """Store central's push encodings and body types for the next run (in the caller's transaction)."""
    set_meta(db, "push_encodings", " ".join([central.fingerprint, *sorted(central.encodings)]))
    set_meta(db, "push_content_types", " ".join([central.fingerprint, *sorted(central.content_types)]))


def recall_encodings(db: sqlite_utils.Database, central: Central) -> None:
    """Start with the push encodings and body types this URL and token announced in an earlier run."""
    stored = (get_meta(db, "push_encodings") or "").split()
    if not central.encodings and stored[:1] == [central.fingerprint]:
        central.encodings = set(stored[1:])
    types = (get_meta(db, "push_content_types") or "").split()
    if not central.content_types and types[:1] == [central.fingerprint]:
        central.content_types = set(types[1:])


def send(central: Central, laptop_id: str, batch: Batch | ColumnBatch,
         follows: int | None = None) -> tuple[int, dict, int, int]:
    """POST one batch; return (status, answer, sent at, answered at) in laptop ms.

    follows: the first seq of the batch sent before it and not answered yet (central then
    waits for that one rather than refuse this one as a gap).
    """
    sent = now_ms()
    body = batch.body(laptop_id, sent)
    status, answer = central.push(body) if follows is None else central.push(body, follows)
    return status, answer, sent, now_ms()


def settle(db: sqlite_utils.Database, central: Central, status: int, answer: dict,
           sent: int, received: int, result: SyncResult) -> int | None:
    """Mark what central's answer to a batch acknowledged; return the next start."""
    if status == 409 and answer.get("error") == "event_changed":
        raise EventChanged(f"central answered 409: {answer.get('message', '')}"[:300])
    acked = as_seq(answer.get("acked_seq"), "acked_seq")
    check_acked(db, acked)
    named = replaced_database(db, answer)
    if named is not None:  # restored: ACKED is where its copy of this laptop stops
        start_over(db, acked, result, named)
    if status == 409:
        if answer.get("error") != "seq_gap":
            raise SyncError(REFUSED, f"central answered 409: {answer.get('message', '')}"[:300], 409)
        result.pushed += mark_pushed(db, acked)
        return as_seq(answer.get("resume_from"), "resume_from")
    learn_encodings(central, answer)
    rejected = answer.get("rejected") or []
    result.pushed += mark_pushed(db, acked, rejected if isinstance(rejected, list) else [],
                                 central.fingerprint, central)
    result.rejected += len(rejected) if isinstance(rejected, list) else 0
    store_clock_offset(db, answer.get("server_time"), sent, received)
    return first_pending(db)


def push_once(db: sqlite_utils.Database, central: Central, start: int,
              result: SyncResult, allow_empty: bool = False) -> int | None:
    """Send one batch from seq START; mark what central acknowledged; return the next start."""
    batch = encode_for(db, start, central.encodings, central.content_types)
    if not batch.seqs and not allow_empty:
        raise SyncError(PROTOCOL, f"central asks to resume from seq {start}, which this laptop "
                        "does not have")
    return settle(db, central, *send(central, device_id(db), batch), result)


def report_jumps(db: sqlite_utils.Database, central: Central, result: SyncResult) -> None:
    """Send the clock jumps central has not taken yet, in an empty push (if central takes them).

    A central that refuses the report (422) is not asked again until it announces
    clock jumps anew: the report must never stop the laps going.
    """
    jumps = clockwatch.unreported(db, protocol.MAX_CLOCK_JUMPS)
    if not jumps or protocol.CLOCK_JUMPS not in central.encodings:
        return
    last = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
    sent = now_ms()
    try:
        status, answer = central.push(encode_batch(db, last + 1).body(device_id(db), sent, jumps))
    except SyncError as exc:
        if exc.kind != REFUSED:
            raise
        central.encodings.discard(protocol.CLOCK_JUMPS)
        with transaction(db):
            remember_encodings(db, central)
        return
    settle(db, central, status, answer, sent, now_ms(), result)
    clockwatch.mark_reported(db, [jump["id"] for jump in jumps])


def compact_refused(db: sqlite_utils.Database, central: Central, batch: Batch | ColumnBatch,
                    error: SyncError) -> SyncError:
    """Stop sending lap runs after central refused a batch holding one, and columnar bodies
    after central refused one as a body (400, 415: transport dropped the type), e.g. a downgrade."""
    if error.status == 422 and batch.runs:
        central.encodings.discard(protocol.LAP_RUN)
    elif error.status not in (400, 415) or not isinstance(batch, ColumnBatch):
        return error
    with transaction(db):
        remember_encodings(db, central)
    return error


def push(db: sqlite_utils.Database, central: Central, result: SyncResult,
         progress: Callable[[int], None] | None = None) -> None:
    """Push every pending change in bounded batches until none is left.

    Pipelined: while central applies batch n, batch n + 1 is on its way (central reads
    and checks it meanwhile, and applies it after n); this laptop then encodes n + 2 and
    marks n pushed. A batch is marked only after central's answer to it.
    """
    central.event = get_meta(db, EVENT_KEY)  # named in every push: central refuses the last event's
    realign(db, central)  # a restored snapshot: first learn where central has this laptop
    start = first_pending(db)
    # The backlog found now: laps typed meanwhile go with the next sync, so that a
    # steady stream of laps cannot keep one run going at a few laps per round trip.
    end = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
    recall_encodings(db, central)
    if start is None and get_meta(db, "push_bound") != central.fingerprint:
        # An empty push binds the token to this laptop before the first pull, so
        # that central leaves this laptop's own changes out of the pull.
        last = db.execute("SELECT max(seq) FROM change").fetchone()[0] or 0
        start = push_once(db, central, last + 1, result, allow_empty=True)
    push_backlog(db, central, result, progress, start, end)
    report_jumps(db, central, result)  # after the batches: their answers tell if central takes it


def push_backlog(db: sqlite_utils.Database, central: Central, result: SyncResult,
                 progress: Callable[[int], None] | None, start: int | None, end: int) -> None:
    """Push the outbox from seq START up to END, pipelined (see push)."""
    seen, laptop_id, flight = Counter(), device_id(db), Flight()
    with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="lapsync-push") as sender:
        flight.send = lambda batch: flight.append((batch, sender.submit(
            send, central, laptop_id, batch, flight[-1][0].seqs[0] if flight else None)))
        for _ in range(MAX_BATCHES_PER_RUN):
            if not flight:  # nothing in flight: start from the first pending change
                if start is None or start > end:
                    return
                seen[start] += 1
                if seen[start] > 2:  # central keeps answering without moving on
                    raise SyncError(PROTOCOL, f"central does not acknowledge seq {start}")
                if close_hole_below(db, start):  # central lost the seqs a restore skipped
                    end = db.execute("SELECT max(seq) FROM change").fetchone()[0]
                batch = encode_for(db, start, central.encodings, central.content_types)
                if not batch.seqs:
                    raise SyncError(PROTOCOL, f"central asks to resume from seq {start}, which "
                                    "this laptop does not have")
                flight.send(batch)
            following = flight[-1][0].seqs[-1] + 1
            if flight.held is None and following <= end:
                flight.held = encode_for(db, following, central.encodings, central.content_types)
            if flight.held is not None and len(flight) < IN_FLIGHT \
                    and overlaps(flight.held, flight[-1][0]):
                flight.send(flight.held)
                flight.held = None
            start = settle_first(db, central, flight, result, progress)


class Flight(deque):
    """The batches sent and not yet answered, oldest first, and the next one encoded (held)."""

    held: Batch | ColumnBatch | None = None
    send: Callable[[Batch | ColumnBatch], None]


def overlaps(batch: Batch | ColumnBatch, before: Batch | ColumnBatch) -> bool:
    """Tell whether BATCH may go before central answers the one BEFORE it.

    Only large batches, not much smaller than the one before: central reads and checks a
    batch in a fraction of the time this laptop takes to encode the next, so the one
    before reaches central's lock first. A small batch right behind a large one could
    overtake it there: central then waits for the one it names in Lapsync-Follows, while
    a central without that header refuses it as a gap (nothing applied, sent again).
    """
    return len(batch.seqs) >= PIPELINE_FROM and len(batch.seqs) * 2 >= len(before.seqs)


def settle_first(db: sqlite_utils.Database, central: Central, flight: Flight, result: SyncResult,
                 progress: Callable[[int], None] | None) -> int | None:
    """Settle the oldest batch in flight; return where to go on from.

    The batch held back goes out as soon as central has taken all of the batches before
    it, before this one is marked. When central did not take all of it (a refusal, a seq
    gap), the batches sent after it are settled too (what central acknowledged stays
    true) and the push goes on from where central's answer to this one says.
    """
    batch, inflight = flight.popleft()
    before = result.pushed
    try:
        status, answer, sent, received = inflight.result()
    except SyncError as exc:
        drain(flight)
        raise compact_refused(db, central, batch, exc) from None
    taken = status == 200 and answer.get("acked_seq") == batch.seqs[-1]
    if taken and not flight and flight.held is not None:
        flight.send(flight.held)
        flight.held = None
    start = settle(db, central, status, answer, sent, received, result)
    if not taken:
        for _, later in list(flight):
            try:
                settle(db, central, *later.result(), result)
            except SyncError:
                pass  # the run goes on from what central has: the next round learns the rest
        flight.clear()
        flight.held = None
    if progress:
        progress(result.pushed - before)
    return start


def drain(flight: Flight) -> None:
    """Wait for the batches still in flight and drop their answers (the push stops)."""
    for _, later in flight:
        try:
            later.result()
        except SyncError:
            pass
    flight.clear()

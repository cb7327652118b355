"""The push encoder: outbox rows as push changes, verbose or as compact lap runs.

The laptop streams its outbox through BatchEncoder; validate.py is the other side.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .jumps import encode_jumps
from .limits import PROTOCOL_VERSION

# A lap's outbox payload exactly as record_change writes it (compact JSON, keys in
# this order, ids of letters and digits): such a lap can travel in a compact lap run.
# Any other payload goes verbatim, so central checks it exactly as it is.
LAP_PAYLOAD = re.compile(r'\{"id":"([a-z][0-9a-z]*)","runner_id":"([a-z][0-9a-z]*)",'
                         r'"created_by":"([a-z][0-9a-z]*)","time":(0|[1-9][0-9]*),'
                         r'"device_id":"([a-z][0-9a-z]*)"\}')
LAP_PAYLOAD_FRAME = len('{"id":"","runner_id":"","created_by":"","time":,"device_id":""}')
RUN_FRAME = len('{"seq":,"entity":"laps","data":{"id":[],"runner_id":[],"created_by":[],'
                '"time":[],"device_id":[]}}') + 20 + 1  # + seq digits + a comma
RUN_LAPS = 8192  # laps per compact run: each run's columns are joined and let go as it ends


@dataclass
class Batch:
    """The encoded changes of one push (the body's head is stamped when it is sent)."""

    changes: bytearray   # the encoded changes, comma-separated
    seqs: list[int]
    runs: bool = False   # holds a compact lap run

    def body(self, laptop_id: str, device_time: int, clock_jumps: list[dict] | None = None) -> bytes:
        """Return the push body stamped device_time; the batch lets go of its changes (sent once)."""
        changes, self.changes = self.changes, bytearray()
        return b"".join([push_head(laptop_id, device_time, clock_jumps), changes, b"]}"])


class BatchEncoder:
    """Encode outbox rows as push changes within the batch byte limit."""

    def __init__(self, budget: int, compact: bool):
        """Start an empty batch of at most budget bytes; compact: lap runs allowed."""
        self.budget, self.compact = budget, compact
        # One buffer, not a list of items: 50,000 small bytes objects would take half as
        # much memory again as their text.
        self.changes = bytearray()
        self.seqs: list[int] = []
        self.size = 0
        self.run: list[list[str]] | None = None  # id, runner_id, created_by, time, device_id
        self.run_seq = 0                          # the open run's first seq
        self.runs = False
        self.known: dict[str, str] = {}           # one copy of each repeated id

    def add(self, seq: int, entity: str, entity_id: str, payload: str) -> bool:
        """Add one outbox row; False when it does not fit any more."""
        lap = LAP_PAYLOAD.fullmatch(payload) if self.compact and entity == "lap" else None
        if lap is not None and lap.group(1) == entity_id:
            return self.add_lap(seq, len(payload), lap.groups())
        # payload is stored as JSON text already: splice it in, don't re-encode.
        item = (f'{{"seq":{seq},"entity":{json.dumps(entity)},"id":{json.dumps(entity_id)},'
                f'"data":{payload}}}').encode()
        if self.seqs and self.size + len(item) + 1 > self.budget:
            return False
        self.end_run()
        self.append(item)
        self.seqs.append(seq)
        self.size += len(item) + 1
        return True

    def add_lap(self, seq: int, payload_size: int, values: tuple[str, ...]) -> bool:
        """Add a lap's five values to the open compact run or a new one; False when full."""
        if self.run is not None and (seq != self.run_seq + len(self.run[0])
                                     or len(self.run[0]) >= RUN_LAPS):
            self.end_run()  # a run stands for consecutive seqs only
        extra = payload_size - LAP_PAYLOAD_FRAME + 13  # quotes and commas of 5 values
        extra += RUN_FRAME if self.run is None else 0
        if self.seqs and self.size + extra > self.budget:
            return False
        if self.run is None:
            self.run = [[], [], [], [], []]
            self.run_seq = seq
        ids, runners, creators, times, devices = self.run
        ids.append(values[0])
        times.append(values[3])
        # Interned: a run repeats a few runner, user and laptop ids thousands of times.
        known = self.known
        runners.append(known.setdefault(values[1], values[1]))
        creators.append(known.setdefault(values[2], values[2]))
        devices.append(known.setdefault(values[4], values[4]))
        self.seqs.append(seq)
        self.size += extra
        return True

    def append(self, item: bytes) -> None:
        """Add an encoded change after the others."""
        if self.changes:
            self.changes += b","
        self.changes += item

    def end_run(self) -> None:
        """Close the open lap run into one compact item."""
        if self.run is None:
            return
        ids, runners, creators, times, devices = ('","'.join(values) for values in self.run)
        self.append(f'{{"seq":{self.run_seq},"entity":"laps","data":{{"id":["{ids}"],'
                    f'"runner_id":["{runners}"],"created_by":["{creators}"],'
                    f'"time":[{",".join(self.run[3])}],"device_id":["{devices}"]}}}}'.encode())
        self.run, self.runs = None, True

    def batch(self) -> Batch:
        """Return the encoded changes."""
        self.end_run()
        return Batch(self.changes, self.seqs, self.runs)


def push_head(laptop_id: str, device_time: int, clock_jumps: list[dict] | None = None) -> bytes:
    """Return a push body up to its list of changes, stamped with the laptop's clock."""
    return (f'{{"protocol":{PROTOCOL_VERSION},"device_id":{json.dumps(laptop_id)},'
            f'"device_time":{device_time},'.encode() + encode_jumps(clock_jumps or [])
            + b'"changes":[')

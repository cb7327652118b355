"""The columnar push encoder: outbox rows as a columnar body (columns.py), a chunk at a time.

The laptop reads its outbox in chunks of rows (seq, entity, entity_id, payload). Lap rows
with consecutive seqs whose payloads are exactly as record_change writes them are taken
apart in a few C-level passes over the whole stretch (one split of the joined payloads at
their quotes, slices, counts, one match per column) instead of one regular expression per
row. Any other row goes alone, by encode.py's rule: a lap in exactly that form joins a
run, anything else travels verbatim as JSON.
"""
from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass

from . import columns
from .columns import COLUMNS_TYPE, DICTIONARY_COLUMNS, MAGIC, RUN_START, SECTION
from .encode import LAP_PAYLOAD

# One payload split at its quotes: 18 parts between the opening '{' and the closing '}',
# the values at 3, 7, 11 and 17, the time as ':T,' at 14, the rest literal.
PARTS = 18
LITERALS = {1: "id", 2: ":", 4: ",", 5: "runner_id", 6: ":", 8: ",", 9: "created_by", 10: ":",
            12: ",", 13: "time", 15: "device_id", 16: ":"}
VALUES = {"id": 3, "runner_id": 7, "created_by": 11, "device_id": 17}
TIME_PART = 14
MAX_TIME_DIGITS = 18       # below 2**63: a time that fits the run's int64 column
TIMES = re.compile(r"(?:0|[1-9][0-9]{0,17})(?:\n(?:0|[1-9][0-9]{0,17}))*")
LAP_BYTES = 1 + 8 + 3 * 4  # per lap besides its id: a newline, its time, three indexes
RUN_FRAME = SECTION.size + RUN_START.size + 4 * 4   # a run section's header and block lengths
VERBOSE_FRAME = SECTION.size + 2                     # a changes section's header and brackets


@dataclass
class ColumnBatch:
    """The encoded changes of one push as sections (the head is stamped when it is sent)."""

    sections: list[bytes]
    seqs: array          # int64s, 8 bytes each: a list of 100,000 ints takes 3.6 MB
    runs: bool = False
    content_type: str = COLUMNS_TYPE

    def body(self, laptop_id: str, device_time: int, clock_jumps: list[dict] | None = None) -> bytes:
        """Return the push body stamped device_time; the batch lets go of its sections (sent once)."""
        parts, self.sections = self.sections, []
        return b"".join([MAGIC, columns.head_section(laptop_id, device_time, clock_jumps), *parts])


def split_times(parts: list[str]) -> list[int] | None:
    """Return the times of ':T,' parts (T a JSON integer below 10**18), else None."""
    joined = "".join(parts)
    digits = joined[1:-1].split(",:")
    # Each part's length against its digits': no part holds two times, none is empty.
    if joined[:1] != ":" or joined[-1:] != "," or len(digits) != len(parts) \
            or list(map(len, parts)) != list(map((2).__add__, map(len, digits))) \
            or TIMES.fullmatch("\n".join(digits)) is None:
        return None
    return list(map(int, digits))


def split_laps(payloads: tuple[str, ...], entity_ids: tuple[str, ...]) -> list[list] | None:
    """Return the five columns of lap payloads all in record_change's form, else None.

    Checked for the whole stretch at once: every payload is the same 18 literal parts
    around its values, no value holds a backslash (so each is exactly the string JSON
    reads), each id is its change's id and each time a JSON integer. Whether the values
    are ids is central's to check, as for any lap.
    """
    n = len(payloads)
    text = "\n".join(payloads)
    if text.count("\n") != n - 1 or "\\" in text:
        return None
    parts = text.split('"')
    if len(parts) != PARTS * n + 1 or parts[0] != "{" or parts[-1] != "}" \
            or parts[PARTS:-1:PARTS].count("}\n{") != n - 1 \
            or any(parts[at::PARTS].count(literal) != n for at, literal in LITERALS.items()):
        return None
    ids = parts[VALUES["id"]::PARTS]
    times = split_times(parts[TIME_PART::PARTS]) if ids == list(entity_ids) else None
    if times is None:
        return None
    return [ids, parts[VALUES["runner_id"]::PARTS], parts[VALUES["created_by"]::PARTS], times,
            parts[VALUES["device_id"]::PARTS]]


def lap_stretches(rows: list[tuple]) -> list[tuple[int, int]]:
    """Return (start, end) of the chunk's stretches of lap rows with consecutive seqs."""
    if [row[1] for row in rows].count("lap") == len(rows) \
            and rows[-1][0] - rows[0][0] == len(rows) - 1:  # seqs ascend: no gap
        return [(0, len(rows))]
    stretches: list[list[int]] = []
    for i, (seq, entity, _, _) in enumerate(rows):
        if entity != "lap":
            continue
        if stretches and stretches[-1][1] == i and seq == rows[i - 1][0] + 1:
            stretches[-1][1] = i + 1
        else:
            stretches.append([i, i + 1])
    return [(start, end) for start, end in stretches]


class ColumnEncoder:
    """Encode outbox rows as a columnar body's sections within the batch byte limit."""

    def __init__(self, budget: int):
        """Start an empty batch of at most budget bytes (the head not counted)."""
        self.budget, self.size = budget, 0
        self.sections: list[bytes] = []
        self.seqs = array("q")
        self.verbose: list[bytes] = []
        self.run: dict | None = None
        self.runs = False

    def add_rows(self, rows: list[tuple]) -> bool:
        """Add a chunk of outbox rows in seq order; False when not all of them fit."""
        done = 0
        for start, end in lap_stretches(rows):
            if not all(self.add(*row) for row in rows[done:start]):
                return False
            seqs, _, entity_ids, payloads = zip(*rows[start:end])
            laps = split_laps(payloads, entity_ids)
            cost = self.laps_cost(seqs[0], laps) if laps else None
            if cost is not None and self.size + cost[0] <= self.budget:  # else row by row
                self.add_laps(seqs[0], laps, cost)
                done = end
            else:
                done = start
        return all(self.add(*row) for row in rows[done:])

    def add(self, seq: int, entity: str, entity_id: str, payload: str) -> bool:
        """Add one outbox row; False when it does not fit any more."""
        lap = LAP_PAYLOAD.fullmatch(payload) if entity == "lap" else None
        if lap is not None and lap.group(1) == entity_id and len(lap.group(4)) <= MAX_TIME_DIGITS:
            lap_id, runner, creator, time, laptop = lap.groups()
            laps = [[lap_id], [runner], [creator], [int(time)], [laptop]]
            cost = self.laps_cost(seq, laps)
            if self.seqs and self.size + cost[0] > self.budget:
                return False
            self.add_laps(seq, laps, cost)
            return True
        # payload is stored as JSON text already: splice it in, don't re-encode.
        item = (f'{{"seq":{seq},"entity":{json.dumps(entity)},"id":{json.dumps(entity_id)},'
                f'"data":{payload}}}').encode()
        cost = len(item) + 1 + (0 if self.verbose and self.run is None else VERBOSE_FRAME)
        if self.seqs and self.size + cost > self.budget:
            return False
        self.end_run()
        self.verbose.append(item)
        self.seqs.append(seq)
        self.size += cost
        return True

    def joins(self, seq: int) -> bool:
        """Tell whether laps from SEQ continue the open run."""
        return self.run is not None and seq == self.run["seq"] + len(self.run["time"])

    def laps_cost(self, seq: int, laps: list[list]) -> tuple[int, list[set]]:
        """Return the bytes these laps from SEQ add to the body (a bound) and their new
        runner, user and laptop ids (new to the run's dictionaries)."""
        joins = self.joins(seq)
        cost = sum(map(len, laps[0])) + LAP_BYTES * len(laps[0]) + (0 if joins else RUN_FRAME)
        new = []
        for name, column in zip(DICTIONARY_COLUMNS, (laps[1], laps[2], laps[4])):
            # difference() probes the dict per value; `- dict.keys()` walked all its keys
            new.append(set(column).difference(self.run["where"][name]) if joins else set(column))
            cost += sum(map(len, new[-1])) + len(new[-1])
        return cost, new

    def add_laps(self, seq: int, laps: list[list], cost: tuple[int, list[set]]) -> None:
        """Add laps (five columns) from SEQ to the open run or a new one; cost: laps_cost."""
        ids, runners, creators, times, laptops = laps
        if not self.joins(seq):
            self.end_run()
            self.end_verbose()
            self.run = {"seq": seq, "ids": [], "time": array("q"),
                        "where": {name: {} for name in DICTIONARY_COLUMNS},
                        "index": {name: array("I") for name in DICTIONARY_COLUMNS}}
        run = self.run
        run["ids"].append("\n".join(ids))
        run["time"].extend(times)
        for name, column, new in zip(DICTIONARY_COLUMNS, (runners, creators, laptops), cost[1]):
            where = run["where"][name]
            for value in new:
                where[value] = len(where)
            run["index"][name].extend(map(where.__getitem__, column))
        self.seqs.extend(range(seq, seq + len(ids)))
        self.size += cost[0]

    def end_verbose(self) -> None:
        """Close the open verbose changes into one section."""
        if self.verbose:
            self.sections.append(columns.section(columns.CHANGES,
                                                 b"[" + b",".join(self.verbose) + b"]"))
            self.verbose = []

    def end_run(self) -> None:
        """Close the open lap run into one section."""
        run, self.run = self.run, None
        if run is None:
            return
        ids = "\n".join(run["ids"]).encode()
        dictionaries = [columns.dictionary_column(list(run["where"][name]), run["index"][name])
                        for name in DICTIONARY_COLUMNS]
        self.sections.append(columns.run_section(run["seq"], columns.int_array("q", run["time"]),
                                                 columns.LENGTH.pack(len(ids)) + ids, dictionaries))
        self.runs = True

    def batch(self) -> ColumnBatch:
        """Return the encoded changes."""
        self.end_run()
        self.end_verbose()
        return ColumnBatch(self.sections, self.seqs, self.runs)

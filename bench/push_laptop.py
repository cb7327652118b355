"""The laptop side of bench_push.py: a process of its own that imports the laptop only.

Its peak RSS is the laptop's figure, so it imports what the laptop's sync imports and
nothing of central, PostgreSQL or the benchmark's set-up (those took ~20 MB more).
Run by bench_push.py as `python bench/push_laptop.py SPEC` (JSON), talking over
stdin/stdout: it prints "pushed" after the push and waits for a line; in the last
round it then times syncs with nothing to send, prints "settle" and waits for a line
while the parent vacuums central, times them again and prints its figures as JSON.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lapsync.laptop.client.push import pending_count, push  # noqa: E402
from lapsync.laptop.client.state import sync_once  # noqa: E402
from lapsync.laptop.client.transport import Central, SyncResult  # noqa: E402
from lapsync.laptop.db import connect  # noqa: E402
from lapsync.protocol.columns import COLUMNS_TYPE, JSON_TYPE, MAGIC  # noqa: E402


def peak_rss_kb() -> int:
    """Return this process's peak RSS in KiB.

    VmHWM counts this program only. ru_maxrss would not: Linux carries the RSS of the
    forked parent (here holding the COPY data) over into the child's ru_maxrss at exec.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class CountingCentral(Central):
    """The laptop's client to central, counting the push bodies and the bytes it sends."""

    def __init__(self, *args, json_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.bodies, self.raw_bytes, self.gzipped, self.wire_bytes = 0, 0, 0, 0
        self.json_only, self.types = json_only, set()
        if json_only:  # not empty: the types remembered from the roster sync are not recalled
            self.content_types = {JSON_TYPE}

    def learn_link(self, size: int, seconds: float, answer: dict) -> None:
        """Learn as the product does; forget the columnar body when JSON is forced."""
        super().learn_link(size, seconds, answer)
        if self.json_only:
            self.content_types.discard(COLUMNS_TYPE)

    def compress(self, body: bytes) -> bytes:
        """Compress as the product does; count it."""
        packed = super().compress(body)
        self.gzipped += 1
        self.wire_bytes += len(packed) - len(body)
        return packed

    def push(self, body: bytes, follows: int | None = None) -> tuple[int, dict]:
        """POST one batch as the product does; count it."""
        self.bodies += 1
        self.types.add(COLUMNS_TYPE if body.startswith(MAGIC) else JSON_TYPE)
        self.raw_bytes += len(body)
        self.wire_bytes += len(body)
        return super().push(body, follows)


def noop_syncs(db, central: Central, count: int) -> list[float]:
    """Time COUNT syncs with nothing to send (push + pull, as the background job runs them)."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        again = sync_once(db, central)
        times.append(time.perf_counter() - started)
        if again.error or again.pushed or again.pulled_total:
            raise SystemExit(f"a sync with nothing to send moved something: {again}")
    return times


def wait_for_parent(message: str) -> None:
    """Tell the parent where this process is and wait for its go-ahead."""
    print(message, flush=True)
    sys.stdin.readline()


def main(spec: dict) -> None:
    """Push the backlog, then (last round) time syncs with nothing to send; print JSON."""
    db = connect(spec["db"])
    central = CountingCentral(spec["url"], spec["token"], json_only=spec.get("body") == "json")
    central.gzip = {"auto": None, "always": True, "never": False}[spec.get("gzip", "auto")]
    result = SyncResult()
    started, cpu = time.perf_counter(), time.process_time()
    if not spec.get("noop_only"):  # --cli: `flask --app app sync` pushed already
        push(db, central, result)
    push_s, push_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    wait_for_parent("pushed")  # the parent reads central's CPU time now
    figures = {"push_s": push_s, "push_cpu_s": push_cpu_s, "pushed": result.pushed,
               "rejected": result.rejected, "push_rss_kb": peak_rss_kb(),
               "wire": {"bodies": central.bodies, "raw_bytes": central.raw_bytes,
                        "gzipped": central.gzipped, "wire_bytes": central.wire_bytes,
                        "types": sorted(central.types)}}
    if spec["noop"]:  # the last round
        started = time.perf_counter()
        first = sync_once(db, central)  # the pull after the push (totals of 5,000 runners)
        figures["first_sync_s"] = time.perf_counter() - started
        if first.error:
            raise SystemExit(f"sync after the push failed: {first.error.message}")
        figures["first_pulled"] = first.pulled_total
        figures["noop_busy_s"] = noop_syncs(db, central, spec["noop"])
        wait_for_parent("settle")  # the parent vacuums and checkpoints central meanwhile
        figures["noop_s"] = noop_syncs(db, central, spec["noop"])
    print(json.dumps({**figures, "peak_rss_kb": peak_rss_kb(), "pending": pending_count(db)}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))

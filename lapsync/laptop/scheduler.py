"""Background sync: one daemon thread paced by the monotonic clock; the work is client.state.sync_app.

Why not a wall-clock scheduler: a laptop's clock is corrected when a network appears,
set by a teacher, or jumps after sleep. An interval trigger on the wall clock set back
two minutes stops syncing for two minutes; time.monotonic() never goes back.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

import click
from flask import Flask
from flask.helpers import get_debug_flag

from .client.state import sync_app

EXTENSION = "lapsync_scheduler"
NUDGE_DELAY_S = 0.5
MAX_ROUNDS = 3  # extra rounds when laps arrive during a sync
# Syncs start at least this far apart. Each sync commits to SQLite a few times
# (an fsync each under synchronous=FULL); back to back under a steady stream of
# laps they added nearly one commit per lap to lap entry's own (bench_load.py).
MIN_GAP_S = 0.5
STOP_WAIT_S = 2.0
log = logging.getLogger(__name__)
Hook = Callable[[Flask], None]


class SyncJob:
    """The sync thread of one app: its pace, its lock and the 'more laps arrived' flag."""

    def __init__(self, app: Flask):
        self.app = app
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.again = threading.Event()
        self.wake = threading.Event()      # a nudge or stop: look at `due` again
        self.stopping = threading.Event()
        self.due = 0.0                     # monotonic time of the next sync
        self.nudged_until = 0.0
        self.started = float("-inf")       # monotonic start of the last sync
        self.centrals: dict = {}
        self.syncing = True                # False: the thread only runs the hooks (backups)
        # Other periodic work on this thread (backups): each (tick, at_stop) is called
        # with the app after every sync round and once when the job stops.
        self.hooks: list[tuple[Hook, Hook]] = []

    def interval(self) -> float:
        """Return the seconds between background syncs (config SYNC_INTERVAL, at least 0.1)."""
        return max(0.1, float(self.app.config.get("SYNC_INTERVAL", 5)))

    def loop(self) -> None:
        """Sync now, then every interval on the monotonic clock, until stopped."""
        while not self.stopping.is_set():
            self.due = time.monotonic() + self.interval()
            if self.syncing:
                self.run()
            self.call_hooks(0)
            self.sleep_until_due()

    def call_hooks(self, which: int) -> None:
        """Call every hook's tick (0) or at_stop (1), logging rather than raising."""
        for hook in list(self.hooks):
            try:
                hook[which](self.app)
            except Exception:  # noqa: BLE001 - the sync thread must keep going
                log.exception("background job %s failed", getattr(hook[which], "__name__", hook))

    def sleep_until_due(self) -> None:
        """Wait until `due` (a nudge may bring it forward) or until stopped."""
        while not self.stopping.is_set():
            self.wake.clear()  # before reading `due`: a nudge after this wakes the wait
            wait = self.due - time.monotonic()
            if wait <= 0:
                return
            self.wake.wait(wait)

    def run(self) -> None:
        """Sync; go round again while laps were recorded meanwhile (bounded)."""
        if not self.lock.acquire(blocking=False):
            self.again.set()
            return
        try:
            for _ in range(MAX_ROUNDS):
                self.pace()
                self.again.clear()
                self.sync()
                if not self.again.is_set():
                    break
        finally:
            self.lock.release()

    def pace(self) -> None:
        """Wait until MIN_GAP_S has passed since the last sync started (laps batch up meanwhile)."""
        wait = self.started + MIN_GAP_S - time.monotonic()
        if wait > 0:
            self.stopping.wait(wait)  # not time.sleep: a stop must not wait for it
        self.started = time.monotonic()

    def sync(self) -> None:
        """Run one sync, logging rather than raising (the thread must keep going)."""
        try:
            result = sync_app(self.app, self.centrals)
        except Exception:  # noqa: BLE001 - a crash here would only be lost in a thread
            log.exception("sync failed")
            return
        if result and result.error:
            log.warning("sync failed (%s): %s", result.error.kind, result.error.message)
        elif result and result.rejected:
            log.warning("central refused %d change(s); see sync-status", result.rejected)


def should_start(app: Flask, environ=os.environ, need_central: bool = True) -> tuple[bool, str]:
    """Tell whether this process runs the background sync, and why (not)."""
    if app.testing or not app.config.get("SYNC_ENABLED", True):
        return False, "disabled (testing or SYNC_ENABLED is false)"
    if need_central and not app.config.get("CENTRAL_URL"):
        return False, "no CENTRAL_URL configured"
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.command.name not in ("run", "serve"):
        return False, f"CLI command {ctx.info_name!r}"
    if ctx is not None and ctx.command.name == "run" and environ.get("WERKZEUG_RUN_MAIN") != "true":
        reload = ctx.params.get("reload")
        if reload or (reload is None and get_debug_flag()):
            return False, "reloader's watcher process (the child syncs)"
    return True, "started"


def start(app: Flask, syncing: bool = True) -> threading.Thread:
    """Start the background sync thread (its first sync right away); no-op if it runs.

    syncing=False: the thread runs only the hooks (backups), as with SYNC_ENABLED false.
    """
    job = app.extensions[EXTENSION]
    job.syncing = syncing
    if running(app):
        return job.thread
    if job.thread is not None:  # a stopped thread still finishing a sync: never two loops
        job.thread.join(STOP_WAIT_S)
    job.stopping.clear()
    job.thread = threading.Thread(target=job.loop, name="lapsync-sync", daemon=True)
    job.thread.start()
    atexit.register(stop, app)
    return job.thread


def stop(app: Flask, wait: float = STOP_WAIT_S) -> None:
    """Stop the sync thread; wait up to `wait` seconds for a sync in flight."""
    job = app.extensions.get(EXTENSION)
    if job is None or job.thread is None:
        return
    job.stopping.set()
    job.wake.set()
    if job.thread is not threading.current_thread():
        job.thread.join(wait)
    job.call_hooks(1)


def add_hook(app: Flask, tick: Hook, at_stop: Hook) -> None:
    """Run tick(app) on the sync thread after every sync round, and at_stop(app) when it stops."""
    app.extensions[EXTENSION].hooks.append((tick, at_stop))


def running(app: Flask) -> bool:
    """Tell whether this app's background sync runs."""
    job = app.extensions.get(EXTENSION)
    return bool(job and job.thread and job.thread.is_alive() and not job.stopping.is_set())


def nudge(app: Flask) -> None:
    """Ask for a sync within half a second; cheap, never blocks, no-op without the thread."""
    if not running(app):
        return
    job = app.extensions[EXTENSION]
    job.again.set()
    now = time.monotonic()
    if now < job.nudged_until:  # a nudge is already on its way
        return
    job.nudged_until = now + NUDGE_DELAY_S
    job.due = min(job.due, now + NUDGE_DELAY_S)
    job.wake.set()


def init_app(app: Flask) -> None:
    """Attach the sync job to the app; start it only where it belongs."""
    app.extensions[EXTENSION] = SyncJob(app)
    ok, why = should_start(app)
    if ok:
        start(app)
    app.logger.debug("background sync: %s", why)

"""Background sync: APScheduler 3.x wiring only; the work is client.state.sync_app."""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import click
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from flask.helpers import get_debug_flag

from .client.state import sync_app

JOB_ID = "lapsync-sync"
EXTENSION = "lapsync_scheduler"
NUDGE_DELAY_S = 0.5
MAX_ROUNDS = 3  # extra rounds when laps arrive during a sync
# Syncs start at least this far apart. Each sync commits to SQLite a few times
# (an fsync each under synchronous=FULL); back to back under a steady stream of
# laps they added nearly one commit per lap to lap entry's own (bench_load.py).
MIN_GAP_S = 0.5
log = logging.getLogger(__name__)


class SyncJob:
    """The scheduler, its job's lock and the 'more laps arrived' flag of one app."""

    def __init__(self, app: Flask):
        self.app = app
        self.scheduler: BackgroundScheduler | None = None
        self.lock = threading.Lock()
        self.again = threading.Event()
        self.nudged_until = 0.0
        self.started = float("-inf")  # monotonic start of the last sync
        self.centrals: dict = {}

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
            time.sleep(wait)
        self.started = time.monotonic()

    def sync(self) -> None:
        """Run one sync, logging rather than raising (the job must keep ticking)."""
        try:
            result = sync_app(self.app, self.centrals)
        except Exception:  # noqa: BLE001 - a crash here would only be lost in a thread
            log.exception("sync failed")
            return
        if result and result.error:
            log.warning("sync: %s", result.error.message)


def should_start(app: Flask, environ=os.environ) -> tuple[bool, str]:
    """Tell whether this process runs the background sync, and why (not)."""
    if app.testing or not app.config.get("SYNC_ENABLED", True):
        return False, "disabled (testing or SYNC_ENABLED is false)"
    if not app.config.get("CENTRAL_URL"):
        return False, "no CENTRAL_URL configured"
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.command.name != "run":
        return False, f"CLI command {ctx.info_name!r}"
    if ctx is not None and environ.get("WERKZEUG_RUN_MAIN") != "true":
        reload = ctx.params.get("reload")
        if reload or (reload is None and get_debug_flag()):
            return False, "reloader's watcher process (the child syncs)"
    return True, "started"


def start(app: Flask) -> BackgroundScheduler:
    """Start the background scheduler with the sync job (first run right away)."""
    job = app.extensions[EXTENSION]
    scheduler = BackgroundScheduler(daemon=True, timezone=timezone.utc)
    scheduler.add_job(job.run, "interval", id=JOB_ID, seconds=int(app.config.get("SYNC_INTERVAL", 5)),
                      max_instances=1, coalesce=True, misfire_grace_time=None,
                      next_run_time=datetime.now(timezone.utc))
    scheduler.start()
    job.scheduler = scheduler
    atexit.register(stop, app)
    return scheduler


def stop(app: Flask) -> None:
    """Stop the scheduler if it runs (without waiting for a sync in flight)."""
    job = app.extensions.get(EXTENSION)
    if job and job.scheduler and job.scheduler.running:
        job.scheduler.shutdown(wait=False)


def running(app: Flask) -> bool:
    """Tell whether this app's background sync runs."""
    job = app.extensions.get(EXTENSION)
    return bool(job and job.scheduler and job.scheduler.running)


def nudge(app: Flask) -> None:
    """Ask for a sync within half a second; cheap, never blocks, no-op without scheduler."""
    job = app.extensions.get(EXTENSION)
    if job is None or job.scheduler is None or not job.scheduler.running:
        return
    job.again.set()
    now = time.monotonic()
    if now < job.nudged_until:  # a nudge is already on its way
        return
    job.nudged_until = now + NUDGE_DELAY_S
    try:
        job.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(timezone.utc)
                                 + timedelta(seconds=NUDGE_DELAY_S))
    except JobLookupError:
        pass


def init_app(app: Flask) -> None:
    """Attach the sync job to the app; start it only where it belongs."""
    app.extensions[EXTENSION] = SyncJob(app)
    ok, why = should_start(app)
    if ok:
        start(app)
    app.logger.debug("background sync: %s", why)

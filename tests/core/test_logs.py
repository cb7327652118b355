"""The apps' log files: owner-only from the first line, and after every rotation."""
from __future__ import annotations

import logging

from lapsync.logs import PrivateRotatingFileHandler


def test_every_log_file_of_a_rotation_is_owner_only(tmp_path):
    path = tmp_path / "central.log"
    path.write_text("made by an older release\n", encoding="utf-8")
    path.chmod(0o644)
    handler = PrivateRotatingFileHandler(path, maxBytes=200, backupCount=3, encoding="utf-8")
    logger = logging.getLogger("lapsync.test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for number in range(20):
            logger.warning("device laptop-%s refused a change of user tom", number)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(tmp_path.glob("central.log*"))
    assert len(files) == 4                              # the current file and three rotated
    assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}

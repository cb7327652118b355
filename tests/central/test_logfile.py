"""Central's log file (sync/logfile.py): one rotating file that several processes write."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import logging, logging.config, sys
from lapsync.logs import logging_config
from sync.logfile import HANDLER
config = logging_config(sys.argv[1], handler=HANDLER, size=(30_000, 5))
config["handlers"].pop("console")
config["root"]["handlers"] = ["file"]
logging.config.dictConfig(config)
for line in range(int(sys.argv[3])):
    logging.getLogger("push").info("worker %s line %05d %s", sys.argv[2], line, "x" * 60)
"""


def test_several_processes_share_one_rotating_log_and_lose_no_line(tmp_path):
    # gunicorn's workers and the commands of one central write the same file
    path, workers, lines = tmp_path / "central.log", "ABCD", 300
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), str(path), name, str(lines)], env=env)
             for name in workers]
    assert all(proc.wait(timeout=60) == 0 for proc in procs)
    files = sorted(tmp_path.glob("central.log*"))
    written = "".join(f.read_text(encoding="utf-8") for f in files)
    assert len(files) >= 4                              # rotated several times meanwhile
    assert {name: written.count(f"worker {name} line") for name in workers} == \
        {name: lines for name in workers}
    assert {f.stat().st_mode & 0o777 for f in [*files, *tmp_path.glob(".*.lock")]} == {0o600}

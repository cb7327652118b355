"""Central's backup into a folder it cannot write: one line that says why, no .part file left."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sync import ROOT
from tests.write_errors import UNWRITABLE, assert_one_line, small_disk, unwritable


@pytest.mark.parametrize(("kind", "reason"), UNWRITABLE)
def test_a_backup_into_a_folder_it_cannot_write_says_why_in_one_line(central_app, tmp_path, kind,
                                                                      reason):
    target = unwritable(tmp_path, kind)
    result = central_app.test_cli_runner().invoke(args=["backup", str(target)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert_one_line(result.output, target, reason)


@pytest.mark.skipif(os.name != "posix", reason="file size limits are POSIX")
def test_a_backup_that_fills_the_disk_leaves_no_part_file(central_users, pg_url, tmp_path):
    target = tmp_path / "central.dump"
    env = {**os.environ, "DATABASE_URL": pg_url, "FLASK_LOG_DIR": ""}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "sync", "backup", str(target)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                            preexec_fn=small_disk(16_384))  # the dump: 60 kB
    assert result.returncode == 1 and "Error: pg_dump failed: stopped by SIGXFSZ" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # neither the dump nor its .part

"""The laptop's backup into a folder it cannot write: one line that says why, no .part file left."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.release import ROOT
from tests.write_errors import UNWRITABLE, assert_one_line, small_disk, unwritable


@pytest.mark.parametrize(("kind", "reason"), UNWRITABLE)
def test_a_backup_into_a_folder_it_cannot_write_says_why_in_one_line(app, tmp_path, kind, reason):
    target = unwritable(tmp_path, kind)
    result = app.test_cli_runner().invoke(args=["backup", str(target)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert_one_line(result.output, target, reason)


@pytest.mark.parametrize(("kind", "reason"), UNWRITABLE[1:])  # a missing one is made
def test_the_default_backup_folder_it_cannot_make_is_named_in_one_line(app, tmp_path, kind, reason):
    folder = unwritable(tmp_path, kind)
    app.config["BACKUP_DIR"] = str(folder)
    result = app.test_cli_runner().invoke(args=["backup"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert_one_line(result.output, folder, reason)


@pytest.mark.skipif(os.name != "posix", reason="file size limits are POSIX")
def test_a_backup_that_fills_the_disk_leaves_no_part_file(app, runners, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    target = folder / "laptop.sqlite"
    env = {**os.environ, "LAPSYNC_DATABASE": app.config["DATABASE"], "LAPSYNC_SYNC_ENABLED": "false",
           "LAPSYNC_LOG_DIR": ""}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "backup", str(target)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                            preexec_fn=small_disk(65_536))  # the database: 170 kB
    assert result.returncode == 1, result.stderr
    assert f"Error: cannot write {target}: " in result.stderr and "Traceback" not in result.stderr
    assert list(folder.iterdir()) == []  # neither the snapshot nor its .part

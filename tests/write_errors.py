"""Backup targets that cannot be written, as an operator meets them, for both apps' tests."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

if os.name == "posix":
    import resource

# (how the path is made, the OS's reason). A path under a regular file is refused also
# for root (CI), where a read-only folder would not stop the write; the same error path.
UNWRITABLE = [
    pytest.param("missing", "No such file or directory", id="missing-folder"),
    pytest.param("under-a-file", "Not a directory", id="under-a-regular-file"),
]


def unwritable(tmp_path: Path, kind: str) -> Path:
    """Return a backup file name in a folder of that KIND that cannot be written."""
    if kind == "missing":
        return tmp_path / "no-such-folder" / "backup.file"
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "backup.file"


def small_disk(limit: int = 65_536):
    """Return a preexec_fn for a child whose files cannot grow past LIMIT bytes: a full disk."""
    def limit_files() -> None:
        """Limit the size of the files this process and its children write (EFBIG after)."""
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, no kill
    return limit_files


def assert_one_line(output: str, target: Path, reason: str) -> None:
    """Check that a refused backup said why in one line, with no traceback and no .part left."""
    assert f"Error: cannot write {target}: {reason}" in output, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    assert not target.with_name(target.name + ".part").exists()

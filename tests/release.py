"""The release of 2026-12-06 (commit 25d7ea0): its files, its whole tree, for upgrade tests.

Read from git, so the tests need the repository's history (a full clone, not a
shallow one): a missing commit fails with git's message rather than skipping.
"""
from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "25d7ea0"  # the release of 2026-12-06, the first installed at schools


def release_file(path: str, commit: str = RELEASE) -> str:
    """Return one file of the release as text."""
    return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout


def release_tree(dest: Path, commit: str = RELEASE) -> Path:
    """Unpack the release's code into DEST (git archive); return DEST."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, check=True,
                             capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest

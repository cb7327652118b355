"""Central's import commands as the admin runs them: a refused file first, then a good one."""
from __future__ import annotations

from pathlib import Path


def refused_then_imported(app, command: str, bad: Path, good: Path) -> tuple[str, str]:
    """Run COMMAND on BAD (refused: exit 1) and then on GOOD (exit 0); return both outputs."""
    cli = app.test_cli_runner()
    refused = cli.invoke(args=[command, str(bad)])
    assert refused.exit_code == 1, refused.output
    imported = cli.invoke(args=[command, str(good)])
    assert imported.exit_code == 0, imported.output
    return refused.output, imported.output

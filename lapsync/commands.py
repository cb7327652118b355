"""The backup and restore commands as both apps declare them: `backup FILE`, `restore FILE [--yes]`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from flask.cli import with_appcontext


def as_restore_command(function: Callable[[Path, bool], None]) -> click.Command:
    """Make FUNCTION(file, yes) the app's `restore FILE [--yes]` command, run in the app context."""
    function = click.option("--yes", is_flag=True, help="Restore without asking.")(with_appcontext(function))
    function = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))(function)
    return click.command("restore")(function)


def refuse_existing(file: Path) -> None:
    """Refuse to write a backup over a file that exists."""
    if file.exists():
        raise click.ClickException(f"{file} exists already: choose a new file name.")

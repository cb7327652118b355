"""The backup and restore commands as both apps declare them: `backup FILE`, `restore FILE [--yes]`."""
from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def part_file(target: Path) -> Iterator[Path]:
    """Yield the file to write TARGET into; rename it to TARGET at the end, remove it on any failure."""
    part = target.with_name(target.name + ".part")
    try:
        yield part
        os.replace(part, target)  # a copy cut off halfway never has the file's name
    except BaseException:
        # Left behind, a .part of a full disk keeps it full, one more at every hourly run.
        with contextlib.suppress(OSError):
            part.unlink()
        raise


@contextlib.contextmanager
def reporting_write_errors(target: Path) -> Iterator[None]:
    """Turn an OS or SQLite error while writing TARGET into one line naming it and the reason."""
    try:
        yield
    except (OSError, sqlite3.Error) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise click.ClickException(f"cannot write {target}: {reason}") from None

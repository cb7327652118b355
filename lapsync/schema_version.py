"""Numbered schema migrations, shared by both apps: the files, their order, the refusal.

Each app keeps its migrations beside its full schema (lapsync/laptop/migrations/,
sync/migrations/) as NNNN_name.sql, numbered from 0001 without gaps. A new database
is made from the full schema and stamped with the latest number; an existing one gets
the migrations after its number, each in one transaction with its number. The apps
record the number themselves (PRAGMA user_version on the laptop, table
schema_migration at central).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNew(click.ClickException):
    """The database was written by a newer lapsync than this one."""


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    path: Path

    def sql(self) -> str:
        """Return the file's SQL text."""
        return self.path.read_text(encoding="utf-8")


def migrations(folder: Path) -> list[Migration]:
    """Return the migrations in FOLDER in order; refuse a gap, a duplicate or a stray file name."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise RuntimeError(f"migration file name {path.name!r} is not NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {migration.path.name} should be number {expected:04d}")
    return found


def too_new(found: int, known: int, where: str) -> SchemaTooNew:
    """Return the refusal of a database newer than this code, saying what to do."""
    return SchemaTooNew(
        f"The database {where} has schema version {found}, but this lapsync knows only "
        f"versions up to {known}: a newer lapsync has used it. Run that version (or a newer "
        "one) again; this one would not understand the data. Nothing was changed.")

"""Numbered schema migrations, shared by both apps: the files, their order, the refusal.

Migration 1 is each app's baseline schema file (schema.sql, sync/schema.sql: the schema
of the release of 2026-12-06); the later ones are NNNN_name.sql files beside it
(lapsync/laptop/migrations/, sync/migrations/), numbered from 0002 without gaps. Every
database gets the migrations after its number, each in one transaction with its number:
a new one all of them, an existing one only what it lacks. The apps record the number
themselves (PRAGMA user_version on the laptop, table schema_migration at central).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
BASELINE_NAME = "release_2026_12_06"  # the name migration 1 had as a file of its own


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


def migrations(folder: Path, baseline: Path) -> list[Migration]:
    """Return BASELINE and then the migrations in FOLDER in order; refuse a gap or a stray name."""
    found = [Migration(1, BASELINE_NAME, baseline)]
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

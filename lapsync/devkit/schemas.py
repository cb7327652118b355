"""Database schemas as comparable data: a migrated database must equal a fresh one.

sqlite_schema() and postgres_schema() describe every table, column, constraint, index,
trigger, view, sequence and function by what it does, leaving out what differs only
by how it was written (comments, spacing, IF NOT EXISTS). differences() names each
object that differs, so a failing test says which column lacks its migration.
"""
from __future__ import annotations

import re
import sqlite3
from typing import Any

import psycopg
from psycopg.rows import dict_row


def normal_sql(text: str | None) -> str:
    """Return SQL without comments, IF NOT EXISTS and spacing differences, lower case."""
    text = re.sub(r"--[^\n]*", " ", text or "")
    text = re.sub(r"\bif\s+not\s+exists\b", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text).strip().lower()
    return re.sub(r"\s*([(),;=])\s*", r"\1", text)


def checks(create_table: str) -> list[str]:
    """Return the CHECK clauses of a CREATE TABLE statement, sorted (balanced parentheses)."""
    text, found = normal_sql(create_table), []
    for match in re.finditer(r"\bcheck\(", text):
        depth, start = 0, match.end() - 1
        for end in range(start, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                found.append(text[start:end + 1])
                break
    return sorted(found)


def sqlite_table(conn: sqlite3.Connection, name: str, sql: str) -> dict:
    """Describe one SQLite table: columns in order, keys, checks, autoincrement."""
    return {
        "columns": [tuple(row[1:]) for row in conn.execute(f'PRAGMA table_xinfo("{name}")')],
        "foreign_keys": sorted(tuple(row[2:]) for row in conn.execute(
            f'PRAGMA foreign_key_list("{name}")')),
        "checks": checks(sql),
        "autoincrement": "autoincrement" in normal_sql(sql),
        "without_rowid": " without rowid" in normal_sql(sql),
    }


def sqlite_schema(conn: sqlite3.Connection) -> dict[str, Any]:
    """Return every object of an SQLite database, comparable across how it was made."""
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                        "WHERE name NOT LIKE 'sqlite_autoindex_%' ORDER BY type, name").fetchall()
    schema: dict[str, Any] = {}
    for kind, name, table, sql in rows:
        if kind == "table":
            schema[f"table {name}"] = sqlite_table(conn, name, sql)
        else:
            schema[f"{kind} {name}"] = {"on": table, "sql": normal_sql(sql)}
    return schema


POSTGRES_QUERIES = {
    "column": """
        SELECT table_name || '.' || column_name AS key, data_type, is_nullable, column_default,
               collation_name, is_identity, identity_generation, is_generated,
               generation_expression, character_maximum_length, numeric_precision, udt_name
        FROM information_schema.columns WHERE table_schema = current_schema()""",
    "constraint": """
        SELECT c.conrelid::regclass::text || '.' || c.conname AS key, c.contype::text AS type,
               pg_get_constraintdef(c.oid) AS definition
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = current_schema()""",
    "index": """
        SELECT tablename || '.' || indexname AS key, indexdef AS definition
        FROM pg_indexes WHERE schemaname = current_schema()""",
    "sequence": """
        SELECT sequence_name AS key, data_type, start_value, increment, maximum_value
        FROM information_schema.sequences WHERE sequence_schema = current_schema()""",
    "relation": """
        SELECT c.relname AS key, c.relkind::text AS kind, c.reloptions::text AS options
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'm', 'S', 'p')""",
    "view": """
        SELECT viewname AS key, definition FROM pg_views WHERE schemaname = current_schema()""",
    "trigger": """
        SELECT tgrelid::regclass::text || '.' || tgname AS key, pg_get_triggerdef(t.oid) AS definition
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND NOT t.tgisinternal""",
    "function": """
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS key,
               pg_get_functiondef(p.oid) AS definition
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = current_schema() AND p.prokind IN ('f', 'p')""",
}


def postgres_schema(conn: psycopg.Connection) -> dict[str, Any]:
    """Return every object of the current PostgreSQL schema, comparable across how it was made."""
    schema: dict[str, Any] = {}
    with conn.cursor(row_factory=dict_row) as cursor:
        for kind, query in POSTGRES_QUERIES.items():
            for row in cursor.execute(query).fetchall():
                key = row.pop("key")
                schema[f"{kind} {key}"] = {k: str(v) if v is not None else None for k, v in row.items()}
    return schema


def owner(key: str) -> str:
    """Return the table a key's object belongs to ('column runner.name' -> 'runner')."""
    kind, _, name = key.partition(" ")
    return name.split(".", 1)[0] if "." in name else ""


def differences(migrated: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Say, object by object, how a migrated schema differs from a fresh one.

    The parts of a table only one side has (its columns, keys, indexes) are left
    out: the table is named once.
    """
    tables = {name for key in set(migrated) ^ set(fresh)
              for kind, _, name in [key.partition(" ")] if kind in ("table", "relation")}
    found = []
    for key in sorted(set(migrated) | set(fresh)):
        if owner(key) in tables:
            continue
        if key not in migrated:
            found.append(f"{key}: in the full schema, but no migration makes it")
        elif key not in fresh:
            found.append(f"{key}: made by the migrations, but not in the full schema")
        elif migrated[key] != fresh[key]:
            found.append(f"{key}: migrated {migrated[key]!r} != fresh {fresh[key]!r}")
    return found

"""The command-line options the benchmarks share, for laptop and central benchmarks alike.

Standard library only: a laptop's benchmark needs nothing of central to read its options.
"""
from __future__ import annotations

import argparse
from pathlib import Path

# The usual help of options several benchmarks take (whole numbers, but pgdata: a folder);
# any other option comes with its own help as (default, help).
OPTIONS = {
    "base_laps": "laps already in the database",
    "runners": "runners in the roster",
    "seed": "seed for ids, runners and laps",
    "workers": "central's gunicorn workers",
    "requests": "timed requests per page",
    "warmup": "untimed runs before timing starts",
    "sync_interval": "laptops' SYNC_INTERVAL seconds",
    "cpu": "pin to this CPU (-1: no pinning)",
    "pgdata": "data directory of the embedded PostgreSQL",
}
# The on/off options: name -> help (a script may give its own help instead of True).
FLAGS = {
    "rebuild": "rebuild the cached databases",
    "keep": "keep the run's files and databases",
    "explain": "print EXPLAIN ANALYZE of the queries",
    "http": "over real HTTP",
}


def bench_parser(doc: str, *, json_out: bool = True, **options) -> argparse.ArgumentParser:
    """Return a parser with the common OPTIONS: a default, (default, help), or for a flag True or help."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if name in FLAGS:
            parser.add_argument(flag, action="store_true", help=FLAGS[name] if value is True else value)
            continue
        value, text = value if isinstance(value, tuple) else (value, OPTIONS[name])
        parser.add_argument(flag, type=Path if name == "pgdata" else int, default=value, help=text)
    if json_out:
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    return parser

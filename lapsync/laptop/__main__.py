"""`python -m lapsync.laptop [--host H] [--port P]`: serve the laptop app (waitress + sync)."""
from __future__ import annotations

import argparse

import click

from . import create_app
from .serve import DEFAULT_HOST, DEFAULT_PORT, THREADS, serve


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, create the app from instance config and environment, serve it."""
    parser = argparse.ArgumentParser(prog="python -m lapsync.laptop",
                                     description="Serve the laptop app with waitress and its "
                                                 "background sync (Ctrl+C stops).")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads (default {THREADS})")
    args = parser.parse_args(argv)
    try:
        serve(create_app(), args.host, args.port, args.threads)
    except click.ClickException as exc:  # e.g. the port is taken: the message, no traceback
        exc.show()
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()

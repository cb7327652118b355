"""Laptop entry point: `flask --app app run`."""
from lapsync.laptop import create_app

app = create_app()

"""Laptop entry point: `flask --app app run`."""
from lapsync import create_app

app = create_app()

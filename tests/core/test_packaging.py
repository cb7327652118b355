"""pyproject.toml says what the requirements files pin: the laptop's dependencies, central's extra."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def pinned(name: str) -> set[str]:
    """Return the name==version lines of a requirements file, without its -r/-c lines."""
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if re.match(r"^[A-Za-z0-9]", line)}


def test_dependencies_are_the_laptops_requirements():
    assert set(PROJECT["dependencies"]) == pinned("requirements.txt")


def test_the_central_extra_is_centrals_requirements():
    assert set(PROJECT["optional-dependencies"]["central"]) == pinned("requirements-central.txt")
    assert {"psycopg[binary]==3.3.9", "gunicorn==27.0.1"} <= set(PROJECT["optional-dependencies"]["central"])


def test_a_laptop_needs_neither_postgresql_nor_gunicorn():
    laptop = " ".join(PROJECT["dependencies"]).lower()
    assert "psycopg" not in laptop and "gunicorn" not in laptop and "pgserver" not in laptop


def test_the_supported_pythons_are_declared():
    assert PROJECT["requires-python"] == ">=3.11"

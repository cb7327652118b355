"""Tests' helpers for real HTTP and a real browser: an app served on loopback, Debian's Chromium.

They live in lapsync.devkit.browser, which bench/ shares.
"""
from __future__ import annotations

from lapsync.devkit.browser import CHROMIUM, CHROMIUM_ARGS, launch_chromium, served

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "launch_chromium", "served"]

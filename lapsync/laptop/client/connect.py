"""Connect a laptop to central: check URL and token, keep them in the instance config file."""
from __future__ import annotations

import os
import re
from pathlib import Path

from flask import Flask

from lapsync.protocol.connect import validate_token, validate_url

__all__ = ["config_file", "refresh_central_config", "validate_token", "validate_url",
           "write_central_config"]


def config_file(app: Flask) -> Path:
    """Return the instance config file (config INSTANCE_CONFIG_FILE overrides it)."""
    return Path(app.config.get("INSTANCE_CONFIG_FILE") or Path(app.instance_path) / "config.py")


def write_central_config(path: Path, url: str, token: str) -> None:
    """Create or update the CENTRAL_URL and CENTRAL_TOKEN lines only (mode 600)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    wanted = {"CENTRAL_URL": f"CENTRAL_URL = {url!r}", "CENTRAL_TOKEN": f"CENTRAL_TOKEN = {token!r}"}
    for key, line in wanted.items():
        pattern = re.compile(rf"^\s*{key}\s*=")
        hits = [i for i, old in enumerate(lines) if pattern.match(old)]
        if hits:
            lines[hits[0]] = line
            lines = [old for i, old in enumerate(lines) if i not in hits[1:]]
        else:
            lines.append(line)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the token's folder: owner only
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never world-readable
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temp, 0o600)  # O_CREAT's mode does not apply to a leftover temp file
    temp.replace(path)


def refresh_central_config(app: Flask) -> None:
    """Take CENTRAL_URL/CENTRAL_TOKEN from the instance config file when it changed."""
    path = config_file(app)
    try:
        info = path.stat()
    except OSError:
        return
    seen = (info.st_mtime_ns, info.st_size, info.st_ino)  # connect replaces the file
    if app.extensions.get("lapsync_config_seen") == seen:
        return
    app.extensions["lapsync_config_seen"] = seen
    values: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), values)
    for key in ("CENTRAL_URL", "CENTRAL_TOKEN"):
        if key in values and f"LAPSYNC_{key}" not in os.environ:  # the environment wins
            app.config[key] = values[key]

"""Connect a laptop to central: check URL and token, keep them in the instance config file."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask

from lapsync.errors import InputError

MAX_TOKEN = 500
MAX_URL = 2_000
TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")      # printable ASCII: safe in a header


def validate_url(url: str) -> str:
    """Return a clean central URL (http or https) or raise InputError."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError on a bad port
    except ValueError:
        parts = None
    if not parts or len(url) > MAX_URL or parts.scheme not in ("http", "https") \
            or not parts.hostname or re.search(r"\s", url) or parts.username or parts.password \
            or parts.query or parts.fragment:
        raise InputError("invalid_url", f"{url[:80]!r} is not a central URL: use http://host:port "
                         "or https://host (no user, query or fragment).", 400)
    return url.rstrip("/")


def validate_token(token: str) -> str:
    """Return the device token or raise InputError."""
    token = (token or "").strip()
    if not token:
        raise InputError("invalid_token", "The device token is empty: copy the token that "
                         "`flask --app sync register-device NAME` printed.", 400)
    if len(token) > MAX_TOKEN or not TOKEN_RE.match(token):
        raise InputError("invalid_token", f"A device token is at most {MAX_TOKEN} visible ASCII "
                         "characters without spaces.", 400)
    return token


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

"""What `dev.py run` finds already made, as JSON: so that a second run makes nothing new.

Runs inside the venv (`python -m lapsync.devkit.run_state`); dev.py sets
LAPSYNC_SYNC_ENABLED=false so that create_app() starts no background sync here.
"""
from __future__ import annotations

import json

from lapsync.laptop import create_app as laptop_app
from lapsync.laptop.db import connect, device_id
from sync import create_app as central_app
from sync.db import close_pool, connection
from sync.devices import find_device, list_devices


def laptop_state() -> tuple[dict, str, dict]:
    """Return the laptop app's config, its device id and its users by name."""
    laptop = laptop_app()
    db = connect(laptop.config["DATABASE"])
    try:
        return laptop.config, device_id(db), {name: uid for uid, name in
                                              db.execute("SELECT id, name FROM user")}
    finally:
        db.close()


def state() -> dict:
    """Return what exists: laptop id and users, central's users and devices, the token's device."""
    config, me, laptop_users = laptop_state()
    token = config.get("CENTRAL_TOKEN")
    central = central_app()
    with central.app_context():
        with connection() as conn:
            device = find_device(conn, token) if token else None
            live = [d for d in list_devices(conn) if d["revoked_at"] is None]
            central_users = {r["name"]: r["id"] for r in conn.execute("SELECT id, name FROM app_user")}
        close_pool(central)
    return {
        "laptop_id": me, "laptop_users": laptop_users, "central_users": central_users,
        "central_url": config.get("CENTRAL_URL"),
        "device": device and {"name": device["name"], "live": device["revoked_at"] is None,
                              "laptop_id": device["laptop_id"]},
        "live_devices": [d["name"] for d in live],
        "bound_device": next((d["name"] for d in live if d["laptop_id"] == me), None),
        "database_url": bool(central.config.get("DATABASE_URL")),
        "pgdata": central.config["PGDATA"],
    }


if __name__ == "__main__":
    print(json.dumps(state()))

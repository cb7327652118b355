"""Users are central's: what a pushed user change may do (docs/SECURITY.md, "Trust").

Only a device central trusts to manage users (device.manage_users) creates or changes
users, and only with the app's own password hash parameters and a one-line name that
looks like no other user's. A user id belongs for good to the first laptop that pushed
it and to its first name (table laptop_user), whether central took that user or not:
no other laptop, and no other name, can take it over. The laptop that created a refused
user keeps it locally, and its laps and voids may still name it (sync/authority.py).
"""
from __future__ import annotations

import unicodedata

import psycopg
from flask_babel import gettext as _

from lapsync.authcore import has_own_parameters, hash_parameters

from .authority import Refusal, name_refusal
from .users import confusable_user

USERS_AT_CENTRAL = "users_only_at_central"
USER_ID_TAKEN = "user_id_taken"
FOREIGN_HASH = "foreign_password_hash"
DUPLICATE_USER = "duplicate_user"
CONFUSABLE_NAME = "confusable_name"
USER_FIELDS = ("name", "password_hash", "role")

USER_UPSERT = """
INSERT INTO app_user AS u (id, name, password_hash, role, created_at, hlc, origin, change_id)
VALUES (%(id)s, %(name)s, %(password_hash)s, %(role)s, %(created_at)s, %(hlc)s, %(origin)s,
        nextval('change_id_seq'))
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, password_hash = excluded.password_hash, role = excluded.role,
    hlc = excluded.hlc, origin = excluded.origin, change_id = excluded.change_id
WHERE (excluded.hlc, excluded.origin) > (u.hlc, u.origin)
RETURNING id
"""
USER_AT_CENTRAL = """
SELECT name, password_hash, role,
       (%(hlc)s COLLATE "C", %(origin)s COLLATE "C") > (hlc, origin) AS newer
FROM app_user WHERE id = %(id)s
"""
# The first laptop to push an id central does not have claims it, with the name it gave.
CLAIM = """
INSERT INTO laptop_user (user_id, laptop_id, name, at)
SELECT %(id)s, %(laptop)s, %(name)s, %(now)s
WHERE NOT EXISTS (SELECT 1 FROM app_user WHERE id = %(id)s)
ON CONFLICT (user_id) DO NOTHING
"""


def claimed(conn: psycopg.Connection, device: dict, user: dict, now: int) -> dict | None:
    """Claim a new user id for the pushing laptop; return the id's claim (any laptop's), or None."""
    conn.execute(CLAIM, {**user, "laptop": device["laptop_id"], "now": now})
    return conn.execute("SELECT laptop_id, name FROM laptop_user WHERE user_id = %s",
                        [user["id"]]).fetchone()


def reuse_refusal(device: dict, user: dict, stored: dict | None,
                  claim: dict | None) -> Refusal | None:
    """Refuse a user id another laptop created, or a known id under another name."""
    if claim is not None and claim["laptop_id"] != device["laptop_id"]:
        return USER_ID_TAKEN, _("User id %(id)s belongs to a user another laptop created: a "
                                "user id is never taken over.", id=repr(user["id"]))
    name = stored["name"] if stored else claim["name"] if claim else user["name"]
    if name != user["name"]:
        return USER_ID_TAKEN, _("User id %(id)s is %(name)s: a user id is never reused for "
                                "another name.", id=repr(user["id"]), name=repr(name))
    return None


def trust_refusal(device: dict, user: dict, stored: dict | None) -> Refusal | None:
    """Refuse a user change of a device not trusted to manage users (unless it changes nothing)."""
    if device["manage_users"]:
        return None
    if stored is not None and (not stored["newer"]
                               or all(stored[f] == user[f] for f in USER_FIELDS)):
        return None  # loses last-writer-wins or holds what central has: no attempt
    return USERS_AT_CENTRAL, _("Only central, or a device it trusts to manage users, creates "
                               "or changes users: %(name)s (%(role)s) stays as this laptop has "
                               "it, and central keeps its own. An admin at central can let this "
                               "device manage users.", name=repr(user["name"]), role=user["role"])


def content_refusal(conn: psycopg.Connection, user: dict, stored: dict | None) -> Refusal | None:
    """Refuse a hash with other parameters than the app's, or a new name taken or look-alike."""
    refusal = name_refusal(user, ("name",))
    if refusal:
        return refusal
    if not has_own_parameters(user["password_hash"]):
        return FOREIGN_HASH, _("The password hash must use this app's own parameters "
                               "(%(parameters)s): a hash with a cost of its own would make "
                               "every login of that name slow.", parameters=hash_parameters())
    if stored is not None:
        return None
    if conn.execute("SELECT 1 FROM app_user WHERE name = %s", [user["name"]]).fetchone():
        return DUPLICATE_USER, _("Another user is called %(name)s at central already.",
                                 name=repr(user["name"]))
    other = confusable_user(conn, user["name"], user["id"])
    if other is not None:
        return CONFUSABLE_NAME, _("%(name)s looks like the name of user %(other)s at central: "
                                  "choose a name that looks like no other.",
                                  name=repr(user["name"]), other=repr(other))
    return None


def apply_user(conn: psycopg.Connection, device: dict, user: dict, now: int) -> Refusal | None:
    """Write a pushed user if the device may (last writer wins); else say why not."""
    user = {**user, "name": unicodedata.normalize("NFC", user["name"])}
    stored = conn.execute(USER_AT_CENTRAL, user).fetchone()
    claim = None if stored else claimed(conn, device, user, now)
    refusal = (reuse_refusal(device, user, stored, claim) or trust_refusal(device, user, stored)
               or (device["manage_users"] and content_refusal(conn, user, stored)) or None)
    if refusal is None and device["manage_users"]:
        conn.execute(USER_UPSERT, user)
    return refusal

"""The users page (admins only): create users with a role, change roles, reset passwords,
deactivate and reactivate; each change is logged in the decision log and listed here.

A password left empty is generated and shown this once (the page is never cached).
The rules (last admin, confusable names, sessions ending) live in sync/users.py.
"""
from __future__ import annotations

from flask import Blueprint, Flask, flash, g, redirect, request, url_for
from flask_babel import gettext as _

from lapsync.authcore import ROLES, role_label
from lapsync.errors import InputError, wants_json
from lapsync.web.guard import private_page

from .auth import admin_required
from .db import get_db
from .decisions import user_decisions
from .users import (
    create_user,
    generate_password,
    list_users,
    reset_password,
    set_active,
    set_role,
)

bp = Blueprint("users", __name__, url_prefix="/users")
MAX_LOGGED = 30  # user changes listed on the page (the review page's log has them all)
ACTIVE_VALUES = {"yes": True, "no": False}


def render_page(status: int = 200, **context):
    """Render the users page (never cached: it may show a new password)."""
    conn = get_db()
    return private_page("users.html", status, users=list_users(conn), roles=ROLES,
                        log=user_decisions(conn, MAX_LOGGED), **context)


def refused(exc: InputError, **context):
    """Answer a refused change: the JSON error, or the page with the message."""
    if wants_json():
        raise exc
    return render_page(exc.status, error=exc, **context)


def chosen_password() -> tuple[str, bool]:
    """Return the form's password, or a generated one if left empty: (password, generated)."""
    password = request.form.get("password", "")
    return (password, False) if password else (generate_password(), True)


@bp.get("/")
@admin_required
def index():
    """List every user with role, state and last login; forms to change them."""
    return render_page()


@bp.post("/")
@admin_required
def create():
    """Create a user with a role and a password (typed, or generated and shown once)."""
    name, role = request.form.get("name", ""), request.form.get("role", "")
    password, generated = chosen_password()
    try:
        create_user(get_db(), name, role, password, by=g.user["id"])
    except InputError as exc:
        return refused(exc, typed={"name": name, "role": role})
    if generated:
        return render_page(201, new_password=password, password_for=name.strip())
    flash(_("%(name)s can log in now as %(role)s; laptops learn it at their next sync.",
            name=name.strip(), role=role_label(role)))
    return redirect(url_for("users.index"))


@bp.post("/<user_id>/role")
@admin_required
def change_role(user_id: str):
    """Give a user another role."""
    try:
        user, changed = set_role(get_db(), g.user["id"], user_id, request.form.get("role", ""))
    except InputError as exc:
        return refused(exc)
    flash(_("%(name)s is %(role)s now.", name=user["name"], role=role_label(user["role"]))
          if changed else _("Nothing changed: %(name)s is %(role)s already.",
                            name=user["name"], role=role_label(user["role"])))
    return redirect(url_for("users.index"))


@bp.post("/<user_id>/password")
@admin_required
def new_password(user_id: str):
    """Give a user a new password (typed, or generated and shown once); their sessions end."""
    password, generated = chosen_password()
    try:
        user = reset_password(get_db(), g.user["id"], user_id, password)
    except InputError as exc:
        return refused(exc)
    if generated:
        return render_page(200, new_password=password, password_for=user["name"])
    flash(_("%(name)s has a new password.", name=user["name"]))
    return redirect(url_for("users.index"))


@bp.post("/<user_id>/active")
@admin_required
def active(user_id: str):
    """Deactivate a user (they cannot log in any more) or reactivate one."""
    value = request.form.get("active")
    try:
        if value not in ACTIVE_VALUES:
            raise InputError("invalid_active", _("Whether the user is active is yes or no."), 400)
        user, changed = set_active(get_db(), g.user["id"], user_id, ACTIVE_VALUES[value])
    except InputError as exc:
        return refused(exc)
    if not changed:
        flash(_("Nothing changed for %(name)s.", name=user["name"]))
    elif user["deactivated_at"] is None:
        flash(_("%(name)s is active again and can log in.", name=user["name"]))
    else:
        flash(_("%(name)s is deactivated: logged out here, and laptops refuse the login after "
                "their next sync.", name=user["name"]))
    return redirect(url_for("users.index"))


def init_app(app: Flask) -> None:
    """Register the users page."""
    app.register_blueprint(bp)

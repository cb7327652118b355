"""The changes page: freeze and unfreeze the results, and decide each later change of a figure."""
from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from lapsync.errors import InputError

from ..auth import admin_required, login_required
from ..db import get_db
from .freeze import changes, current_freeze, decide, freeze_results
from .thaw import fingerprint, kept_cases, release_kept, unfreeze, unfreeze_preview

bp = Blueprint("freeze", __name__, url_prefix="/sponsors")


@bp.get("/changes")
@login_required
def index():
    """Show whether the results are frozen, every pledge whose figure changed since, the kept ones."""
    conn = get_db()
    freeze = current_freeze(conn)
    preview = unfreeze_preview(conn) if freeze and request.args.get("confirm") == "unfreeze" \
        else None
    return render_template("changes.html", freeze=freeze, changes=changes(conn),
                           kept=kept_cases(conn), preview=preview,
                           seen=preview and fingerprint(preview),
                           is_admin=g.user["role"] == "admin")


@bp.post("/freeze")
@admin_required
def freeze():
    """Freeze every pledge's laps, distance and amount now: letters use these figures."""
    if request.form.get("confirm") != "yes":  # only the page's button freezes
        return redirect(url_for("freeze.index"))
    freeze_results(get_db(), g.user["id"])
    flash(_("The results are frozen. Letters show these figures; later changes are listed "
            "here for you to decide."))
    return redirect(url_for("freeze.index"))


@bp.post("/unfreeze")
@admin_required
def thaw():
    """End the freeze after a confirmation of what changes: letters use the live figures again."""
    if request.form.get("confirm") != "yes":
        return redirect(url_for("freeze.index", confirm="unfreeze"))
    try:
        preview = unfreeze(get_db(), g.user["id"], request.form.get("seen", ""))
    except InputError as exc:
        if exc.code != "changed_meanwhile":
            raise
        flash(exc.message, "error")     # show the new list rather than lift unseen
        return redirect(url_for("freeze.index", confirm="unfreeze"))
    flash(ngettext("The freeze is lifted: %(num)s letter now shows its live figure. Figures "
                   "you kept stay.",
                   "The freeze is lifted: %(num)s letters now show their live figures. Figures "
                   "you kept stay.", len(preview["changing"])))
    return redirect(url_for("freeze.index"))


@bp.post("/kept/<pledge_id>")
@admin_required
def release(pledge_id: str):
    """Give up a kept figure: the pledge's letter shows the live figure."""
    case = release_kept(get_db(), g.user["id"], pledge_id)
    flash(_("%(sponsor)s for %(runner)s: the letter now shows the live figure.",
            sponsor=case["sponsor_name"], runner=case["name"]))
    return redirect(url_for("freeze.index"))


@bp.post("/changes/<pledge_id>")
@admin_required
def decide_change(pledge_id: str):
    """Accept a pledge's new figure (its letter changes) or keep the frozen one."""
    choice = request.form.get("decision")
    if choice not in ("accept", "keep"):
        abort(400, description=_("Choose to accept the new figure or keep the frozen one."))
    case = decide(get_db(), g.user["id"], pledge_id, choice == "accept")
    flash(_("%(sponsor)s for %(runner)s: the letter now shows the new figure.",
            sponsor=case["sponsor_name"], runner=case["name"]) if choice == "accept" else
          _("%(sponsor)s for %(runner)s: the letter keeps the frozen figure.",
            sponsor=case["sponsor_name"], runner=case["name"]))
    return redirect(url_for("freeze.index"))


def init_app(app: Flask) -> None:
    """Register the freeze and changes pages."""
    app.register_blueprint(bp)

"""What the helper is told about a lap: the lap page's words, with and without JavaScript.

A number central gave to another runner (a renumbered clash) still stands on that
runner's bib until a new one is printed, so a lap typed with it counts for the number's
holder now and says so: the helper looks at who passed and voids it if it was the other.
"""
from __future__ import annotations

import json

from flask import flash
from flask_babel import gettext as _

from lapsync.i18n import recorded_text

# The runner central renumbered away from :number (the latest such decision), unless it is
# the runner counted: a JSON object of name and start number, or NULL.
RENUMBERED_SQL = """(SELECT json_object('name', o.name, 'start_number', o.start_number)
    FROM central_decision d JOIN runner o ON o.id = d.entity_id
    WHERE d.entity = 'runner' AND d.action = 'renumber' AND d.was_start_number = :number
      AND o.start_number <> :number AND o.id <> runner.id
      AND o.id NOT IN (SELECT runner_id FROM runner_merge)
    ORDER BY d.at DESC LIMIT 1)"""


def renumbered(value: str | None) -> dict | None:
    """Return RENUMBERED_SQL's runner (name, start_number) as a dict, or None."""
    return json.loads(value) if value else None


def renumbered_text(number: int, moved: dict) -> str:
    """Say that NUMBER was also MOVED's until central renumbered them, and what to do."""
    return _("Start number %(number)s was also %(name)s's until central gave them number "
             "%(new)s: if %(name)s passed, void this lap and type %(new)s.",
             number=number, name=moved["name"], new=moved["start_number"])


def js_strings() -> dict[str, str]:
    """Return laps.js's texts in the page's language ({name} marks a value JS fills in)."""
    return {
        "first_lap": _("first lap"),
        "since_last_lap": _("{time} since last lap"),
        "previous_elsewhere": _("previous lap on another laptop"),
        "elsewhere": _("on another laptop"),
        "already_recorded": _("already recorded"),
        "count_note": _("Laps of all laptops: this one and the others as last synced."),
        "saving": _("Saving {number} …"),
        "confirm_hint": _("Press Enter to count it, Esc to skip."),
        "next_number_hint": _("Typing the next number leaves it uncounted."),
        "count_anyway": _("Count it anyway"),
        "warning_left": _("Not counted: {name} ({number}) was counted {seconds} s ago."),
        "not_counted_row": _("Not counted: counted {seconds} s before"),
        "choose_hint": _("Type 1–{n} and Enter to count for that runner, Esc to cancel. Typing "
                         "another number leaves it uncounted (listed below)."),
        "choose_below": _("Choose the runner in the list below."),
        "choice_row": _("Not counted: start number {number} belongs to {n} runners"),
        "count_for": _("Count for {name}"),
        "choice_cancelled": _("No runner chosen: nothing was recorded."),
        "not_recorded": _("Not recorded."),
        "since_unknown": _("time since the last lap unknown: the laptop's clock was changed"),
        "counted": _("counted"),
        "checking": _("Checking lap {number} …: the laptop app did not answer. The page asks again "
                      "as soon as it answers; the lap counts at most once."),
        "checking_row": _("checking…"),
        "waiting_after": _("Typed since, sent in this order after it: {numbers}"),
        "checked_counted": _("Checked after the laptop app answered again: lap {number} is "
                             "recorded, once."),
        "checked_not_recorded": _("Checked after the laptop app answered again: lap {number} was "
                                  "NOT recorded."),
        "check_failed": _("The laptop app keeps answering {status}: it is not known whether lap "
                          "{number} counted. Look for it in the recent laps before typing it again."),
        "app_down": _("The laptop app is not answering"),
        "app_down_detail": _("The laptop app is not answering. Numbers typed now wait on this page "
                             "and are sent in typing order when it answers again: keep this page "
                             "open, check the laptop and start the app again."),
        "app_back": _("The laptop app is answering again."),
        "http_error": _("The laptop app answered {status}."),
        "skipped": _("Skipped: nothing was recorded."),
        "held_row": _("Not counted: the login ended"),
        "held_row_csrf": _("Not counted: this page's login changed in another window"),
        "held_login": _("Your login has ended."),
        "held_csrf": _("This page's login changed (a login or logout in another window)."),
        "held_numbers": _("Not counted: {numbers}. They are listed below: count them there once "
                          "you are logged in again."),
        "held_none": _("Log in again before the next number: numbers typed until then are "
                       "listed below, not counted."),
        "held_unknown": _("Not known whether it counted (the login ended while it was checked): "
                          "its button counts it at most once"),
        "held_not_kept": _("Not counted: {numbers}. Write them down: this browser cannot keep them "
                           "over a new login."),
        "held_waiting": _("Typed before and not counted yet: {numbers}. Count them with their "
                          "buttons in the list below."),
        "count_number": _("Count {number}"),
        "too_old_row": _("Typed {date} {time}: too long ago to count at the time it was typed. "
                         "Its button counts it at the time of the click."),
        "counted_late": _("Counted at the time of the click: it was typed {date} {time}, too long "
                          "ago to count at that time."),
        "remove": _("Remove"),
        "really_remove": _("Really remove?"),
        "removed": _("Removed from the list: {number} was not counted."),
        "reload": _("Reload the page"),
        "log_in": _("Log in"),
        "void": _("Void"),
        "really_void": _("Really void?"),
        "restore": _("Restore"),
        "voided": _("Lap voided: it no longer counts."),
        "restored": _("Lap restored."),
        "renumbered": _("Start number %(number)s was also %(name)s's until central gave them "
                        "number %(new)s: if %(name)s passed, void this lap and type %(new)s.",
                        number="{number}", name="{name}", new="{new}"),
    }


def central_void_text(lap: dict) -> str:
    """Say who voided a lap at central and why (the recent laps, on the page and by script)."""
    reason = recorded_text(lap.get("void_reason")) or "–"
    if lap.get("voided_by_name"):
        return _("voided at central by %(name)s: %(reason)s", name=lap["voided_by_name"],
                 reason=reason)
    return _("voided at central: %(reason)s", reason=reason)


def since_text(result: dict) -> str:
    """Say how long ago the runner's previous lap was; "first lap" only when the count is 1."""
    since = result["since_previous_ms"]
    if result.get("duplicate"):  # a retried request: the lap was recorded once, earlier
        return _("already recorded")
    if result["count"] == 1:
        return _("first lap")
    if result.get("since_unknown"):
        return _("time since the last lap unknown: the laptop's clock was changed")
    if since is None:
        return _("previous lap on another laptop")
    seconds = since // 1000
    if seconds >= 3600:
        text = _("%(hours)s h %(minutes)s min since last lap", hours=seconds // 3600,
                 minutes=seconds // 60 % 60)
    else:
        text = _("%(minutes)s min %(seconds)s s since last lap", minutes=seconds // 60,
                 seconds=seconds % 60)
    return f"{text} ({_('on another laptop')})" if result.get("previous_elsewhere") else text


def flash_lap(result: dict) -> None:
    """Tell the helper (without JavaScript) which lap was recorded."""
    runner = result["runner"]
    moved = result.get("renumbered")
    flash({"count": result["count"], "name": runner["name"], "number": runner["start_number"],
           "class": runner["class"], "since": since_text(result),
           "renumbered": renumbered_text(runner["start_number"], moved) if moved else ""}, "lap")

"""The money log's sentences for the bank, mail, freeze and letter actions (sync/money_log.py)."""
from __future__ import annotations

from flask_babel import gettext as _

from .amounts import money


def describe_more(action: str, d: dict, currency: str = "EUR") -> str:
    """Say in one sentence what a statement, mail, freeze or letter action did."""
    if action == "statement_import":
        return _("Imported the bank statement %(file)s: %(matched)s payments recorded, "
                 "%(unmatched)s credits left to assign, %(known)s imported before.",
                 file=d.get("file"), matched=d.get("matched"), unmatched=d.get("unmatched"),
                 known=d.get("known"))
    if action == "statement_ignore":
        return _("Ignored a credit of %(amount)s from %(who)s: %(purpose)s.",
                 amount=money(d.get("amount_cents"), currency=currency), who=d.get("counterparty"),
                 purpose=d.get("purpose"))
    if action == "statement_restore":
        return _("Put an ignored credit of %(amount)s from %(who)s back on the list to "
                 "assign: %(purpose)s.", amount=money(d.get("amount_cents"), currency=currency),
                 who=d.get("counterparty") or "–", purpose=d.get("purpose"))
    if action == "mail_send":
        return _("Sent e-mails: %(sent)s sent, %(queued)s to try again, %(failed)s failed.",
                 sent=d.get("sent"), queued=d.get("queued"), failed=d.get("failed"))
    if action in ("mail_cancel", "mail_retry"):
        text = _("Took an e-mail to %(to)s out of the queue: %(subject)s.") \
            if action == "mail_cancel" else _("Queued an e-mail to %(to)s again: %(subject)s.")
        return text % {"to": d.get("to"), "subject": d.get("subject")}
    if action in ("letters_queued", "class_list_queued"):
        return _("Queued %(count)s letters of class %(class_name)s as e-mails.",
                 count=d.get("count", 1), class_name=d.get("class")) \
            if action == "letters_queued" else \
            _("Queued the list of class %(class_name)s for %(to)s.", class_name=d.get("class"),
              to=d.get("to"))
    if action == "class_renamed":
        return _("Renamed class %(old)s to %(new)s: %(runners)s runners (joined: %(joined)s).",
                 old=d.get("from"), new=d.get("to"), runners=d.get("runners"),
                 joined=", ".join(d.get("joined") or []) or "–")
    if action == "class_teacher":
        return _("Set the class teacher's address of %(class_name)s to %(to)s.",
                 class_name=d.get("class"), to=d.get("to") or "–")
    return describe_freeze(action, d, currency)


def describe_freeze(action: str, d: dict, currency: str = "EUR") -> str:
    """Say in one sentence what a freeze action did."""
    if action == "freeze":
        return _("Froze the results: %(pledges)s pledges.", pledges=d.get("pledges"))
    if action == "unfreeze":
        return unfreeze_text(d, currency)
    amounts = {key: money((d.get(key) or {}).get("amount_cents"), currency=currency)
               for key in ("from", "to")}
    if action == "freeze_accept":
        return _("Accepted the new figure of %(sponsor)s for %(runner)s: %(to)s "
                 "(was %(was)s).", sponsor=d.get("sponsor"), runner=d.get("runner"),
                 to=amounts["to"], was=amounts["from"])
    if action == "freeze_keep":
        return _("Kept the frozen figure of %(sponsor)s for %(runner)s: %(was)s "
                 "(now %(to)s).", sponsor=d.get("sponsor"), runner=d.get("runner"),
                 to=amounts["to"], was=amounts["from"])
    if action == "freeze_release":
        return _("Gave up the kept figure of %(sponsor)s for %(runner)s: %(to)s "
                 "(was %(was)s).", sponsor=d.get("sponsor"), runner=d.get("runner"),
                 to=amounts["to"], was=amounts["from"])
    return action


def unfreeze_text(d: dict, currency: str) -> str:
    """Say what lifting the freeze did: which letters changed, how many kept figures stay."""
    if "changed" not in d:      # logged before the lift said what it changed
        return _("Lifted the freeze of the results.")
    changed = "; ".join(_("%(sponsor)s for %(runner)s %(was)s → %(to)s", sponsor=c["sponsor"],
                          runner=c["runner"], was=money(c["from"]["amount_cents"], currency=currency),
                          to=money(c["to"]["amount_cents"], currency=currency))
                        for c in d["changed"]) or "–"
    return _("Lifted the freeze of the results. Letters that changed: %(changed)s. Kept "
             "figures that stay: %(kept)s.", changed=changed, kept=d.get("kept", 0))

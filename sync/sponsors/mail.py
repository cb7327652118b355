"""The outgoing mail queue: letters to sponsors and class lists to teachers, sent on request only.

Queuing sends nothing. Mail leaves only when an admin sends the queue (the mail page's
Send button after its dry-run list, or `flask --app sync send-mail`), and only with the
SMTP settings (sync/bank_settings.py). Each send takes the queued mails that are due,
over one SMTP connection. A mail the server refuses for now (a 4xx answer, a dropped
connection, no server) stays queued with its error and waits BACKOFF_S x 2^(attempts-1)
(at most MAX_BACKOFF_S) before the next send takes it; after MAX_ATTEMPTS, or at a
permanent refusal (5xx), it is failed and shown as such. Its last error is kept as one
plain English sentence (error_text) that the mail page shows in the reader's language.
"""
from __future__ import annotations

import email.utils
import smtplib
import socket
import ssl
from email.message import EmailMessage

import psycopg
from flask_babel import gettext as _

from lapsync.errors import InputError
from lapsync.i18n import N_

from ..bank_settings import bank_mail_settings
from ..db import now_ms, write_transaction

MAX_ATTEMPTS = 5
BACKOFF_S = 60
MAX_BACKOFF_S = 3600
SMTP_TIMEOUT_S = 20
KINDS = ("letter", "reminder", "thanks", "class_list")
WITH_FIGURES = ("letter", "reminder", "thanks")   # a sponsor's mails that state its amounts
QUEUE_COLUMNS = ("id, to_addr, subject, body_text, body_html, kind, pledge_id, class_name, "
                 "status, attempts, last_error, next_try_ms, created_ms, sent_ms, locale")


def queue_mail(conn: psycopg.Connection, *, to: str, subject: str, body: str, kind: str,
               html: str | None = None, pledge_id: str | None = None,
               class_name: str | None = None, locale: str | None = None) -> int:
    """Queue one mail (caller's transaction; nothing is sent); return its id.

    A mail of the same kind for the same pledge or class that is still queued is
    replaced, so queuing the letters twice never sends two. locale is the language it is
    written in, for a class list written anew when it is sent.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    conn.execute("UPDATE mail_out SET status = 'cancelled' WHERE status = 'queued' AND kind = %s "
                 "AND pledge_id IS NOT DISTINCT FROM %s AND class_name IS NOT DISTINCT FROM %s",
                 [kind, pledge_id, class_name])
    return conn.execute(
        "INSERT INTO mail_out (to_addr, subject, body_text, body_html, kind, pledge_id, "
        "class_name, status, attempts, next_try_ms, created_ms, locale) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 'queued', 0, 0, %s, %s) RETURNING id",
        [to, subject, body, html, kind, pledge_id, class_name, now_ms(),
         locale]).fetchone()["id"]


def withdraw_mail(conn: psycopg.Connection, pledge_id: str) -> int:
    """Withdraw the queued mails to a pledge's sponsor (caller's transaction); return how many.

    For every change of the pledge's money or address after they were queued: they state
    what it was then (an open amount, a payment received), and must not go out so.
    """
    return conn.execute("UPDATE mail_out SET status = 'withdrawn' WHERE status = 'queued' "
                        "AND pledge_id = %s AND kind = ANY(%s)",
                        [pledge_id, list(WITH_FIGURES)]).rowcount


def withdrawn(conn: psycopg.Connection, pledge_id: str | None) -> dict:
    """Withdraw a pledge's queued mails (withdraw_mail); return {"withdrawn_mail": n} for
    the money log, or nothing when none was queued."""
    count = withdraw_mail(conn, pledge_id) if pledge_id else 0
    return {"withdrawn_mail": count} if count else {}


def due_mail(conn: psycopg.Connection, now: int | None = None,
             ids: list[int] | None = None) -> list[dict]:
    """Return the queued mails a send would take now (of ids, if given), oldest first."""
    return conn.execute(f"SELECT {QUEUE_COLUMNS} FROM mail_out WHERE status = 'queued' "
                        "AND next_try_ms <= %s AND (%s::bigint[] IS NULL OR id = ANY(%s)) "
                        "ORDER BY id", [now_ms() if now is None else now, ids, ids]).fetchall()


def mail_list(conn: psycopg.Connection, limit: int = 500) -> list[dict]:
    """Return the latest mails of every state, newest first."""
    return conn.execute(f"SELECT {QUEUE_COLUMNS} FROM mail_out WHERE status <> 'cancelled' "
                        "ORDER BY id DESC LIMIT %s", [limit]).fetchall()


def waiting_retry(conn: psycopg.Connection, now: int | None = None) -> dict:
    """Return how many queued mails wait for their next try after a failure ("count") and
    from when a send takes the first of them again ("next_ms", None without any)."""
    return conn.execute("SELECT count(*) AS count, min(next_try_ms) AS next_ms FROM mail_out "
                        "WHERE status = 'queued' AND next_try_ms > %s",
                        [now_ms() if now is None else now]).fetchone()


def mail_counts(conn: psycopg.Connection) -> dict:
    """Return how many mails are queued, sent, failed and withdrawn."""
    rows = conn.execute("SELECT status, count(*) AS n FROM mail_out GROUP BY status")
    return {"queued": 0, "sent": 0, "failed": 0, "withdrawn": 0,
            **{r["status"]: r["n"] for r in rows}}


def smtp_config(conn: psycopg.Connection) -> dict:
    """Return the SMTP settings or raise InputError naming what is missing."""
    settings = bank_mail_settings(conn)
    missing = [key for key in ("smtp_host", "smtp_from") if key not in settings]
    if missing:
        raise InputError("mail_not_configured", _("Set the mail server first (settings: "
                         "%(missing)s); nothing was sent.", missing=", ".join(missing)), 409)
    tls = settings.get("smtp_tls", "starttls")
    port = settings.get("smtp_port", {"ssl": 465, "starttls": 587}.get(tls, 25))
    return {**settings, "smtp_tls": tls, "smtp_port": port}


def build_message(config: dict, mail: dict) -> EmailMessage:
    """Return the MIME message of a queued mail (text, and HTML as an alternative)."""
    message = EmailMessage()
    message["From"] = config["smtp_from"]
    message["To"] = mail["to_addr"]
    message["Subject"] = mail["subject"]
    message["Date"] = email.utils.formatdate(localtime=True)
    domain = email.utils.parseaddr(config["smtp_from"])[1].rpartition("@")[2] or None
    message["Message-ID"] = email.utils.make_msgid(f"lapsync.{mail['id']}", domain=domain)
    message.set_content(mail["body_text"])
    if mail["body_html"]:
        message.add_alternative(mail["body_html"], subtype="html")
    return message


def connect(config: dict) -> smtplib.SMTP:
    """Open an SMTP connection as the settings say (TLS mode, login)."""
    host, port, tls = config["smtp_host"], config["smtp_port"], config["smtp_tls"]
    if tls == "ssl":
        server = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_S,
                                  context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S)
        if tls == "starttls":
            server.starttls(context=ssl.create_default_context())
    if config.get("smtp_user") and config.get("smtp_password"):
        server.login(config["smtp_user"], config["smtp_password"])
    return server


def is_permanent(exc: Exception) -> bool:
    """Tell whether an SMTP error is a permanent refusal (5xx) rather than a 'later'."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _text in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def backoff_ms(attempts: int) -> int:
    """Return how long a mail waits after its attempts-th failure."""
    return min(BACKOFF_S * 2 ** (attempts - 1), MAX_BACKOFF_S) * 1000


def server_answer(exc: Exception) -> str:
    """Return an SMTP server's answer as it gave it: code and text ("451 4.3.0 Try later")."""
    text = getattr(exc, "smtp_error", b"")
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{getattr(exc, 'smtp_code', '')} {text}".strip()


def error_text(exc: Exception, server: str) -> str:
    """Say in one plain English sentence why a mail did not go out (the catalogue has each,
    so that the mail page shows it in the reader's language: lapsync.i18n.recorded_text)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        to, (code, text) = next(iter(exc.recipients.items()))
        return N_("The mail server refused the address %(to)s: %(answer)s") % {
            "to": to, "answer": server_answer(smtplib.SMTPResponseException(code, text))}
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return N_("The mail server did not accept the user name and password (%(server)s).") \
            % {"server": server}
    if isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPHeloError)):
        return N_("The mail server refused the connection (%(server)s): %(answer)s") % {
            "server": server, "answer": server_answer(exc)}
    if isinstance(exc, smtplib.SMTPResponseException):
        if is_permanent(exc):
            return N_("The mail server refused the e-mail: %(answer)s") % {
                "answer": server_answer(exc)}
        return N_("The mail server refused the e-mail for now: %(answer)s") % {
            "answer": server_answer(exc)}
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return N_("The mail server closed the connection (%(server)s).") % {"server": server}
    return connection_error_text(exc, server)


def connection_error_text(exc: Exception, server: str) -> str:
    """Say why the mail server could not be reached or spoken to, in one English sentence."""
    if isinstance(exc, ConnectionRefusedError):
        message = N_("The mail server refused the connection (%(server)s).")
    elif isinstance(exc, socket.gaierror):
        message = N_("The mail server's name was not found (%(server)s).")
    elif isinstance(exc, TimeoutError):
        message = N_("The mail server did not answer in time (%(server)s).")
    elif isinstance(exc, ssl.SSLError):
        message = N_("The encrypted connection to the mail server failed (%(server)s).")
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        message = N_("The mail server does not support the encryption or login the settings "
                     "ask for (%(server)s).")
    elif isinstance(exc, smtplib.SMTPException):
        message = N_("The mail server did not accept the e-mail (%(server)s).")
    else:
        message = N_("The mail server could not be reached (%(server)s).")
    return message % {"server": server}


def record_result(conn: psycopg.Connection, mail: dict, error: Exception | None,
                  now: int, server: str = "") -> str:
    """Store one attempt's outcome; return the mail's new status."""
    if error is None:
        status, message, next_try = "sent", None, mail["next_try_ms"]
    else:
        attempts = mail["attempts"] + 1
        status = "failed" if is_permanent(error) or attempts >= MAX_ATTEMPTS else "queued"
        message, next_try = error_text(error, server)[:500], now + backoff_ms(attempts)
    with write_transaction(conn):
        conn.execute("UPDATE mail_out SET status = %s, attempts = attempts + 1, "
                     "last_error = coalesce(%s, last_error), next_try_ms = %s, "
                     "sent_ms = CASE WHEN %s = 'sent' THEN %s ELSE sent_ms END "
                     "WHERE id = %s AND status = 'queued'",
                     [status, message, next_try, status, now, mail["id"]])
    return status


def send_due(conn: psycopg.Connection, now: int | None = None,
             ids: list[int] | None = None) -> dict:
    """Send the due mails (of ids, if given: what a dry run listed) over one connection.

    Returns counts of sent, waiting (queued) and failed. Raises InputError without the
    SMTP settings. A connection that cannot be opened counts as a temporary failure of
    every due mail.
    """
    config, now = smtp_config(conn), now_ms() if now is None else now
    mails, report = due_mail(conn, now, ids), {"sent": 0, "queued": 0, "failed": 0}
    if not mails:
        return report
    where = f"{config['smtp_host']}:{config['smtp_port']}"
    try:
        server = connect(config)
    except (OSError, smtplib.SMTPException) as exc:
        for mail in mails:
            report[record_result(conn, mail, exc, now, where)] += 1
        return report
    with server:
        for mail in mails:
            report[record_result(conn, mail, deliver(server, config, mail), now, where)] += 1
    return report


def deliver(server: smtplib.SMTP, config: dict, mail: dict) -> Exception | None:
    """Hand one mail to the server; return the error, or None when it was accepted."""
    try:
        server.send_message(build_message(config, mail))
    except smtplib.SMTPServerDisconnected as exc:
        return exc
    except (smtplib.SMTPException, socket.timeout, OSError) as exc:
        try:
            server.rset()  # forget the refused transaction; the next mail starts clean
        except (smtplib.SMTPException, OSError):
            pass
        return exc
    return None

"""The outgoing mail queue against a real SMTP server (aiosmtpd on a loopback port).

Nothing leaves without the SMTP settings and an admin's send; what arrives is checked
as the server received it: envelope recipients, headers, text and HTML bodies, German
and English. A server that refuses for now (451) and then accepts shows the retry.
"""
from __future__ import annotations

import email
import email.policy
import re
from datetime import date, datetime

import pytest
from aiosmtpd.controller import Controller

from lapsync.devkit.processes import free_port
from lapsync.protocol import validate_push
from lapsync.text import date_time_text
from sync.bank_settings import save_bank_mail
from sync.db import write_transaction
from sync.devices import find_device
from sync.push import push
from sync.sponsors.freeze import decide, freeze_results
from sync.sponsors.mail import backoff_ms, due_mail, mail_list, queue_mail, send_due
from sync.sponsors.payments import add_payment, delete_payment
from sync.sponsors.pledges import delete_pledge, edit_pledge
from sync.sponsors.statement import record_payment
from tests.central.test_letters import school  # noqa: F401  (class 5a with pledges)
from tests.pg import Outbox, register

SENDER = "Sponsorenlauf <lauf@schule.de>"


class Inbox:
    """An aiosmtpd handler that keeps every message; refuses the first `refuse` with 451."""

    def __init__(self, refuse: int = 0, code: str = "451 4.3.0 Try again later") -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse, self.code = refuse, code

    async def handle_DATA(self, server, session, envelope) -> str:
        """Keep the message, or refuse it while refusals are left."""
        if self.refuse:
            self.refuse -= 1
            return self.code
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port; yields (inbox, port)."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def configure(conn, port: int) -> None:
    """Point central's mail settings at the test server (no TLS, no login)."""
    save_bank_mail(conn, {"smtp_host": "127.0.0.1", "smtp_port": str(port), "smtp_tls": "none",
                          "smtp_from": SENDER})


def lines(part) -> str:
    """Return a received part's text with the wire's CRLF line ends as LF."""
    return part.get_content().replace("\r\n", "\n")


def queue(conn, **fields) -> int:
    """Queue one mail in its own transaction; return its id."""
    with write_transaction(conn):
        return queue_mail(conn, **{"kind": "letter", **fields})


def test_nothing_is_sent_without_the_settings_or_a_send(central_app, central_db, smtp):
    inbox, port = smtp
    queue(central_db, to="eva@example.org", subject="Ihr Brief", body="Hallo")
    result = central_app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code != 0 and "Set the mail server first" in result.output
    configure(central_db, port)
    assert inbox.messages == []  # settings alone send nothing
    dry = central_app.test_cli_runner().invoke(args=["send-mail", "--dry-run"])
    assert dry.exit_code == 0 and "eva@example.org\tIhr Brief" in dry.output
    assert "1 e-mails would go out; nothing was sent" in dry.output
    assert inbox.messages == [] and len(due_mail(central_db)) == 1


def test_what_arrives_in_german_and_english(central_app, central_db, smtp):
    inbox, port = smtp
    configure(central_db, port)
    queue(central_db, to="Jörg Groß <joerg@example.org>", subject="Sponsorenlauf: Ihr Beitrag für Anna",
          body="Sehr geehrter Herr Groß,\nAnna ist 12 Runden gelaufen: 6,00 €.\n",
          html="<p>Sehr geehrter Herr Groß,</p>", pledge_id="p1")
    queue(central_db, to="ann@example.com", subject="Sponsored run: your pledge for Ben",
          body="Dear Ann,\nBen ran 7 laps: €3.50.\n", kind="thanks", pledge_id="p2")
    result = central_app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code == 0 and "Sent 2 e-mails; 0 wait" in result.output
    (to_de, german), (to_en, english) = inbox.messages
    assert to_de == ["joerg@example.org"] and to_en == ["ann@example.com"]
    assert german["From"] == SENDER and german["To"] == "Jörg Groß <joerg@example.org>"
    assert german["Subject"] == "Sponsorenlauf: Ihr Beitrag für Anna"
    assert lines(german.get_body(("plain",))) == \
        "Sehr geehrter Herr Groß,\nAnna ist 12 Runden gelaufen: 6,00 €.\n"
    assert lines(german.get_body(("html",))).strip() == "<p>Sehr geehrter Herr Groß,</p>"
    assert english["Subject"] == "Sponsored run: your pledge for Ben"
    assert lines(english) == "Dear Ann,\nBen ran 7 laps: €3.50.\n"
    assert re.fullmatch(r"<[0-9.]+\.lapsync\.\d+@schule\.de>", english["Message-ID"])
    states = central_db.execute("SELECT status, attempts, sent_ms FROM mail_out ORDER BY id").fetchall()
    assert [(s["status"], s["attempts"]) for s in states] == [("sent", 1), ("sent", 1)]
    assert all(s["sent_ms"] for s in states)
    log = central_db.execute("SELECT by_name, action, details FROM money_log").fetchall()
    assert log == [{"by_name": "command line", "action": "mail_send",
                    "details": {"sent": 2, "queued": 0, "failed": 0}}]
    # A second send has nothing left to send.
    assert send_due(central_db) == {"sent": 0, "queued": 0, "failed": 0}
    assert len(inbox.messages) == 2


def test_a_server_refusing_for_now_then_accepting_shows_a_retry(central_db, smtp):
    inbox, port = smtp
    inbox.refuse = 1
    configure(central_db, port)
    mail_id = queue(central_db, to="eva@example.org", subject="Brief", body="Hallo")
    assert send_due(central_db, now=1_000_000) == {"sent": 0, "queued": 1, "failed": 0}
    row = central_db.execute("SELECT * FROM mail_out WHERE id = %s", [mail_id]).fetchone()
    assert row["status"] == "queued" and row["attempts"] == 1
    assert row["last_error"] == "The mail server refused the e-mail for now: 451 4.3.0 Try again later"
    assert row["next_try_ms"] == 1_000_000 + backoff_ms(1)
    # Before its backoff has passed a send leaves it alone; after it, it goes out.
    assert send_due(central_db, now=1_000_000 + backoff_ms(1) - 1) == {"sent": 0, "queued": 0,
                                                                        "failed": 0}
    assert send_due(central_db, now=1_000_000 + backoff_ms(1)) == {"sent": 1, "queued": 0,
                                                                    "failed": 0}
    row = central_db.execute("SELECT * FROM mail_out WHERE id = %s", [mail_id]).fetchone()
    assert row["status"] == "sent" and row["attempts"] == 2 and "451" in row["last_error"]
    assert [to for to, _m in inbox.messages] == [["eva@example.org"]]


def test_a_permanent_refusal_fails_at_once_and_the_rest_goes_out(central_db, smtp):
    inbox, port = smtp
    inbox.refuse, inbox.code = 1, "550 5.7.1 Rejected"
    configure(central_db, port)
    first = queue(central_db, to="a@example.org", subject="A", body="a", pledge_id="p1")
    queue(central_db, to="b@example.org", subject="B", body="b", pledge_id="p2")
    assert send_due(central_db) == {"sent": 1, "queued": 0, "failed": 1}
    assert central_db.execute("SELECT status, last_error FROM mail_out WHERE id = %s",
                              [first]).fetchone() == {
        "status": "failed", "last_error": "The mail server refused the e-mail: 550 5.7.1 Rejected"}
    assert [to for to, _m in inbox.messages] == [["b@example.org"]]


def test_no_server_listening_keeps_every_mail_queued_and_backs_off(central_db):
    port = free_port()
    configure(central_db, port)
    queue(central_db, to="a@example.org", subject="A", body="a")
    assert send_due(central_db, now=5_000) == {"sent": 0, "queued": 1, "failed": 0}
    assert send_due(central_db, now=5_000 + backoff_ms(1)) == {"sent": 0, "queued": 1, "failed": 0}
    row = central_db.execute("SELECT * FROM mail_out").fetchone()
    assert row["attempts"] == 2 and row["next_try_ms"] == 5_000 + backoff_ms(1) + backoff_ms(2)
    assert row["last_error"] == f"The mail server refused the connection (127.0.0.1:{port})."


def test_queuing_again_replaces_the_queued_mail_of_the_same_pledge(central_db):
    queue(central_db, to="a@example.org", subject="old", body="a", pledge_id="p1")
    queue(central_db, to="a@example.org", subject="new", body="a", pledge_id="p1")
    queue(central_db, to="a@example.org", subject="reminder", body="a", pledge_id="p1",
          kind="reminder")
    assert [m["subject"] for m in due_mail(central_db)] == ["new", "reminder"]


def test_the_mail_page_lists_then_an_admin_sends(central_admin,
                                                 central_db, smtp):
    inbox, port = smtp
    configure(central_db, port)
    queue(central_db, to="eva@example.org", subject="Ihr Brief", body="Hallo", pledge_id="p1")
    page = central_admin.get("/sponsors/mail/").get_data(as_text=True)
    assert "Would go out now: 1 e-mails" in page and "eva@example.org" in page
    ids = re.findall(r'name="mail" value="(\d+)"', page)
    assert inbox.messages == []
    # Mail queued after the dry run is not sent by its button.
    queue(central_db, to="late@example.org", subject="Später", body="x", pledge_id="p2")
    response = central_admin.post("/sponsors/mail/send", data={"csrf_token": central_admin.csrf,
                                                               "mail": ids})
    assert response.status_code == 302
    assert [to for to, _m in inbox.messages] == [["eva@example.org"]]
    page = central_admin.get("/sponsors/mail/").get_data(as_text=True)
    assert "Sent 1 e-mails" in page and "late@example.org" in page
    log = central_db.execute("SELECT by_name FROM money_log WHERE action = 'mail_send'").fetchone()
    assert log["by_name"] == "ada"


def test_a_viewer_sees_the_queue_but_cannot_send(central_viewer, central_db, smtp):
    inbox, port = smtp
    configure(central_db, port)
    mail_id = queue(central_db, to="eva@example.org", subject="Ihr Brief", body="Hallo")
    page = central_viewer.get("/sponsors/mail/").get_data(as_text=True)
    assert "eva@example.org" in page and 'id="send-form"' not in page
    assert central_viewer.post("/sponsors/mail/send", data={
        "csrf_token": central_viewer.csrf, "mail": [str(mail_id)]}).status_code == 403
    assert central_viewer.post(f"/sponsors/mail/{mail_id}/cancel",
                               data={"csrf_token": central_viewer.csrf}).status_code == 403
    assert inbox.messages == [] and len(due_mail(central_db)) == 1


def test_letters_queued_in_german_and_english_arrive_as_the_sponsors_read_them(
        central_admin, central_db, school, smtp):  # noqa: F811
    inbox, port = smtp
    configure(central_db, port)
    for language in ("de-DE,de;q=0.9", "en-GB,en;q=0.8"):
        central_admin.post("/sponsors/letters/queue", headers={"Accept-Language": language},
                           data={"csrf_token": central_admin.csrf, "class": "5a"})
        page = central_admin.get("/sponsors/mail/").get_data(as_text=True)
        ids = re.findall(r'name="mail" value="(\d+)"', page)
        central_admin.post("/sponsors/mail/send", data={"csrf_token": central_admin.csrf,
                                                        "mail": ids})
    received = [(to, m["Subject"], lines(m)) for to, m in inbox.messages]
    assert [(to, subject) for to, subject, _body in received] == [
        (["firma@example.org"], "Sponsorenlauf 2025: Danke, dass Sie Anna Berg unterstützen"),
        (["oma@example.org"], "Sponsorenlauf 2025: Ihre Zusage für Anna Berg"),
        (["firma@example.org"], "Sponsorenlauf 2025: thank you for sponsoring Anna Berg"),
        (["oma@example.org"], "Sponsorenlauf 2025: your pledge for Anna Berg")]
    german, english = received[1][2], received[3][2]
    assert german.startswith("Guten Tag Oma Berg,\n\nAnna Berg (Klasse 5a, Startnummer 7) ist "
                             "12 Runden (4,8 km) beim Sponsorenlauf 2025 gelaufen.")
    assert "Betrag: 4,00\xa0€" in german and "IBAN: DE89 3704 0044 0532 0130 00" in german
    assert "GiroCode" not in german and "GiroCode" not in english   # a mail has no code to scan
    assert english.startswith("Dear Oma Berg,\n\nAnna Berg (class 5a, start number 7) ran "
                              "12 laps (4.8 km) at Sponsorenlauf 2025.")
    assert "Amount: €4.00" in english and english.endswith(
        "Kind regards\nFörderverein Schule am Park\n")


def queued_reminders(admin, conn) -> dict[str, int]:
    """Queue class 5a's reminders as the letters page does; return {address: mail id}."""
    admin.post("/sponsors/letters/queue", headers={"Accept-Language": "en"},
               data={"csrf_token": admin.csrf, "class": "5a", "kind": "reminder"})
    return {m["to_addr"]: m["id"] for m in due_mail(conn)}


def test_a_payment_after_the_reminders_were_queued_withdraws_that_sponsors_reminder(
        central_admin, central_db, school, smtp):  # noqa: F811
    inbox, port = smtp
    configure(central_db, port)
    assert set(queued_reminders(central_admin, central_db)) == {"oma@example.org",
                                                                "firma@example.org"}
    page = central_admin.post(f"/sponsors/{school['ids']['oma']}/pay", follow_redirects=True, data={
        "csrf_token": central_admin.csrf, "amount_cents": "4", "paid_on": "2025-07-02",
        "method": "transfer", "reference": "", "note": ""}).get_data(as_text=True)
    assert "Recorded €4.00 from Oma Berg." in page
    assert "The e-mail queued for this sponsor was withdrawn" in page
    page = central_admin.get("/sponsors/mail/").get_data(as_text=True)
    assert "Would go out now: 1 e-mails" in page
    assert "withdrawn: its pledge changed after it was queued" in page
    german = central_admin.get("/sponsors/mail/", headers={"Accept-Language": "de"})
    assert "zurückgezogen: Die Zusage hat sich geändert" in german.get_data(as_text=True)
    ids = re.findall(r'name="mail" value="(\d+)"', page)
    central_admin.post("/sponsors/mail/send", data={"csrf_token": central_admin.csrf, "mail": ids})
    assert [to for to, _m in inbox.messages] == [["firma@example.org"]]
    assert {m["to_addr"]: m["status"] for m in mail_list(central_db)} == {
        "oma@example.org": "withdrawn", "firma@example.org": "sent"}
    log = central_admin.get(f"/sponsors/{school['ids']['oma']}").get_data(as_text=True)
    assert "A queued e-mail to the sponsor was withdrawn" in log


def change_money(conn, made: dict, how: str) -> None:
    """Change Oma's pledge (the school fixture's "oma") in a way that makes its letters untrue."""
    admin, oma = made["admin"], made["ids"]["oma"]
    if how == "edit":
        edit_pledge(conn, admin, oma, {"sponsor_name": "Oma Berg", "kind": "per_lap",
                                       "rate_cents": "0,60", "email": "oma@example.org"})
    elif how == "delete":
        delete_pledge(conn, admin, oma)
    elif how == "payment deleted":
        paid = conn.execute("SELECT id FROM payment WHERE pledge_id = %s", [oma]).fetchone()
        delete_payment(conn, admin, paid["id"])
    else:  # a bank statement's line matched by its reference
        pledge = conn.execute("SELECT p.*, r.start_number, r.name, r.class FROM pledge p "
                              "JOIN runner r ON r.id = p.runner_id WHERE p.id = %s", [oma]).fetchone()
        with conn.transaction():
            record_payment(conn, admin, {"amount_cents": 400, "booked_on": date(2025, 7, 3),
                                         "purpose": pledge["reference"]}, pledge)


@pytest.mark.parametrize("how", ["edit", "delete", "payment deleted", "statement"])
def test_any_change_of_a_pledges_money_withdraws_only_its_queued_mail(
        central_admin, central_db, school, how):  # noqa: F811
    if how == "delete":  # a pledge with payments is not deleted: Oma's payment goes first
        central_db.execute("DELETE FROM payment WHERE pledge_id = %s", [school["ids"]["oma"]])
    queued = queued_reminders(central_admin, central_db)
    lists = queue(central_db, to="teacher@example.org", subject="Liste 5a", body="x",
                  kind="class_list", class_name="5a")
    change_money(central_db, school, how)
    states = {m["id"]: m["status"] for m in mail_list(central_db)}
    assert states == {queued["oma@example.org"]: "withdrawn",
                      queued["firma@example.org"]: "queued", lists: "queued"}


def test_a_payment_to_a_pledge_with_nothing_queued_withdraws_nothing(central_db, school):  # noqa: F811
    add_payment(central_db, school["admin"], school["ids"]["firma"],
                {"amount_cents": "20", "paid_on": "2025-07-02", "method": "cash"})
    logged = central_db.execute("SELECT details FROM money_log WHERE action = 'payment_add' "
                                "ORDER BY id DESC LIMIT 1").fetchone()["details"]
    assert "withdrawn_mail" not in logged


def queue_class_list(admin, language: str = "de-DE,de;q=0.9") -> None:
    """Set class 5a's teacher and queue its list as the class list page does, in a language."""
    admin.post("/sponsors/classes/5a/teacher", data={"csrf_token": admin.csrf,
                                                     "email": "lehrerin@schule.de"})
    admin.post("/sponsors/classes/5a/queue", data={"csrf_token": admin.csrf},
               headers={"Accept-Language": language})


def class_total(amount: str, paid: str, still_open: str) -> str:
    """Return the German class list's total line."""
    return f"Klasse gesamt: {amount}\xa0€ erlaufen, {paid}\xa0€ bezahlt, {still_open}\xa0€ offen."


def change_the_class(conn, made: dict, how: str) -> None:
    """Change class 5a's figures after its list was queued."""
    if how == "payment":
        add_payment(conn, made["admin"], made["ids"]["firma"],
                    {"amount_cents": "20", "paid_on": "2025-07-02", "method": "cash"})
    elif how == "pledge added":
        made["pledge"](made["ben"], "Tante Lap", "fixed", "5")
    else:   # laps arrive from a second laptop (accepted into the freeze, if there is one)
        box = Outbox()
        box.lap(made["ben"])
        box.lap(made["ben"])
        push(conn, find_device(conn, register(conn, "laptop-b")), validate_push(box.body()))
        if how == "laps accepted into the freeze":
            decide(conn, made["admin"], made["ids"]["ben"], accept=True)


@pytest.mark.parametrize("how, total", [
    ("payment", ("43,00", "34,00", "9,00")), ("pledge added", ("48,00", "14,00", "34,00")),
    ("laps arrive", ("45,00", "14,00", "31,00")),
    ("laps accepted into the freeze", ("45,00", "14,00", "31,00"))])
def test_a_queued_class_list_goes_out_with_the_figures_of_its_sending(
        central_app, central_admin, central_db, school, smtp, how, total):  # noqa: F811
    inbox, port = smtp
    configure(central_db, port)
    if how == "laps accepted into the freeze":
        freeze_results(central_db, school["admin"])
    queue_class_list(central_admin)
    (queued,) = due_mail(central_db)
    assert class_total("43,00", "14,00", "29,00") in queued["body_text"]
    change_the_class(central_db, school, how)
    # Sent from the command line (English): the list is in the German it was queued in.
    result = central_app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code == 0 and "Sent 1 e-mails" in result.output
    ((to, message),) = inbox.messages
    body = lines(message)
    assert to == ["lehrerin@schule.de"] and message["Subject"] == "Sponsoren der Klasse 5a"
    assert body.startswith("Sponsoren der Klasse 5a – Sponsorenlauf 2025\n")
    assert class_total(*total) in body
    if how.startswith("laps"):
        assert "8 Ben Cruz: 2 Runden, 0,8 km – erlaufen 2,00\xa0€, offen 2,00\xa0€" in body
    stored = central_db.execute("SELECT status, body_text FROM mail_out").fetchone()
    assert stored == {"status": "sent", "body_text": body}    # the record says what went out


def test_the_mail_page_says_when_each_mail_was_queued_and_that_lists_are_written_anew(
        central_admin, central_db, school):  # noqa: F811
    queue_class_list(central_admin, "en")
    queue(central_db, to="eva@example.org", subject="Ihr Brief", body="Hallo", pledge_id="p1")
    central_db.execute("UPDATE mail_out SET created_ms = %s WHERE kind = 'class_list'",
                       [int(datetime(2026, 12, 8, 15, 13).timestamp() * 1000)])
    page = central_admin.get("/sponsors/mail/", headers={"Accept-Language": "en"}).get_data(
        as_text=True)
    for table in ("due-mail", "mail-list"):
        rows = page[page.index(f'id="{table}"'):]
        rows = rows[:rows.index("</table>")]
        assert "<th>Queued at</th>" in rows
        queued_at = re.findall(r'<td class="queued-at">([^<]+)</td>', rows)
        assert len(queued_at) == 2 and sum("2026-12-08 15:13" in q for q in queued_at) == 1
        assert rows.count("written anew with the latest figures when sent") == 1


def test_a_queued_list_of_a_class_that_is_gone_is_withdrawn_not_sent(
        central_app, central_admin, central_db, school, smtp):  # noqa: F811
    inbox, port = smtp
    configure(central_db, port)
    queue_class_list(central_admin)
    central_db.execute("UPDATE runner SET class = '5b' WHERE class = '5a'")
    result = central_app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code == 0 and inbox.messages == []
    assert [m["status"] for m in mail_list(central_db)] == ["withdrawn"]
    page = central_admin.get("/sponsors/mail/").get_data(as_text=True)
    assert "withdrawn: there is no class of this name any more; queue its list again" in page


def test_after_a_failed_send_the_page_says_what_waits_till_when_and_why_in_plain_words(
        central_app, central_admin, central_db):
    port = free_port()                       # nothing listens there
    configure(central_db, port)
    for to in ("a@example.org", "b@example.org"):
        queue(central_db, to=to, subject="Brief", body="Hallo", pledge_id=to)
    page = central_admin.post("/sponsors/mail/send", follow_redirects=True, data={
        "csrf_token": central_admin.csrf, "mail": [str(m["id"]) for m in due_mail(central_db)]},
        headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Sent 0 e-mails; 2 wait for another try; 0 failed." in page
    assert "<h1>E-mail queue</h1>" in page and "Would go out now: 0 e-mails" in page
    assert "Nothing is due now." in page and "Nothing is waiting to be sent." not in page
    next_ms = central_db.execute("SELECT min(next_try_ms) AS t FROM mail_out").fetchone()["t"]
    with central_app.test_request_context(headers={"Accept-Language": "en"}):
        when = date_time_text(next_ms)
    waiting = re.search(r'<p class="feedback warn" id="retry-waiting">(.*?)</p>', page, re.S)
    assert waiting and waiting.group(1) == (
        f"2 queued e-mails wait for another try after a failed one: a send takes them again "
        f"from {when}.")
    errors = re.findall(r'<td class="last-error">(.*?)</td>', page)
    assert errors == [f"The mail server refused the connection (127.0.0.1:{port})."] * 2
    assert "Errno" not in page and "ConnectionRefusedError" not in page
    assert "All e-mails: 2 queued, 0 sent, 0 failed" in page


def test_the_last_error_reads_in_german(central_admin, central_db):
    # Needs the German catalogue's "The mail server refused the connection (%(server)s)."
    port = free_port()
    configure(central_db, port)
    queue(central_db, to="a@example.org", subject="Brief", body="Hallo")
    send_due(central_db)
    page = central_admin.get("/sponsors/mail/", headers={"Accept-Language": "de"}).get_data(
        as_text=True)
    assert re.findall(r'<td class="last-error">(.*?)</td>', page) == [
        f"Der Mailserver hat die Verbindung abgelehnt (127.0.0.1:{port})."]

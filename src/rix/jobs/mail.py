"""Email: one message per durable job (``email``), sent through the configured SMTP server.

Mail leaves by the job queue like every other side effect (DESIGN.md): the request that
causes it (a PIN lockout, an opinion, a breach) commits the job with its own change, and an
SMTP server that is down only delays the message. The one exception is a message carrying
a secret (a share link's token): a job would keep it in the index in clear, so it is sent
at once (``send_now``) and the sender is told if it could not be. Bodies are written by
callers to carry no patient identifiers: mail crosses systems rix does not control.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import Connection

from rix.config import Settings
from rix.jobs import queue
from rix.jobs.queue import Permanent
from rix.jobs.worker import Context

KIND = "email"
TIMEOUT = 20.0


def enqueue(
    conn: Connection,
    settings: Settings,
    *,
    to: str,
    subject: str,
    body: str,
    trust_pk: int | None = None,
    key: str | None = None,
) -> int | None:
    """Queue one message in the caller's transaction; None when no SMTP server is
    configured (the laptop demo), so callers can say the link was not mailed."""
    if not settings.smtp_host or not to:
        return None
    payload = {"to": to, "subject": subject, "body": body}
    return queue.enqueue(
        conn,
        KIND,
        payload,
        priority=queue.Priority.ROUTINE,
        key=key,
        label=f"email: {subject[:60]}",
        trust_pk=trust_pk,
    )


def message(settings: Settings, *, to: str, subject: str, body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.smtp_from
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    mail.set_content(body)
    return mail


def send_now(settings: Settings, *, to: str, subject: str, body: str) -> str:
    """Send at once; returns '' when the server accepted it, else why not (for the page)."""
    if not settings.smtp_host:
        return "no email server is configured"
    try:
        _send(settings, message(settings, to=to, subject=subject, body=body))
    except (OSError, smtplib.SMTPException) as exc:
        return f"the email server did not take it ({type(exc).__name__})"
    return ""


def _send(settings: Settings, mail: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(mail)


def run(ctx: Context) -> None:
    """Send one queued message; an SMTP refusal of the recipient is permanent, anything
    else (server down, timeout, 4xx) is retried with the queue's back-off."""
    settings = ctx.archive.settings
    if not settings.smtp_host:
        raise Permanent("no SMTP server is configured (smtp_host)")
    payload = ctx.job.payload
    mail = message(
        settings,
        to=str(payload["to"]),
        subject=str(payload["subject"]),
        body=str(payload["body"]),
    )
    try:
        _send(settings, mail)
    except smtplib.SMTPRecipientsRefused as exc:
        raise Permanent(f"the SMTP server refused the recipient: {exc}") from exc

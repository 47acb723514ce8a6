"""Sending one e-mail through the configured SMTP server (``IPR_SMTP_URL``).

Plain Python (no Flask, no database): the worker calls it for invitation and reminder jobs.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from urllib.parse import unquote, urlsplit

from ipr.errors import IPRError

SCHEMES = {"smtp": "plain", "smtps": "tls", "smtp+starttls": "starttls"}


class MailError(IPRError):
    """The e-mail could not be sent; the message says what a researcher or admin can fix."""

    status = 502
    code = "mail_failed"


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: str  # plain | tls | starttls
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> SmtpServer:
    """``smtp://host:port``, ``smtps://…``, ``smtp+starttls://user:pass@host:port``."""
    parts = urlsplit(url)
    security = SCHEMES.get(parts.scheme)
    if security is None or not parts.hostname:
        raise MailError(
            f"IPR_SMTP_URL must look like smtp://host:port (or smtps://, smtp+starttls://), "
            f"not {parts.scheme or '(no scheme)'}://…"
        )
    default_port = {"plain": 25, "tls": 465, "starttls": 587}[security]
    return SmtpServer(
        host=parts.hostname,
        port=parts.port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message; the body is the study's own text with the link in it."""
    msg = EmailMessage()
    msg["From"] = formataddr(("IPR", sender)) if "<" not in sender else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(body)
    return msg


def send(server: SmtpServer, msg: EmailMessage, timeout: float = 30.0) -> None:
    """Deliver ``msg`` or raise MailError with the server's reason."""
    try:
        if server.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with client:
            if server.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if server.username:
                client.login(server.username, server.password or "")
            client.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(
            f"The e-mail server {server.host}:{server.port} did not take the message: {exc}"
        ) from exc

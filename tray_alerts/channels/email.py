"""Email through SMTP (STARTTLS, SSL or plain), certificates checked unless `verify = no`."""
from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Mapping

from ..display import clock, context_lines
from ..model import Alert, truncate
from ..values import parse_bool
from .base import DeliveryError, SettingError, require

SECURITY_MODES = ("starttls", "ssl", "none")
TIMEOUT = 10.0


class EmailChannel:
    """Sends one plain-text email per alert to every recipient."""

    def __init__(self, name: str, host: str, port: int, security: str, sender: str, recipients: list[str],
                 username: str = "", password: str = "", verify: bool = True, timeout: float = TIMEOUT):
        self.name = name
        self.host, self.port, self.security = host, port, security
        self.sender, self.recipients = sender, recipients
        self._username, self._password = username, password
        self.verify = verify
        self.timeout = timeout

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> EmailChannel:
        """Built from [channel.NAME]: host, to (required), port, security, verify, username, password, from."""
        host = require(options, "host")
        recipients = [address.strip() for address in require(options, "to").split(",") if address.strip()]
        security = (options.get("security", "").strip() or "starttls").lower()
        if security not in SECURITY_MODES:
            raise SettingError("security", f"must be one of {', '.join(SECURITY_MODES)}, not {security!r}")
        default_port = {"starttls": 587, "ssl": 465, "none": 25}[security]
        port_text = options.get("port", "").strip() or str(default_port)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SettingError("port", f"not a port number: {port_text!r}")
        try:
            verify = parse_bool(options.get("verify", "").strip() or "yes")
        except ValueError as error:
            raise SettingError("verify", str(error)) from None
        sender = options.get("from", "").strip() or f"tray-alerts@{socket.gethostname()}"
        return cls(name, host, int(port_text), security, sender, recipients, options.get("username", "").strip(),
                   options.get("password", ""), verify)

    def message(self, alert: Alert) -> EmailMessage:
        """Subject `[CRITICAL] disk_full: disk at 95% on /var`; the body has the time, host and context."""
        message = EmailMessage()
        message["Subject"] = truncate(f"[{alert.tag}] {alert.event}: {' '.join(alert.message.split())}", 200)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain="tray-alerts")
        note = alert.note()
        lines = [alert.message, *([note] if note else []), "", f"event: {alert.event}", f"level: {alert.level.value}",
                 f"state: {'recovered' if alert.resolved else 'firing'}", f"time: {clock(alert.at)}",
                 f"host: {socket.gethostname()}", *context_lines(alert), "", "— tray-alerts"]
        message.set_content("\n".join(lines))
        return message

    def send(self, alert: Alert) -> None:
        """Connect, secure, log in if asked, send; SMTP failures become DeliveryErrors."""
        self._deliver(self.message(alert))

    def send_many(self, alerts: list[Alert]) -> None:
        """Several alerts as one email (storm control groups what piles up)."""
        worst = max((alert.level for alert in alerts if not alert.resolved), default=None)
        message = EmailMessage()
        message["Subject"] = f"[tray-alerts] {len(alerts)} alerts" + (f", worst {worst.value}" if worst else "")
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain="tray-alerts")
        parts = [self.message(alert) for alert in alerts]
        message.set_content("\n\n".join(f"{part['Subject']}\n{part.get_content().strip()}" for part in parts))
        self._deliver(message)

    def _deliver(self, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                if self._username:
                    smtp.login(self._username, self._password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(f"email: login refused by {self.host} ({error.smtp_code})", retryable=False) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError(f"email: {self.host} refused the recipients", retryable=False) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(f"email: {self.host} answered {error.smtp_code}",
                                retryable=error.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as error:
            raise DeliveryError(f"email: certificate of {self.host} not trusted ({error.verify_message})",
                                retryable=False) from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"email: cannot reach {self.host}:{self.port} ({_reason(error)})") from None

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            try:
                smtp.starttls(context=context)
            except BaseException:
                smtp.close()
                raise
        return smtp


def _reason(error: BaseException) -> str:
    """A short reason without addresses or credentials."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(error, smtplib.SMTPNotSupportedError):
        if "AUTH" in str(error):
            return "the server does not offer login (AUTH)"
        if "STARTTLS" in str(error):
            return "the server does not offer STARTTLS"
        return "the server does not support this message (SMTPUTF8)"
    return type(error).__name__

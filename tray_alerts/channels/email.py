"""Email through SMTP (STARTTLS, SSL or plain), certificates checked unless `verify = no`."""
from __future__ import annotations

import base64
import email.policy
import hashlib
import re
import smtplib
import socket
import ssl
import unicodedata
from email.message import EmailMessage
from email.policy import Policy
from email.utils import formatdate, make_msgid, parseaddr
from typing import Mapping

from ..display import clock, context_lines, duration
from ..model import Alert, truncate
from ..templates import PLAIN, Wording
from ..values import parse_list
from .base import DeliveryError, SettingError, flag_option, require, send_to_each

# Every message is 7-bit clean: the subject is folded here into RFC 2047 encoded words that keep every space (the
# standard library's folder drops the space between two encoded words), the body is quoted-printable when not ASCII.
# One firing episode's mails form a thread: the firing's Message-ID is `<EPISODE.firing@DOMAIN>`, and its
# escalations, reminders and recovery name it in In-Reply-To and References.
SECURITY_MODES = ("starttls", "ssl", "none")
TIMEOUT = 10.0
SUBJECT_LIMIT = 200
MAX_ENCODED_WORD = 75  # RFC 2047: an encoded word is at most 75 characters, a line holding one at most 76
MAX_HEADER_LINE = 76
GENERIC_RECOVERY = "recovered"  # the message a clear carries when it says nothing more
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ID_PART = re.compile(r"[A-Za-z0-9-]{1,64}")


class EmailChannel:
    """Sends one plain-text email per alert to all recipients, or with `separately` one to each, recorded and
    retried per address."""

    TEMPLATES = ("title", "body")  # the subject and the text
    wording: Wording = PLAIN

    def __init__(self, name: str, host: str, port: int, security: str, sender: str, recipients: list[str],
                 username: str = "", password: str = "", verify: bool = True, timeout: float = TIMEOUT,
                 separately: bool = False):
        self.name = name
        self.host, self.port, self.security = host, port, security
        self.sender, self.recipients = sender, recipients
        self.separately = separately
        self._username, self._password = username, password
        self.verify = verify
        self.timeout = timeout
        self._domain: str | None = None

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> EmailChannel:
        """Built from [channel.NAME]: host, to (required), port, security, verify, username, password, from,
        separately."""
        host = require(options, "host")
        recipients = list(parse_list(require(options, "to")))
        security = (options.get("security", "").strip() or "starttls").lower()
        if security not in SECURITY_MODES:
            raise SettingError("security", f"must be one of {', '.join(SECURITY_MODES)}, not {security!r}")
        default_port = {"starttls": 587, "ssl": 465, "none": 25}[security]
        port_text = options.get("port", "").strip() or str(default_port)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SettingError("port", f"not a port number: {port_text!r}")
        verify, separately = flag_option(options, "verify", True), flag_option(options, "separately", False)
        sender = options.get("from", "").strip() or f"tray-alerts@{socket.gethostname()}"
        username, password = options.get("username", "").strip(), options.get("password", "")
        for key, value in (("username", username), ("password", password)):
            if not _sendable_credential(value):
                raise SettingError(key, "contains a control character or text that is not valid Unicode, which no "
                                        "SMTP login can send (the value is not shown)")
        return cls(name, host, int(port_text), security, sender, recipients, username, password, verify,
                   separately=separately)

    def message(self, alert: Alert, recipients: list[str] | None = None) -> EmailMessage:
        """Subject `[CRITICAL] disk_full: disk at 95% on /var`; the body has the time, host and context."""
        note = alert.note()
        lines = [alert.message, *([note] if note else []), "", f"event: {alert.event}", f"level: {alert.level.value}",
                 f"state: {'recovered' if alert.resolved else 'firing'}", f"time: {clock(alert.at)}",
                 f"host: {socket.gethostname()}", *context_lines(alert), "", "— tray-alerts"]
        subject_text, body = self.wording.apply(alert, subject(alert), "\n".join(lines))
        if self.wording.title_template is not None:
            subject_text = " ".join(subject_text.split())  # a template's subject: one line
        message = self._new_message(subject_text, recipients or self.recipients)
        message_id, firing_id = self.thread_ids(alert)
        message["Message-ID"] = message_id
        if firing_id:
            message["In-Reply-To"] = firing_id
            message["References"] = firing_id
        _set_body(message, body)
        return message

    def thread_ids(self, alert: Alert) -> tuple[str, str | None]:
        """The alert's Message-ID and, for an escalation, reminder or recovery, its episode's firing's Message-ID."""
        domain = self.domain()
        if not alert.episode:
            return make_msgid(domain=domain), None
        episode = alert.episode if _ID_PART.fullmatch(alert.episode) else \
            hashlib.sha256(alert.episode.encode("utf-8", "replace")).hexdigest()[:32]
        firing = f"<{episode}.firing@{domain}>"
        if alert.resolved:
            return f"<{episode}.resolved@{domain}>", firing
        if alert.reminder:
            return f"<{episode}.reminder-{int(alert.at.timestamp())}@{domain}>", firing
        since = alert.since  # when the episode began: a later `at` makes this an escalation
        if since is None or since >= alert.at:
            return firing, None
        return f"<{episode}.{alert.level.value}@{domain}>", firing  # the level only rises within an episode

    def domain(self) -> str:
        """The Message-ID domain: the host's FQDN, else the sender's domain, else the host name (looked up once)."""
        if self._domain is None:
            candidates = [socket.getfqdn(), parseaddr(self.sender)[1].rpartition("@")[2], socket.gethostname()]
            usable = [name for name in candidates if _DOMAIN.fullmatch(name) and "localhost" not in name.lower()]
            self._domain = ([name for name in usable if "." in name] or usable or ["localhost.localdomain"])[0]
        return self._domain

    def row_recipients(self) -> list[str]:
        """With `separately`, one outbox row per address: one that fails is retried alone, the others not again."""
        return list(self.recipients) if self.separately else []

    def send(self, alert: Alert) -> None:
        """Connect, secure, log in if asked, send; SMTP failures become DeliveryErrors (a test alert goes to each
        address on its own when `separately`)."""
        if not self.separately:
            self._deliver(self.message(alert))
            return
        send_to_each(lambda address: self.send_to(alert, address), self.recipients)

    def send_to(self, alert: Alert, address: str) -> None:
        """The alert's email to one address, in a transaction of its own."""
        if address not in self.recipients:
            raise DeliveryError(f"email {address}: no longer in this channel's to; not sent", retryable=False)
        self._deliver(self.message(alert, [address]), f"email to {address}")

    def send_many(self, alerts: list[Alert]) -> None:
        """Several alerts as one email (storm control groups what piles up)."""
        worst = max((alert.level for alert in alerts if not alert.resolved), default=None)
        message = self._new_message(f"[tray-alerts] {len(alerts)} alerts" + (f", worst {worst.value}" if worst else ""),
                                    self.recipients)
        message["Message-ID"] = make_msgid(domain=self.domain())
        parts = [self.message(alert) for alert in alerts]
        _set_body(message, "\n\n".join(f"{part['Subject']}\n{part.get_content().strip()}" for part in parts))
        self._deliver(message)

    def _new_message(self, subject_text: str, recipients: list[str]) -> EmailMessage:
        """A message with Subject, From, To and Date, under the SMTP policy (CRLF line ends)."""
        message = EmailMessage(policy=email.policy.SMTP)
        message["Subject"] = FoldedHeader("Subject", truncate(subject_text, SUBJECT_LIMIT))
        message["From"] = self.sender
        message["To"] = ", ".join(recipients)
        message["Date"] = formatdate(localtime=True)
        return message

    def _deliver(self, message: EmailMessage, who: str = "email") -> None:
        """Send one message; SMTP failures become DeliveryErrors whose text begins with `who`."""
        try:
            with self._connect() as smtp:
                smtp.set_debuglevel(0)  # a host's class-wide SMTP.debuglevel would print the AUTH lines to stderr
                if self._username:
                    self._login(smtp)
                refused = smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(f"{who}: login refused by {self.host} ({error.smtp_code})", retryable=False) from None
        except smtplib.SMTPRecipientsRefused as error:
            raise DeliveryError(f"{who}: {self.host} refused {_refusals(error.recipients)}",
                                retryable=all(code < 500 for code, _ in error.recipients.values())) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(f"{who}: {self.host} answered {error.smtp_code}",
                                retryable=error.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as error:
            raise DeliveryError(f"{who}: certificate of {self.host} not trusted ({error.verify_message})",
                                retryable=False) from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"{who}: cannot reach {self.host}:{self.port} ({_reason(error)})") from None
        if refused:  # the others have it: trying again would mail them twice (`separately` retries per address)
            raise DeliveryError(f"{who}: {self.host} refused {len(refused)} of {len(message['To'].split(','))} "
                                f"recipients: {_refusals(refused)}; the others have it", retryable=False)

    def _login(self, smtp: smtplib.SMTP) -> None:
        """Log in: smtplib for ASCII credentials, else UTF-8 over AUTH PLAIN or LOGIN (RFC 4616, RFC 4954)."""
        if self._username.isascii() and self._password.isascii():
            smtp.login(self._username, self._password)
            return
        if not _sendable_credential(self._username) or not _sendable_credential(self._password):
            raise DeliveryError("email: the username or password contains text no SMTP login can send",
                                retryable=False)
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        offered = smtp.esmtp_features["auth"].upper().split()
        user, password = self._username.encode("utf-8"), self._password.encode("utf-8")
        if "PLAIN" in offered:
            code, _ = smtp.docmd("AUTH", "PLAIN " + _base64(b"\0" + user + b"\0" + password))
        elif "LOGIN" in offered:
            code, _ = smtp.docmd("AUTH", "LOGIN " + _base64(user))
            if code == 334:
                code, _ = smtp.docmd(_base64(password))
        else:
            raise DeliveryError(f"email: {self.host} offers no login for a non-ASCII username or password "
                                "(that needs AUTH PLAIN or LOGIN)", retryable=False)
        if code not in (235, 503):  # 503: already logged in
            raise smtplib.SMTPAuthenticationError(code, b"")

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


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    """`a@example.org (550)`, one entry per refused address."""
    return ", ".join(f"{address} ({code})" for address, (code, _) in sorted(refused.items()))


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


def subject(alert: Alert) -> str:
    """`[CRITICAL] disk_full: disk at 95% on /var`, `[RESOLVED] disk_full (was CRITICAL): … — recovered after 1 h`."""
    text = " ".join(alert.message.split())
    if not alert.resolved:
        return f"[{alert.tag}] {alert.event}: {text}"
    fired = f"[{alert.tag}] {alert.event} (was {alert.level.value.upper()})"
    lasted = f" — recovered after {duration(alert.firing_for)}" if alert.firing_for is not None else ""
    if not text or text.lower() == GENERIC_RECOVERY:
        return f"{fired}{lasted}"
    return f"{fired}: {truncate(text, max(SUBJECT_LIMIT - len(fired) - len(lasted) - 2, 1))}{lasted}"


class FoldedHeader(str):
    """A header value folded here, written out as is: the str is the text, `folded` the `Name: value` lines."""

    name: str
    folded: str

    def __new__(cls, name: str, value: str) -> FoldedHeader:
        header = super().__new__(cls, value)
        header.name = name
        header.folded = fold_header(name, value)
        return header

    def fold(self, *, policy: Policy) -> str:
        """The folded lines with the policy's line ends (the email package calls this for header objects)."""
        return self.folded.replace("\r\n", policy.linesep) + policy.linesep


def fold_header(name: str, text: str) -> str:
    """`Name: text` as 7-bit lines (CRLF between, none at the end) that decode back to exactly the text."""
    # Plain words stay as they are; the stretch from the first to the last word that is not plain ASCII becomes
    # UTF-8 encoded words, which carry its spaces inside (a decoder drops the space between two encoded words).
    pairs = re.findall(r"( *)([^ ]+)", text)
    needy = [index for index, (_, word) in enumerate(pairs) if _needs_encoding(word)]
    units: list[tuple[str, str]] = []  # (the spaces before, a word that cannot be split)
    if needy:
        first, last = needy[0], needy[-1]
        units += pairs[:first]
        stretch = "".join(spaces + word for spaces, word in pairs[first:last + 1])[len(pairs[first][0]):]
        words = encoded_words(stretch)
        units += [(pairs[first][0] or " ", words[0]), *((" ", word) for word in words[1:])]
        units += pairs[last + 1:]
    else:
        units += pairs
    lines, line = [], f"{name}:"
    for index, (spaces, word) in enumerate(units):
        spaces = spaces or " "  # the first word after the colon
        if index and len(line) + len(spaces) + len(word) > MAX_HEADER_LINE:
            lines.append(line + spaces[1:])  # fold before the last space: a line then holds one space and the word
            spaces = " "
            line = ""
        line += spaces + word
    return "\r\n".join([*lines, line])


def encoded_words(text: str) -> list[str]:
    """The text as RFC 2047 UTF-8 encoded words (Q or B, whichever is shorter) of whole characters each."""
    data = text.encode("utf-8")
    use_b = len(base64.b64encode(data)) < len(_q_encode(data))
    words, chunk = [], b""
    for char in text:
        piece = char.encode("utf-8")
        if chunk and len(_encoded_word(chunk + piece, use_b)) > MAX_ENCODED_WORD:
            words.append(_encoded_word(chunk, use_b))
            chunk = b""
        chunk += piece
    return [*words, _encoded_word(chunk, use_b)]


def _encoded_word(data: bytes, use_b: bool) -> str:
    """One encoded word."""
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?=" if use_b else f"=?utf-8?q?{_q_encode(data)}?="


def _q_encode(data: bytes) -> str:
    """RFC 2047 Q encoding: safe characters as they are, space as `_`, the rest as `=XX`."""
    return "".join("_" if byte == 32 else chr(byte) if byte in _Q_SAFE else f"={byte:02X}" for byte in data)


def _needs_encoding(word: str) -> bool:
    """Whether a word cannot go into a header as it is: not printable ASCII, or looking like an encoded word."""
    return not (word.isascii() and word.isprintable()) or "=?" in word


def _set_body(message: EmailMessage, text: str) -> None:
    """Plain UTF-8 text, quoted-printable when not ASCII, so the message stays 7-bit (no BODY=8BITMIME needed)."""
    if text.isascii():
        message.set_content(text)  # 7bit, or quoted-printable/base64 for over-long lines
    else:
        message.set_content(text, cte="quoted-printable")


def _sendable_credential(text: str) -> bool:
    """Whether a username or password can go out as UTF-8 in an SMTP login (no control characters, no lone
    surrogates: SASLprep, RFC 4013, prohibits the first and UTF-8 cannot carry the second)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(unicodedata.category(char) == "Cc" for char in text)


def _base64(data: bytes) -> str:
    """Base64 as one line of ASCII."""
    return base64.b64encode(data).decode("ascii")

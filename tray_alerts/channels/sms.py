"""Text messages through Twilio's Messages API, capped per hour so a storm cannot run up a bill."""
from __future__ import annotations

import re
import threading
import time
from urllib.parse import quote
from collections import deque
from typing import Mapping

from ..model import Alert
from ..templates import PLAIN, Wording
from ..values import parse_list
from .base import DeliveryError, NotConfigured, SettingError, require
from .http import check_url, post

TWILIO_API = "https://api.twilio.com"
MAX_BODY = 1600  # Twilio's limit for Body: GSM-7 septets, or UTF-16 code units once it is UCS-2
TIMEOUT = 10.0
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")  # Twilio's SID<MG> pattern
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")  # Twilio's SID<AC> pattern: it goes into the request's path

GSM7, UCS2 = "GSM-7", "UCS-2"
# GSM 03.38 default alphabet (0x1B, the escape, left out) and its extension table, whose characters are sent as
# escape + code: two septets. 0x09 is the capital Ç (no ç), 0x24 is ¤ ($ is 0x02), no backtick; FF is 0x1B 0x0A.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_CUT, UCS2_CUT = "...", "…"
# (parts of one message, parts of a concatenated one) per encoding: septets / UTF-16 units per segment
SEGMENT_SIZES = {GSM7: (160, 153), UCS2: (70, 67)}


def septets(char: str) -> int | None:
    """How many GSM-7 septets the character takes (1, or 2 from the extension table), None if it has none."""
    if char in GSM7_BASIC:
        return 1
    if char in GSM7_EXTENSION:
        return 2
    return None


def utf16_units(char: str) -> int:
    """How many UTF-16 code units the character takes (2 outside the BMP: an emoji)."""
    return 2 if ord(char) > 0xFFFF else 1


def encoding(text: str) -> str:
    """GSM-7 when every character is in the GSM 03.38 alphabet or its extension table, else UCS-2."""
    return GSM7 if all(septets(char) is not None for char in text) else UCS2


def length(text: str) -> int:
    """The text's length as Twilio counts it against 1600: septets in GSM-7, UTF-16 code units in UCS-2."""
    if encoding(text) == GSM7:
        return sum(septets(char) or 0 for char in text)
    return sum(utf16_units(char) for char in text)


def fit_body(text: str) -> str:
    """The text within MAX_BODY, cut with `...` where what is kept is GSM-7 (so it stays GSM-7), else with `…`."""
    if length(text) <= MAX_BODY:
        return text
    room = MAX_BODY - len(GSM7_CUT)
    used = 0
    for index, char in enumerate(text):
        size = septets(char)
        if size is None and used < room:
            break  # a non-GSM character within what would be kept: the body is UCS-2 anyway
        if size is None or used + size > room:
            return text[:index] + GSM7_CUT
        used += size
    room = MAX_BODY - len(UCS2_CUT)
    used = 0
    for index, char in enumerate(text):  # whole code points: a surrogate pair is never split
        used += utf16_units(char)
        if used > room:
            return text[:index] + UCS2_CUT
    return text  # not reached: the text is longer than MAX_BODY


def segments(body: str) -> int:
    """How many SMS segments the body is sent as (an escape pair or a surrogate pair never split over two)."""
    name = encoding(body)
    single, part = SEGMENT_SIZES[name]
    sizes = [septets(char) or 0 for char in body] if name == GSM7 else [utf16_units(char) for char in body]
    if sum(sizes) <= single:
        return 1
    count, used = 1, 0
    for size in sizes:
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return count


class SmsChannel:
    """Texts every recipient; at most `max_per_hour` alerts are texted in any hour."""

    TEMPLATES = ("body",)  # a text message has no title
    wording: Wording = PLAIN

    def __init__(self, name: str, account_sid: str, auth_token: str, sender: str | None, recipients: list[str],
                 api_url: str = TWILIO_API, max_per_hour: int = 5, timeout: float = TIMEOUT,
                 messaging_service_sid: str | None = None):
        if (sender is None) == (messaging_service_sid is None):
            raise ValueError("give exactly one of sender and messaging_service_sid")
        self.name = name
        self._auth = (account_sid, auth_token)
        self._url = (f"{check_url('api_url', api_url).rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
                     "/Messages.json")  # quoted: an id of another provider's shape cannot change the path
        self.sender = sender
        self.messaging_service_sid = messaging_service_sid
        self.recipients = recipients
        self.max_per_hour = max_per_hour
        self.timeout = timeout
        self._sent: deque[tuple[float, tuple | None]] = deque()  # (when, which alert) of alerts texted this hour
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> SmsChannel:
        """From [channel.NAME]: account_sid, auth_token, to, from or messaging_service_sid; api_url, max_per_hour."""
        recipients = list(parse_list(require(options, "to")))
        cap_text = options.get("max_per_hour", "").strip() or "5"
        if not cap_text.isdigit():
            raise SettingError("max_per_hour", f"not a whole number: {cap_text!r}")
        account_sid, auth_token = require(options, "account_sid"), require(options, "auth_token")
        api_url = options.get("api_url", "").strip() or TWILIO_API
        if api_url.rstrip("/") == TWILIO_API and not ACCOUNT_SID.fullmatch(account_sid):
            raise SettingError("account_sid", "not an Account SID (AC and 32 hex digits)")  # Twilio's own shape
        sender, service = cls._sender(options)
        return cls(name, account_sid, auth_token, sender, recipients, api_url, int(cap_text),
                   messaging_service_sid=service)

    @staticmethod
    def _sender(options: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(from, None) or (None, messaging_service_sid): exactly one is set, the SID of Twilio's `MG…` shape."""
        sender = options.get("from", "").strip()
        service = options.get("messaging_service_sid", "").strip()
        if sender and service:
            raise SettingError("messaging_service_sid", "set either from or messaging_service_sid, not both")
        if service:
            if not MESSAGING_SERVICE_SID.fullmatch(service):
                raise SettingError("messaging_service_sid", "not a Messaging Service SID (MG and 32 hex digits)")
            return None, service
        if not sender:
            raise NotConfigured("from is empty (and no messaging_service_sid)")
        return sender, None

    @staticmethod
    def body(alert: Alert) -> str:
        """`[CRITICAL] disk_full: disk at 95% on /var (host=…)` within Twilio's 1600 (see fit_body)."""
        context = ", ".join(f"{key}={value}" for key, value in alert.context.items())
        note = alert.note()
        context = f"{note}; {context}" if note and context else note or context
        return fit_body(f"[{alert.tag}] {alert.event}: {alert.message}" + (f" ({context})" if context else ""))

    def text(self, alert: Alert) -> str:
        """The Body sent: the body_template's, else body(), within Twilio's 1600."""
        return fit_body(self.wording.body(alert, self.body(alert)))

    def row_recipients(self) -> list[str]:
        """One outbox row per number: a number that fails is retried alone, the others are not texted again."""
        return list(self.recipients)

    def send(self, alert: Alert) -> None:
        """Text every recipient, within the hourly cap (a test alert; the outbox sends per number)."""
        taken = self._take_quota(None)
        try:
            for number in self.recipients:
                self._post(alert, number)
        except DeliveryError:
            self._return_quota(taken)  # nothing (or not everything) went out: a retry may use it
            raise

    def send_to(self, alert: Alert, number: str) -> None:
        """Text one recipient; an alert counts once against the hourly cap, however many numbers it goes to."""
        taken = self._take_quota((alert.event, alert.episode, alert.at, alert.resolved, alert.reminder))
        try:
            self._post(alert, number)
        except DeliveryError:
            self._return_quota(taken)  # it did not go out: a retry may use it
            raise

    def _post(self, alert: Alert, number: str) -> None:
        sender = {"From": self.sender} if self.sender is not None else \
            {"MessagingServiceSid": self.messaging_service_sid}
        post(self._url, "SMS", self.timeout, auth=self._auth, data={**sender, "To": number, "Body": self.text(alert)})

    def _take_quota(self, key: tuple | None) -> tuple | None:
        """Count an alert against the hourly cap — once for all its numbers when `key` names it — or refuse it
        (recorded in the history, not retried); returns the entry taken (None if the alert had one already)."""
        now = time.monotonic()
        with self._lock:
            while self._sent and now - self._sent[0][0] >= 3600:
                self._sent.popleft()
            if key is not None and any(sent_key == key for _, sent_key in self._sent):
                return None
            if len(self._sent) >= self.max_per_hour:
                raise DeliveryError(f"SMS held back: hourly cap of {self.max_per_hour} alerts reached",
                                    retryable=False)
            entry = (now, key)
            self._sent.append(entry)
        return entry

    def _return_quota(self, entry: tuple | None) -> None:
        if entry is None:
            return
        with self._lock:
            if entry in self._sent:
                self._sent.remove(entry)

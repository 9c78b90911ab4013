"""Text messages through Twilio's Messages API, capped per hour so a storm cannot run up a bill."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Mapping

from ..model import Alert, truncate
from .base import DeliveryError, SettingError, require
from .http import check_url, post

TWILIO_API = "https://api.twilio.com"
MAX_BODY = 1600
TIMEOUT = 10.0


class SmsChannel:
    """Texts every recipient; at most `max_per_hour` alerts are texted in any hour."""

    def __init__(self, name: str, account_sid: str, auth_token: str, sender: str, recipients: list[str],
                 api_url: str = TWILIO_API, max_per_hour: int = 5, timeout: float = TIMEOUT):
        self.name = name
        self._auth = (account_sid, auth_token)
        self._url = f"{check_url('api_url', api_url).rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.sender = sender
        self.recipients = recipients
        self.max_per_hour = max_per_hour
        self.timeout = timeout
        self._sent: deque[tuple[float, tuple | None]] = deque()  # (when, which alert) of alerts texted this hour
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> SmsChannel:
        """Built from [channel.NAME]: account_sid, auth_token, from, to (required), api_url, max_per_hour."""
        recipients = [number.strip() for number in require(options, "to").split(",") if number.strip()]
        cap_text = options.get("max_per_hour", "").strip() or "5"
        if not cap_text.isdigit():
            raise SettingError("max_per_hour", f"not a whole number: {cap_text!r}")
        return cls(name, require(options, "account_sid"), require(options, "auth_token"), require(options, "from"),
                   recipients, options.get("api_url", "").strip() or TWILIO_API, int(cap_text))

    @staticmethod
    def body(alert: Alert) -> str:
        """`[CRITICAL] disk_full: disk at 95% on /var (host=…)` cut to Twilio's 1600 characters."""
        context = ", ".join(f"{key}={value}" for key, value in alert.context.items())
        note = alert.note()
        context = f"{note}; {context}" if note and context else note or context
        return truncate(f"[{alert.tag}] {alert.event}: {alert.message}" + (f" ({context})" if context else ""),
                        MAX_BODY)

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
        post(self._url, "SMS", self.timeout, auth=self._auth,
             data={"From": self.sender, "To": number, "Body": self.body(alert)})

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

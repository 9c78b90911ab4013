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
        self._sent: deque[float] = deque()
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

    def send(self, alert: Alert) -> None:
        """Text every recipient, within the hourly cap."""
        taken = self._take_quota()
        body = self.body(alert)
        try:
            for number in self.recipients:
                post(self._url, "SMS", self.timeout, auth=self._auth,
                     data={"From": self.sender, "To": number, "Body": body})
        except DeliveryError:
            self._return_quota(taken)  # nothing (or not everything) went out: a retry may use it
            raise

    def _take_quota(self) -> float:
        """Count this send against the hourly cap, or refuse it (recorded in the history, not retried)."""
        now = time.monotonic()
        with self._lock:
            while self._sent and now - self._sent[0] >= 3600:
                self._sent.popleft()
            if len(self._sent) >= self.max_per_hour:
                raise DeliveryError(f"SMS held back: hourly cap of {self.max_per_hour} alerts reached",
                                    retryable=False)
            self._sent.append(now)
        return now

    def _return_quota(self, taken: float) -> None:
        with self._lock:
            if taken in self._sent:
                self._sent.remove(taken)

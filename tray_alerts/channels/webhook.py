"""A generic JSON POST of the alert, for ntfy, Discord bridges, n8n and friends."""
from __future__ import annotations

import socket
from typing import Mapping

from ..model import Alert
from .base import SettingError, require
from .http import check_url, post

TIMEOUT = 10.0


class WebhookChannel:
    """POSTs `{event, level, message, context, at, resolved, host}` and the incident (`fingerprint`, `status`,
    `startsAt`, `endsAt` on a recovery) as JSON to `url`."""

    SECRET_KEYS = ("url", "headers")  # webhook URLs and auth headers carry tokens

    def __init__(self, name: str, url: str, headers: Mapping[str, str] | None = None, timeout: float = TIMEOUT):
        self.name = name
        self._url = check_url("url", url)
        self._headers = dict(headers or {})
        self.timeout = timeout

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> WebhookChannel:
        """Built from [channel.NAME]: url (required), headers (one `Name: value` per line)."""
        return cls(name, require(options, "url"), parse_headers(options.get("headers", "")))

    def send(self, alert: Alert) -> None:
        """POST the alert as JSON."""
        post(self._url, "webhook", self.timeout, json=payload(alert, socket.gethostname()), headers=self._headers)


def payload(alert: Alert, host: str) -> dict:
    """The JSON body: the alert, the host, and its incident as receivers that dedupe expect it."""
    started = alert.since or alert.at
    return {**alert.to_dict(), "host": host, "fingerprint": alert.episode,
            "status": "resolved" if alert.resolved else "firing", "startsAt": started.isoformat(),
            **({"endsAt": alert.at.isoformat()} if alert.resolved else {})}


def parse_headers(text: str) -> dict[str, str]:
    """`Name: value` lines (or `;`-separated) as a dict; a line without a colon is a SettingError."""
    headers = {}
    for line in text.replace(";", "\n").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise SettingError("headers", "each header must be `Name: value`")
        headers[key.strip()] = value.strip()
    return headers

"""Slack through an incoming webhook: a coloured attachment with the context, and a plain-text fallback."""
from __future__ import annotations

import socket
from typing import Mapping

from ..display import colour, title
from ..model import Alert
from .base import require
from .http import check_url, post

TIMEOUT = 10.0


class SlackChannel:
    """Posts alerts to one Slack incoming webhook."""

    def __init__(self, name: str, webhook_url: str, username: str = "", timeout: float = TIMEOUT):
        self.name = name
        self._url = check_url("webhook_url", webhook_url)
        self.username = username
        self.timeout = timeout

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> SlackChannel:
        """Built from [channel.NAME]: webhook_url (required), username."""
        return cls(name, require(options, "webhook_url"), options.get("username", "").strip())

    def payload(self, alert: Alert) -> dict:
        """The webhook body: `text` for notifications and old clients, one coloured attachment."""
        note = alert.note()
        fallback = f"{alert.tag} {alert.event}: {alert.message}" + (f" ({note})" if note else "")
        fields = [{"title": str(key), "value": str(value), "short": len(str(value)) < 40}
                  for key, value in alert.context.items()]
        body = {
            "text": fallback,
            "attachments": [{
                "fallback": fallback,
                "color": colour(alert),
                "title": title(alert),
                "text": alert.message + (f"\n_{note}_" if note else ""),
                "fields": fields,
                "footer": f"tray-alerts on {socket.gethostname()}",
                "ts": int(alert.at.timestamp()),
            }],
        }
        if self.username:
            body["username"] = self.username
        return body

    def send(self, alert: Alert) -> None:
        """POST the payload; see channels.http for which failures are retried."""
        post(self._url, "Slack", self.timeout, json=self.payload(alert))

    def send_many(self, alerts: list[Alert]) -> None:
        """Several alerts as one message (storm control groups what piles up): one attachment each."""
        payloads = [self.payload(alert) for alert in alerts]
        worst = max((alert.level for alert in alerts if not alert.resolved), default=None)
        summary = f"{len(alerts)} alerts" + (f", worst {worst.value}" if worst else "")
        body = {"text": f"{summary}: " + "; ".join(p["text"] for p in payloads),
                "attachments": [p["attachments"][0] for p in payloads]}
        if self.username:
            body["username"] = self.username
        post(self._url, "Slack", self.timeout, json=body)

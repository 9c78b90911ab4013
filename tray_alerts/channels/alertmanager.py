"""Push alerts to a team's Prometheus Alertmanager (POST /api/v2/alerts), kept firing there while active here."""
from __future__ import annotations

import re
import socket
import threading
from datetime import datetime, timezone
from typing import Mapping

from ..model import Alert
from .base import duration_option, require
from .http import check_url, post

TIMEOUT = 10.0
DEFAULT_REFRESH = 60.0
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")
_RESERVED = {"alertname", "severity", "instance"}


class AlertmanagerChannel:
    """Posts firing alerts with labels alertname/severity/instance (+ context) and re-posts them every `refresh`
    seconds, since Alertmanager resolves an alert nobody re-sends within its resolve_timeout; a recovery is a
    post with endsAt = now."""

    def __init__(self, name: str, url: str, refresh: float = DEFAULT_REFRESH, timeout: float = TIMEOUT):
        self.name = name
        self._url = check_url("url", url).rstrip("/") + "/api/v2/alerts"
        self.refresh = refresh
        self.timeout = timeout
        self._firing: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._posting = threading.Lock()  # one post at a time: a refresh in flight must not land after a resolve
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> AlertmanagerChannel:
        """Built from [channel.NAME]: url (required), refresh (how often firing alerts are re-posted)."""
        return cls(name, require(options, "url"), duration_option(options, "refresh", "60s"))

    @staticmethod
    def labels(alert: Alert) -> dict[str, str]:
        """alertname = event, severity = level, instance = this host, then the context as labels."""
        labels = {"alertname": alert.event, "severity": alert.level.value, "instance": socket.gethostname()}
        for key, value in alert.context.items():
            name = _LABEL_NAME.sub("_", str(key))
            name = f"_{name}" if not name or name[0].isdigit() else name
            if name not in _RESERVED and not name.startswith("__"):
                labels.setdefault(name, str(value))
        return labels

    def payload(self, alert: Alert, ends: datetime | None = None) -> dict:
        """One alert in Alertmanager's v2 API form."""
        body = {"labels": self.labels(alert), "annotations": {"summary": alert.message},
                "startsAt": alert.at.isoformat()}
        if ends is not None:
            body["endsAt"] = ends.isoformat()
        return body

    def send(self, alert: Alert) -> None:
        """Post a firing (ending any lower-level one of the same event) or a recovery. Alerts that came from an
        Alertmanager through the push API are not sent back, so the two can never feed each other."""
        if alert.context.get("source") == "alertmanager":
            return
        with self._posting:
            now = datetime.now(timezone.utc)
            with self._lock:
                previous = self._firing.get(alert.event)
            batch = []
            if alert.resolved:
                batch.append(previous | {"endsAt": now.isoformat()} if previous else self.payload(alert, now))
            else:
                current = self.payload(alert)
                if previous and previous["labels"] != current["labels"]:
                    batch.append(previous | {"endsAt": now.isoformat()})  # an escalation: end the old severity
                batch.append(current)
            post(self._url, "Alertmanager", self.timeout, json=batch)
            with self._lock:
                if alert.resolved:
                    self._firing.pop(alert.event, None)
                else:
                    self._firing[alert.event] = batch[-1]
        self._ensure_refreshing()

    def resume(self, alerts: list[Alert]) -> None:
        """After a restart: keep refreshing the alerts still active here that this channel was told of."""
        with self._lock:
            for alert in alerts:
                self._firing[alert.event] = self.payload(alert)
        if alerts:
            self._ensure_refreshing()

    def refresh_now(self) -> None:
        """Re-post every firing alert (errors are left for the next round)."""
        with self._posting:
            with self._lock:
                batch = list(self._firing.values())
            if batch:
                post(self._url, "Alertmanager", self.timeout, json=batch)

    def _ensure_refreshing(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._refresh_loop, name=f"{self.name}-refresh", daemon=True)
                self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                self.refresh_now()
            except Exception:  # Alertmanager down for a while: it keeps the alerts until resolve_timeout
                pass

    def close(self) -> None:
        """Stop refreshing."""
        self._stop.set()

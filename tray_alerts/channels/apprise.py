"""Any of Apprise's 100+ services (Telegram, Teams, Pushover, ntfy, Matrix, …) as one channel.

Needs the optional extra: pip install 'tray-alerts[apprise]'.
"""
from __future__ import annotations

import logging
from typing import Mapping

from ..display import context_lines, title
from ..model import Alert, Level
from .base import DeliveryError, NotConfigured, SettingError, require

_TYPES = {Level.INFO: "info", Level.WARNING: "warning", Level.ERROR: "failure", Level.CRITICAL: "failure"}


class AppriseChannel:
    """Sends each alert to every Apprise URL given in `urls` (one per line or comma separated)."""

    SECRET_KEYS = ("urls",)  # Apprise URLs embed tokens and passwords

    def __init__(self, name: str, urls: list[str]):
        try:
            import apprise
        except ImportError:
            raise NotConfigured("needs the apprise package: pip install 'tray-alerts[apprise]'") from None
        logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its log lines can carry the URLs
        self.name = name
        self._apprise = apprise.Apprise()
        for index, url in enumerate(urls, 1):
            if not self._apprise.add(url):
                raise SettingError("urls", f"URL number {index} is not one Apprise understands (check its scheme)")

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> AppriseChannel:
        """Built from [channel.NAME]: urls (required)."""
        urls = [url.strip() for url in require(options, "urls").replace(",", "\n").splitlines() if url.strip()]
        return cls(name, urls)

    def send(self, alert: Alert) -> None:
        """Notify every service; any that refuses makes this a (retryable) failure."""
        body = "\n".join([alert.message, *context_lines(alert)])
        notify_type = "success" if alert.resolved else _TYPES[alert.level]
        if not self._apprise.notify(body=body, title=title(alert), notify_type=notify_type):
            raise DeliveryError("apprise: a service did not accept the notification")

"""Any of Apprise's 100+ services (Telegram, Teams, Pushover, ntfy, Matrix, …) as one channel, one outbox row per URL.

Needs the optional extra: pip install 'tray-alerts[apprise]'.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import re
from typing import Any, Mapping

from ..display import context_lines, title
from ..model import Alert, Level
from ..templates import PLAIN, Wording
from .base import DeliveryError, NotConfigured, SettingError, require, send_to_each

_TYPES = {Level.INFO: "info", Level.WARNING: "warning", Level.ERROR: "failure", Level.CRITICAL: "failure"}
_NAME_SALT = b"tray-alerts/apprise-recipient"  # names are a slow salted hash: a guessed password is costly to check
_NAME_ROUNDS = 20_000
_HTTP_CODE = re.compile(r"\berror=(\d{3})\b")  # how Apprise's HTTP plugins log a refusal: "…, error=400."
_NO_ANSWER = re.compile(r"connection error|timed? ?out", re.IGNORECASE)  # "A Connection error occurred sending …"
_RETRYABLE_4XX = frozenset({408, 425, 429})  # client errors that a later try can get past


def recipient_name(url: str) -> str:
    """`scheme:8 hex digits` for an Apprise URL: stable across restarts and reordering, no part of the URL's text."""
    scheme = re.sub(r"[^a-z0-9+.-]", "", url.partition("://")[0].lower())[:16] or "url"
    digest = hashlib.pbkdf2_hmac("sha256", url.encode("utf-8", "surrogatepass"), _NAME_SALT, _NAME_ROUNDS)
    return f"{scheme}:{digest.hex()[:8]}"


def _quiet_apprise_logger() -> None:
    """Apprise's log lines can carry the URLs: keep them out of the app's log, but let Apprise capture its own."""
    logger = logging.getLogger("apprise")
    logger.setLevel(logging.WARNING)  # Apprise records a service's warnings (its HTTP codes) in the result
    logger.propagate = False
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())  # or logging's last resort prints them to stderr


class AppriseChannel:
    """Sends each alert to every Apprise URL given in `urls` (one per line or comma separated), each on its own."""

    SECRET_KEYS = ("urls",)  # Apprise URLs embed tokens and passwords
    TEMPLATES = ("title", "body")
    wording: Wording = PLAIN

    def __init__(self, name: str, urls: list[str]):
        try:
            import apprise
        except ImportError:
            raise NotConfigured("needs the apprise package: pip install 'tray-alerts[apprise]'") from None
        _quiet_apprise_logger()
        self.name = name
        self._services: dict[str, Any] = {}  # recipient name -> an Apprise holding that one URL
        for index, url in enumerate(urls, 1):
            service = apprise.Apprise()
            if not service.add(url):
                raise SettingError("urls", f"URL number {index} is not one Apprise understands (check its scheme)")
            self._services.setdefault(recipient_name(url), service)  # the same URL twice is notified once
        self._detailed = "log_level" in inspect.signature(apprise.Apprise.notify).parameters  # Apprise 2 results

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> AppriseChannel:
        """Built from [channel.NAME]: urls (required)."""
        urls = [url.strip() for url in require(options, "urls").replace(",", "\n").splitlines() if url.strip()]
        return cls(name, urls)

    def row_recipients(self) -> list[str]:
        """One outbox row per URL, named `scheme:hash`: a URL that fails is retried alone, the others not again."""
        return list(self._services)

    def send(self, alert: Alert) -> None:
        """Notify every URL (a test alert; the outbox sends per URL); retryable if any refusal may pass later."""
        send_to_each(lambda recipient: self.send_to(alert, recipient), self._services)

    def send_to(self, alert: Alert, recipient: str) -> None:
        """Notify one URL; a 4xx its service logged is permanent, anything else (5xx, timeout, refusal) retryable."""
        service = self._services.get(recipient)
        if service is None:
            raise DeliveryError(f"apprise {recipient}: that URL is no longer in this channel's urls; not sent",
                                retryable=False)
        note = alert.note()
        own_body = "\n".join([alert.message, *([note] if note else []), *context_lines(alert)])
        heading, body = self.wording.apply(alert, title(alert), own_body)
        notify_type = "success" if alert.resolved else _TYPES[alert.level]
        if self._detailed:
            result = service.notify(body=body, title=heading, notify_type=notify_type, log_level=logging.WARNING)
        else:
            result = service.notify(body=body, title=heading, notify_type=notify_type)
        try:
            if result:
                return
            codes, unanswered = _refusals(result)
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()  # Apprise 2 may keep captured log lines in a temporary file
        if codes and not unanswered and all(400 <= code < 500 and code not in _RETRYABLE_4XX for code in codes):
            raise DeliveryError(f"apprise {recipient}: the service refused it (HTTP {codes[-1]})", retryable=False)
        reason = f"HTTP {codes[-1]}" if codes else "no HTTP answer, or a refusal Apprise does not detail"
        raise DeliveryError(f"apprise {recipient}: the service did not accept it ({reason})")


def _refusals(result: object) -> tuple[list[int], bool]:
    """The HTTP codes in Apprise's captured warnings, and whether a request went unanswered (none from a bool)."""
    codes: list[int] = []
    unanswered = False
    for service_result in getattr(result, "results", ()):
        for entry in service_result.logs():
            codes.extend(int(code) for code in _HTTP_CODE.findall(entry.message))
            unanswered = unanswered or bool(_NO_ANSWER.search(entry.message))
    return codes, unanswered

"""Keeps configured secrets (webhook URLs, passwords, tokens) out of logs, errors and history."""
from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

MASK = "***"
_MIN_SECRET_LENGTH = 4
_secrets: list[str] = []
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so `redact` masks it; a URL also masks its path and query on their own."""
    if not value:
        return
    candidates = {value}
    parts = urlsplit(value)
    if parts.scheme and parts.netloc:
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail) > 1:
            candidates.add(tail)
        if parts.password:
            candidates.add(parts.password)
    with _lock:
        for candidate in candidates:
            if len(candidate) >= _MIN_SECRET_LENGTH and candidate not in _secrets:
                _secrets.append(candidate)
        _secrets.sort(key=len, reverse=True)


def redact(text: str) -> str:
    """The text with every registered secret replaced by ***."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the final message and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg, record.args = redact(message), None
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True

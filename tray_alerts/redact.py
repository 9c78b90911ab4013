"""Keeps configured secrets (webhook URLs, passwords, tokens) out of logs, errors and history."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable
from urllib.parse import quote, urlsplit

# Besides the app's own handlers (RedactingFilter), every log record of the process is masked as it is made (a
# record factory installed with the first secret): a library's records (urllib3 logs a request's path on its own)
# then reach no handler unmasked, whoever set logging up and whenever.
MASK = "***"
_MIN_SECRET_LENGTH = 4
# Characters requests leaves as they are when it re-quotes a URL (requests.utils.requote_uri).
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"
# Longest first; replaced whole (never sorted in place) so a reader in another thread never sees it half-built.
_secrets: list[str] = []
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so `redact` masks it; a URL also masks its path and query on their own."""
    global _secrets
    if not value:
        return
    candidates = {value}
    parts = urlsplit(value)
    if parts.scheme and parts.netloc:
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail) > 1:
            candidates.update({tail, quote(tail, safe=_URI_SAFE)})
        if parts.password:
            candidates.add(parts.password)
    with _lock:
        new = [candidate for candidate in candidates
               if len(candidate) >= _MIN_SECRET_LENGTH and candidate not in _secrets]
        if new:
            _secrets = sorted(_secrets + new, key=len, reverse=True)
    install_record_masking()


def redact(text: str) -> str:
    """The text with every registered secret replaced by ***."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_record(record: logging.LogRecord) -> None:
    """Mask the secrets in a record's message (its args formatted in first) and traceback; one without is left as is."""
    if not _secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it, with the arguments masked
        record.msg = redact(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(arg)) for arg in record.args)
        elif record.args:
            record.args = {key: redact(str(value)) for key, value in record.args.items()}
    else:
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if redact(text) != text:
            record.exc_text = redact(text)
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)


def _masking_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A record factory that makes the record with `make`, then masks it."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        mask_record(record)
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    return factory


def install_record_masking() -> None:
    """Wrap the process's record factory (chaining the current one) unless it is already ours."""
    with _lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "masks_secrets", False):
            logging.setLogRecordFactory(_masking_factory(current))


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

"""One HTTP POST with the failure rules every HTTP channel shares (429/5xx retry, other 4xx do not)."""
from __future__ import annotations

import base64
import math
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

import requests

from ..redact import redact
from .base import DeliveryError, SettingError

USER_AGENT = "tray-alerts"
MAX_RETRY_AFTER = 3600.0


def check_url(key: str, url: str) -> str:
    """The URL if it is http(s) with a host, else SettingError (the URL itself is never echoed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingError(key, "not an http(s) URL")
    return url


def post(url: str, what: str, timeout: float, **kwargs: Any) -> requests.Response:
    """POST and return a 2xx response; anything else raises DeliveryError with a secret-free reason."""
    host = urlsplit(url).hostname or "?"
    given = kwargs.pop("headers", {})
    headers = {"User-Agent": USER_AGENT, **given}
    try:
        response = requests.post(url, timeout=timeout, headers=headers, **kwargs)
    except requests.Timeout:
        raise DeliveryError(f"{what}: no answer from {host} within {timeout:g} s") from None
    except requests.ConnectionError as error:
        reason = "connection refused" if "refused" in str(error).lower() else "cannot connect"
        raise DeliveryError(f"{what}: {reason} ({host})") from None
    except requests.RequestException as error:
        raise DeliveryError(f"{what}: request failed ({type(error).__name__})", retryable=False) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    # Masked before it is cut: a secret cut in half by the cut would no longer be recognised (and half would show).
    detail = redact(_scrub(" ".join(response.text.split()), url, _credentials(given, kwargs.get("auth"))))[:200]
    if status == 429:
        raise DeliveryError(f"{what}: rate limited by {host} (HTTP 429)", retry_after=retry_after(response))
    if status >= 500:
        raise DeliveryError(f"{what}: {host} answered HTTP {status} {detail}".rstrip(),
                            retry_after=retry_after(response))
    raise DeliveryError(f"{what}: {host} refused the message: HTTP {status} {detail}".rstrip(), retryable=False)


def _credentials(headers: Mapping[str, str], auth: Any) -> set[str]:
    """What the request carried that a server echoing it back must not get into an error: the values of the
    headers the channel added (and their long words: the TOKEN of `Bearer TOKEN`) and Basic auth, as given and as
    sent (base64)."""
    found = set()
    for value in headers.values():
        found.add(str(value).strip())
        found.update(word for word in str(value).split() if len(word) >= 8)
    if isinstance(auth, tuple) and len(auth) == 2:
        user, password = (str(part) for part in auth)
        found.update({user, password, f"{user}:{password}", base64.b64encode(f"{user}:{password}".encode()).decode()})
    return found


def _scrub(text: str, url: str, credentials: Iterable[str] = ()) -> str:
    """The text with the URL's path, query, password and their long pieces masked (servers echo them in errors),
    and any of the request's credentials."""
    parts = urlsplit(url)
    pieces = {parts.path, parts.query, parts.password or "", *credentials}
    pieces.update(piece for part in (parts.path, parts.query) for piece in part.replace("&", "/").replace("=", "/")
                  .split("/") if len(piece) >= 12)
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= 4:
            text = text.replace(piece, "***")
    return text


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header given in seconds (an HTTP date is ignored)."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else None

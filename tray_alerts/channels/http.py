"""One HTTP POST with the failure rules every HTTP channel shares: one overall deadline (connect + send + read),
no redirects followed, 429/5xx retried, other 4xx not, and a precise, secret-free reason for each failure."""
from __future__ import annotations

import base64
import math
import re
import socket
import threading
import time
from typing import Any, Iterable, Mapping
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError
from urllib3.poolmanager import ProxyManager

from ..redact import redact
from .base import DeliveryError, SettingError

USER_AGENT = "tray-alerts"
MAX_RETRY_AFTER = 3600.0
MAX_BODY = 1 << 20  # an answer's body is read up to this much; the rest is left unread
CHUNK = 8192

# how far one delivery got: what a failure at that point means
CONNECTING, SENDING, WAITING, READING = "connecting", "sending", "waiting", "reading"


class UnconfirmedDelivery(DeliveryError):
    """A failure after the request was fully sent: the peer may have acted on it, so a retry may be a repeat."""

    may_have_arrived = True


class _Deadline:
    """One delivery's overall deadline: the phase it reached and the socket to cut when time is up."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.phase = CONNECTING
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        """Arm the watchdog."""
        self._timer.start()

    def stop(self) -> None:
        """Disarm it: the socket is no longer ours to cut."""
        self._timer.cancel()
        with self._lock:
            self._sock = None

    def left(self) -> float:
        """Seconds left (0 when the deadline has passed)."""
        return max(0.0, self.ends - time.monotonic())

    def connected(self, sock: socket.socket | None) -> None:
        """The connection is up (TLS included): from now on the watchdog can cut it."""
        with self._lock:
            self._sock = sock
            self.phase = SENDING
            if self.expired:
                self._cut()

    def bound(self) -> None:
        """Keep the socket's own timeout within the time left."""
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.settimeout(max(self.left(), 0.001))
                except OSError:
                    pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._cut()

    def _cut(self) -> None:
        """Shut the socket down, which wakes a read or write blocked on it in the delivering thread."""
        if self._sock is not None:
            try:
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)  # not SSLSocket's: it would drop its state
            except OSError:
                pass


_current = threading.local()


def _deadline() -> _Deadline | None:
    return getattr(_current, "deadline", None)


class _Watched:
    """Connection mixin reporting to the delivering thread's deadline when it is connected, sent, answered."""

    sock: socket.socket | None

    def connect(self) -> None:
        """Connect, then hand the socket to the deadline."""
        super().connect()  # type: ignore[misc]
        if (deadline := _deadline()) is not None:
            deadline.connected(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Send the request; once it returns the request is fully sent."""
        super().request(*args, **kwargs)  # type: ignore[misc]
        if (deadline := _deadline()) is not None:
            deadline.phase = WAITING

    def getresponse(self) -> Any:
        """Read the status line and headers."""
        response = super().getresponse()  # type: ignore[misc]
        if (deadline := _deadline()) is not None:
            deadline.phase = READING
        return response


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    """A plain connection under a deadline."""


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    """A TLS connection under a deadline."""


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter with connections that report to the deadline (direct and through an HTTP proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The usual pool manager, with watched connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The usual proxy manager, with watched pools (a SOCKS proxy keeps its own: only per-read timeouts)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def check_url(key: str, url: str) -> str:
    """The URL if it is http(s) with a host, else SettingError (the URL itself is never echoed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingError(key, "not an http(s) URL")
    return url


def post(url: str, what: str, timeout: float, **kwargs: Any) -> requests.Response:
    """POST within `timeout` seconds overall and return a 2xx response (its body read); anything else raises
    DeliveryError (UnconfirmedDelivery when it may have arrived) with a secret-free reason."""
    host = urlsplit(url).hostname or "?"
    given = kwargs.pop("headers", {})
    headers = {"User-Agent": USER_AGENT, **given}
    deadline = _Deadline(timeout)
    _current.deadline = deadline
    deadline.start()
    try:
        with requests.Session() as session:
            session.mount("http://", _Adapter())
            session.mount("https://", _Adapter())
            try:
                response = session.post(url, headers=headers, timeout=(timeout, timeout), allow_redirects=False,
                                        stream=True, **kwargs)
            except requests.RequestException as error:
                raise _request_failure(error, deadline, what, host) from None
            with response:
                return _answer(response, deadline, url, what, host, _credentials(given, kwargs.get("auth")))
    finally:
        deadline.stop()
        _current.deadline = None


def _request_failure(error: requests.RequestException, deadline: _Deadline, what: str,
                     host: str) -> DeliveryError:
    """What went wrong before an answer's headers were in, by how far the delivery got."""
    seconds = f"{deadline.seconds:g} s"
    timed_out = deadline.expired or isinstance(error, requests.Timeout)
    if deadline.phase == CONNECTING:
        if isinstance(error, requests.ConnectTimeout) or (timed_out and not isinstance(error, requests.ReadTimeout)):
            return DeliveryError(f"{what}: timed out connecting to {host} ({seconds})")
        if isinstance(error, requests.ReadTimeout):  # connections not watched (a SOCKS proxy): best guess
            return UnconfirmedDelivery(f"{what}: no answer from {host} within {seconds}; it may have arrived")
        if isinstance(error, requests.exceptions.SSLError):
            return DeliveryError(f"{what}: cannot connect to {host} (TLS: {_tls_problem(error)})")
        if isinstance(error, requests.exceptions.ProxyError):
            return DeliveryError(f"{what}: cannot connect to {host} (through the proxy)")
        if _caused_by(error, NameResolutionError, socket.gaierror):
            return DeliveryError(f"{what}: cannot connect to {host} (name not found)")
        if _caused_by(error, ConnectionRefusedError) or "refused" in str(error).lower():
            return DeliveryError(f"{what}: connection refused ({host})")
        if isinstance(error, requests.ConnectionError):
            return DeliveryError(f"{what}: cannot connect to {host}")
    elif deadline.phase == SENDING:
        if timed_out:
            return DeliveryError(f"{what}: {host} did not take the request within {seconds}")
        if isinstance(error, requests.ConnectionError):
            return DeliveryError(f"{what}: {host} closed the connection while the request was being sent")
    elif deadline.phase == WAITING:
        if timed_out:
            return UnconfirmedDelivery(f"{what}: no answer from {host} within {seconds}; it may have arrived")
        if isinstance(error, requests.ConnectionError):
            return UnconfirmedDelivery(f"{what}: {host} closed the connection without answering; it may have arrived")
    return DeliveryError(f"{what}: request failed ({type(error).__name__})", retryable=False)


def _answer(response: requests.Response, deadline: _Deadline, url: str, what: str, host: str,
            credentials: set[str]) -> requests.Response:
    """The response if 2xx (body read within the deadline), else the DeliveryError its status calls for."""
    status = response.status_code
    if 300 <= status < 400:
        raise _redirect(response, url, what, host)
    body = bytearray()
    try:
        _read_body(response, deadline, body)
    except (requests.RequestException, OSError, _Late):
        if 200 <= status < 300:
            how = f"stalled (not complete within {deadline.seconds:g} s)" if deadline.expired or not deadline.left() \
                else "broke off"
            raise UnconfirmedDelivery(f"{what}: {host} answered HTTP {status}, then its body {how}; "
                                      "it may have arrived") from None
    response._content = bytes(body)  # what .content and .text give from now on
    if 200 <= status < 300:
        return response
    # Masked before it is cut: a secret cut in half by the cut would no longer be recognised (and half would show).
    detail = redact(_scrub(" ".join(response.text.split()), url, credentials))[:200]
    if status == 429:
        raise DeliveryError(f"{what}: rate limited by {host} (HTTP 429)", retry_after=retry_after(response))
    if status >= 500:
        raise DeliveryError(f"{what}: {host} answered HTTP {status} {detail}".rstrip(),
                            retry_after=retry_after(response))
    raise DeliveryError(f"{what}: {host} refused the message: HTTP {status} {detail}".rstrip(), retryable=False)


class _Late(Exception):
    """The deadline passed between two reads of a body."""


def _read_body(response: requests.Response, deadline: _Deadline, into: bytearray) -> None:
    """Read the body into `into` (up to MAX_BODY), each read bounded by the time left; _Late when it runs out."""
    deadline.bound()
    for chunk in response.iter_content(CHUNK):
        into += chunk
        if len(into) >= MAX_BODY:
            return
        if deadline.expired or not deadline.left():
            raise _Late()
        deadline.bound()


def _redirect(response: requests.Response, url: str, what: str, host: str) -> DeliveryError:
    """A 3xx is not followed (a POST must not turn into a GET, nor carry its headers to another host): a
    permanent failure naming where it points (its host only: a path may carry a token)."""
    status = response.status_code
    location = response.headers.get("Location", "").strip()
    if not location:
        return DeliveryError(f"{what}: {host} answered HTTP {status} (a redirect without a Location: not followed)",
                             retryable=False)
    try:
        target = urlsplit(urljoin(url, location))
        name, port = target.hostname or "?", target.port
    except ValueError:
        name, port = "?", None
    name = re.sub(r"[^A-Za-z0-9.:\[\]_-]", "?", name)[:100] + (f":{port}" if port else "")
    return DeliveryError(redact(f"{what}: redirect to {name} not followed (HTTP {status} from {host})"),
                         retryable=False)


def _tls_problem(error: BaseException) -> str:
    """A fixed phrase for a TLS failure (the library's text is not echoed)."""
    text = str(error).lower()
    if "certificate_verify_failed" in text or "certificate verify failed" in text:
        return "certificate not trusted" if "hostname" not in text else "certificate is for another host"
    if "hostname" in text and "match" in text:
        return "certificate is for another host"
    if "wrong version number" in text or "record layer" in text:
        return "the peer does not speak TLS"
    return "handshake failed"


def _caused_by(error: BaseException, *kinds: type[BaseException]) -> bool:
    """Whether the error or anything in its chain (causes, contexts, wrapped reasons) is one of `kinds`."""
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kinds):
            return True
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
        todo.extend(arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException))
    return False


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

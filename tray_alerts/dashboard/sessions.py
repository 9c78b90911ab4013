"""Who may see the dashboard: one-time login codes, the sessions they open, and the same-origin check of what a
page asks. The decisions are pure functions; `Sessions` keeps the codes and sessions in memory (never on disk,
never logged: only their SHA-256 is kept as a key)."""
from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..clock import Clock

LOGIN_LIFETIME = 120.0  # seconds (time awake) a login code may be used, once
SESSION_IDLE = 3600.0  # a session ends after an hour without a request (an open page asks every 2 s)
SESSION_MAX = 86400.0  # and a day after its login at the latest
MAX_CODES = 32  # codes not used yet, kept at most (the oldest forgotten first)
MAX_SESSIONS = 32  # sessions kept at most (the one used longest ago ends first)
COOKIE = "tray_alerts_session"
_LOGIN_VALUE = re.compile(r"(login=)[^&\s]*")


@dataclass(frozen=True)
class Session:
    """A browser's session: when its login was, and when it was last used (monotonic seconds)."""

    started: float
    used: float


def code_usable(issued: float | None, now: float, lifetime: float = LOGIN_LIFETIME) -> bool:
    """Whether a login code issued at `issued` (None: unknown or used already) may open a session now."""
    return issued is not None and 0.0 <= now - issued < lifetime


def session_usable(session: Session | None, now: float) -> bool:
    """Whether a session is still open: known, used within SESSION_IDLE, begun within SESSION_MAX."""
    return session is not None and now - session.used < SESSION_IDLE and now - session.started < SESSION_MAX


def own_origin(host: str | None, port: int) -> str | None:
    """The origin a page of this server has when the browser asked for `host` (a Host header already checked to
    be this computer's loopback): `http://127.0.0.1:9977`; None if the Host names another port."""
    if not host:
        return None
    name, colon, given = host.strip().lower().rpartition(":")
    if colon and given.isdigit() and (name.endswith("]") or ":" not in name):
        return f"http://{name}:{port}" if int(given) == port else None
    return f"http://{host.strip().lower()}" if port == 80 else None


def origin_refusal(method: str, origin: str | None, fetch_site: str | None, expected: str | None) -> str | None:
    """Why a request of the dashboard's page is refused as coming from another site, or None. A change (POST)
    needs an Origin that is this server's own; any request that says where it comes from (Sec-Fetch-Site) must
    come from this origin."""
    if fetch_site is not None and fetch_site.strip().lower() != "same-origin":
        return f"refused: the request comes from another site (Sec-Fetch-Site: {fetch_site.strip()[:40]})"
    if method != "GET":
        if not origin:
            return "refused: a change needs the Origin header of the dashboard's own page"
        if expected is None or origin.strip().lower() != expected:
            return f"refused: a change may come only from the dashboard's own page, not from {origin.strip()[:80]}"
    return None


def session_id(cookie_headers: list[str]) -> str | None:
    """The session cookie's value among the Cookie headers (other programs on loopback may set cookies too)."""
    for header in cookie_headers:
        for part in header.split(";"):
            name, equals, value = part.strip().partition("=")
            if equals and name == COOKIE and value:
                return value
    return None


def session_cookie(value: str) -> str:
    """The Set-Cookie value of a new session: only for this server's pages, never readable by a script."""
    return f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/"


def loggable(text: str) -> str:
    """A request line or path with any login code masked, for the log."""
    return _LOGIN_VALUE.sub(r"\1***", text)


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """The login codes and sessions of the running app, in memory; thread-safe (no I/O under its lock)."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self._codes: OrderedDict[str, float] = OrderedDict()  # key -> issued
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # key -> session, used longest ago first
        self._lock = threading.Lock()

    def issue_code(self) -> str:
        """A new one-time login code."""
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[_key(code)] = self.clock.monotonic()
            while len(self._codes) > MAX_CODES:
                self._codes.popitem(last=False)
        return code

    def redeem(self, code: str) -> str | None:
        """A new session's id for a usable code (which is used up, whatever the answer); None if it is not."""
        now = self.clock.monotonic()
        with self._lock:
            issued = self._codes.pop(_key(code), None)
            if not code_usable(issued, now):
                return None
            value = secrets.token_urlsafe(32)
            self._sessions[_key(value)] = Session(now, now)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return value

    def check(self, value: str | None) -> bool:
        """Whether the session is open; a use keeps it open (SESSION_IDLE from now)."""
        if not value:
            return False
        now = self.clock.monotonic()
        key = _key(value)
        with self._lock:
            session = self._sessions.get(key)
            if not session_usable(session, now):
                self._sessions.pop(key, None)
                return False
            assert session is not None
            self._sessions[key] = Session(session.started, now)
            self._sessions.move_to_end(key)
        return True

    def __len__(self) -> int:
        return len(self._sessions)


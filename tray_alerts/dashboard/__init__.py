"""The local dashboard, served by the push API's server on loopback: a page (static files shipped here, no build
step) that shows the active alerts, their incidents, the outbox and channel health, and acknowledges, mutes and
clears. It opens with a one-time login code (`tray-alerts dashboard`) that sets a session cookie; every change
needs that session and must come from the page itself (same origin)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any, Callable, Protocol
from urllib.parse import parse_qs, unquote

from ..clock import Clock
from ..engine import Engine
from ..lifecycle import Clear
from ..model import check_event
from .monitors import MonitorPanel
from .sessions import Sessions, origin_refusal, own_origin, session_cookie, session_id
from .views import snapshot

PREFIX = "/dashboard"
MUTE_FOR = 3600.0  # the page's "Mute 1 h"
CLEARED_HERE = "cleared from the dashboard"
_FILES = {"/dashboard": ("index.html", "text/html; charset=utf-8"),
          "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/dashboard/style.css": ("style.css", "text/css; charset=utf-8")}
_ACTIONS = ("ack", "mute", "clear")
_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
# Only the page's own files; no inline script, no frames (nobody can frame it to trick a click), no referrer.
PAGE_HEADERS = (("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
                 " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
                ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"))
REFUSED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>tray-alerts dashboard</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem">
<h1 style="font-size: 1.3rem">tray-alerts dashboard</h1>
<p>{reason}</p>
<p>Open it with <code>tray-alerts dashboard</code> (it opens the browser with a new one-time login).</p>
</body></html>
"""


class Headers(Protocol):
    """A request's headers (http.client.HTTPMessage)."""

    def get(self, name: str, default: Any = None) -> Any: ...

    def get_all(self, name: str, failobj: Any = None) -> Any: ...


@dataclass(frozen=True)
class Reply:
    """An answer of the dashboard: status, content type, body and extra headers."""

    status: HTTPStatus
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: HTTPStatus, payload: Any) -> Reply:
    return Reply(status, _JSON, json.dumps(payload, ensure_ascii=False).encode(), PAGE_HEADERS)


def _refused(status: HTTPStatus, reason: str, page: bool) -> Reply:
    """A refusal: a short page saying how to open the dashboard, or JSON the page's script understands."""
    if page:
        return Reply(status, _HTML, REFUSED_PAGE.format(reason=reason).encode(), PAGE_HEADERS)
    return _json(status, {"error": reason, "login": True})


class Dashboard:
    """Answers /dashboard, its files, /dashboard/api/state and the page's ack, mute and clear."""

    def __init__(self, engine: Engine, list_alerts: Callable[[], list[dict]], port: int, host: str = "127.0.0.1",
                 clock: Clock | None = None):
        self.engine, self._list_alerts, self.port = engine, list_alerts, port
        self.host = f"[{host}]" if ":" in host else host
        self.sessions = Sessions(clock or engine.clock)
        self.monitors: MonitorPanel | None = None  # the app's monitors (set by the app; none: not shown)

    @staticmethod
    def serves(path: str) -> bool:
        """Whether a path is the dashboard's (answered without the API token)."""
        return path == PREFIX or path.startswith(PREFIX + "/")

    def login_url(self) -> dict[str, str]:
        """A one-time address that opens the dashboard (POST /v1/dashboard/login, with the API token)."""
        return {"url": f"http://{self.host}:{self.port}{PREFIX}?login={self.sessions.issue_code()}"}

    def answer(self, method: str, path: str, query: str, headers: Headers) -> Reply:
        """The answer to one request of a dashboard path (its Host header already checked)."""
        is_page = method == "GET" and path in _FILES
        cookie = session_id(list(headers.get_all("Cookie") or []))
        if is_page and path == PREFIX and "login" in parse_qs(query):
            return self._login(parse_qs(query)["login"][-1], cookie)
        if not self.sessions.check(cookie):
            return _refused(HTTPStatus.FORBIDDEN, "This page needs a login: the address you opened has none, or"
                                                  " its session has ended.", is_page)
        if is_page:
            name, content_type = _FILES[path]
            return Reply(HTTPStatus.OK, content_type, resources.files(__name__).joinpath(name).read_bytes(),
                         PAGE_HEADERS)
        refusal = origin_refusal(method, headers.get("Origin"), headers.get("Sec-Fetch-Site"),
                                 own_origin(headers.get("Host"), self.port))
        if refusal is not None:
            return _json(HTTPStatus.FORBIDDEN, {"error": refusal})
        if path == PREFIX + "/api/state" and method == "GET":
            return _json(HTTPStatus.OK, snapshot(self.engine, self._list_alerts, self.monitors))
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if len(parts) == 5 and parts[:3] == ["dashboard", "api", "alerts"] and parts[4] in _ACTIONS \
                and method == "POST":
            return self._act(parts[3], parts[4])
        return _json(HTTPStatus.NOT_FOUND, {"error": f"no such dashboard endpoint: {method} {path}"})

    def _login(self, code: str, cookie: str | None) -> Reply:
        """A login code opens a session (303 to the page, so the code leaves the address bar); a used or expired
        one is refused, unless this browser has a session already."""
        opened = self.sessions.redeem(code)
        if opened is not None:
            return Reply(HTTPStatus.SEE_OTHER, _HTML, b"", (("Location", PREFIX), ("Set-Cookie", session_cookie(opened)),
                                                           *PAGE_HEADERS))
        if self.sessions.check(cookie):
            return Reply(HTTPStatus.SEE_OTHER, _HTML, b"", (("Location", PREFIX), *PAGE_HEADERS))
        return _refused(HTTPStatus.FORBIDDEN, "This login address was used already or has expired (each one works"
                                              " once, for 2 minutes).", True)

    def _act(self, event: str, action: str) -> Reply:
        """Acknowledge, mute for an hour, or clear one active event."""
        try:
            event = check_event(event)
        except ValueError as error:
            return _json(HTTPStatus.BAD_REQUEST, {"error": f"event: {error}"})
        if event not in {record.event for record in self.engine.active_events()}:
            return _json(HTTPStatus.CONFLICT, {"error": f"{event}: not active (cleared meanwhile?)"})
        if action == "ack":
            return _json(HTTPStatus.OK, self.engine.acknowledge(event, wait=0.0).to_json())
        if action == "mute":
            until = self.engine.clock.time() + MUTE_FOR
            self.engine.mute(event, until)
            return _json(HTTPStatus.OK, {"event": event, "muted_until": until})
        return _json(HTTPStatus.OK, self.engine.submit(Clear(event, CLEARED_HERE), wait=0.0).to_json())

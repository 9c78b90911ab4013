"""The push API: a small HTTP server on 127.0.0.1 so scripts, cron jobs and a team's Alertmanager can raise,
clear and ping. Every request needs the token from the state folder (file mode 0600)."""
from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .engine import Engine
from .lifecycle import Clear, Raise
from .paths import TOKEN_FILE
from .model import (MAX_EVENT_LENGTH, Level, check_event, clean_context, clean_message, context_arguments,
                    truncate)
from .state import StoreFault
from .values import parse_duration

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
MAX_WAIT = 60.0  # ?wait=SECONDS: the longest a caller may wait for the channels' answers
_AM_SEVERITY = {"page": Level.CRITICAL, "critical": Level.CRITICAL, "error": Level.ERROR, "high": Level.ERROR,
                "warning": Level.WARNING, "warn": Level.WARNING, "medium": Level.WARNING, "info": Level.INFO,
                "low": Level.INFO, "none": Level.INFO}


class ApiError(Exception):
    """A request the API refuses, with the HTTP status and a message for the caller."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def load_or_create_token(state_dir: Path) -> str:
    """The API token, made on first use and stored readable by its owner only."""
    path = state_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    if os.name == "posix":
        os.chmod(path, 0o600)
    return token


class PushApi:
    """Serves /v1/alerts, /v1/alerts/EVENT/clear|ack|mute|unmute, /v1/ping/NAME and /v1/alertmanager on loopback."""

    def __init__(self, engine: Engine, token: str, port: int, heartbeats: Callable[[], set[str]] = set,
                 on_ping: Callable[[str], None] | None = None, host: str = "127.0.0.1"):
        self.engine, self._token = engine, token
        self._heartbeats, self._on_ping = heartbeats, on_ping
        api = self

        class Handler(_Handler):
            pass

        Handler.api = api
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="push-api", daemon=True)
        self._thread.start()
        log.info("push API listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        """Stop serving and close the socket (shutdown() would wait forever for a server never started)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def authorised(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._token.encode())

    # ---- routes ----------------------------------------------------------------------------------------

    def route(self, method: str, path: str, body: Any, query: str = "") -> tuple[HTTPStatus, dict | list]:
        wait = _wait(query)
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if parts[:1] != ["v1"]:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
        if parts == ["v1", "alerts"] and method == "GET":
            return HTTPStatus.OK, self.list_alerts()
        if parts == ["v1", "alerts"] and method == "POST":
            return HTTPStatus.OK, self.raise_alert(_object(body), wait)
        if len(parts) == 4 and parts[:2] == ["v1", "alerts"] and parts[3] == "clear" and method == "POST":
            return HTTPStatus.OK, self.clear_alert(parts[2], _object(body, allow_empty=True), wait)
        if len(parts) == 4 and parts[:2] == ["v1", "alerts"] and parts[3] == "ack" and method == "POST":
            return HTTPStatus.OK, self.acknowledge(parts[2])
        if len(parts) == 4 and parts[:2] == ["v1", "alerts"] and parts[3] in ("mute", "unmute") and method == "POST":
            return HTTPStatus.OK, self.mute(parts[2], parts[3] == "mute", _object(body, allow_empty=True))
        if len(parts) == 3 and parts[:2] == ["v1", "ping"] and method == "POST":
            return HTTPStatus.OK, self.ping(parts[2])
        if parts == ["v1", "alertmanager"] and method == "POST":
            return HTTPStatus.OK, self.alertmanager(_object(body))
        if parts == ["v1", "status"] and method == "GET":
            return HTTPStatus.OK, {"app": "tray-alerts", "active": len(self.engine.active())}
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: {method} {path}")

    def list_alerts(self) -> list[dict]:
        mutes = self.engine.mutes()
        return [{**record.alert().to_dict(), "since": record.since, "seen": record.seen,
                 "last_seen": record.last_seen, "muted_until": mutes.get(record.event),
                 "acknowledged": record.acknowledged, "acknowledged_at": record.acknowledged_at}
                for record in self.engine.active_events()]

    def raise_alert(self, body: dict, wait: float = 0.0) -> dict:
        """Raise; answers once it is stored (and, with ?wait=SECONDS, once the channels answered or the wait ran
        out) with what happened and each channel's outcome."""
        event = _field(body, "event", str)
        level = _field(body, "level", str)
        message = _field(body, "message", str)
        context = body.get("context") or {}
        if not isinstance(context, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "field 'context' must be an object")
        request = Raise(_valid("event", check_event, event), _valid("level", Level.parse, level),
                        clean_message(message), clean_context(context_arguments(context)))
        return self.engine.raise_request(request, wait).to_json()

    def clear_alert(self, event: str, body: dict, wait: float = 0.0) -> dict:
        message = body.get("message", "recovered")
        if not isinstance(message, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, "field 'message' must be a string")
        context = body.get("context") or {}
        if not isinstance(context, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "field 'context' must be an object")
        request = Clear(_valid("event", check_event, event), clean_message(message),
                        clean_context(context_arguments(context)))
        return self.engine.submit(request, wait).to_json()

    def acknowledge(self, event: str) -> dict:
        """Someone is on it: the alert stays active and listed, its reminders and pop-ups stop."""
        return self.engine.acknowledge(_valid("event", check_event, event), wait=0.0).to_json()

    def mute(self, event: str, on: bool, body: dict) -> dict:
        """Hold one event's notifications for a while (`{"for": "1h"}`), or stop holding them."""
        until = None
        if on:
            length = body.get("for", "1h")
            try:
                until = self.engine.clock.time() + parse_duration(str(length))
            except ValueError as error:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"field 'for': {error}") from None
        try:
            self.engine.mute(event, until)
        except ValueError as error:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(error)) from None
        return {"event": event, "muted_until": until}

    def ping(self, name: str) -> dict:
        if name not in self._heartbeats():
            raise ApiError(HTTPStatus.NOT_FOUND, f"no heartbeat monitor named {name!r}")
        self.engine.record_ping(name)
        if self._on_ping is not None:
            self._on_ping(name)
        return {"heartbeat": name, "status": "pinged"}

    def alertmanager(self, body: dict) -> dict:
        """An Alertmanager webhook (version 4): each alert is one event (its full label set); a firing one raises,
        a resolved one clears only itself; a bad one is refused alone, with its reason in the answer and the log."""
        alerts = body.get("alerts")
        if not isinstance(alerts, list):
            raise ApiError(HTTPStatus.BAD_REQUEST, "not an Alertmanager webhook: field 'alerts' must be a list")
        taken = [self._am_take(index, item) for index, item in enumerate(alerts)]
        refused = [outcome["refused"] for action, outcome in taken if action == "refused"]
        if alerts and len(refused) == len(alerts):  # nothing taken: a 4xx, so Alertmanager reports it too
            raise ApiError(HTTPStatus.BAD_REQUEST, "no alert taken: " + "; ".join(refused))
        return {"raised": sum(action == "raised" for action, _ in taken),
                "cleared": sum(action == "cleared" for action, _ in taken),
                "refused": len(refused), "alerts": [outcome for _, outcome in taken]}

    def _am_take(self, index: int, item: Any) -> tuple[str, dict]:
        """Raise or clear one alert of a webhook: `raised`, `cleared` or `refused`, and what happened (`event` and
        `status`) or why not (`refused`)."""
        try:
            labels = _am_labels(item)
            event = _am_event(labels)
            resolved = str(item.get("status") or "").lower() == "resolved"
            if resolved:
                result = self.engine.submit(Clear(event, "resolved in Alertmanager"), wait=0.0)
            else:
                result = self.engine.raise_request(_am_raise(event, labels, item), wait=0.0)
        except ValueError as error:
            reason = f"alerts[{index}]: {error}"
            log.warning("Alertmanager alert refused: %s", reason)
            return "refused", {"index": index, "refused": reason}
        return ("cleared" if resolved else "raised"), {"index": index, "event": event, "status": result.kind}


class _Handler(BaseHTTPRequestHandler):
    api: PushApi
    protocol_version = "HTTP/1.1"
    server_version = "tray-alerts"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        self._body_read = False
        try:
            if not self.api.authorised(self.headers.get("Authorization")):
                raise ApiError(HTTPStatus.UNAUTHORIZED, "missing or wrong token (Authorization: Bearer TOKEN; the"
                                                        " token is in the state folder's api-token file)")
            body = self._body() if method == "POST" else None
            url = urlsplit(self.path)
            status, payload = self.api.route(method, url.path, body, url.query)
        except ApiError as error:
            status, payload = error.status, {"error": error.message}
        except StoreFault as fault:  # disk full, locked, read-only: say so; nothing half-done
            status, payload = HTTPStatus.SERVICE_UNAVAILABLE, {"error": fault.reason}
        except Exception as error:  # never let a bad request take the server down
            log.exception("push API: %s %s failed", method, self.path)
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(error).__name__}"}
        if not self._body_read and (self.headers.get("Transfer-Encoding")
                                    or (self.headers.get("Content-Length") or "0").strip() != "0"):
            self.close_connection = True  # a body left unread would be taken for the next request on this connection
        self._reply(status, payload)

    def _body(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not a chunked body")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        self._body_read = True
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer too long to convert
            raise ApiError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {error}") from None
        except RecursionError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is not valid JSON: nested too deeply") from None

    def _reply(self, status: HTTPStatus, payload: dict | list) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="tray-alerts"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("push API: " + format, *args)


_AM_SEPARATOR = " · "
_AM_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AM_HASHED = re.compile(r" #[0-9a-f]{16}")
_AM_HASH_ROOM = len(" #") + 16
_AM_SHOWN_ELSEWHERE = ("alertname", "severity", "instance")  # in the event id and the level, not the context


def _am_labels(item: Any) -> dict[str, str]:
    """An alert's labels as text, without empty ones (Alertmanager drops those too); ValueError says what is wrong."""
    if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
        raise ValueError("needs an object with 'labels'")
    labels: dict[str, str] = {}
    for key, value in item["labels"].items():
        if value is None or value == "":
            continue
        try:
            labels[str(key)] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                                               sort_keys=True)
        except (ValueError, TypeError, RecursionError):  # e.g. an integer too long to write out
            raise ValueError(f"label {truncate(str(key), 40)!r}: value is not usable as text") from None
    return labels


def _am_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's own fingerprint of a label set (FNV-1a 64 over the sorted names and values), 16 hex digits."""
    value = 0xCBF29CE484222325
    for key in sorted(labels):
        for part in (key, labels[key]):
            for byte in part.encode("utf-8", "surrogatepass") + b"\xff":
                value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def _am_event(labels: dict[str, str]) -> str:
    """The event id of one Alertmanager alert, unique to its full label set: `ALERTNAME@INSTANCE · job=node ·
    severity=warning` (other labels sorted); ` #FINGERPRINT` ends it instead when that would be too long or
    ambiguous."""
    name, instance = labels.get("alertname", ""), labels.get("instance", "")
    rest = [(key, labels[key]) for key in sorted(labels) if key not in ("alertname", "instance")]
    readable = (name or "alertmanager") + (f"@{instance}" if instance else "")
    readable += "".join(f"{_AM_SEPARATOR}{key}={value}" for key, value in rest)
    plain = (bool(name.strip()) and "@" not in name and all(_AM_LABEL_NAME.fullmatch(key) for key, _ in rest)
             and not any(_AM_SEPARATOR in part for part in labels.values()) and readable.isprintable()
             and len(readable) <= MAX_EVENT_LENGTH and not _AM_HASHED.fullmatch(readable[-_AM_HASH_ROOM:]))
    if plain:  # can be read back into exactly these labels, so no other label set gives this id
        return check_event(readable)
    shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in readable)
    return check_event(f"{truncate(shown, MAX_EVENT_LENGTH - _AM_HASH_ROOM)} #{_am_fingerprint(labels)}")


def _am_raise(event: str, labels: dict[str, str], item: dict) -> Raise:
    """The raise for one firing alert: its severity as the level, its summary, its labels as the context."""
    annotations = item.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    level = _AM_SEVERITY.get(labels.get("severity", "").lower(), Level.WARNING)
    message = clean_message(str(annotations.get("summary") or annotations.get("description")
                                or labels.get("alertname") or "alertmanager"))
    context = {key: value for key, value in labels.items() if key not in _AM_SHOWN_ELSEWHERE}
    context = context_arguments({**context, "fingerprint": _am_fingerprint(labels), "source": "alertmanager"})
    return Raise(event, level, message, clean_context(context))


def _wait(query: str) -> float:
    """Seconds from `?wait=SECONDS` (0 when absent), or 400 naming the field."""
    values = parse_qs(query).get("wait")
    if not values:
        return 0.0
    try:
        wait = float(values[-1])
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"field 'wait': not a number of seconds: {values[-1]!r}") from None
    if not 0 <= wait <= MAX_WAIT:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"field 'wait': must be between 0 and {MAX_WAIT:g} seconds")
    return wait


def _valid(field: str, check: Callable[[Any], Any], value: Any) -> Any:
    """`check(value)`, or a 400 that names the field and what is wrong with it."""
    try:
        return check(value)
    except ValueError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"field {field!r}: {error}") from None


def _object(body: Any, allow_empty: bool = False) -> dict:
    if body is None and allow_empty:
        return {}
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
    return body


def _field(body: dict, key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"field {key!r} is required and must be a {kind.__name__}")
    return value

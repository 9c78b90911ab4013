"""The push API: a small HTTP server on 127.0.0.1 so scripts, cron jobs and a team's Alertmanager can raise,
clear and ping. Every request needs the token from the state folder (file mode 0600), and a Host header naming
this computer's loopback (127.0.0.1, localhost, [::1]): a web page that rebinds its own name to 127.0.0.1 is
refused.

It holds a burst: a deep listen backlog; one thread that accepts connections and reads each request whole
(non-blocking, with a deadline: a connection that sends nothing, half a request or dawdles is closed after
READ_TIMEOUT); WORKERS threads that answer complete requests, and up to WAITERS more for the requests that wait
for the channels' answers (?wait=SECONDS), so that those never hold up the others. However many connections are
open, the API runs at most 1 + WORKERS + WAITERS threads."""
from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import os
import queue
import re
import secrets
import selectors
import socket
import threading
import time
from collections import OrderedDict
from email.utils import formatdate
from http import HTTPStatus
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .dashboard import Dashboard, Reply
from .dashboard.sessions import loggable
from .engine import Engine
from .lifecycle import Clear, Raise
from .paths import TOKEN_FILE
from .model import (MAX_EVENT_LENGTH, Level, check_event, clean_context, clean_message, context_arguments,
                    truncate)
from .state import StoreFault
from .values import parse_duration, parse_list

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
MAX_HEAD = 64 * 1024  # request line and headers together
MAX_WAIT = 60.0  # ?wait=SECONDS: the longest a caller may wait for the channels' answers
LISTEN_BACKLOG = max(128, socket.SOMAXCONN)  # connections the kernel queues before the accept loop takes them
WORKERS = 8  # threads answering requests (started with the API)
WAITERS = 32  # threads answering requests that wait for the channels (?wait=SECONDS), started as they come
READ_TIMEOUT = 5.0  # seconds a connection has to send a whole request (and a kept-alive one may sit idle)
WRITE_TIMEOUT = 5.0  # seconds an answer may take to be taken by its caller
MAX_CONNECTIONS = 512  # open at once; beyond that the one idle longest is closed
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
_AM_SEVERITY = {"page": Level.CRITICAL, "critical": Level.CRITICAL, "error": Level.ERROR, "high": Level.ERROR,
                "warning": Level.WARNING, "warn": Level.WARNING, "medium": Level.WARNING, "info": Level.INFO,
                "low": Level.INFO, "none": Level.INFO}


class ApiError(Exception):
    """A request the API refuses, with the HTTP status and a message for the caller."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def load_or_create_token(state_dir: Path, name: str = TOKEN_FILE) -> str:
    """A token in the state folder (the API's; or `name`, the metrics one), made on first use and stored
    readable by its owner only."""
    path = state_dir / name
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
                 on_ping: Callable[[str], None] | None = None, host: str = "127.0.0.1", *, workers: int = WORKERS,
                 waiters: int = WAITERS, read_timeout: float = READ_TIMEOUT, write_timeout: float = WRITE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, clock: Callable[[], float] = time.monotonic):
        self.engine, self._token = engine, token
        self._heartbeats, self._on_ping = heartbeats, on_ping
        self.hosts = LOOPBACK_HOSTS | _own_host(host)
        self._refused_hosts: set[str] = set()  # logged once each
        api = self

        class Handler(_Handler):
            pass

        Handler.api = api
        self._server = _Server((host, port), Handler, workers=workers, waiters=waiters, read_timeout=read_timeout,
                               write_timeout=write_timeout, max_connections=max_connections, clock=clock)
        self.port = self._server.server_address[1]
        self.dashboard = Dashboard(engine, self.list_alerts, self.port, host)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in the background (an accept loop and the workers)."""
        self._server.start_workers()
        self._thread = threading.Thread(target=self._server.serve_forever, name="push-api", daemon=True)
        self._thread.start()
        log.info("push API listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        """Stop serving and close the socket and every connection waiting for a request; a request being answered
        is finished and its connection closed."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._server.server_close()

    def threads(self) -> int:
        """How many threads serve the API now (the accept loop, the workers, the waiters started so far)."""
        return self._server.threads() + (self._thread is not None and self._thread.is_alive())

    def connections(self) -> int:
        """How many connections are open now (waiting for a request, or being answered)."""
        return self._server.open

    def refuse_host(self, host: str | None) -> str | None:
        """Why a request with this Host header is refused, or None: only this computer's loopback names pass
        (DNS rebinding: a web page whose own name now resolves to 127.0.0.1 sends that name); none may pass
        (HTTP/1.0)."""
        if host is None or _host_name(host) in self.hosts:
            return None
        shown = truncate(host, 100)
        if len(self._refused_hosts) < 100 and shown not in self._refused_hosts:
            self._refused_hosts.add(shown)
            log.warning("push API: refused a request for Host %r (not this computer's loopback)", shown)
        return (f"Host {shown!r} is not this computer: the push API answers only requests to 127.0.0.1, localhost"
                " or [::1] (a web page that rebinds its name to this computer is refused)")

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
        if parts == ["v1", "dashboard", "login"] and method == "POST":
            return HTTPStatus.OK, self.dashboard.login_url()
        if parts == ["v1", "status"] and method == "GET":
            return HTTPStatus.OK, {"app": "tray-alerts", "active": len(self.engine.active())}
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: {method} {path}")

    def list_alerts(self) -> list[dict]:
        mutes = self.engine.mutes()
        return [{**record.alert().to_dict(), "since": record.since, "seen": record.seen,
                 "last_seen": record.last_seen, "muted_until": mutes.get(record.event),
                 "acknowledged": record.acknowledged, "acknowledged_at": record.acknowledged_at,
                 "depends_on": list(record.depends_on), "inhibited_by": record.inhibited_by}
                for record in self.engine.active_events()]

    def raise_alert(self, body: dict, wait: float = 0.0) -> dict:
        """Raise; answers once it is stored (and, with ?wait=SECONDS, once the channels answered or the wait ran
        out) with what happened and each channel's outcome."""
        event = _field(body, "event", str)
        level = _field(body, "level", str)
        message = _field(body, "message", str)
        if not message.strip():
            raise ApiError(HTTPStatus.BAD_REQUEST, "field 'message' must not be empty: say what happened")
        context = body.get("context") or {}
        if not isinstance(context, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "field 'context' must be an object")
        event = _valid("event", check_event, event)
        request = Raise(event, _valid("level", Level.parse, level), clean_message(message),
                        clean_context(context_arguments(context)), _valid("depends_on", _parents(event),
                                                                          body.get("depends_on")))
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
    """Answers one request read whole by the accept loop (`raw`), into a buffer the worker then sends in one go."""

    api: PushApi
    raw_requestline: bytes  # (set by handle_one_request)
    protocol_version = "HTTP/1.1"
    server_version = "tray-alerts"
    sys_version = ""

    def __init__(self, connection: socket.socket, address: Any, raw: bytes):  # (not BaseRequestHandler's flow)
        self.request, self.client_address = connection, address
        self.rfile = io.BytesIO(raw)
        self.answer = self.wfile = io.BytesIO()
        self.close_connection = True
        self.handle_one_request()

    def handle_expect_100(self) -> bool:
        return True  # the accept loop said 100 Continue when the body had yet to come

    def parse_request(self) -> bool:
        """The request line and headers of a plain HTTP/1.x request, read without the email parser (the cost of
        a request is mostly that parser's); anything unusual goes to http.server's own parsing."""
        after_line = self.rfile.tell()
        if not self._parse_plainly():
            self.rfile.seek(after_line)
            return super().parse_request()
        return True

    def _parse_plainly(self) -> bool:
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0") or words[1].startswith("//"):
            return False
        headers = HTTPMessage()
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.partition(b":")
            if not colon or len(line) > _MAX_LINE or not _TOKEN.fullmatch(name):
                return False  # a folded or odd line, or one too long: http.server says what is wrong
            headers[name.decode("ascii")] = value.strip().decode("iso-8859-1")
        else:
            return False
        self.command, self.path, self.request_version = words
        self.requestline, self.headers = requestline, headers
        connection = headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (words[2] == "HTTP/1.0" and connection != "keep-alive")
        return True

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
        page: Reply | None = None
        try:
            hosts = self.headers.get_all("Host") or []
            if len(hosts) > 1:
                raise ApiError(HTTPStatus.BAD_REQUEST, "more than one Host header")
            refusal = self.api.refuse_host(hosts[0] if hosts else None)
            if refusal is not None:
                raise ApiError(HTTPStatus.FORBIDDEN, refusal)
            url = urlsplit(self.path)
            if self.api.dashboard.serves(url.path):  # a browser's: its session cookie, not the token
                page = self.api.dashboard.answer(method, url.path, url.query, self.headers)
            elif not self.api.authorised(self.headers.get("Authorization")):
                raise ApiError(HTTPStatus.UNAUTHORIZED, "missing or wrong token (Authorization: Bearer TOKEN; the"
                                                        " token is in the state folder's api-token file)")
            else:
                body = self._body() if method == "POST" else None
                status, payload = self.api.route(method, url.path, body, url.query)
        except ApiError as error:
            status, payload = error.status, {"error": error.message}
        except StoreFault as fault:  # disk full, locked, read-only: say so; nothing half-done
            status, payload = HTTPStatus.SERVICE_UNAVAILABLE, {"error": fault.reason}
        except Exception as error:  # never let a bad request take the server down
            log.exception("push API: %s %s failed", method, loggable(self.path))
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(error).__name__}"}
        if not self._body_read and (self.headers.get("Transfer-Encoding")
                                    or (self.headers.get("Content-Length") or "0").strip() != "0"):
            self.close_connection = True  # a body left unread would be taken for the next request on this connection
        if page is not None:
            self._reply_page(page)
        else:
            self._reply(status, payload)

    def _body(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not a chunked body")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
        if length < 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
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
        """An API answer: JSON (a 401 says how to authenticate)."""
        extra = (("WWW-Authenticate", 'Bearer realm="tray-alerts"'),) if status == HTTPStatus.UNAUTHORIZED else ()
        self._reply_page(Reply(status, "application/json; charset=utf-8",
                               json.dumps(payload, ensure_ascii=False).encode(), extra))

    def _reply_page(self, page: Reply) -> None:
        """Write an answer with its own content type and headers (a dashboard's cookie, redirect, content policy)."""
        self.log_request(page.status.value, len(page.body))
        extra = "".join(f"{name}: {value}\r\n" for name, value in page.headers)
        if self.close_connection:
            extra += "Connection: close\r\n"
        head = (f"{self.protocol_version} {page.status.value} {page.status.phrase}\r\nServer: tray-alerts\r\n"
                f"Date: {_http_date()}\r\nContent-Type: {page.content_type}\r\n"
                f"Content-Length: {len(page.body)}\r\n{extra}\r\n")
        self.wfile.write(head.encode("latin-1") + page.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("push API: " + format, *(loggable(arg) if isinstance(arg, str) else arg for arg in args))


_MAX_HEADERS = 100  # as http.server
_MAX_LINE = 65536
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header's value, made once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


def _answer_alone(status: HTTPStatus, message: str) -> bytes:
    """A whole JSON error answer that closes its connection (for what the accept loop refuses itself)."""
    data = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\nServer: tray-alerts\r\n"
            f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode() + data


class _Connection:
    """One client connection: its socket, the bytes it sent that no request took yet, and since when it waits."""

    __slots__ = ("sock", "address", "buffer", "since", "continued")

    def __init__(self, sock: socket.socket, address: Any, since: float):
        self.sock, self.address = sock, address
        self.buffer = bytearray()
        self.since = since  # when it began waiting for its next request (accepted, or its last answer sent)
        self.continued = False  # said 100 Continue to the request in the buffer


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TOO_LARGE = _answer_alone(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request line and headers larger than"
                                                                      f" {MAX_HEAD} bytes")
_TIMED_OUT = _answer_alone(HTTPStatus.REQUEST_TIMEOUT, "the request did not arrive whole in time")


def request_extent(buffer: bytes | bytearray) -> tuple[int | None, bool]:
    """How many bytes of `buffer` make its first request (None: it is not all there yet), and whether the sender
    waits for a 100 Continue before it sends the body. A request whose body will not be read (chunked, too
    large, a bad Content-Length) ends with its headers: the handler answers it and closes the connection."""
    end = _HEAD_END.search(buffer, 0, MAX_HEAD + 4)
    if end is None:
        return (len(buffer) if len(buffer) > MAX_HEAD else None), False
    head = bytes(buffer[:end.start()]).split(b"\n")
    length: bytes | None = None
    chunked = expect = False
    for line in head[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and length is None:
            length = value.strip()
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expect = value.strip().lower() == b"100-continue"
    if chunked or not length:
        return end.end(), False
    try:
        size = int(length)
    except ValueError:
        return end.end(), False
    if not 0 <= size <= MAX_BODY:
        return end.end(), False
    total = end.end() + size
    if len(buffer) >= total:
        return total, False
    return None, expect and head[0].rstrip().endswith(b"HTTP/1.1")


class _Server:
    """The accept loop and the workers. One thread accepts and reads (a selector over the listening socket and
    every connection waiting for a request, each with a deadline); a complete request goes to a worker (or, if it
    waits for the channels, a waiter), which answers it and hands a kept-alive connection back. No lock is held
    across I/O: connections move between the two sides through queues."""

    def __init__(self, address: tuple[str, int], handler: type[_Handler], *, workers: int, waiters: int,
                 read_timeout: float, write_timeout: float, max_connections: int, clock: Callable[[], float]):
        self.handler = handler
        self.read_timeout, self.write_timeout = read_timeout, write_timeout
        self._workers = _Pool("push-api", max(1, workers), self._answer)
        self._waiters = _Pool("push-api-wait", max(1, waiters), self._answer)  # (they mostly sleep: no CPU)
        self.max_connections = max(1, max_connections)
        self.clock = clock
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.create_server(address, family=family, backlog=LISTEN_BACKLOG)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()[:2]
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_in, selectors.EVENT_READ, "wake")
        self._accepting = True
        self._paused_at = 0.0
        self._waiting: OrderedDict[_Connection, None] = OrderedDict()  # oldest since first (the loop's only)
        self.open = 0  # connections open: waiting, queued or being answered (changed by the loop only)
        self._returns: queue.SimpleQueue[tuple[_Connection, bool]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._closed = False

    # ---- the accept loop -----------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(self._timeout()):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._read(key.data)
                self._take_returns()
                now = self.clock()
                self.expire(now)
                self._resume_accepting(now)
        finally:
            for connection in list(self._waiting):
                self._close(connection)
            self._stopped.set()

    def _timeout(self) -> float:
        """How long the loop may sleep: until the oldest waiting connection's deadline (at most a second)."""
        if not self._waiting:
            return 1.0
        oldest = next(iter(self._waiting))
        return min(1.0, max(0.0, oldest.since + self.read_timeout - self.clock()))

    def _accept(self) -> None:
        while self._accepting:
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors: free one, or take no more for a while
                log.warning("push API: could not accept a connection: %s", error)
                if not self._evict():
                    self._pause_accepting()
                return
            sock.setblocking(False)
            self.open += 1
            if self.open > self.max_connections and not self._evict():
                self._pause_accepting()  # every connection is being answered: the backlog holds the next ones
            self._wait(_Connection(sock, address, self.clock()))

    def _evict(self) -> bool:
        """Close the connection waiting longest for its request (idle or dawdling); False if none waits."""
        if not self._waiting:
            return False
        log.debug("push API: %d connections open, closing the one idle longest", self.open)
        self._close(next(iter(self._waiting)))
        return True

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            self._paused_at = self.clock()
            self._selector.unregister(self.socket)

    def _resume_accepting(self, now: float | None = None) -> None:
        """Take connections again once one has closed (or, out of file descriptors, a second later)."""
        if self._accepting or self._stopping.is_set():
            return
        if self.open <= self.max_connections or (now is not None and now - self._paused_at >= 1.0):
            self._accepting = True
            self._selector.register(self.socket, selectors.EVENT_READ, "accept")

    def _wait(self, connection: _Connection) -> None:
        """Wait for the connection's next request: it may be in its buffer already (pipelined), or in the socket
        (a caller sends its request as it connects): a look first saves the selector a round."""
        if self._dispatch(connection):
            return
        received = self._receive(connection)
        if received is None or (received and self._dispatch(connection)):
            return
        self._waiting[connection] = None
        try:
            self._selector.register(connection.sock, selectors.EVENT_READ, connection)
        except (ValueError, OSError):  # closed meanwhile
            self._close(connection)

    def _read(self, connection: _Connection) -> None:
        if self._receive(connection):
            self._dispatch(connection)

    def _receive(self, connection: _Connection) -> bool | None:
        """Take what the caller sent: whether anything came (None: it hung up, and the connection is closed)."""
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return None
        connection.buffer += data
        return True

    def _dispatch(self, connection: _Connection) -> bool:
        """Hand the connection's first request to a worker if it is all there (True)."""
        if not connection.buffer:
            return False
        extent, expects = request_extent(connection.buffer)
        if extent is None:
            if expects and not connection.continued:
                connection.continued = True
                try:
                    connection.sock.send(_CONTINUE)
                except OSError:
                    pass
            return False
        raw = bytes(connection.buffer[:extent])
        del connection.buffer[:extent]
        connection.continued = False
        if self._waiting.pop(connection, False) is None:  # the worker owns it now: the loop no longer watches it
            self._selector.unregister(connection.sock)
        (self._waiters if _waits(raw) else self._workers).put((connection, raw))
        return True

    def expire(self, now: float) -> int:
        """Close the connections that waited READ_TIMEOUT for a whole request (a half-sent one is told 408);
        returns how many."""
        closed = 0
        while self._waiting:
            oldest = next(iter(self._waiting))
            if now < oldest.since + self.read_timeout:
                break
            if oldest.buffer:
                try:
                    oldest.sock.send(_TIMED_OUT)
                except OSError:
                    pass
            self._close(oldest)
            closed += 1
        return closed

    def _take_returns(self) -> None:
        """Connections the workers are done with: kept alive ones wait for their next request."""
        while True:
            try:
                connection, keep = self._returns.get_nowait()
            except queue.Empty:
                return
            if keep and not self._stopping.is_set():
                self._wait(connection)
            else:
                self._close(connection)

    def _close(self, connection: _Connection) -> None:
        if self._waiting.pop(connection, False) is None:
            try:
                self._selector.unregister(connection.sock)
            except (KeyError, ValueError):
                pass
        try:
            connection.sock.close()
        except OSError:
            pass
        self.open -= 1
        self._resume_accepting()

    def _wake(self) -> None:
        try:
            self._wake_out.send(b"\0")
        except (BlockingIOError, OSError):  # full: a wake is pending anyway; closed: stopping
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # ---- the workers ---------------------------------------------------------------------------------------

    def start_workers(self) -> None:
        self._workers.start()

    def threads(self) -> int:
        return self._workers.alive() + self._waiters.alive()

    def _answer(self, connection: _Connection, raw: bytes) -> None:
        """A worker's job: answer one request, then hand the connection back to the loop."""
        keep = False
        try:
            connection.sock.settimeout(self.write_timeout)
            if len(raw) > MAX_HEAD and _HEAD_END.search(raw, 0, MAX_HEAD + 4) is None:
                connection.sock.sendall(_TOO_LARGE)
            else:
                handler = self.handler(connection.sock, connection.address, raw)
                connection.since = self.clock()  # (before the caller has the answer: it may ask again at once)
                connection.sock.sendall(handler.answer.getvalue())
                keep = not handler.close_connection
            if keep:
                connection.sock.setblocking(False)
        except OSError as error:  # the caller went away or does not take its answer
            log.debug("push API: could not answer %s: %s", connection.address, error)
            keep = False
        except Exception:
            log.exception("push API: a request failed")
            keep = False
        self._returns.put((connection, keep))
        self._wake()
        if self._stopped.is_set():  # no loop to take it back
            self._close_returned()

    def _close_returned(self) -> None:
        """Once the loop has stopped: close what the workers hand back."""
        while True:
            try:
                connection, _ = self._returns.get_nowait()
            except queue.Empty:
                return
            try:
                connection.sock.close()
            except OSError:
                pass

    # ---- stopping ------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the loop (it closes the connections waiting for a request) and the workers (each finishes the
        request it answers)."""
        self._stopping.set()
        self._wake()
        self._stopped.wait(5.0)
        self._workers.stop()
        self._waiters.stop()

    def server_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._stopped.set()
        self._close_returned()
        for resource in (self._selector, self.socket, self._wake_in, self._wake_out):
            try:
                resource.close()
            except OSError:
                pass


class _Pool:
    """Threads answering the requests of one queue, `size` of them at most: all started at once (start), or each
    when a request finds none idle."""

    def __init__(self, name: str, size: int, answer: Callable[[_Connection, bytes], None]):
        self.name, self.size, self._answer = name, size, answer
        self._jobs: queue.SimpleQueue[tuple[_Connection, bytes] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards the two below
        self._idle = 0  # threads that will take the next request without another being started
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                self._spawn()
                self._idle += 1

    def put(self, job: tuple[_Connection, bytes]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1  # it is that thread's
            elif len(self._threads) < self.size and not self._stopped:
                self._spawn()  # (else it waits in the queue for the first to be done)
        self._jobs.put(job)

    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self._threads)

    def stop(self) -> None:
        """Each thread ends once done with what it answers."""
        with self._lock:
            self._stopped = True
            count = len(self._threads)
        for _ in range(count):
            self._jobs.put(None)

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads) + 1}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._answer(*job)
            with self._lock:
                self._idle += 1


def _waits(raw: bytes) -> bool:
    """Whether a request asks to wait for the channels' answers (`?wait=SECONDS`, more than 0)."""
    line = raw[:raw.find(b"\n")]
    target = line.split(b" ")[1] if line.count(b" ") >= 2 else b""
    if b"wait=" not in target:
        return False
    try:
        values = parse_qs(urlsplit(target.decode("iso-8859-1")).query).get("wait")
        return values is not None and float(values[-1]) > 0
    except ValueError:
        return False  # the handler says what is wrong with it


def _host_name(host: str) -> str:
    """A Host header's name (port cut off, lower case): `LocalHost:47913` -> `localhost`; `[::1]:80` -> `[::1]`;
    a port that is not a number leaves it as it is (and refused)."""
    host = host.strip().lower()
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and len(port) <= 5 and (name.endswith("]") or ":" not in name):
        return name
    return host


def _own_host(host: str) -> frozenset[str]:
    """The address the API is bound to, as a Host header names it, when it is a loopback address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return frozenset()
    if not address.is_loopback:
        return frozenset()
    return frozenset({f"[{address}]" if address.version == 6 else str(address)})


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


def _parents(event: str) -> Callable[[Any], tuple[str, ...]]:
    """A check of `depends_on`: event ids as a list or as one string `a, b` (absent: none)."""
    def check(value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = list(parse_list(value))
        if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
            raise ValueError("must be event ids, as a list or as one string like 'network, vpn'")
        if event in value:
            raise ValueError(f"an event cannot depend on itself ({event!r})")
        return tuple(check_event(part) for part in value)
    return check


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

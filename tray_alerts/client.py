"""The way to the running app: its push API on 127.0.0.1 with the token from the state folder. Whether the app
runs is decided by its lock on the state folder, never by a connection that failed."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar
from urllib.parse import quote

from .instance import AppRunning, app_running, direct_use
from .paths import TOKEN_FILE

if TYPE_CHECKING:
    from .results import Result

T = TypeVar("T")
CONNECT_PATIENCE = 5.0  # the app holds its lock a moment before its port listens: keep trying this long
MAX_ANSWER = 64 * 1024 * 1024  # bytes of an answer read at most (GET /v1/alerts of very many alerts is large)


class AppNotRunning(Exception):
    """No tray-alerts app holds the state folder."""


class ApiFailed(Exception):
    """The app is running but did not answer, or answered with an error."""


class NotFound(ApiFailed):
    """The app answered 404: no such heartbeat (or endpoint)."""


class ApiClient:
    """Calls the running app's push API (standard library only: quick to start from cron)."""

    def __init__(self, port: int, token: str, timeout: float = 60.0):
        self.port = port
        self._token = token
        self.timeout = timeout

    @classmethod
    def for_app(cls, state_dir: Path, port: int, timeout: float) -> ApiClient:
        """A client for the app running on this state folder; AppNotRunning if none is."""
        if not app_running(state_dir):
            raise AppNotRunning(f"no tray-alerts runs on {state_dir}")
        try:
            token = (state_dir / TOKEN_FILE).read_text().strip()
        except OSError as error:
            raise ApiFailed(f"tray-alerts is running but its API token cannot be read: {error.strerror}") from None
        return cls(port, token, timeout)

    @classmethod
    def for_settings(cls, settings: Any) -> ApiClient:
        """A client for the app these settings run."""
        return cls.for_app(settings.state_dir, settings.api_port, timeout=settings.delivery_timeout * 2 + 10)

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        """One request; ValueError for a 400 (bad input, its message names the field), ApiFailed otherwise."""
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} /v1{path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: Bearer {self._token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode("latin-1")
        deadline = time.monotonic() + CONNECT_PATIENCE
        while True:
            try:
                status, raw = _exchange(self.port, head + data, self.timeout)
                break
            except ConnectionRefusedError:
                if time.monotonic() >= deadline:
                    raise ApiFailed(f"tray-alerts is running but nothing answers on 127.0.0.1:{self.port}") from None
                time.sleep(0.1)
            except (OSError, ValueError) as error:
                raise ApiFailed(f"the running tray-alerts did not answer: {error or type(error).__name__}") from None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise ApiFailed(f"the app answered HTTP {status}") from None
        if status == 400:
            raise ValueError(payload.get("error", "bad request"))
        if status == 404:
            raise NotFound(payload.get("error", "not found"))
        if status != 200:
            raise ApiFailed(f"the app answered HTTP {status}: {payload.get('error', '')}")
        return payload

    def active(self) -> list[dict]:
        """The active alerts, worst first."""
        return self.call("GET", "/alerts")

    def raise_alert(self, event: str, level: str, message: str, context: dict, wait: float = 0.0,
                    depends_on: list[str] | None = None) -> dict:
        body = {"event": event, "level": level, "message": message, "context": context,
                **({"depends_on": depends_on} if depends_on else {})}
        return self.call("POST", f"/alerts?wait={wait:g}", body)

    def clear_alert(self, event: str, message: str, wait: float = 0.0) -> dict:
        return self.call("POST", f"/alerts/{quote(event, safe='')}/clear?wait={wait:g}", {"message": message})

    def acknowledge(self, event: str) -> dict:
        return self.call("POST", f"/alerts/{quote(event, safe='')}/ack", {})

    def mute(self, event: str, length: str | None) -> dict:
        action = "mute" if length else "unmute"
        return self.call("POST", f"/alerts/{quote(event, safe='')}/{action}", {"for": length} if length else {})

    def ping(self, name: str) -> dict:
        return self.call("POST", f"/ping/{quote(name, safe='')}")


def _exchange(port: int, request: bytes, timeout: float) -> tuple[int, bytes]:
    """One HTTP/1.1 request to 127.0.0.1:port and its status and body (the socket module only: http.client would
    bring in email and ssl, a fifth of a quick command's time). ValueError for an answer that is not HTTP."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))  # an address, not a name: no resolver (nor its idna codec) involved
        sock.sendall(request)
        received = bytearray()
        while b"\r\n\r\n" not in received:
            if not _receive(sock, received):
                raise ValueError("the connection closed before an answer")
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {lines[0][:60]!r}")
        fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = fields.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_ANSWER:
            raise ValueError(f"an answer without a usable Content-Length ({length or 'none'})")
        answer = bytearray(body)
        while len(answer) < int(length):
            if not _receive(sock, answer):
                raise ValueError("the connection closed in the middle of the answer")
        return int(parts[1]), bytes(answer[:int(length)])


def _receive(sock: socket.socket, into: bytearray) -> bool:
    """Append what the socket has (waiting up to its timeout); False at the end of the stream."""
    chunk = sock.recv(65536)
    into += chunk
    return bool(chunk)


def app_or_here(settings: Any, via_app: Callable[[ApiClient], T], here: Callable[[], T]) -> tuple[T, bool]:
    """`via_app` through the running app when it holds the state folder, else `here` on the state itself (an app
    that starts meanwhile waits for it); its answer and whether it went through the app."""
    for _ in range(2):
        try:
            client = ApiClient.for_settings(settings)
        except AppNotRunning:
            try:
                with direct_use(settings.state_dir):
                    return here(), False
            except AppRunning:  # it started meanwhile: go through it
                continue
        return via_app(client), True
    raise ApiFailed("tray-alerts started and stopped while this ran; try again")


def through_app_or_here(settings: Any, via_app: Callable[[ApiClient], dict],
                        here: Callable[[], Result]) -> tuple[Result, bool]:
    """A raise or clear through the running app (its answer as a Result), else `here` on the state file itself."""
    from .results import Result

    answer, via = app_or_here(settings, lambda client: Result.from_json(via_app(client)), here)
    return answer, via

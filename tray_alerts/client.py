"""The way to the running app: its push API on 127.0.0.1 with the token from the state folder. Whether the app
runs is decided by its lock on the state folder, never by a connection that failed."""
from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from .instance import AppRunning, app_running, direct_use
from .paths import TOKEN_FILE
from .results import Result
CONNECT_PATIENCE = 5.0  # the app holds its lock a moment before its port listens: keep trying this long


class AppNotRunning(Exception):
    """No tray-alerts app holds the state folder."""


class ApiFailed(Exception):
    """The app is running but did not answer, or answered with an error."""


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
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        deadline = time.monotonic() + CONNECT_PATIENCE
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                connection.request(method, "/v1" + path, body=data, headers=headers)
                response = connection.getresponse()
                status, raw = response.status, response.read()
                break
            except ConnectionRefusedError:
                if time.monotonic() >= deadline:
                    raise ApiFailed(f"tray-alerts is running but nothing answers on 127.0.0.1:{self.port}") from None
                time.sleep(0.1)
            except (OSError, http.client.HTTPException) as error:
                raise ApiFailed(f"the running tray-alerts did not answer: {error or type(error).__name__}") from None
            finally:
                connection.close()
        try:
            payload = json.loads(raw)
        except ValueError:
            raise ApiFailed(f"the app answered HTTP {status}") from None
        if status == 400:
            raise ValueError(payload.get("error", "bad request"))
        if status != 200:
            raise ApiFailed(f"the app answered HTTP {status}: {payload.get('error', '')}")
        return payload

    def raise_alert(self, event: str, level: str, message: str, context: dict, wait: float = 0.0) -> dict:
        body = {"event": event, "level": level, "message": message, "context": context}
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


def through_app_or_here(settings: Any, via_app: Callable[[ApiClient], dict],
                        here: Callable[[], Result]) -> tuple[Result, bool]:
    """A raise or clear through the running app when it holds the state folder, else `here` on the state file
    itself (an app that starts meanwhile waits for it); the result and whether it went through the app."""
    for _ in range(2):
        try:
            client = ApiClient.for_settings(settings)
        except AppNotRunning:
            try:
                with direct_use(settings.state_dir):
                    return here(), False
            except AppRunning:  # it started meanwhile: go through it
                continue
        return Result.from_json(via_app(client)), True
    raise ApiFailed("tray-alerts started and stopped while this ran; try again")

"""The command line's way to the running app: the push API on 127.0.0.1 with the token from the state folder."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from .api import TOKEN_FILE
from .config import Settings


class AppNotRunning(Exception):
    """No tray-alerts answers on the API port (or it has no token yet)."""


class ApiFailed(Exception):
    """The app answered with an error."""


class ApiClient:
    """Calls the running app's push API."""

    def __init__(self, port: int, token: str, timeout: float = 60.0):
        self.base = f"http://127.0.0.1:{port}/v1"
        self._headers = {"Authorization": f"Bearer {token}"}
        self.timeout = timeout

    @classmethod
    def for_settings(cls, settings: Settings) -> ApiClient:
        """A client for the app these settings run; AppNotRunning if it never made a token."""
        try:
            token = (settings.state_dir / TOKEN_FILE).read_text().strip()
        except OSError:
            raise AppNotRunning("no API token yet") from None
        return cls(settings.api_port, token, timeout=settings.delivery_timeout * 2 + 10)

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        try:
            response = requests.request(method, self.base + path, json=body, headers=self._headers,
                                        timeout=self.timeout)
        except requests.ConnectionError:
            raise AppNotRunning("nothing answers on the API port") from None
        try:
            payload = response.json()
        except ValueError:
            raise ApiFailed(f"the app answered HTTP {response.status_code}") from None
        if response.status_code == 400:
            raise ValueError(payload.get("error", "bad request"))
        if response.status_code != 200:
            raise ApiFailed(f"the app answered HTTP {response.status_code}: {payload.get('error', '')}")
        return payload

    def raise_alert(self, event: str, level: str, message: str, context: dict) -> dict:
        return self.call("POST", "/alerts", {"event": event, "level": level, "message": message, "context": context})

    def clear_alert(self, event: str, message: str) -> dict:
        return self.call("POST", f"/alerts/{quote(event, safe='')}/clear", {"message": message})

    def mute(self, event: str, length: str | None) -> dict:
        action = "mute" if length else "unmute"
        return self.call("POST", f"/alerts/{quote(event, safe='')}/{action}", {"for": length} if length else {})

    def ping(self, name: str) -> dict:
        return self.call("POST", f"/ping/{quote(name, safe='')}")

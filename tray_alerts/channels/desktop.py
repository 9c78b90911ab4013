"""Desktop pop-ups through plyer (notify-send on Linux without dbus-python); the only module using plyer."""
from __future__ import annotations

import html
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from ..display import title
from ..icons import level_icon_path
from ..model import Alert, Level, truncate
from .base import DeliveryError, duration_option

APP_NAME = "tray-alerts"
MAX_BODY = 1000
NO_DAEMON = "no notification daemon is running (nothing serves org.freedesktop.Notifications on the session bus)"


class DesktopChannel:
    """Shows `WARNING · disk_full` with the message and context; a recovery pops up as RESOLVED."""

    stateless = True  # needs no state to deliver: told directly while the state file cannot be written

    def __init__(self, name: str = "desktop", timeout: float = 10.0):
        self.name = name
        self.timeout = timeout

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, str]) -> DesktopChannel:
        """Built from [channel.NAME]: timeout (how long a pop-up stays)."""
        return cls(name, duration_option(options, "timeout", "10s"))

    @staticmethod
    def body(alert: Alert) -> str:
        """The message, then one `key: value` line per context item."""
        note = alert.note()
        lines = [alert.message, *([note] if note else []), *(f"{key}: {value}" for key, value in alert.context.items())]
        return truncate("\n".join(lines), MAX_BODY)

    def send(self, alert: Alert) -> None:
        """Show the pop-up, or raise a non-retryable DeliveryError saying what is missing."""
        icon = level_icon_path(None if alert.resolved else alert.level)
        body = self.body(alert)
        if sys.platform.startswith("linux"):
            problem = linux_notification_problem()
            if problem:
                raise DeliveryError(f"desktop: {problem}", retryable=False)
            # Notification servers read the body as markup: escape it so `<none>` or `a & b` show as written.
            body = html.escape(body, quote=False)
            if not _has_dbus_python():
                self._notify_send(alert, body, icon)
                return
        self._plyer(alert, body, icon)

    def _plyer(self, alert: Alert, body: str, icon: Path) -> None:
        from plyer import notification

        try:
            notification.notify(title=title(alert), message=body, app_name=APP_NAME,
                                app_icon=str(icon), timeout=int(self.timeout))
        except Exception as error:  # DBusException, NotImplementedError on an unsupported platform, …
            reason = (NO_DAEMON if _no_daemon(str(error))
                      else f"no notification service answered ({type(error).__name__})")
            raise DeliveryError(f"desktop: {reason}", retryable=False) from None

    def _notify_send(self, alert: Alert, body: str, icon: Path) -> None:
        urgency = "critical" if alert.level == Level.CRITICAL and not alert.resolved else "normal"
        command = ["notify-send", f"--app-name={APP_NAME}", f"--icon={icon}", f"--urgency={urgency}",
                   f"--expire-time={int(self.timeout * 1000)}", "--", title(alert), body]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=max(5.0, self.timeout))
        except subprocess.TimeoutExpired:
            raise DeliveryError("desktop: notify-send did not answer") from None
        if done.returncode != 0:
            reason = " ".join(done.stderr.split())[:200] or f"exit code {done.returncode}"
            raise DeliveryError(f"desktop: {NO_DAEMON if _no_daemon(reason) else 'notify-send failed: ' + reason}",
                                retryable=False)


def linux_notification_problem() -> str | None:
    """Why pop-ups cannot work here (no session bus, no notify-send or dbus-python), or None."""
    runtime_bus = Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / "bus"
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not runtime_bus.exists():
        return "no session D-Bus to show pop-ups on (DBUS_SESSION_BUS_ADDRESS is not set)"
    if not _has_dbus_python() and shutil.which("notify-send") is None:
        return "no notification tool: install notify-send (Debian/Ubuntu: libnotify-bin) or dbus-python"
    return None


def _no_daemon(error_text: str) -> bool:
    """Whether a D-Bus error says nothing serves notifications."""
    return "ServiceUnknown" in error_text or "not provided by any .service" in error_text


def _has_dbus_python() -> bool:
    return importlib.util.find_spec("dbus") is not None

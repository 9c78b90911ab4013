"""tray-alerts: debounced, routed desktop alerting; `raise_alert`, `clear_alert` and `acknowledge` for scripts."""
from __future__ import annotations

import atexit
import threading
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channels.base import DeliveryError
    from .config import Settings
    from .engine import Engine
    from .model import Alert, Level
    from .results import ChannelOutcome, Result
    from .routing import Routing

    RaiseResult = Result

__version__ = "0.1.0"
__all__ = ["Alert", "ChannelOutcome", "DeliveryError", "Engine", "Level", "RaiseResult", "Result", "Routing",
           "acknowledge", "clear_alert", "default_engine", "raise_alert"]

# Imported on first use (PEP 562), so that `tray-alerts raise` with the app running loads none of the engine.
_LAZY = {"Alert": ".model", "ChannelOutcome": ".results", "DeliveryError": ".channels.base", "Engine": ".engine",
         "Level": ".model", "RaiseResult": ".results:Result", "Result": ".results", "Routing": ".routing"}

_default: Engine | None = None
_settings: Settings | None = None
_default_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """`tray_alerts.Engine` and the other public names, imported when first asked for."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'tray_alerts' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(import_module(module, __name__), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _user_settings() -> Settings:
    """The user's settings, read once per process."""
    global _settings
    with _default_lock:
        if _settings is None:
            from .config import load_settings

            _settings = load_settings()
        return _settings


def default_engine() -> Engine:
    """The process-wide Engine built from the settings file on first use (for when no app runs)."""
    global _default
    settings = _user_settings()
    with _default_lock:
        if _default is None:
            from .wiring import build_engine

            _default = build_engine(settings)
            atexit.register(_default.close)
        return _default


def raise_alert(event: str, level: Level | str, message: str, **context: Any) -> Result:
    """Raise an alert: through the running app when it is up (the tray shows it at once), else through the
    default Engine on the same state file (see Engine.raise_alert)."""
    from .client import through_app_or_here
    from .model import Level

    settings, name = _user_settings(), Level.parse(level).value
    result, _ = through_app_or_here(
        settings, lambda client: client.raise_alert(event, name, message, context, wait=settings.delivery_timeout),
        lambda: default_engine().raise_alert(event, level, message, **context))
    return result


def clear_alert(event: str, message: str = "recovered") -> Result:
    """Clear an alert, through the running app when it is up (see Engine.clear_alert)."""
    from .client import through_app_or_here

    settings = _user_settings()
    result, _ = through_app_or_here(
        settings, lambda client: client.clear_alert(event, message, wait=settings.delivery_timeout),
        lambda: default_engine().clear_alert(event, message))
    return result


def acknowledge(event: str) -> Result:
    """Acknowledge an active alert (it stays active; reminders and its pop-up stop until it escalates), through
    the running app when it is up (see Engine.acknowledge)."""
    from .client import through_app_or_here

    result, _ = through_app_or_here(_user_settings(), lambda client: client.acknowledge(event),
                                    lambda: default_engine().acknowledge(event))
    return result

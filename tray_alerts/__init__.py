"""tray-alerts: debounced, routed desktop alerting. `raise_alert` / `clear_alert` are all a script needs."""
from __future__ import annotations

import atexit
import threading
from typing import Any

from .channels.base import DeliveryError
from .engine import Engine
from .model import Alert, Level
from .routing import Routing

__version__ = "0.1.0"
__all__ = ["Alert", "DeliveryError", "Engine", "Level", "Routing", "clear_alert", "default_engine", "raise_alert"]

_default: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The process-wide Engine built from the settings file on first use."""
    global _default
    with _default_lock:
        if _default is None:
            from .config import load_settings
            from .wiring import build_engine

            _default = build_engine(load_settings())
            atexit.register(_default.close)
        return _default


def raise_alert(event: str, level: Level | str, message: str, **context: Any) -> dict[str, bool]:
    """Raise an alert through the default Engine (see Engine.raise_alert)."""
    return default_engine().raise_alert(event, level, message, **context)


def clear_alert(event: str, message: str = "recovered") -> dict[str, bool]:
    """Clear an alert through the default Engine (see Engine.clear_alert)."""
    return default_engine().clear_alert(event, message)

"""Work handed to a short-lived thread, so a slow call never holds up the caller (the bus loop, the GUI, a
transaction's aftermath); a failure is logged with what it was, never raised."""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


def in_background(function: Callable[..., object], *args: object, name: str, what: str) -> None:
    """Run `function(*args)` on a daemon thread named `name`; a failure is logged as `what failed`."""
    def run() -> None:
        try:
            function(*args)
        except Exception:
            log.exception("%s failed", what)

    threading.Thread(target=run, name=name, daemon=True).start()

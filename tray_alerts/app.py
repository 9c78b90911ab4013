"""Wiring for the long-running app: settings -> logging, channels, engine -> run until asked to stop."""
from __future__ import annotations

import logging
import signal
import threading

from .config import Settings
from .logsetup import configure_logging
from .wiring import build_channels, build_engine

log = logging.getLogger(__name__)


def run_headless(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run the engine with no tray until Ctrl-C, SIGTERM or `stop` is set; returns the exit code."""
    configure_logging(settings.log_file, settings.log_level)
    channels = build_channels(settings)
    engine = build_engine(settings, channels)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    ready = ", ".join(channels.ready) or "none"
    log.info("tray-alerts running headless; channels ready: %s; state: %s", ready, settings.state_path)
    for name, reason in channels.unavailable.items():
        log.info("channel %s %s", name, reason)
    print(f"tray-alerts running headless (channels: {ready}) — Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        engine.close()
        log.info("tray-alerts stopped")
    return 0

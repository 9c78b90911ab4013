"""The long-running app: settings -> logging, channels, engine, monitors, push API -> run until asked to stop."""
from __future__ import annotations

import errno
import logging
import signal
import threading
import webbrowser
from typing import TYPE_CHECKING, Callable
from urllib.parse import quote

from .api import PushApi, load_or_create_token
from .clock import Clock
from .config import Settings
from .dashboard.monitors import MonitorPanel
from .instance import AlreadyRunning, InstanceLock
from .logind import LogindWatch
from .logsetup import configure_logging
from .monitors.heartbeat import HeartbeatMonitor
from .opening import open_target, web_url
from .paths import METRICS_TOKEN_FILE
from .sleep import SleepTracker
from .wiring import build_channels, build_engine, build_runner

if TYPE_CHECKING:
    from .metrics import MetricsServer

log = logging.getLogger(__name__)
POP_UP_MUTE = 3600.0  # a pop-up's "Mute 1 h"

__all__ = ["AlreadyRunning", "App", "PortTaken", "run_headless"]


def port_problem(port: int, error: OSError, host: str = "127.0.0.1", setting: str = "[alerts] api_port") -> str:
    """Why a listener cannot listen: `port 9977 on 127.0.0.1 is in use by another program (set [alerts]
    api_port)`, or the system's reason for anything else."""
    if error.errno in (errno.EADDRINUSE, errno.EACCES):
        return f"port {port} on {host} is in use by another program (set {setting})"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


class PortTaken(Exception):
    """Another program listens on the push API's port."""


class App:
    """Everything that runs in the background: engine (with its outbox), monitor threads and the push API.
    Holds the state folder's lock while it exists: one app per state folder. Suspend and resume are noticed from
    logind on the system bus (`system_bus`: its address, else the standard one) and from the clock."""

    def __init__(self, settings: Settings, on_change: Callable[[], None] | None = None,
                 lock: InstanceLock | None = None, *, clock: Clock | None = None, system_bus: str | None = None):
        self.settings = settings
        self.lock = lock or InstanceLock(settings.state_dir)
        if lock is None:
            self.lock.acquire()
        try:
            self.channels = build_channels(settings)
            self.engine = build_engine(settings, self.channels, clock=clock)
        except BaseException:
            self.lock.release()
            raise
        self.sleeps = SleepTracker(self.engine.clock, settings.resume_grace, on_new=self.engine.outbox.wake.set)
        self.engine.background.lookouts.append(self.note_sleeps)
        self.logind = LogindWatch(self.on_prepare_for_sleep, system_bus)
        self.runner = build_runner(settings, self.engine, on_change, self.sleeps)
        self.on_open: Callable[[str], None] | None = None  # the tray shows an alert's details
        for channel in self.channels.ready.values():
            if hasattr(channel, "on_action"):  # pop-ups with buttons
                channel.on_action = self.pop_up_action  # type: ignore[attr-defined]
        self.quiet_channels = frozenset(name for name, spec in settings.channels.items() if spec.type == "log")
        heartbeats = {name for name, spec in settings.monitors.items() if isinstance(spec.monitor, HeartbeatMonitor)}
        try:
            self.api = PushApi(self.engine, load_or_create_token(settings.state_dir), settings.api_port,
                               heartbeats=lambda: heartbeats, on_ping=self.runner.check_now)
        except OSError as error:
            self.engine.close()
            self.lock.release()
            raise PortTaken(port_problem(settings.api_port, error)) from None
        self.api.dashboard.monitors = MonitorPanel(self.runner.statuses, self.engine.store, self.engine.clock)
        try:
            self.metrics = self._metrics_server()
        except PortTaken:
            self.api.stop()
            self.engine.close()
            self.lock.release()
            raise

    def _metrics_server(self) -> MetricsServer | None:
        """GET /metrics for a team's Prometheus, when [metrics] is on (its token made on first use)."""
        metrics = self.settings.metrics
        if not metrics.enabled:
            return None
        from .metrics import MetricsServer, read_snapshot  # prometheus_client is imported only when it is used

        token = load_or_create_token(self.settings.state_dir, METRICS_TOKEN_FILE)
        try:
            return MetricsServer(metrics.host, metrics.port, token,
                                 lambda: read_snapshot(self.engine, self.runner.statuses()))
        except OSError as error:
            raise PortTaken(port_problem(metrics.port, error, metrics.host, "[metrics] address")) from None

    def on_prepare_for_sleep(self, going_to_sleep: bool) -> None:
        """logind's PrepareForSleep (on the D-Bus loop: it only notes the time; the history is written later)."""
        if going_to_sleep:
            self.sleeps.going_to_sleep()
        else:
            self.sleeps.resumed()

    def note_sleeps(self) -> None:
        """Each engine pass: a clock jump seen as a sleep, and one history line for each sleep not written yet."""
        self.sleeps.look()
        while (sleep := self.sleeps.take_unwritten()) is not None:
            try:
                self.engine.record_sleep(sleep.start, sleep.end)
            except BaseException:  # a StoreFault: the pass logs it, and the sleep waits for a later one
                self.sleeps.unwritten_again(sleep)
                raise

    def pop_up_action(self, event: str, action: str) -> None:
        """A pop-up's button: `ack` acknowledges, `mute` mutes for an hour, `default` (Open) opens the alert's
        `url` from its context, else the tray's details of it."""
        if action in ("ack", "mute") and event not in {record.event for record in self.engine.active_events()}:
            log.info("pop-up action %s for %s: it is no longer active", action, event)
        elif action == "ack":
            self.engine.acknowledge(event, wait=0.0)
        elif action == "mute":
            self.engine.mute(event, self.engine.clock.time() + POP_UP_MUTE)
        elif action == "default":
            self.open_event(event)
        else:
            log.warning("pop-up action %r for %s: not one tray-alerts offers", action, event)

    def open_event(self, event: str) -> None:
        """Open what an alert points at (an http(s) `url` in its context), else the dashboard at the alert; where
        no browser opens, ask the tray to show it."""
        record = next((r for r in self.engine.active_events() if r.event == event), None)
        url = web_url(record.context.get("url")) if record is not None else None
        if url is not None:
            open_target(url)
        elif not self.open_dashboard(event) and self.on_open is not None:
            self.on_open(event)

    def open_dashboard(self, event: str | None = None) -> bool:
        """The dashboard in the web browser with a new one-time login (at `event`'s alert and timeline, if given);
        False when no browser opens (the address is never logged: it carries the login)."""
        url = self.api.dashboard.login_url()["url"] + (f"#alert={quote(event, safe='')}" if event else "")
        if webbrowser.open(url):
            return True
        log.warning("could not open the dashboard: no web browser found (tray-alerts dashboard --url prints an"
                    " address to open by hand)")
        return False

    def start(self) -> None:
        """Start the monitors and the push API."""
        self.api.start()
        if self.metrics is not None:
            self.metrics.start()
        self.logind.start()
        self.runner.start()
        ready = ", ".join(self.channels.ready) or "none"
        log.info("tray-alerts started: channels %s; monitors %s; state %s", ready,
                 ", ".join(self.settings.monitors) or "none", self.settings.state_path)
        # a channel that is not set up is logged once, by the engine, when an alert is first routed to it

    def stop(self, keep_lock: bool = False) -> None:
        """Stop monitors, the API and the engine; queued deliveries stay in the outbox for the next start."""
        self.runner.stop()
        self.logind.stop()
        self.api.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.engine.close()
        if not keep_lock:
            self.lock.release()
        log.info("tray-alerts stopped")


def run_headless(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run with no tray until Ctrl-C, SIGTERM or `stop` is set; returns the exit code (AlreadyRunning and
    PortTaken are the caller's to say)."""
    configure_logging(settings.log_file, settings.log_level)
    app = App(settings)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    app.start()
    print(f"tray-alerts running headless (channels: {', '.join(app.channels.ready) or 'none'};"
          f" monitors: {', '.join(settings.monitors) or 'none'}; push API on 127.0.0.1:{app.api.port})"
          " — Ctrl-C to stop", flush=True)
    try:
        stop.wait()
    finally:
        app.stop()
    return 0

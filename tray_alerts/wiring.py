"""Settings -> channels and Engine; shared by the app, the CLI and the module-level raise_alert."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import tzinfo
from typing import Callable, Mapping

from . import readings
from .channels import Channel, NotConfigured, SettingError, build_channel, channel_class
from .clock import Clock
from .config import ChannelSettings, Settings
from .display import clock
from .engine import Engine
from .lifecycle import Raise
from .model import Level, check_event, clean_context, clean_message
from .results import Result
from .monitors.base import Reading
from .monitors.heartbeat import HeartbeatMonitor
from .monitors.runner import MonitorRunner
from .paths import folder_problem
from .quiet_hours import QuietPolicy, QuietState
from .redact import register_secret
from .sleep import SleepTracker
from .state import ChannelHealth, StateStore, StoreFault

log = logging.getLogger(__name__)
SECRET_KEY_WORDS = ("password", "token", "secret", "webhook", "api_key", "apikey")


@dataclass
class ChannelSet:
    """The channels that are ready, and why each other configured one is not."""

    ready: dict[str, Channel]
    unavailable: dict[str, str]


def register_channel_secrets(channel: ChannelSettings) -> None:
    """Mask every value whose key names a secret (webhook_url, password, auth_token, …) or that the
    channel type declares secret (a generic webhook's `url` and `headers` carry tokens)."""
    declared = getattr(channel_class(channel.type), "SECRET_KEYS", ())
    for key, value in channel.options.items():
        if key in declared or any(word in key for word in SECRET_KEY_WORDS):
            for line in value.splitlines():
                register_secret(line.strip())
                register_secret(line.partition(":")[2].strip())


def build_channels(settings: Settings) -> ChannelSet:
    """Every configured channel built; a bad value raises ConfigError, an empty required one is skipped."""
    ready: dict[str, Channel] = {}
    unavailable: dict[str, str] = {}
    for name, channel in settings.channels.items():
        register_channel_secrets(channel)
        if not channel.enabled:
            unavailable[name] = "switched off (enabled = no)"
            continue
        try:
            ready[name] = build_channel(name, channel.type, channel.options)
        except NotConfigured as reason:
            unavailable[name] = f"not configured: {reason}"
        except SettingError as error:
            raise channel.error(error.key, error.problem) from None
    return ChannelSet(ready, unavailable)


def build_engine(settings: Settings, channels: ChannelSet | None = None, retry_in_background: bool = True,
                 clock: Clock | None = None) -> Engine:
    """An Engine on the settings' state file, routing and channels.

    One-shot commands pass retry_in_background=False: what they could not deliver waits in the outbox
    for the running app (or the next start) instead of holding the command up.
    """
    channels = channels or build_channels(settings)
    return Engine(channels.ready, settings.routing, settings.state_path,
                  delivery_timeout=settings.delivery_timeout, unavailable=channels.unavailable,
                  retry=settings.retry, retry_in_background=retry_in_background,
                  quiet_channels={name for name, spec in settings.channels.items() if spec.type == "log"},
                  limits={name: spec.limits for name, spec in settings.channels.items()},
                  quiet_hours=quiet_policy(settings),
                  reminders=settings.reminders, history_max_age=float(settings.history_max_age),
                  history_max_rows=int(settings.history_max_rows), clock=clock,
                  dependencies={name: spec.depends_on for name, spec in settings.monitors.items() if spec.depends_on})


def quiet_policy(settings: Settings, zone: tzinfo | None = None) -> QuietPolicy:
    """Every channel's quiet hours, read in the local time zone (or `zone`)."""
    return QuietPolicy({name: spec.quiet_hours for name, spec in settings.channels.items() if spec.quiet_hours},
                       zone)


@dataclass(frozen=True)
class ChannelState:
    """How one configured channel stands, as `status` and `check-config` both show it."""

    name: str
    type: str
    text: str  # `ok (last delivery 14:30:01)`, `failing: …`, `ready (nothing sent yet)`, `not configured: …`
    usable: bool  # built (configured and switched on)


def channel_states(settings: Settings, health: Mapping[str, ChannelHealth] | None = None,
                   channels: ChannelSet | None = None, now: float | None = None,
                   zone: tzinfo | None = None) -> dict[str, ChannelState]:
    """Every configured channel's state: why it is not there, in quiet hours, or what its latest delivery says
    (`health`: read from the state file when it exists and not given)."""
    channels = channels or build_channels(settings)
    if health is None:
        health = stored_health(settings)
    quiet = quiet_policy(settings, zone)
    now = time.time() if now is None else now
    return {name: ChannelState(name, spec.type, channel_state(name, channels.unavailable.get(name), health.get(name),
                                                              quiet.state(name, now)),
                               name in channels.ready)
            for name, spec in settings.channels.items()}


def stored_health(settings: Settings) -> dict[str, ChannelHealth]:
    """What the state file says of each channel's deliveries ({} when there is no usable state file yet)."""
    if folder_problem(settings.state_dir) or not settings.state_path.is_file():
        return {}
    store = StateStore(settings.state_path)
    try:
        return store.channel_health()
    finally:
        store.close()


def channel_state(name: str, unavailable: str | None, health: ChannelHealth | None,
                  quiet: QuietState | None = None) -> str:
    """`ok (last delivery 14:30:01)`, `failing: <last error> (3 waiting to retry)`, `quiet until 07:00 (2
    waiting)` or why it is not there."""
    if quiet is not None and quiet.quiet and not unavailable:
        count = (health.waiting + health.held) if health else 0
        return f"quiet until {quiet.ends_text}" + (f" ({count} waiting)" if count else "")
    waiting = f" ({health.waiting} waiting to retry)" if health and health.waiting else ""
    if health and health.held:
        waiting += f" ({health.held} held: snoozed, muted or grouped)"
    if unavailable:
        return unavailable + waiting
    if health is None or health.last_ok is None or health.last_at is None:
        return "ready (nothing sent yet)" + waiting
    if health.last_ok:
        return f"ok (last delivery {clock(health.last_at)})" + waiting
    return f"failing: {health.last_detail} ({clock(health.last_at)})" + waiting


class MonitorSink:
    """What monitors raise and clear goes to the engine without waiting for the channels (the outbox has it)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._reading_fault = ""  # why readings cannot be kept now (said once, not at every reading)

    def raise_alert(self, event: str, level: Level | str, message: str, **context: object) -> Result:
        return self.engine.raise_request(Raise(check_event(event), Level.parse(level), clean_message(message),
                                               clean_context(context)), wait=0.0)

    def clear_alert(self, event: str, message: str = "recovered", *, context: dict | None = None) -> Result:
        return self.engine.clear_alert(event, message, wait=0.0, context=context)

    def keep_reading(self, monitor: str, reading: Reading, at: float) -> None:
        """Keep a reading (its value, and whether it was bad) for charts and uptime; while the state file cannot
        be written, readings are not kept (said once: they are not alerts, which wait to be stored)."""
        try:
            with self.engine.store.write() as tx:
                readings.record(tx, monitor, at, reading.value, not reading.ok)
        except StoreFault as fault:
            if fault.reason != self._reading_fault:
                log.warning("monitor readings are not kept while %s", fault.reason)
            self._reading_fault = fault.reason
            return
        self._reading_fault = ""


class _RaisesNothing:
    """The sink of `tray-alerts check`, which only reads."""

    def raise_alert(self, event: str, level: Level | str, message: str, **context: object) -> Result:
        raise RuntimeError("check raises nothing")

    def clear_alert(self, event: str, message: str = "recovered", *, context: dict | None = None) -> Result:
        raise RuntimeError("check clears nothing")


def build_runner(settings: Settings, engine: Engine, on_change: Callable[[], None] | None = None,
                 sleeps: SleepTracker | None = None) -> MonitorRunner:
    """The monitor runner for the settings' monitors on the engine's clock; heartbeats read their pings from the
    engine's state; `sleeps` gives the grace after a resume."""
    _connect_heartbeats(settings, engine.last_ping)
    sink = MonitorSink(engine)
    return MonitorRunner(sink, settings.monitors.values(), on_change, clock=engine.clock, sleeps=sleeps,
                         on_reading=sink.keep_reading)


def build_checker(settings: Settings, last_ping: Callable[[str], float | None]) -> MonitorRunner:
    """A runner that only reads the monitors (`tray-alerts check`), even while the app runs."""
    _connect_heartbeats(settings, last_ping)
    return MonitorRunner(_RaisesNothing(), settings.monitors.values())


def _connect_heartbeats(settings: Settings, last_ping: Callable[[str], float | None]) -> None:
    for spec in settings.monitors.values():
        if isinstance(spec.monitor, HeartbeatMonitor):
            spec.monitor.last_ping = last_ping

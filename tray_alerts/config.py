"""settings.ini -> typed Settings; every problem names the file, section and key in one line."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .channels import CHANNEL_TYPES
from .channels.base import SettingError
from .monitors import MONITOR_TYPES, MonitorSpec, build_monitor, dependency_cycle
from .model import Level
from .outbox import RetryPolicy
from .quiet_hours import QuietHours, parse_allows, parse_window
from .reminders import ReminderPolicy
from .routing import Routing
from .settings_file import (ALERTS_KEYS, DEFAULT_API_PORT, DEFAULT_HISTORY_MAX_AGE, DEFAULT_HISTORY_MAX_ROWS,
                            ENV_CONFIG, LOG_LEVELS, MAX_SETTINGS_BYTES, ConfigError, Layered, Value, alerts_settings,
                            find_settings_file, read_layered)
from .settings_file import DEFAULT_RESUME_GRACE, count as _count, typed as _typed
from .storm import ChannelLimits
from .values import parse_bool, parse_duration, parse_list

__all__ = ["ALERTS_KEYS", "DEFAULT_API_PORT", "ENV_CONFIG", "LOG_LEVELS", "MAX_SETTINGS_BYTES", "ChannelSettings",
           "ConfigError", "Settings", "Value", "find_settings_file", "load_settings"]
CHANNEL_COMMON_KEYS = ("type", "enabled", "max_per_minute", "group_after", "group_window", "quiet_hours",
                       "quiet_allows")
METRICS_KEYS = ("enabled", "address")
DEFAULT_METRICS_ADDRESS = ("127.0.0.1", 9978)


@dataclass(frozen=True)
class MetricsSettings:
    """[metrics]: whether GET /metrics is served for a team's Prometheus, and where (loopback by default)."""

    enabled: bool = False
    host: str = DEFAULT_METRICS_ADDRESS[0]
    port: int = DEFAULT_METRICS_ADDRESS[1]

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class ChannelSettings:
    """One [channel.NAME] section."""

    name: str
    type: str
    options: dict[str, str]
    files: dict[str, Path]
    section_file: Path
    enabled: bool = True
    limits: ChannelLimits = field(default_factory=ChannelLimits)
    quiet_hours: QuietHours | None = None

    @property
    def section(self) -> str:
        return f"channel.{self.name}"

    def error(self, key: str | None, problem: str) -> ConfigError:
        """A ConfigError pointing at one of this section's keys."""
        return ConfigError(self.files.get(key, self.section_file) if key else self.section_file, problem,
                           self.section, key)


@dataclass
class Settings:
    """Everything settings.ini says, checked."""

    files: list[Path]
    state_dir: Path
    log_file: Path
    log_level: str
    delivery_timeout: float
    retry: RetryPolicy
    routing: Routing
    channels: dict[str, ChannelSettings] = field(default_factory=dict)
    monitors: dict[str, MonitorSpec] = field(default_factory=dict)
    api_port: int = DEFAULT_API_PORT
    reminders: ReminderPolicy = field(default_factory=ReminderPolicy)
    history_max_age: float = DEFAULT_HISTORY_MAX_AGE  # seconds
    history_max_rows: int = DEFAULT_HISTORY_MAX_ROWS
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    resume_grace: float = DEFAULT_RESUME_GRACE  # seconds; 0: none

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def user_file(self) -> Path | None:
        """The file layered over the packaged defaults, if any."""
        return self.files[-1] if len(self.files) > 1 else None


def load_settings(explicit: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The packaged defaults with the user's settings file layered on top, checked."""
    layered = read_layered(explicit, environ)
    return _build(layered.files, layered.sections, layered.section_files)


def _build(files: list[Path], merged: dict[str, dict[str, Value]], section_files: dict[str, Path]) -> Settings:
    for section in merged:
        kind, _, name = section.partition(".")
        if section not in ("alerts", "routing", "reminders", "metrics") and (kind not in ("channel", "monitor")
                                                                             or not name.strip()):
            raise ConfigError(section_files[section], "unknown section (known: alerts, routing, reminders,"
                              " metrics, channel.NAME, monitor.NAME)", section)
    alerts = alerts_settings(Layered(files, merged, section_files))
    channels = _channels(merged, section_files)
    monitors = _monitors(merged, section_files, channels)
    routing = _routing(merged.get("routing", {}), channels)
    routing.events.update({name: spec.channels for name, spec in monitors.items() if spec.channels is not None})
    return Settings(
        files=files,
        state_dir=alerts.state_dir,
        log_file=alerts.log_file,
        log_level=alerts.log_level,
        delivery_timeout=alerts.delivery_timeout,
        retry=RetryPolicy(first=alerts.retry_backoff, longest=alerts.retry_backoff_max, expiry=alerts.delivery_expiry),
        api_port=alerts.api_port,
        history_max_age=alerts.history_max_age,
        history_max_rows=alerts.history_max_rows,
        resume_grace=alerts.resume_grace,
        reminders=_reminders(merged.get("reminders", {}), monitors),
        routing=routing,
        channels=channels,
        monitors=monitors,
        metrics=_metrics(merged.get("metrics", {})),
    )


def _metrics(items: dict[str, Value]) -> MetricsSettings:
    """[metrics] enabled = yes|no, address = HOST:PORT."""
    for key, value in items.items():
        if key not in METRICS_KEYS:
            raise ConfigError(value.file, f"unknown key (known: {', '.join(METRICS_KEYS)})", "metrics", key)
    host, port = _typed(items, "address", parse_address, DEFAULT_METRICS_ADDRESS, "metrics")
    return MetricsSettings(_typed(items, "enabled", parse_bool, False, "metrics"), host, port)


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets: `[::1]:9978`) as (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # an IPv6 address without brackets: where its port begins cannot be told
        host = ""
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST:PORT (e.g. 127.0.0.1:9978, [::1]:9978): {text.strip()!r}")
    return host, int(port)


def _section_type(items: dict[str, Value], default: str) -> tuple[Value | None, str]:
    """A section's `type` value (for error locations) and its lower-case name, or the default when empty."""
    value = items.get("type")
    text = value.text.strip().lower() if value else ""
    return value, text or default


def _channels(merged: dict[str, dict[str, Value]], section_files: dict[str, Path]) -> dict[str, ChannelSettings]:
    channels = {}
    for section, items in merged.items():
        if not section.startswith("channel."):
            continue
        name = section.partition(".")[2]
        type_value, type_name = _section_type(items, default=name)
        if type_name not in CHANNEL_TYPES:
            raise ConfigError(type_value.file if type_value else section_files[section],
                              f"unknown channel type {type_name!r} (known: {', '.join(CHANNEL_TYPES)})",
                              section, "type" if type_value else None)
        enabled = _typed(items, "enabled", parse_bool, True, section)
        limits = ChannelLimits(max_per_minute=_typed(items, "max_per_minute", _count, 0, section),
                               group_after=_typed(items, "group_after", _count, 0, section),
                               group_window=_typed(items, "group_window", parse_duration, 30.0, section))
        options = {key: value.text for key, value in items.items() if key not in CHANNEL_COMMON_KEYS}
        channels[name] = ChannelSettings(name, type_name, options, {k: v.file for k, v in items.items()},
                                         section_files[section], enabled, limits, _quiet_hours(items, section))
    return channels


def _quiet_hours(items: dict[str, Value], section: str) -> QuietHours | None:
    """A channel's `quiet_hours = 22:00-07:00` and `quiet_allows = LEVEL` (which needs a window)."""
    window = _typed(items, "quiet_hours", parse_window, None, section)
    allows = _typed(items, "quiet_allows", parse_allows, None, section)
    if window is None:
        value = items.get("quiet_allows")
        if value is not None and value.text.strip():
            raise ConfigError(value.file, "needs quiet_hours (a window like 22:00-07:00) in the same section",
                              section, "quiet_allows")
        return None
    return QuietHours(window, allows)


def _monitors(merged: dict[str, dict[str, Value]], section_files: dict[str, Path],
              channels: dict[str, ChannelSettings]) -> dict[str, MonitorSpec]:
    monitors = {}
    for section, items in merged.items():
        if not section.startswith("monitor."):
            continue
        name = section.partition(".")[2]
        type_value, type_name = _section_type(items, default="")
        if type_name not in MONITOR_TYPES:
            problem = (f"unknown monitor type {type_name!r}" if type_name else "type is missing") + \
                f" (known: {', '.join(MONITOR_TYPES)})"
            raise ConfigError(type_value.file if type_value else section_files[section], problem, section, "type")
        if not _typed(items, "enabled", parse_bool, True, section):
            continue
        try:
            spec = build_monitor(name, type_name, {key: value.text for key, value in items.items()})
        except SettingError as error:
            value = items.get(error.key)
            raise ConfigError(value.file if value else section_files[section], error.problem, section,
                              error.key) from None
        for channel in spec.channels or ():
            if channel not in channels:
                raise ConfigError(items["channels"].file, f"unknown channel {channel!r} (known: {', '.join(channels)})",
                                  section, "channels")
        monitors[name] = spec
    cycle = dependency_cycle({name: spec.depends_on for name, spec in monitors.items()})
    if cycle:
        value = merged[f"monitor.{cycle[0]}"]["depends_on"]
        raise ConfigError(value.file, f"monitors depend on each other in a loop: {' -> '.join(cycle)}",
                          f"monitor.{cycle[0]}", "depends_on")
    return monitors


def _level_key(key: str, value: Value, section: str) -> Level:
    """A key that must name a level (in [routing] and [reminders])."""
    try:
        return Level.parse(key)
    except ValueError as error:
        raise ConfigError(value.file, str(error), section, key) from None


def _reminders(items: dict[str, Value], monitors: dict[str, MonitorSpec]) -> ReminderPolicy:
    """[reminders] level = duration (or off), and each monitor's remind_every."""
    levels = {}
    for key, value in items.items():
        level = _level_key(key, value, "reminders")
        text = value.text.strip().lower()
        if text and text not in ("off", "no", "never"):
            levels[level] = _typed(items, key, parse_duration, 0.0, "reminders")
    events = {name: spec.remind_every for name, spec in monitors.items() if spec.remind_every}
    return ReminderPolicy(levels, events)


def _routing(items: dict[str, Value], channels: dict[str, ChannelSettings]) -> Routing:
    routes: dict[Level | str, list[str]] = {}
    for key, value in items.items():
        level = _level_key(key, value, "routing")
        names = list(parse_list(value.text))
        for name in names:
            if name not in channels:
                raise ConfigError(value.file, f"unknown channel {name!r} (known: {', '.join(channels)})",
                                  "routing", key)
        routes[level] = names
    return Routing(routes)

"""Local checks. The registry maps a monitor type to "module:Class", imported when a monitor of it is used."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Mapping

from ..channels.base import SettingError
from .base import Monitor, Options, Reading

MONITOR_TYPES: dict[str, str] = {
    "disk": "tray_alerts.monitors.disk:DiskMonitor",
    "http": "tray_alerts.monitors.http:HttpMonitor",
    "file_age": "tray_alerts.monitors.file_age:FileAgeMonitor",
    "tcp": "tray_alerts.monitors.tcp:TcpMonitor",
    "process": "tray_alerts.monitors.process:ProcessMonitor",
    "command": "tray_alerts.monitors.command:CommandMonitor",
    "memory": "tray_alerts.monitors.system:MemoryMonitor",
    "load": "tray_alerts.monitors.system:LoadMonitor",
    "heartbeat": "tray_alerts.monitors.heartbeat:HeartbeatMonitor",
    "nagios": "tray_alerts.monitors.nagios:NagiosMonitor",
    "tls_cert": "tray_alerts.monitors.tls_cert:TlsCertMonitor",
    "dns": "tray_alerts.monitors.dns:DnsMonitor",
    "log_pattern": "tray_alerts.monitors.log_pattern:LogPatternMonitor",
    "systemd": "tray_alerts.monitors.systemd:SystemdMonitor",
}

__all__ = ["MONITOR_TYPES", "Monitor", "MonitorSpec", "Reading", "build_monitor"]


@dataclass
class MonitorSpec:
    """A monitor and how the runner schedules it."""

    monitor: Monitor
    interval: float = 60.0
    timeout: float = 10.0
    failures_before_alert: int = 1
    successes_before_clear: int = 1
    channels: tuple[str, ...] | None = None
    remind_every: float | None = None

    @property
    def name(self) -> str:
        return self.monitor.name


def build_monitor(name: str, type_name: str, raw: Mapping[str, str]) -> MonitorSpec:
    """A monitor from its [monitor.NAME] section; SettingError names the key that is wrong."""
    module_name, class_name = MONITOR_TYPES[type_name].split(":")
    monitor_class = getattr(import_module(module_name), class_name)
    options = Options(raw, set(monitor_class.OPTIONS))
    timeout = options.duration("timeout", 10.0)
    monitor = monitor_class.from_options(name, options, timeout)
    channels = options.text("channels")
    return MonitorSpec(
        monitor=monitor,
        interval=options.duration("interval", monitor_class.DEFAULT_INTERVAL),
        timeout=timeout,
        failures_before_alert=_count(options, "failures_before_alert"),
        successes_before_clear=_count(options, "successes_before_clear"),
        channels=tuple(c.strip() for c in channels.split(",") if c.strip()) if channels else None,
        remind_every=options.duration("remind_every", None),
    )


def _count(options: Options, key: str) -> int:
    value = options.number(key, 1)
    if value is None or value < 1 or value != int(value):
        raise SettingError(key, "must be a whole number of at least 1")
    return int(value)

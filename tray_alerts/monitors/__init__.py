"""Local checks. The registry maps a monitor type to "module:Class", imported when a monitor of it is used."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Iterable, Mapping

from ..channels.base import SettingError
from ..values import parse_list
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
    depends_on: tuple[str, ...] = ()  # events (monitors or pushed) that, while they fire, inhibit this one

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
    depends_on = parse_list(options.text("depends_on"))
    if name in depends_on:
        raise SettingError("depends_on", f"a monitor cannot depend on itself ({name!r})")
    return MonitorSpec(
        monitor=monitor,
        interval=options.duration("interval", monitor_class.DEFAULT_INTERVAL),
        timeout=timeout,
        failures_before_alert=_count(options, "failures_before_alert"),
        successes_before_clear=_count(options, "successes_before_clear"),
        channels=parse_list(channels) if channels else None,
        remind_every=options.duration("remind_every", None),
        depends_on=depends_on,
    )


def dependency_cycle(depends_on: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A loop of events that depend on each other (`['a', 'b', 'a']`), or None."""
    acyclic: set[str] = set()

    def walk(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node not in acyclic:
            for parent in depends_on.get(node, ()):
                loop = walk(parent, path + [node])
                if loop:
                    return loop
            acyclic.add(node)
        return None

    return next((loop for loop in (walk(start, []) for start in depends_on) if loop), None)


def _count(options: Options, key: str) -> int:
    value = options.number(key, 1)
    if value is None or value < 1 or value != int(value):
        raise SettingError(key, "must be a whole number of at least 1")
    return int(value)

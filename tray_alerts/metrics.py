"""Readings for a team's Prometheus: `GET /metrics` in the Prometheus text format (prometheus_client), on a
listener of its own that is off by default, on loopback unless an address is configured, and answers only with
the metrics token. What is exported is a plain snapshot turned into metric families by a pure function."""
from __future__ import annotations

import hmac
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from .lifecycle import ActiveEvent
from .model import Level
from .monitors.runner import MonitorStatus
from .state import ChannelHealth

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0  # seconds a scrape connection may take to send its request
# ok 0, info 1 ... critical 4
SEVERITY: dict[Level | None, int] = {None: 0, **{level: rank + 1 for rank, level in enumerate(Level)}}


@dataclass(frozen=True)
class MonitorSample:
    """A monitor as the last check saw it."""

    name: str
    type: str
    level: Level | None  # None: fine
    value: float | None
    checked_at: float | None


@dataclass(frozen=True)
class Snapshot:
    """What is exported, read at one scrape."""

    active: Mapping[Level, int] = field(default_factory=dict)  # active alerts per level
    inhibited: int = 0  # active alerts held back by a parent
    waiting: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # channel -> (to retry, held)
    deliveries: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (channel, result) -> count
    monitors: tuple[MonitorSample, ...] = ()


def families(snapshot: Snapshot) -> list[Metric]:
    """The snapshot as Prometheus metric families."""
    active = GaugeMetricFamily("tray_alerts_active_alerts", "Alerts active now, by level", labels=["level"])
    for level in Level:
        active.add_metric([level.value], snapshot.active.get(level, 0))
    inhibited = GaugeMetricFamily("tray_alerts_inhibited_alerts", "Active alerts held back while a parent fires",
                                  value=snapshot.inhibited)
    waiting = GaugeMetricFamily("tray_alerts_outbox_waiting", "Notifications waiting in the outbox, by channel and"
                                " why (retry after a failure, or held by a snooze, mute or grouping)",
                                labels=["channel", "why"])
    for channel, (retry, held) in sorted(snapshot.waiting.items()):
        waiting.add_metric([channel, "retry"], retry)
        waiting.add_metric([channel, "held"], held)
    deliveries = CounterMetricFamily("tray_alerts_deliveries", "Delivery attempts answered since the app started,"
                                     " by channel and result", labels=["channel", "result"])
    for (channel, result), count in sorted(snapshot.deliveries.items()):
        deliveries.add_metric([channel, result], count)
    value = GaugeMetricFamily("tray_alerts_monitor_value", "A monitor's last numeric reading (disk %, latency s,"
                              " load, days until a certificate expires …)", labels=["monitor", "type"])
    severity = GaugeMetricFamily("tray_alerts_monitor_severity", "A monitor's state at its last check: 0 ok, 1 info,"
                                 " 2 warning, 3 error, 4 critical", labels=["monitor", "type"])
    checked = GaugeMetricFamily("tray_alerts_monitor_last_check_timestamp_seconds", "When a monitor last checked",
                                labels=["monitor", "type"])
    for monitor in snapshot.monitors:
        labels = [monitor.name, monitor.type]
        if monitor.value is not None:
            value.add_metric(labels, monitor.value)
        if monitor.checked_at is not None:
            severity.add_metric(labels, SEVERITY[monitor.level])
            checked.add_metric(labels, monitor.checked_at)
    return [active, inhibited, waiting, deliveries, value, severity, checked]


class Sources(Protocol):
    """What a snapshot is read from: the engine's public reads."""

    def active_events(self) -> list[ActiveEvent]: ...

    def channel_health(self) -> dict[str, ChannelHealth]: ...

    def delivery_counts(self) -> dict[tuple[str, str], int]: ...


def read_snapshot(engine: Sources, statuses: Iterable[MonitorStatus] = ()) -> Snapshot:
    """A snapshot of the engine's state now and the monitors' last checks."""
    records = engine.active_events()
    return Snapshot(
        active=Counter(record.level for record in records),
        inhibited=sum(1 for record in records if record.inhibited),
        waiting={name: (health.waiting, health.held) for name, health in engine.channel_health().items()},
        deliveries=engine.delivery_counts(),
        monitors=tuple(MonitorSample(status.name, status.type, status.reading.level if status.reading else None,
                                     status.reading.value if status.reading else None, status.checked_at)
                       for status in statuses))


class SnapshotCollector(Collector):
    """A collector that reads a fresh snapshot at each scrape."""

    def __init__(self, read: Callable[[], Snapshot]):
        self.read = read

    def collect(self) -> Iterator[Metric]:
        yield from families(self.read())


def authorised(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the metrics token (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def exposition(registry: CollectorRegistry, token: str) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: `GET /metrics` with the token, else 401 / 404 / 405 with one line saying why."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def answer(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
                   extra: tuple[tuple[str, str], ...] = ()) -> Iterable[bytes]:
            start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
            return [body]

        if environ.get("PATH_INFO") != "/metrics":
            return answer("404 Not Found", b"only /metrics is served here\n")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return answer("405 Method Not Allowed", b"only GET\n", extra=(("Allow", "GET, HEAD"),))
        if not authorised(environ.get("HTTP_AUTHORIZATION"), token):
            return answer("401 Unauthorized", b"the metrics token is needed: Authorization: Bearer TOKEN\n",
                          extra=(("WWW-Authenticate", 'Bearer realm="tray-alerts metrics"'),))
        return answer("200 OK", generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4)  # what every Prometheus reads
    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT  # a connection that sends nothing is closed, never holds a thread for long

    def log_message(self, format: str, *args: Any) -> None:  # wsgiref logs each request to stderr: not ours
        log.debug("metrics: " + format, *args)


class MetricsServer:
    """The /metrics listener in a daemon thread; `port` is the bound one (0 asks for a free port)."""

    def __init__(self, host: str, port: int, token: str, read: Callable[[], Snapshot]):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(read))
        self._server = make_server(host, port, exposition(registry, token), server_class=_Server,
                                   handler_class=_QuietHandler)
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.5,), name="metrics",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics for Prometheus on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        """Stop serving (if it started) and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()

"""A Slack stand-in on loopback goes down (refused, then 500, then 429 with Retry-After) and comes back:
every alert raised meanwhile arrives exactly once, in order per event."""
import socket
import threading
import time

from werkzeug import Request, Response

from polling import wait_until
from tray_alerts import Engine, Level
from tray_alerts.channels.slack import SlackChannel
from tray_alerts.outbox import RetryPolicy


class SlackStandIn:
    """Answers like Slack's webhook endpoint in the phase it is put in; keeps every accepted alert (a backlog may
    arrive grouped: one message with an attachment per alert)."""

    def __init__(self):
        self.phase = "ok"
        self.accepted: list[dict] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        with self.lock:
            if self.phase == "500":
                self.answers.append(500)
                return Response("internal_error", status=500)
            if self.phase == "429":
                self.answers.append(429)
                return Response("rate_limited", status=429, headers={"Retry-After": "1"})
            self.accepted.extend(request.get_json()["attachments"])
            self.answers.append(200)
            return Response("ok", status=200)



def test_everything_arrives_once_and_in_order_after_an_outage(httpserver_ipv4, tmp_path):
    server = httpserver_ipv4
    stand_in = SlackStandIn()
    server.expect_request("/services/T1/B1/outage").respond_with_handler(stand_in.handle)
    url = server.url_for("/services/T1/B1/outage")
    port = server.port
    server.stop()  # phase 1: connection refused

    slack = SlackChannel("slack", url, timeout=2)
    policy = RetryPolicy(first=0.05, longest=0.3, expiry=600)
    engine = Engine({"slack": slack}, {level: ["slack"] for level in Level}, tmp_path / "state.db",
                    delivery_timeout=3, retry=policy)
    expected: dict[str, list[str]] = {}  # event -> what it should receive, in order

    def record(event: str, kind: str) -> None:
        expected.setdefault(event, []).append(kind)

    try:
        for i in range(5):
            assert engine.raise_alert(f"svc{i}", "error", f"service {i} down") == {"slack": False}
            record(f"svc{i}", "fired:error")
        engine.clear_alert("svc0", "back")
        record("svc0", "resolved:error")

        server.start()  # phase 2: up again but answering 500
        assert server.port == port
        stand_in.phase = "500"
        engine.raise_alert("svc1", "critical", "still down")
        record("svc1", "fired:critical")
        wait_until(lambda: stand_in.answers.count(500) >= 3)

        stand_in.phase = "429"  # phase 3: rate limited, Retry-After: 1
        engine.raise_alert("svc5", "warning", "slow")
        record("svc5", "fired:warning")
        wait_until(lambda: stand_in.answers.count(429) >= 1)

        stand_in.phase = "ok"  # phase 4: recovered
        engine.clear_alert("svc2", "back")
        record("svc2", "resolved:error")
        total = sum(len(kinds) for kinds in expected.values())
        wait_until(lambda: len(stand_in.accepted) >= total)
        time.sleep(0.5)  # anything extra (a duplicate) would arrive now
        history = engine.history(limit=500)
    finally:
        engine.close()

    received: dict[str, list[str]] = {}
    for attachment in stand_in.accepted:
        tag, event = attachment["title"].split(" · ")  # "ERROR · svc1" / "RESOLVED · svc0"
        received.setdefault(event, []).append(tag)
    assert received == {event: [("RESOLVED" if kind.startswith("resolved") else kind.split(":")[1].upper())
                                for kind in kinds] for event, kinds in expected.items()}
    assert len(stand_in.accepted) == total  # exactly once
    assert any("delivered on retry" in h.detail for h in history)
    assert stand_in.answers.count(429) >= 1 and stand_in.answers.count(500) >= 3


def test_secrets_stay_out_of_history_and_logs_during_an_outage(tmp_path, caplog):
    from tray_alerts.redact import register_secret

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T9/B9/zzSecretOutageToken"
    register_secret(url)
    slack = SlackChannel("slack", url, timeout=1)
    with caplog.at_level("DEBUG", logger="tray_alerts"):
        with Engine({"slack": slack}, {"error": ["slack"]}, tmp_path / "state.db",
                    retry=RetryPolicy(first=0.02, longest=0.05)) as engine:
            engine.raise_alert("e", "error", "m")
            time.sleep(0.3)
            history = engine.history(limit=100)
    assert len([h for h in history if h.channel == "slack"]) >= 2
    text = caplog.text + " ".join(h.detail for h in history)
    assert "zzSecretOutageToken" not in text and "connection refused" in text
    assert "zzSecretOutageToken" not in (tmp_path / "state.db").read_bytes().decode("latin-1")

"""What a pop-up's buttons do in the app: Acknowledge, Mute 1 h, Open."""
import pytest

import tray_alerts.app as app_module
from tray_alerts.app import POP_UP_MUTE, App
from tray_alerts.config import load_settings
from tray_alerts.opening import web_url


class ButtonChannel:
    """A channel with pop-up buttons: the app gives it where to send a press."""

    def __init__(self) -> None:
        self.on_action = None
        self.sent: list = []

    def send(self, alert) -> None:
        self.sent.append(alert)


@pytest.fixture
def app(tmp_path, free_port):
    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                    f"api_port = {free_port}\n[channel.log]\nfile = {tmp_path / 'alerts.log'}\n"
                    "[channel.desktop]\nenabled = no\n")
    running = App(load_settings(path))
    yield running
    running.stop()


@pytest.fixture
def free_port():
    from helpers_net import free_port

    return free_port()


def test_every_channel_with_buttons_is_wired_to_the_app(tmp_path, free_port, monkeypatch):
    channel = ButtonChannel()
    real_build = app_module.build_channels

    def with_buttons(settings):
        built = real_build(settings)
        built.ready["popups"] = channel
        return built

    monkeypatch.setattr(app_module, "build_channels", with_buttons)
    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                    f"api_port = {free_port}\n[channel.desktop]\nenabled = no\n")
    running = App(load_settings(path))
    try:
        assert channel.on_action == running.pop_up_action
    finally:
        running.stop()


def test_acknowledge_keeps_the_alert_and_marks_it(app):
    app.engine.raise_alert("disk", "error", "disk at 97%")
    app.pop_up_action("disk", "ack")
    (record,) = app.engine.active_events()
    assert record.acknowledged


def test_mute_holds_the_event_for_an_hour(app):
    app.engine.raise_alert("disk", "error", "disk at 97%")
    before = app.engine.clock.time()
    app.pop_up_action("disk", "mute")
    until = app.engine.mutes()["disk"]
    assert before + POP_UP_MUTE <= until <= app.engine.clock.time() + POP_UP_MUTE


def test_open_opens_the_alerts_web_url_else_the_dashboard_at_it_else_asks_the_tray(app, monkeypatch):
    opened, browsed, shown = [], [], []
    browser_found = [True]
    monkeypatch.setattr(app_module, "open_target", opened.append)
    monkeypatch.setattr(app_module.webbrowser, "open", lambda url: browsed.append(url) or browser_found[0])
    app.on_open = shown.append
    app.engine.raise_alert("api", "error", "api down", url="https://status.example.com/api")
    app.engine.raise_alert("disk/root", "error", "disk full", url="file:///etc/passwd")
    app.pop_up_action("api", "default")
    app.pop_up_action("disk/root", "default")  # not a web page: never opened; the dashboard at the alert instead
    assert opened == ["https://status.example.com/api"] and shown == []
    (url,) = browsed
    assert url.startswith(f"http://127.0.0.1:{app.api.port}/dashboard?login=") and url.endswith("#alert=disk%2Froot")
    browser_found[0] = False  # no browser: the tray shows the alert
    app.pop_up_action("gone", "default")
    assert shown == ["gone"] and browsed[-1].endswith("#alert=gone")


def test_an_unknown_action_is_logged_and_changes_nothing(app, caplog):
    app.engine.raise_alert("disk", "error", "disk at 97%")
    app.pop_up_action("disk", "reboot")
    assert "not one tray-alerts offers" in caplog.text and not app.engine.active_events()[0].acknowledged


@pytest.mark.parametrize("value, url", [
    ("https://example.com/x", "https://example.com/x"), ("http://localhost:3000", "http://localhost:3000"),
    (" https://example.com ", "https://example.com"), ("file:///etc/passwd", None), ("javascript:alert(1)", None),
    ("https://", None), ("example.com", None), (42, None), (None, None),
])
def test_only_http_urls_with_a_host_are_opened(value, url):
    assert web_url(value) == url


def test_acknowledge_or_mute_of_what_is_no_longer_active_changes_nothing(app):
    app.pop_up_action("tray-alerts", "mute")  # a storm summary's pop-up, say: never mutes the app's own event
    app.pop_up_action("gone", "ack")
    assert app.engine.mutes() == {} and app.engine.active_events() == []

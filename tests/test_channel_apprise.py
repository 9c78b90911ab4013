"""The apprise channel against a local HTTP server, through Apprise's own json:// service."""
import pytest

from helpers_net import disk_alert
from tray_alerts.channels.base import DeliveryError, NotConfigured, SettingError
from tray_alerts.model import Alert, Level

pytest.importorskip("apprise", reason="needs the apprise extra: pip install 'tray-alerts[apprise]'")

from tray_alerts.channels.apprise import AppriseChannel  # noqa: E402


def json_url(server, path="/apprise/hook") -> str:
    return f"json://127.0.0.1:{server.port}{path}"


def test_posts_title_body_and_type(httpserver_ipv4):
    httpserver_ipv4.expect_oneshot_request("/apprise/hook", method="POST").respond_with_data("ok")
    AppriseChannel("team", [json_url(httpserver_ipv4)]).send(disk_alert())
    (request, _), = httpserver_ipv4.log
    payload = request.get_json()
    assert payload["title"] == "CRITICAL · disk_full" and payload["type"] == "failure"
    assert "disk at 95% on /var" in payload["message"] and "mount: /var" in payload["message"]


def test_a_recovery_is_a_success_notification(httpserver_ipv4):
    httpserver_ipv4.expect_oneshot_request("/apprise/hook", method="POST").respond_with_data("ok")
    AppriseChannel("team", [json_url(httpserver_ipv4)]).send(Alert("disk_full", Level.ERROR, "back", resolved=True))
    payload = httpserver_ipv4.log[0][0].get_json()
    assert payload["type"] == "success" and payload["title"] == "RESOLVED · disk_full"


def test_a_refusing_service_is_a_retryable_failure(httpserver_ipv4):
    httpserver_ipv4.expect_request("/apprise/hook").respond_with_data("down", status=503)
    with pytest.raises(DeliveryError) as caught:
        AppriseChannel("team", [json_url(httpserver_ipv4)]).send(disk_alert())
    assert caught.value.retryable and "apprise" in caught.value.message


def test_options():
    with pytest.raises(NotConfigured):
        AppriseChannel.from_options("team", {"urls": ""})
    with pytest.raises(SettingError) as caught:
        AppriseChannel.from_options("team", {"urls": "json://127.0.0.1:9/x, notascheme://token-secret-42"})
    assert "number 2" in str(caught.value) and "token-secret-42" not in str(caught.value)

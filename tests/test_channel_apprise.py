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
    AppriseChannel("team", [json_url(httpserver_ipv4)]).send(Alert("disk_full", Level.ERROR, "back", resolved=True,
                                                                   firing_for=600.0))
    payload = httpserver_ipv4.log[0][0].get_json()
    assert payload["type"] == "success" and payload["title"] == "RESOLVED · disk_full"
    assert payload["message"] == "back\nrecovered after 10 min"  # the incident it ends


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


# --- one outbox row per URL -----------------------------------------------------------------------------------------

SECRET = "s3cretT0kenQ42"


def counting(statuses):
    """A handler answering each request to its path with the next of `statuses` (the last one repeats)."""
    from werkzeug import Response

    answers = list(statuses)

    def answer(request):
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        return Response("nope" if status >= 300 else "ok", status=status)

    return answer


def hits(server, path) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


def make_engine(channel, state_path, clock):
    from tray_alerts import Engine
    from tray_alerts.outbox import RetryPolicy

    return Engine({"team": channel}, {level: ["team"] for level in Level}, state_path,
                  retry=RetryPolicy(first=5, longest=60, expiry=3600, jitter=0), retry_in_background=False,
                  clock=clock)


def run(engine, clock, seconds):
    """Let `seconds` pass, then one background pass, and wait until its sends are answered."""
    clock.advance(seconds)
    engine.tick()
    assert engine.wait_idle(), "the outbox did not settle"


def test_recipient_names_are_stable_and_carry_no_part_of_the_url(httpserver_ipv4):
    urls = [json_url(httpserver_ipv4, f"/hook/{SECRET}"), f"tgram://123456789:AAH{SECRET}/12345",
            f"json://user:{SECRET}@127.0.0.1:{httpserver_ipv4.port}/other"]
    names = AppriseChannel("team", urls).row_recipients()
    assert [name.split(":")[0] for name in names] == ["json", "tgram", "json"]
    assert all(len(name.split(":")[1]) == 8 for name in names) and len(set(names)) == 3
    assert AppriseChannel("team", urls[::-1]).row_recipients() == names[::-1]  # reordering keeps each URL's name
    for name in names:
        assert SECRET not in name and not any(part in name for part in ("127.0.0.1", "hook", "123456789", "user"))
    assert AppriseChannel("team", [urls[0], urls[0]]).row_recipients() == names[:1]  # the same URL once


def test_send_to_notifies_only_that_url(httpserver_ipv4):
    httpserver_ipv4.expect_request("/a").respond_with_data("ok")
    httpserver_ipv4.expect_request("/b").respond_with_data("ok")
    channel = AppriseChannel("team", [json_url(httpserver_ipv4, "/a"), json_url(httpserver_ipv4, "/b")])
    channel.send_to(disk_alert(), channel.row_recipients()[1])
    assert [request.path for request, _ in httpserver_ipv4.log] == ["/b"]


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_client_error_is_permanent(httpserver_ipv4, status):
    httpserver_ipv4.expect_request(f"/hook/{SECRET}").respond_with_data("no", status=status)
    channel = AppriseChannel("team", [json_url(httpserver_ipv4, f"/hook/{SECRET}")])
    with pytest.raises(DeliveryError) as caught:
        channel.send_to(disk_alert(), channel.row_recipients()[0])
    assert caught.value.retryable is False and f"HTTP {status}" in caught.value.message
    assert channel.row_recipients()[0] in caught.value.message and SECRET not in caught.value.message


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_a_server_error_or_rate_limit_is_retryable(httpserver_ipv4, status):
    httpserver_ipv4.expect_request(f"/hook/{SECRET}").respond_with_data("busy", status=status)
    channel = AppriseChannel("team", [json_url(httpserver_ipv4, f"/hook/{SECRET}")])
    with pytest.raises(DeliveryError) as caught:
        channel.send_to(disk_alert(), channel.row_recipients()[0])
    assert caught.value.retryable is True and f"HTTP {status}" in caught.value.message
    assert SECRET not in caught.value.message


def test_no_answer_is_retryable_and_apprise_logs_stay_out_of_the_app_log(caplog):
    from helpers_net import dead_url

    channel = AppriseChannel("team", [dead_url(f"/hook/{SECRET}").replace("http://", "json://")])
    with caplog.at_level("DEBUG"), pytest.raises(DeliveryError) as caught:
        channel.send_to(disk_alert(), channel.row_recipients()[0])
    assert caught.value.retryable is True and SECRET not in caught.value.message
    assert not [record for record in caplog.records if record.name.startswith("apprise")]


def test_a_recipient_no_longer_configured_fails_for_good(httpserver_ipv4):
    gone = AppriseChannel("team", [json_url(httpserver_ipv4, "/gone")]).row_recipients()[0]
    channel = AppriseChannel("team", [json_url(httpserver_ipv4, "/kept")])
    with pytest.raises(DeliveryError) as caught:
        channel.send_to(disk_alert(), gone)
    assert caught.value.retryable is False and gone in caught.value.message and "no longer" in caught.value.message
    assert httpserver_ipv4.log == []


def test_send_reports_every_failing_url(httpserver_ipv4):
    httpserver_ipv4.expect_request("/ok").respond_with_data("ok")
    httpserver_ipv4.expect_request("/bad").respond_with_data("no", status=400)
    httpserver_ipv4.expect_request("/busy").respond_with_data("busy", status=503)
    channel = AppriseChannel("team", [json_url(httpserver_ipv4, p) for p in ("/ok", "/bad", "/busy")])
    with pytest.raises(DeliveryError) as caught:
        channel.send(disk_alert())
    assert caught.value.retryable and "HTTP 400" in caught.value.message and "HTTP 503" in caught.value.message
    assert sorted(request.path for request, _ in httpserver_ipv4.log) == ["/bad", "/busy", "/ok"]


# --- through the engine's outbox ---------------------------------------------------------------------------------

def test_a_failing_url_is_retried_alone_and_the_working_one_gets_one_copy(httpserver_ipv4, tmp_path):
    from tray_alerts.clock import FakeClock

    good, flaky = f"/good/{SECRET}", f"/flaky/{SECRET}"
    httpserver_ipv4.expect_request(good).respond_with_handler(counting([200]))
    httpserver_ipv4.expect_request(flaky).respond_with_handler(counting([500, 500, 200]))
    clock = FakeClock()
    channel = AppriseChannel("team", [json_url(httpserver_ipv4, good), json_url(httpserver_ipv4, flaky)])
    with make_engine(channel, tmp_path / "s.db", clock) as engine:
        first = engine.raise_alert("disk_full", "critical", "disk at 95%")
        assert first.outcomes["team"].status == "retrying"
        for _ in range(3):
            run(engine, clock, 61)
        assert engine.pending() == []
        history = engine.history(event="disk_full")
    assert (hits(httpserver_ipv4, good), hits(httpserver_ipv4, flaky)) == (1, 3)
    assert sorted(entry.ok for entry in history if entry.channel == "team") == [False, False, True, True]
    assert all(SECRET not in entry.detail for entry in history)


def test_a_client_error_is_not_retried_through_the_outbox(httpserver_ipv4, tmp_path):
    from tray_alerts.clock import FakeClock

    httpserver_ipv4.expect_request("/bad").respond_with_data("no", status=400)
    httpserver_ipv4.expect_request("/good").respond_with_data("ok")
    clock = FakeClock()
    channel = AppriseChannel("team", [json_url(httpserver_ipv4, "/bad"), json_url(httpserver_ipv4, "/good")])
    with make_engine(channel, tmp_path / "s.db", clock) as engine:
        engine.raise_alert("disk_full", "critical", "disk at 95%")
        for _ in range(3):
            run(engine, clock, 61)
        assert engine.pending() == []
        failed = [entry.detail for entry in engine.history(event="disk_full") if entry.ok is False]
    assert (hits(httpserver_ipv4, "/bad"), hits(httpserver_ipv4, "/good")) == (1, 1)
    assert len(failed) == 1 and "HTTP 400" in failed[0]


def test_a_url_removed_from_the_settings_ends_its_waiting_rows_clearly(httpserver_ipv4, tmp_path):
    from tray_alerts.clock import FakeClock

    httpserver_ipv4.expect_request("/kept").respond_with_data("ok")
    httpserver_ipv4.expect_request("/removed").respond_with_data("busy", status=503)
    clock = FakeClock()
    kept, removed = json_url(httpserver_ipv4, "/kept"), json_url(httpserver_ipv4, "/removed")
    with make_engine(AppriseChannel("team", [kept, removed]), tmp_path / "s.db", clock) as engine:
        engine.raise_alert("disk_full", "critical", "disk at 95%")
        assert len(engine.pending()) == 1
    with make_engine(AppriseChannel("team", [kept]), tmp_path / "s.db", clock) as engine:  # the URL taken out
        run(engine, clock, 61)
        assert engine.pending() == []
        failed = [entry.detail for entry in engine.history(event="disk_full") if entry.ok is False]
    assert (hits(httpserver_ipv4, "/kept"), hits(httpserver_ipv4, "/removed")) == (1, 1)
    assert "no longer in this channel's urls" in failed[0]

"""SmsChannel against Twilio's own OpenAPI spec of api.twilio.com 2010-04-01, served by Prism (`mock --errors`).

What Prism checks of POST /2010-04-01/Accounts/{AccountSid}/Messages.json, from that spec: the path's AccountSid
(34 characters, ^AC[0-9a-fA-F]{32}$), the content type (application/x-www-form-urlencoded only: else 415), HTTP
Basic auth (a `Basic` header of base64 `user:password`: else 401), the form against CreateMessageRequest: `To`
required, MessagingServiceSid ^MG[0-9a-fA-F]{32}$, types (integers, booleans, enums). What the spec does not
constrain, Prism cannot check: Body's length (Twilio's 1600 is only in prose, so the cut is checked here), the
E.164 shape of To and From (format `phone-number`, unknown to Prism's validator), and `From` or
`MessagingServiceSid` being given (Twilio's `x-twilio: conditional` extension).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest
import requests

from helpers_net import disk_alert
from prism_peer import TWILIO_API_SPEC, PrismPeer, prism_missing
from tray_alerts.channels import build_channel
from tray_alerts.channels import sms as sms_module
from tray_alerts.channels.base import DeliveryError
from tray_alerts.channels.sms import GSM7, MAX_BODY, UCS2, SmsChannel, encoding, length
from tray_alerts.model import Alert, Level

SKIP_REASON = prism_missing(TWILIO_API_SPEC)
pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "-")

SID = "AC0123456789abcdef0123456789abcdef"  # the spec's ^AC[0-9a-fA-F]{32}$
TOKEN = "0123456789abcdef0123456789abcdef"
SENDER = "+15550001111"
SERVICE = "MG0123456789abcdef0123456789ABCDEF"  # the spec's ^MG[0-9a-fA-F]{32}$
RECIPIENTS = ["+15552223333", "+15554445555", "+15556667777"]
TIMEOUT = 10.0


@dataclass
class Sent:
    """One POST the channel made: the form it sent and Prism's answer."""

    form: dict[str, str]
    status: int
    answer: dict[str, Any]


@pytest.fixture(scope="module")
def prism() -> Iterator[PrismPeer]:
    """One Prism for the module: it takes a few seconds to parse Twilio's spec."""
    with PrismPeer(TWILIO_API_SPEC) as peer:
        yield peer


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every POST the SMS channel makes, through the real transport, with Prism's answer."""
    records: list[Sent] = []
    real_post = sms_module.post

    def spy(url: str, what: str, timeout: float, **kwargs: Any) -> requests.Response:
        response = real_post(url, what, timeout, **kwargs)
        records.append(Sent(dict(kwargs["data"]), response.status_code, response.json()))
        return response

    monkeypatch.setattr(sms_module, "post", spy)
    return records


def messages_url(base: str, sid: str = SID) -> str:
    """The Messages resource of account `sid` under `base`."""
    return f"{base}/2010-04-01/Accounts/{sid}/Messages.json"


def make_sms(prism: PrismPeer, recipients: list[str] | None = None, sid: str = SID,
             service: str | None = None) -> SmsChannel:
    """A real SmsChannel texting through Prism, from SENDER (or the Messaging Service `service`)."""
    channel = SmsChannel("pager", sid, TOKEN, None if service else SENDER, list(recipients or RECIPIENTS[:1]),
                         api_url=prism.url, max_per_hour=100, messaging_service_sid=service)
    channel.timeout = TIMEOUT
    return channel


def assert_accepted(records: list[Sent], count: int) -> None:
    """`count` POSTs went out and Prism accepted each as a Message resource (201, an `SM…` sid)."""
    assert len(records) == count
    for record in records:
        assert record.status == 201, record
        assert record.answer["sid"].startswith("SM")


# --- what SmsChannel sends passes the spec ---------------------------------------------------------------------

def test_a_plain_ascii_alert_to_every_recipient(prism, sent):
    make_sms(prism, RECIPIENTS).send(disk_alert())
    assert_accepted(sent, 3)
    assert [record.form["To"] for record in sent] == RECIPIENTS
    for record in sent:
        assert record.form == {"From": SENDER, "To": record.form["To"],
                               "Body": "[CRITICAL] disk_full: disk at 95% on /var (host=web-01, mount=/var)"}


def test_a_long_ascii_alert_cut_to_1600_septets_stays_gsm7(prism, sent):
    make_sms(prism).send(Alert("log_flood", Level.ERROR, "x" * 3000, {"file": "/var/log/syslog"}))
    assert_accepted(sent, 1)
    body = sent[0].form["Body"]
    assert (length(body), encoding(body)) == (MAX_BODY, GSM7)
    assert body.endswith("xxx...")


def test_an_emoji_alert_is_ucs2_within_1600_utf16_units(prism, sent):
    make_sms(prism).send(Alert("moods", Level.ERROR, "🔥" * 900 + " é ç"))
    assert_accepted(sent, 1)
    body = sent[0].form["Body"]
    assert encoding(body) == UCS2
    assert MAX_BODY - 1 <= length(body) <= MAX_BODY  # a surrogate pair is never split, so one unit may stay free
    assert body.endswith("🔥…")


def test_a_resolved_alert(prism, sent):
    make_sms(prism).send(disk_alert(resolved=True))
    assert_accepted(sent, 1)
    assert sent[0].form["Body"].startswith("[RESOLVED] disk_full: ")


def test_a_messaging_service_sid_instead_of_from(prism, sent):
    channel = build_channel("pager", "sms", {
        "account_sid": SID, "auth_token": TOKEN, "messaging_service_sid": SERVICE, "to": RECIPIENTS[0],
        "api_url": prism.url,
    })
    channel.send(disk_alert())
    assert_accepted(sent, 1)
    assert set(sent[0].form) == {"MessagingServiceSid", "To", "Body"}
    assert sent[0].form["MessagingServiceSid"] == SERVICE


def test_several_recipients_one_post_each_with_send_to(prism, sent):
    channel = SmsChannel.from_options("pager", {
        "account_sid": SID, "auth_token": TOKEN, "from": SENDER, "to": ", ".join(RECIPIENTS),
        "api_url": prism.url + "/", "max_per_hour": "1",
    })
    alert = disk_alert(Level.WARNING)
    for number in channel.row_recipients():
        channel.send_to(alert, number)  # one alert: one unit of the hourly cap for all three numbers
    assert_accepted(sent, 3)
    assert [record.form["To"] for record in sent] == RECIPIENTS


# --- Prism really validates: the same request, broken in one way, is refused -------------------------------------

def valid_request(base: str) -> dict[str, Any]:
    """requests.post keyword arguments for the form SmsChannel sends, complete."""
    form = {"From": SENDER, "To": RECIPIENTS[0], "Body": SmsChannel.body(disk_alert())}
    return {"url": messages_url(base), "data": form, "auth": (SID, TOKEN), "timeout": TIMEOUT}


def without_to(request: dict[str, Any]) -> None:
    del request["data"]["To"]


def short_account_sid(request: dict[str, Any]) -> None:
    request["url"] = request["url"].replace(SID, SID[:-1])


def service_sid_of_the_wrong_kind(request: dict[str, Any]) -> None:
    del request["data"]["From"]
    request["data"]["MessagingServiceSid"] = "PN" + SERVICE[2:]


def as_json(request: dict[str, Any]) -> None:
    request["json"] = request.pop("data")


def without_auth(request: dict[str, Any]) -> None:
    del request["auth"]


def bearer_auth(request: dict[str, Any]) -> None:
    del request["auth"]
    request["headers"] = {"Authorization": f"Bearer {TOKEN}"}


BREAKAGES: list[tuple[Callable[[dict[str, Any]], None], int, str]] = [
    (without_to, 422, "must have required property 'To'"),
    (short_account_sid, 422, 'accountsid must match pattern "^AC[0-9a-fA-F]{32}$"'),
    (service_sid_of_the_wrong_kind, 422, 'MessagingServiceSid must match pattern "^MG[0-9a-fA-F]{32}$"'),
    (as_json, 415, "Supported content types: application/x-www-form-urlencoded"),
    (without_auth, 401, "Invalid security scheme used"),
    (bearer_auth, 401, "Invalid security scheme used"),
]


def prism_says(response: requests.Response) -> list[str]:
    """Prism's reasons for refusing: its error's title, detail and each validation message."""
    problem = response.json()
    return [problem["title"], problem["detail"], *(item["message"] for item in problem.get("validation", []))]


def test_the_complete_request_is_accepted(prism):
    response = requests.post(**valid_request(prism.url))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("breakage, status, message", BREAKAGES, ids=[item[0].__name__ for item in BREAKAGES])
def test_a_request_broken_one_way_is_refused(prism, breakage, status, message):
    request = valid_request(prism.url)
    breakage(request)
    response = requests.post(**request)
    assert response.status_code == status, response.text
    assert any(message in reason for reason in prism_says(response)), prism_says(response)


def test_the_spec_leaves_body_length_to_us(prism):
    request = valid_request(prism.url)
    request["data"]["Body"] = "x" * (MAX_BODY + 1)
    assert requests.post(**request).status_code == 201  # so the 1600 cut is asserted above, not by Prism


# --- what the spec refuses, SmsChannel reports as a permanent DeliveryError ---------------------------------------

@pytest.mark.parametrize("sid, service", [
    (SID[:-1], None),  # the path's AccountSid: from_options checks its shape only against Twilio's own api_url
    (SID, "MG0123"),  # MessagingServiceSid: from_options checks its shape, the constructor does not
], ids=["short-account-sid", "short-messaging-service-sid"])
def test_a_request_the_spec_refuses_is_a_non_retryable_delivery_error(prism, sent, sid, service):
    channel = make_sms(prism, sid=sid, service=service)
    with pytest.raises(DeliveryError) as caught:
        channel.send(disk_alert())
    assert caught.value.retryable is False
    assert caught.value.message.startswith("SMS: 127.0.0.1 refused the message: HTTP 422 ")
    assert "UNPROCESSABLE_ENTITY" in caught.value.message  # Prism's validation error, not a made-up answer
    assert TOKEN not in caught.value.message
    assert sent == []  # the spy records only answers the transport accepted

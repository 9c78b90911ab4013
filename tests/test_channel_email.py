"""EmailChannel against a real SMTP server: aiosmtpd on 127.0.0.1, with trustme certificates for TLS."""
from __future__ import annotations

import email
import email.policy
import socket
import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from helpers_net import SHORT_TIMEOUT, disk_alert, free_port, send_failure
from tray_alerts.channels import build_channel
from tray_alerts.channels.base import NotConfigured, SettingError
from tray_alerts.channels.email import EmailChannel
from tray_alerts.delivery import attempt
from tray_alerts.model import Alert, Level

SENDER = "alerts@example.test"
RECIPIENTS = ["ops@example.test", "oncall@example.test"]
USERNAME = "mailer"
PASSWORD = "smtpPASSWORDsecret!9931"

# The plain-text AUTH servers below are deliberate (loopback only); aiosmtpd warns about them.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


class Recorder:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [email.message_from_bytes(envelope.content, policy=email.policy.default)
                for envelope in self.envelopes]


def check_password(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USERNAME.encode(), PASSWORD.encode())
    # handled=False: aiosmtpd then answers 535 itself (with the default handled=True it would stay silent).
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture
def smtp_server():
    """Start an aiosmtpd Controller on a free loopback port: smtp_server(**kwargs) -> (recorder, port)."""
    started = []

    def start(**kwargs):
        recorder = Recorder()
        port = free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return recorder, port

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca):
    """A server-side context with a certificate for 127.0.0.1 signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def trust_test_ca(ca, tmp_path, monkeypatch):
    """Make ssl.create_default_context() (which the channel calls) trust the test CA, through SSL_CERT_FILE."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    probe = ssl.create_default_context()
    if not probe.get_ca_certs():
        pytest.skip("this OpenSSL build ignores SSL_CERT_FILE; cannot make the channel trust the test CA")
    return path


def make_email(port: int, security: str = "none", **kwargs) -> EmailChannel:
    channel = EmailChannel("mail", "127.0.0.1", port, security, SENDER, list(RECIPIENTS), **kwargs)
    channel.timeout = 5.0
    return channel


# --- plain delivery -----------------------------------------------------------------------------------------------

def test_plain_delivery_to_all_recipients(smtp_server):
    recorder, port = smtp_server()
    alert = disk_alert(Level.CRITICAL)
    assert make_email(port).send(alert) is None
    (envelope,) = recorder.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == RECIPIENTS
    (message,) = recorder.messages()
    assert message["Subject"] == "[CRITICAL] disk_full: disk at 95% on /var"
    assert message["From"] == SENDER
    assert message["To"] == ", ".join(RECIPIENTS)
    assert message["Date"]
    assert message["Message-ID"].endswith("@tray-alerts>")
    body = message.get_content()
    lines = body.splitlines()
    assert lines[0] == "disk at 95% on /var"
    assert "event: disk_full" in lines
    assert "level: critical" in lines
    assert "state: firing" in lines
    assert f"host: {socket.gethostname()}" in lines
    assert "host: web-01" in lines
    assert "mount: /var" in lines
    assert any(line.startswith("time: ") for line in lines)


def test_resolved_alert_subject_starts_with_resolved(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send(disk_alert(Level.WARNING, resolved=True))
    (message,) = recorder.messages()
    assert message["Subject"].startswith("[RESOLVED]")
    assert message["Subject"] == "[RESOLVED] disk_full: disk at 95% on /var"
    assert "state: recovered" in message.get_content().splitlines()


def test_multiline_message_gives_a_one_line_subject(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send(Alert("backup", Level.ERROR, "backup failed\n  exit code 3"))
    (message,) = recorder.messages()
    assert message["Subject"] == "[ERROR] backup: backup failed exit code 3"
    assert message.get_content().splitlines()[:3] == ["backup failed", "  exit code 3", ""]


def test_long_subject_is_cut(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send(Alert("flood", Level.INFO, "z" * 500))
    (message,) = recorder.messages()
    subject = message["Subject"].replace("\n", "").replace(" ", "")
    assert len(message["Subject"]) <= 200 or len(subject) <= 200
    assert subject.endswith("…")


def test_from_options_builds_a_working_plain_channel(smtp_server):
    recorder, port = smtp_server()
    channel = build_channel("mail", "email", {"host": " 127.0.0.1 ", "port": str(port), "security": "NONE",
                                             "to": "ops@example.test, oncall@example.test,", "from": SENDER})
    assert isinstance(channel, EmailChannel)
    channel.send(disk_alert())
    assert recorder.envelopes[0].rcpt_tos == RECIPIENTS


# --- login --------------------------------------------------------------------------------------------------------

def test_login_with_the_right_password_delivers(smtp_server):
    recorder, port = smtp_server(authenticator=check_password, auth_require_tls=False, auth_required=True)
    make_email(port, username=USERNAME, password=PASSWORD).send(disk_alert())
    assert len(recorder.envelopes) == 1


def test_wrong_password_is_not_retryable_and_not_echoed(smtp_server, isolated_secrets):
    recorder, port = smtp_server(authenticator=check_password, auth_require_tls=False, auth_required=True)
    wrong = "wrongPASSWORDsecret#5510"
    isolated_secrets(wrong)
    channel = make_email(port, username=USERNAME, password=wrong)
    error = send_failure(channel, disk_alert())
    assert error.retryable is False
    assert "login refused" in error.message
    assert "535" in error.message
    assert wrong not in error.message and USERNAME not in error.message
    outcome = attempt(channel, disk_alert())
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert wrong not in outcome.detail
    assert recorder.envelopes == []


def test_server_requiring_login_refuses_an_anonymous_sender(smtp_server):
    recorder, port = smtp_server(authenticator=check_password, auth_require_tls=False, auth_required=True)
    error = send_failure(make_email(port), disk_alert())
    assert error.retryable is False
    assert "530" in error.message
    assert recorder.envelopes == []


def test_login_against_a_server_without_auth_says_so(smtp_server):
    recorder, port = smtp_server()  # AUTH is only offered over TLS by default, and this is plain text
    error = send_failure(make_email(port, username=USERNAME, password=PASSWORD), disk_alert())
    assert "STARTTLS" not in error.message
    assert "AUTH" in error.message
    assert PASSWORD not in error.message
    assert recorder.envelopes == []


def test_non_ascii_recipient_is_delivered_with_smtputf8(smtp_server):
    recorder, port = smtp_server()
    channel = make_email(port)
    channel.recipients = ["bjørn@exämple.test"]
    channel.send(disk_alert())
    assert recorder.envelopes[0].rcpt_tos == ["bjørn@exämple.test"]


def test_non_ascii_recipient_without_smtputf8_is_reported(smtp_server):
    recorder, port = smtp_server(enable_SMTPUTF8=False)
    channel = make_email(port)
    channel.recipients = ["bjørn@exämple.test"]
    error = send_failure(channel, disk_alert())
    assert "SMTPUTF8" in error.message
    assert "STARTTLS" not in error.message
    assert recorder.envelopes == []


# --- STARTTLS and SSL ---------------------------------------------------------------------------------------------

def test_starttls_with_an_untrusted_certificate_is_not_retryable(smtp_server, server_tls):
    recorder, port = smtp_server(tls_context=server_tls, require_starttls=True)
    channel = make_email(port, "starttls")
    error = send_failure(channel, disk_alert())
    assert error.retryable is False
    assert "certificate" in error.message
    assert "not trusted" in error.message
    assert recorder.envelopes == []


def test_starttls_without_verification_delivers(smtp_server, server_tls):
    recorder, port = smtp_server(tls_context=server_tls, require_starttls=True)
    make_email(port, "starttls", verify=False).send(disk_alert())
    (message,) = recorder.messages()
    assert message["Subject"] == "[CRITICAL] disk_full: disk at 95% on /var"
    assert recorder.envelopes[0].rcpt_tos == RECIPIENTS


def test_starttls_with_a_trusted_certificate_delivers(smtp_server, server_tls, trust_test_ca):
    recorder, port = smtp_server(tls_context=server_tls, require_starttls=True)
    make_email(port, "starttls", verify=True).send(disk_alert())
    assert len(recorder.envelopes) == 1


def test_starttls_then_login(smtp_server, server_tls):
    recorder, port = smtp_server(tls_context=server_tls, require_starttls=True, authenticator=check_password,
                                 auth_required=True)
    make_email(port, "starttls", verify=False, username=USERNAME, password=PASSWORD).send(disk_alert())
    assert len(recorder.envelopes) == 1


def test_plain_sender_to_a_server_requiring_starttls_is_refused(smtp_server, server_tls):
    recorder, port = smtp_server(tls_context=server_tls, require_starttls=True)
    error = send_failure(make_email(port, "none"), disk_alert())
    assert error.retryable is False
    assert "530" in error.message
    assert recorder.envelopes == []


def test_starttls_against_a_server_without_it_is_reported(smtp_server):
    recorder, port = smtp_server()
    error = send_failure(make_email(port, "starttls", verify=False), disk_alert())
    assert "does not offer STARTTLS" in error.message
    assert recorder.envelopes == []


def test_implicit_ssl_without_verification_delivers(smtp_server, server_tls):
    recorder, port = smtp_server(ssl_context=server_tls)
    make_email(port, "ssl", verify=False).send(disk_alert())
    assert len(recorder.envelopes) == 1


def test_implicit_ssl_with_an_untrusted_certificate_is_not_retryable(smtp_server, server_tls):
    recorder, port = smtp_server(ssl_context=server_tls)
    error = send_failure(make_email(port, "ssl"), disk_alert())
    assert error.retryable is False
    assert "not trusted" in error.message
    assert recorder.envelopes == []


def test_implicit_ssl_with_a_trusted_certificate_delivers(smtp_server, server_tls, trust_test_ca):
    recorder, port = smtp_server(ssl_context=server_tls)
    make_email(port, "ssl").send(disk_alert())
    assert len(recorder.envelopes) == 1


# --- unreachable --------------------------------------------------------------------------------------------------

def test_connection_refused_is_retryable(isolated_secrets):
    isolated_secrets(PASSWORD)
    port = free_port()
    channel = make_email(port, "starttls", username=USERNAME, password=PASSWORD)
    channel.timeout = SHORT_TIMEOUT
    error = send_failure(channel, disk_alert())
    assert error.retryable is True
    assert error.message == f"email: cannot reach 127.0.0.1:{port} (connection refused)"
    outcome = attempt(channel, disk_alert())
    assert (outcome.ok, outcome.retryable) == (False, True)
    assert PASSWORD not in outcome.detail


def test_silent_server_times_out_and_is_retryable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts connections but never says hello
        channel = make_email(listener.getsockname()[1])
        channel.timeout = SHORT_TIMEOUT
        error = send_failure(channel, disk_alert())
    assert error.retryable is True
    assert error.message.startswith("email: cannot reach 127.0.0.1:")


# --- from_options ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"host": "smtp.example.test"}, {"to": "ops@example.test"},
                                     {"host": " ", "to": "ops@example.test"}])
def test_missing_required_value_is_not_configured(options):
    with pytest.raises(NotConfigured):
        EmailChannel.from_options("mail", options)


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("ssl", 465), ("none", 25), ("", 587)])
def test_default_port_follows_security(security, port):
    channel = EmailChannel.from_options("mail", {"host": "smtp.example.test", "to": "a@example.test",
                                                 "security": security})
    assert channel.port == port
    assert channel.security == (security or "starttls")
    assert channel.verify is True


@pytest.mark.parametrize(("key", "value"), [("security", "tls"), ("port", "0"), ("port", "70000"),
                                            ("port", "smtp"), ("verify", "maybe")])
def test_bad_values_are_setting_errors(key, value):
    with pytest.raises(SettingError) as caught:
        EmailChannel.from_options("mail", {"host": "smtp.example.test", "to": "a@example.test", key: value})
    assert caught.value.key == key


def test_password_is_kept_verbatim_and_verify_can_be_switched_off():
    channel = EmailChannel.from_options("mail", {"host": "smtp.example.test", "to": "a@example.test",
                                                 "password": " spaced pw ", "username": " me ", "verify": "no"})
    assert channel._password == " spaced pw "
    assert channel._username == "me"
    assert channel.verify is False
    assert channel.sender == f"tray-alerts@{socket.gethostname()}"

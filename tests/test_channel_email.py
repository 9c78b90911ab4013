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
from tray_alerts.channels import email as email_module
from tray_alerts.channels.base import NotConfigured, SettingError
from tray_alerts.channels.email import EmailChannel
from tray_alerts.delivery import attempt
from tray_alerts.lifecycle import ActiveEvent
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
    assert not message["Message-ID"].endswith("@tray-alerts>")
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
    assert message["Subject"] == "[RESOLVED] disk_full (was WARNING): disk at 95% on /var"
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


# --- encoding: RFC 2047 subjects that keep their spaces, a 7-bit body -------------------------------------------------

UNICODE_PASSWORD = "Päßwörd✅secret"
NON_ASCII = [char for char in UNICODE_PASSWORD if not char.isascii()]


def received(recorder: Recorder) -> email.message.EmailMessage:
    """The one mail the server got, parsed by the email package."""
    (message,) = recorder.messages()
    return message


@pytest.mark.parametrize("text", ["wieder gut ✅ Ölstand", "Füllstand über 95 % 🔥 🔥 auf /var — bitte prüfen",
                                  "日本語 テキスト ✅ ok" + " lang" * 30], ids=["short", "emoji", "folded"])
def test_subject_keeps_the_spaces_between_encoded_words(smtp_server, text):
    recorder, port = smtp_server()
    make_email(port).send(Alert("ölstand", Level.WARNING, text))
    message = received(recorder)
    assert message["Subject"] == f"[WARNING] ölstand: {text}"
    raw_subject = recorder.envelopes[0].content.split(b"\r\n\r\n")[0].decode("ascii")
    assert all(len(line) <= 76 for line in raw_subject.split("\r\n") if "=?" in line)


def test_the_message_is_7bit_clean_and_the_body_decodes(smtp_server):
    recorder, port = smtp_server()  # aiosmtpd advertises 8BITMIME; the channel does not need it
    make_email(port).send(Alert("ölstand", Level.ERROR, "Ölstand niedrig ✅", {"tank": "Küche 🔥"}))
    (envelope,) = recorder.envelopes
    assert all(byte < 128 for byte in envelope.content)
    assert "BODY=8BITMIME" not in envelope.mail_options
    message = received(recorder)
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    lines = message.get_content().splitlines()
    assert lines[0] == "Ölstand niedrig ✅"
    assert "tank: Küche 🔥" in lines
    assert lines[-1] == "— tray-alerts"


def test_an_encoded_word_lookalike_in_the_message_is_not_decoded(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send(Alert("probe", Level.INFO, "=?utf-8?q?fake?= text"))
    assert received(recorder)["Subject"] == "[INFO] probe: =?utf-8?q?fake?= text"


def test_a_grouped_mail_is_7bit_clean_too(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send_many([Alert("a", Level.ERROR, "Öl ✅ leer"), Alert("b", Level.INFO, "gut 🔥 so")])
    assert all(byte < 128 for byte in recorder.envelopes[0].content)
    message = received(recorder)
    assert message["Subject"] == "[tray-alerts] 2 alerts, worst error"
    assert "[ERROR] a: Öl ✅ leer" in message.get_content().splitlines()


# --- Message-ID domain and threading -------------------------------------------------------------------------------

T0 = disk_alert().at


def episode_mails(episode: str = "5eed0000cafe0001") -> list[Alert]:
    """A firing, its escalation, a reminder and its recovery, shaped as the lifecycle makes them."""
    firing = ActiveEvent("disk_full", Level.WARNING, "disk at 85% on /var", {"mount": "/var"}, since=T0.timestamp(),
                         at=T0.timestamp(), episode=episode)
    escalated = ActiveEvent("disk_full", Level.CRITICAL, "disk at 95% on /var", {"mount": "/var"},
                            since=T0.timestamp(), at=T0.timestamp() + 60, episode=episode)
    reminder = Alert("disk_full", Level.CRITICAL, "disk at 95% on /var", at=escalated.alert().at.replace(hour=13),
                     reminder=True, firing_for=1800, episode=episode)
    recovery = Alert("disk_full", Level.CRITICAL, "back to 60% on /var", {"mount": "/var"}, resolved=True,
                     firing_for=42 * 60, episode=episode)
    return [firing.alert(), escalated.alert(), reminder, recovery]


def test_message_id_is_on_the_hosts_fqdn(smtp_server, monkeypatch):
    monkeypatch.setattr(email_module.socket, "getfqdn", lambda *name: "alerts-host.example.org")
    recorder, port = smtp_server()
    make_email(port).send(disk_alert())
    assert received(recorder)["Message-ID"].endswith("@alerts-host.example.org>")


def test_message_id_falls_back_to_the_senders_domain_without_an_fqdn(smtp_server, monkeypatch):
    monkeypatch.setattr(email_module.socket, "getfqdn", lambda *name: "localhost")
    recorder, port = smtp_server()
    make_email(port).send(disk_alert())
    message_id = received(recorder)["Message-ID"]
    assert message_id.endswith("@example.test>")
    assert "tray-alerts>" not in message_id


def test_escalation_reminder_and_recovery_thread_under_the_firing(smtp_server, monkeypatch):
    monkeypatch.setattr(email_module.socket, "getfqdn", lambda *name: "alerts-host.example.org")
    recorder, port = smtp_server()
    channel = make_email(port)
    for alert in episode_mails():
        channel.send(alert)
    firing, escalation, reminder, recovery = recorder.messages()
    assert firing["Message-ID"] == "<5eed0000cafe0001.firing@alerts-host.example.org>"
    assert firing["In-Reply-To"] is None and firing["References"] is None
    ids = [message["Message-ID"] for message in recorder.messages()]
    assert len(set(ids)) == 4
    for later in (escalation, reminder, recovery):
        assert later["In-Reply-To"] == firing["Message-ID"]
        assert later["References"] == firing["Message-ID"]
    assert escalation["Subject"] == "[CRITICAL] disk_full: disk at 95% on /var"


def test_a_retried_mail_keeps_its_message_id(smtp_server):
    recorder, port = smtp_server()
    channel = make_email(port)
    for alert in episode_mails() * 2:
        channel.send(alert)
    ids = [message["Message-ID"] for message in recorder.messages()]
    assert ids[:4] == ids[4:]


def test_a_new_episode_starts_a_new_thread(smtp_server):
    recorder, port = smtp_server()
    channel = make_email(port)
    channel.send(episode_mails("0000000000000001")[-1])
    channel.send(episode_mails("0000000000000002")[0])
    recovery, next_firing = recorder.messages()
    assert next_firing["In-Reply-To"] is None and next_firing["References"] is None
    assert next_firing["Message-ID"] != recovery["In-Reply-To"]
    assert next_firing["Message-ID"].startswith("<0000000000000002.firing@")


def test_an_alert_without_an_episode_is_not_threaded(smtp_server):
    recorder, port = smtp_server()
    channel = make_email(port)
    channel.send(disk_alert())
    channel.send(disk_alert())
    first, second = recorder.messages()
    assert first["Message-ID"] != second["Message-ID"]
    assert first["In-Reply-To"] is None and second["References"] is None


# --- recovery subjects -----------------------------------------------------------------------------------------------

def test_recovery_subject_says_what_fired_and_for_how_long(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send(episode_mails()[-1])
    assert received(recorder)["Subject"] == "[RESOLVED] disk_full (was CRITICAL): back to 60% on /var — " \
                                            "recovered after 42 min"


def test_recovery_subject_without_a_message_of_its_own(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send(Alert("disk_full", Level.ERROR, "recovered", resolved=True, firing_for=90))
    assert received(recorder)["Subject"] == "[RESOLVED] disk_full (was ERROR) — recovered after 1 min"


def test_non_ascii_recovery_subject_keeps_its_spaces(smtp_server):
    recorder, port = smtp_server()
    make_email(port).send(Alert("ölstand", Level.WARNING, "wieder gut ✅ Ölstand", resolved=True, firing_for=2520))
    assert received(recorder)["Subject"] == "[RESOLVED] ölstand (was WARNING): wieder gut ✅ Ölstand — " \
                                            "recovered after 42 min"


def test_long_recovery_subject_keeps_the_duration():
    alert = Alert("flood", Level.INFO, "z" * 500, resolved=True, firing_for=60)
    text = email_module.subject(alert)
    assert len(text) <= 200
    assert text.endswith("… — recovered after 1 min")


# --- non-ASCII credentials -------------------------------------------------------------------------------------------

def check_unicode_password(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USERNAME.encode(), UNICODE_PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.mark.parametrize("excluded", [[], ["PLAIN"]], ids=["plain", "login"])
def test_non_ascii_password_logs_in_as_utf8(smtp_server, excluded):
    recorder, port = smtp_server(authenticator=check_unicode_password, auth_require_tls=False, auth_required=True,
                                 auth_exclude_mechanism=excluded)
    make_email(port, username=USERNAME, password=UNICODE_PASSWORD).send(disk_alert())
    assert len(recorder.envelopes) == 1


def test_wrong_non_ascii_password_is_refused_without_showing_it(smtp_server, isolated_secrets, caplog):
    caplog.set_level("DEBUG")
    recorder, port = smtp_server(authenticator=check_password, auth_require_tls=False, auth_required=True)
    channel = make_email(port, username=USERNAME, password=UNICODE_PASSWORD)
    error = send_failure(channel, disk_alert())
    assert error.message == "email: login refused by 127.0.0.1 (535)"
    assert error.retryable is False
    outcome = attempt(channel, disk_alert())
    assert (outcome.ok, outcome.retryable) == (False, False)
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("tray_alerts"))
    for text in (error.message, outcome.detail, ours):
        assert not any(char in text for char in NON_ASCII)
        assert UNICODE_PASSWORD not in text
    assert recorder.envelopes == []


@pytest.mark.parametrize("key", ["password", "username"])
@pytest.mark.parametrize("value", ["pä\x00ss", "pass\udce4word", "tab\there"])
def test_unsendable_credentials_are_refused_at_config_time(key, value):
    with pytest.raises(SettingError) as caught:
        EmailChannel.from_options("mail", {"host": "smtp.example.test", "to": "a@example.test", "username": "me",
                                           key: value})
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: contains a control character")
    assert not any(char in str(caught.value) for char in value if not char.isascii() or not char.isprintable())
    assert value not in str(caught.value)


def test_non_ascii_password_is_taken_at_config_time():
    channel = EmailChannel.from_options("mail", {"host": "smtp.example.test", "to": "a@example.test",
                                                 "username": "jörg", "password": UNICODE_PASSWORD})
    assert channel._password == UNICODE_PASSWORD


# --- several recipients: one transaction, or `separately` one row per address -------------------------------------

class Refusing(Recorder):
    """A recorder whose RCPT answers come from `answers` (address -> SMTP reply, used up one by one)."""

    def __init__(self, answers: dict[str, list[str]]):
        super().__init__()
        self.answers = answers

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        waiting = self.answers.get(address)
        if waiting:
            return waiting.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"


def start_refusing(answers: dict[str, list[str]]) -> tuple[Refusing, Controller, int]:
    recorder, port = Refusing(answers), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    return recorder, controller, port


def test_one_transaction_with_a_refused_recipient_fails_for_good_and_names_it():
    recorder, controller, port = start_refusing({RECIPIENTS[1]: ["550 5.1.1 no such user"]})
    try:
        error = send_failure(make_email(port), disk_alert())
    finally:
        controller.stop()
    assert [envelope.rcpt_tos for envelope in recorder.envelopes] == [RECIPIENTS[:1]]
    assert error.retryable is False  # a retry would mail the first address twice
    assert error.message == f"email: 127.0.0.1 refused 1 of 2 recipients: {RECIPIENTS[1]} (550); the others have it"


def test_separately_sends_each_address_its_own_mail_and_records_each():
    recorder, controller, port = start_refusing({})
    try:
        channel = EmailChannel.from_options("mail", {"host": "127.0.0.1", "port": str(port), "security": "none",
                                                     "from": SENDER, "to": ", ".join(RECIPIENTS),
                                                     "separately": "yes"})
        assert channel.row_recipients() == RECIPIENTS
        channel.send(disk_alert())
    finally:
        controller.stop()
    assert [envelope.rcpt_tos for envelope in recorder.envelopes] == [[address] for address in RECIPIENTS]
    assert [message["To"] for message in recorder.messages()] == RECIPIENTS  # nobody sees the other addresses


def test_without_separately_there_is_one_row_for_all():
    assert make_email(25).row_recipients() == []


def test_a_bad_separately_value_is_a_setting_error():
    with pytest.raises(SettingError) as caught:
        EmailChannel.from_options("mail", {"host": "h", "to": "a@example.org", "separately": "perhaps"})
    assert caught.value.key == "separately"


def test_separately_through_the_outbox_retries_only_the_address_that_failed(tmp_path):
    from tray_alerts import Engine
    from tray_alerts.clock import FakeClock

    gone, busy = RECIPIENTS[0], RECIPIENTS[1]
    third = "ops@example.org"
    answers = {gone: ["550 5.1.1 no such user"], busy: ["451 4.3.0 try again later"]}
    recorder, controller, port = start_refusing(answers)
    clock = FakeClock()
    channel = make_email(port, separately=True)
    channel.recipients = [gone, busy, third]
    try:
        with Engine({"mail": channel}, {"critical": ["mail"]}, tmp_path / "s.db", retry_in_background=False,
                    clock=clock) as engine:
            first = engine.raise_alert("disk_full", "critical", "disk at 95%")
            assert first.outcomes["mail"].status == "failed"  # the worst of its addresses: one is refused for good
            clock.advance(10)
            engine.tick()
            assert engine.wait_idle() and engine.pending() == []
            lines = [entry.detail for entry in engine.history(10, "disk_full")]
    finally:
        controller.stop()
    mailed = [envelope.rcpt_tos for envelope in recorder.envelopes]
    assert mailed == [[third], [busy]]  # the third once, the busy one on its retry, the refused one never
    assert f"email to {gone}: 127.0.0.1 refused {gone} (550)" in lines
    assert any(line.startswith(f"email to {busy}: 127.0.0.1 refused {busy} (451) — will retry") for line in lines)

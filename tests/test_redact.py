import logging

from tray_alerts.redact import RedactingFilter, redact, register_secret


def test_urls_are_masked_whole_and_by_path():
    register_secret("https://hooks.slack.example/services/T0001/B0001/SeCrEtToKeN1")
    assert "SeCrEtToKeN1" not in redact("POST https://hooks.slack.example/services/T0001/B0001/SeCrEtToKeN1 failed")
    assert redact("url: /services/T0001/B0001/SeCrEtToKeN1") == "url: ***"


def test_log_records_and_tracebacks_are_masked(caplog):
    register_secret("hunter2-password")
    logger = logging.getLogger("tray_alerts.test_redact")
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        try:
            raise ValueError("login with hunter2-password failed")
        except ValueError:
            logger.exception("channel %s said %s", "email", "hunter2-password")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert "hunter2-password" not in caplog.text and "***" in caplog.text


def test_the_app_log_stays_private_after_it_rotates(tmp_path):
    import os
    import stat

    from tray_alerts.logsetup import configure_logging

    log_file = tmp_path / "logs" / "app.log"
    root = logging.getLogger("tray_alerts")
    saved = (root.handlers[:], root.propagate, root.level)
    configure_logging(log_file, "info", stderr_level="critical")
    try:
        handler = next(h for h in logging.getLogger("tray_alerts").handlers if hasattr(h, "doRollover"))
        logging.getLogger("tray_alerts.test").info("before the rollover")
        handler.doRollover()
        logging.getLogger("tray_alerts.test").info("after the rollover")
        for path in (log_file, log_file.with_name("app.log.1")):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        assert "after the rollover" in log_file.read_text()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.propagate, root.level = saved  # leave pytest's log capture working


# ---- every logger's records, whatever handlers the host installed ---------------------------------------------

import io  # noqa: E402

import pytest  # noqa: E402

from tray_alerts.redact import install_record_masking, mask_record  # noqa: E402

HOOK = "https://hooks.slack.example/services/T0009/B0009/LiBrArYsEcReT9"


@pytest.fixture
def host_logger():
    """A third-party-style logger with a plain handler of the host's (no filter of ours) writing to a buffer."""
    saved_factory = logging.getLogRecordFactory()
    logger = logging.getLogger("urllib3.connectionpool.test_redact")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logging.setLogRecordFactory(saved_factory)


def test_a_url_path_split_across_args_is_masked_in_any_logger(isolated_secrets, host_logger):
    logger, stream = host_logger
    isolated_secrets(HOOK)
    logger.debug('%s://%s:%s "%s %s %s" %s %s', "https", "hooks.slack.example", 443, "POST",
                 "/services/T0009/B0009/LiBrArYsEcReT9", "HTTP/1.1", 200, 2)
    assert stream.getvalue() == 'DEBUG:urllib3.connectionpool.test_redact:https://hooks.slack.example:443 "POST *** ' \
                                'HTTP/1.1" 200 2\n'


def test_a_percent_encoded_path_is_masked(isolated_secrets, host_logger):
    logger, stream = host_logger
    isolated_secrets("https://hooks.example/hook/tok en|42x")
    logger.debug("POST %s", "/hook/tok%20en%7C42x")
    assert "tok" not in stream.getvalue() and "POST ***" in stream.getvalue()


def test_records_without_a_secret_keep_their_msg_and_args(isolated_secrets, host_logger):
    logger, _ = host_logger
    isolated_secrets(HOOK)
    record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "user %s logged in", ("alice",), None)
    assert (record.msg, record.args) == ("user %s logged in", ("alice",))


def test_a_traceback_with_a_secret_is_masked(isolated_secrets, host_logger):
    logger, stream = host_logger
    isolated_secrets(HOOK)
    try:
        raise ConnectionError("Max retries exceeded with url: /services/T0009/B0009/LiBrArYsEcReT9")
    except ConnectionError:
        logger.exception("post failed")
    assert "LiBrArYsEcReT9" not in stream.getvalue() and "url: ***" in stream.getvalue()


def test_arguments_of_a_bad_format_string_are_masked(isolated_secrets, host_logger, capsys):
    logger, _ = host_logger
    isolated_secrets(HOOK)
    path = HOOK.partition(".example")[2]
    logger.debug("%d items from %s", path)  # logging reports the error on stderr, with the arguments
    err = capsys.readouterr().err
    assert "Arguments: ('***',)" in err and path not in err


def test_a_factory_the_host_set_is_kept_and_one_set_later_is_wrapped(isolated_secrets, host_logger):
    logger, stream = host_logger
    make = logging.getLogRecordFactory()
    tagged: list[str] = []

    def host_factory(*args, **kwargs):
        tagged.append("host")
        return make(*args, **kwargs)

    logging.setLogRecordFactory(host_factory)
    isolated_secrets(HOOK)
    logger.info("sent to %s", HOOK)
    logging.setLogRecordFactory(host_factory)  # the host replaces ours afterwards
    isolated_secrets("another-secret-value")
    install_record_masking()  # idempotent
    logger.info("sent to %s with another-secret-value", HOOK)
    assert tagged == ["host", "host"]
    assert stream.getvalue().count("INFO:urllib3.connectionpool.test_redact:sent to ***") == 2
    assert "another-secret-value" not in stream.getvalue()


def test_mask_record_does_nothing_without_secrets(isolated_secrets):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", (HOOK,), None)
    mask_record(record)
    assert record.getMessage() == f"value {HOOK}"


def test_the_log_still_rolls_over_at_its_size_with_the_cheap_check(tmp_path):
    import logging

    from tray_alerts.logsetup import FAR_BELOW_LIMIT, PrivateRotatingFileHandler

    path = tmp_path / "app.log"
    limit = FAR_BELOW_LIMIT + 50_000
    handler = PrivateRotatingFileHandler(path, maxBytes=limit, backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    for number in range(4_000):
        handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "x" * 99 + str(number % 10), None, None))
    handler.close()
    assert (tmp_path / "app.log.1").exists()
    assert path.stat().st_size < limit and (tmp_path / "app.log.1").stat().st_size < limit

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

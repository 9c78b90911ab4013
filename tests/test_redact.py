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

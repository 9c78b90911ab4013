from datetime import datetime, timezone

import pytest

from tray_alerts import Alert, Level
from tray_alerts.model import MAX_MESSAGE_LENGTH, check_event, clean_context, clean_message


def test_levels_are_ordered_by_severity_not_by_name():
    assert Level.INFO < Level.WARNING < Level.ERROR < Level.CRITICAL
    assert Level.CRITICAL >= Level.ERROR and Level.INFO <= Level.INFO
    assert max(Level) is Level.CRITICAL
    assert sorted([Level.ERROR, Level.INFO, Level.CRITICAL, Level.WARNING]) == list(Level)


def test_levels_are_strings():
    assert Level.WARNING == "warning" and str(Level.ERROR) == "error"
    assert {Level.INFO: 1}["info"] == 1


@pytest.mark.parametrize("text", ["warning", "WARNING", " Warning ", Level.WARNING])
def test_parse_accepts_any_case(text):
    assert Level.parse(text) is Level.WARNING


@pytest.mark.parametrize("bad", ["warn", "", None, 3, ["error"]])
def test_parse_rejects_with_the_allowed_levels(bad):
    with pytest.raises(ValueError, match="allowed: info, warning, error, critical"):
        Level.parse(bad)


def test_comparing_with_a_level_name_uses_severity():
    assert Level.INFO < "warning" and Level.CRITICAL > "error" and not Level.ERROR < "ERROR"
    with pytest.raises(TypeError):
        Level.INFO < 3  # noqa: B015


def test_format_matches_the_documented_line():
    at = datetime(2026, 11, 26, 14, 30, 1, tzinfo=timezone.utc)
    alert = Alert("disk_full", Level.CRITICAL, "disk at 95% on /var", {"host": "web-01", "mount": "/var"}, at)
    clock = at.astimezone().strftime("%H:%M:%S")
    assert alert.format() == f"[CRITICAL] disk at 95% on /var ({clock}) host=web-01 mount=/var"


def test_resolved_alert_formats_as_resolved():
    alert = Alert("disk_full", "critical", "recovered", resolved=True)
    assert alert.format().startswith("[RESOLVED] recovered (")


def test_alert_defaults_and_round_trip():
    alert = Alert("api_down", "error", "HTTP 500", {"url": "http://x"})
    assert alert.level is Level.ERROR and alert.at.tzinfo is not None and alert.resolved is False
    assert Alert.from_dict(alert.to_dict()) == alert


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        Alert("x", "info", "m", at=datetime(2026, 1, 1))


@pytest.mark.parametrize("bad", ["", "   ", None, 5, "a\nb", "x" * 201])
def test_bad_event_ids(bad):
    with pytest.raises(ValueError):
        check_event(bad)


def test_long_messages_and_odd_context_are_made_safe():
    assert len(clean_message("x" * 100_000)) == MAX_MESSAGE_LENGTH
    cleaned = clean_context({"n": 1, "f": float("nan"), "obj": object(), "nested": {"a": [1, 2]}, 3: "k"})
    assert cleaned["n"] == 1 and cleaned["f"] == "nan"
    assert cleaned["nested"] == '{"a": [1, 2]}' and "object" in cleaned["obj"] and cleaned["3"] == "k"
    big = clean_context({f"k{i}": i for i in range(500)})
    assert len(big) == 51 and "450 more" in big["…"]

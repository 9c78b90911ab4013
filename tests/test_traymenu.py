"""The tray's menu and tooltip as pure functions of a TrayState (no display, no pystray)."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

import pytest

from tray_alerts.model import Level
from tray_alerts.monitors.base import Reading
from tray_alerts.monitors.runner import MonitorStatus
from tray_alerts.state import ActiveEvent, HistoryEntry, from_timestamp
from tray_alerts.traymenu import (MAX_ALERTS_SHOWN, MAX_TOOLTIP, Actions, Item, TrayState, alert_submenu,
                                  describe_history, flatten, header, menu, monitors_submenu, next_morning,
                                  recent_submenu, separator, snooze_submenu, tooltip)

BOTTOM = ["Snooze notifications", "Monitors", "Recent", "-", "Open settings", "Open log", "Reload settings", "Quit"]


def today_at(hour: int, minute: int = 0, second: int = 0) -> float:
    """A Unix time today (local), so the clock shows no date."""
    return datetime.now().replace(hour=hour, minute=minute, second=second, microsecond=0).timestamp()


NOON = today_at(12)


def hhmm(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%H:%M")


def event(name: str, level: Level = Level.WARNING, message: str = "", *, ago: float = 720, seen: int = 1,
          last_ago: float | None = None, context: dict | None = None, now: float = NOON) -> ActiveEvent:
    since = now - ago
    return ActiveEvent(name, level, message or f"{name} is bad", dict(context or {}), since, since, seen,
                       now - (ago if last_ago is None else last_ago))


class Recorder:
    """An Actions made of lambdas that note what was called, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        note = self.calls.append
        self.actions = Actions(
            clear=lambda name: note(("clear", name)),
            clear_all=lambda: note(("clear_all",)),
            snooze=lambda until: note(("snooze", until)),
            check_now=lambda: note(("check_now",)),
            open_settings=lambda: note(("open_settings",)),
            open_log=lambda: note(("open_log",)),
            reload=lambda: note(("reload",)),
            quit=lambda: note(("quit",)),
        )


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def texts(items) -> list[str]:
    return [item.text for item in items]


def find(items, text: str) -> Item:
    matches = [item for item in items if item.text == text]
    assert len(matches) == 1, f"{text!r} in {texts(items)}"
    return matches[0]


def click(item: Item) -> None:
    assert item.action is not None and item.enabled, f"{item.text!r} is not clickable"
    item.action()


def two_alerts() -> list[ActiveEvent]:
    return [event("disk_full", Level.CRITICAL, "disk at 97%"), event("api_down", Level.ERROR, "HTTP 503")]


# ---- header and tooltip ----------------------------------------------------------------------------------

def test_header_counts_the_active_alerts():
    assert header(TrayState([], now=NOON)) == "All clear"
    assert header(TrayState([event("a")], now=NOON)) == "1 active alert"
    assert header(TrayState([event("a"), event("b")], now=NOON)) == "2 active alerts"
    assert header(TrayState([event(str(i)) for i in range(30)], now=NOON)) == "30 active alerts"


def test_header_is_the_first_menu_line_and_not_clickable(rec):
    items = menu(TrayState([event("a")], now=NOON), rec.actions)
    assert items[0].text == "1 active alert"
    assert not items[0].enabled and items[0].action is None


def test_tooltip_lists_the_alerts_in_the_order_given():
    state = TrayState(two_alerts(), now=NOON)
    assert tooltip(state) == "tray-alerts — 2 active: disk_full (critical), api_down (error)"


def test_tooltip_when_all_clear():
    assert tooltip(TrayState([], now=NOON)) == "tray-alerts — all clear"


def test_long_tooltip_is_cut_with_an_ellipsis():
    state = TrayState([event(f"some_rather_long_event_name_{i}", Level.ERROR) for i in range(12)], now=NOON)
    text = tooltip(state)
    assert len(text) == MAX_TOOLTIP
    assert text.startswith("tray-alerts — 12 active: some_rather_long_event_name_0 (error), ")
    assert text.endswith("…")


def test_tooltip_of_exactly_the_limit_is_not_cut():
    base = "tray-alerts — 1 active: "
    name = "x" * (MAX_TOOLTIP - len(base) - len(" (info)"))
    text = tooltip(TrayState([event(name, Level.INFO)], now=NOON))
    assert len(text) == MAX_TOOLTIP and not text.endswith("…")


def test_tooltip_says_until_when_notifications_are_snoozed():
    until = NOON + 3600
    assert tooltip(TrayState([], snoozed_until=until, now=NOON)) == \
        f"tray-alerts — all clear · snoozed until {hhmm(until)}"
    assert tooltip(TrayState(two_alerts(), snoozed_until=until, now=NOON)) == \
        f"tray-alerts — 2 active: disk_full (critical), api_down (error) · snoozed until {hhmm(until)}"


def test_snoozed_until_another_day_shows_the_date():
    until = next_morning(NOON)
    expected = datetime.fromtimestamp(until).strftime("%b %d %H:%M")
    assert tooltip(TrayState([], snoozed_until=until, now=NOON)).endswith(f" · snoozed until {expected}")
    assert expected.endswith("09:00")


def test_long_snoozed_tooltip_keeps_the_suffix_within_the_limit():
    until = next_morning(NOON)  # the longest suffix: with a date
    state = TrayState([event(f"some_rather_long_event_name_{i}", Level.ERROR) for i in range(12)],
                      snoozed_until=until, now=NOON)
    text = tooltip(state)
    suffix = f" · snoozed until {datetime.fromtimestamp(until).strftime('%b %d %H:%M')}"
    assert text.endswith("…" + suffix)
    assert len(text) <= MAX_TOOLTIP  # Windows keeps at most 127 characters of a tray tooltip


# ---- the alerts ------------------------------------------------------------------------------------------

def test_whole_menu_with_alerts(rec):
    items = menu(TrayState(two_alerts(), now=NOON), rec.actions)
    assert texts(items) == ["2 active alerts", "-", "CRITICAL · disk_full", "ERROR · api_down", "Clear all", "-",
                            *BOTTOM]


def test_whole_menu_when_all_clear_has_no_clear_all(rec):
    items = menu(TrayState([], now=NOON), rec.actions)
    assert texts(items) == ["All clear", "-", *BOTTOM]
    assert "Clear all" not in flatten(items)


def test_alerts_keep_the_order_given_worst_first(rec):
    active = [event("c", Level.CRITICAL), event("e", Level.ERROR), event("w", Level.WARNING), event("i", Level.INFO)]
    items = menu(TrayState(active, now=NOON), rec.actions)
    assert texts(items)[2:6] == ["CRITICAL · c", "ERROR · e", "WARNING · w", "INFO · i"]
    assert TrayState(active).worst is Level.CRITICAL
    assert TrayState([event("w", Level.WARNING), event("e", Level.ERROR)]).worst is Level.ERROR
    assert TrayState([]).worst is None


def test_alert_submenu_shows_level_message_since_seen_and_context(rec):
    record = event("disk_full", Level.CRITICAL, "disk / at 97%", ago=12 * 60, seen=3, last_ago=60,
                   context={"mount": "/", "free": "1.2 GB"})
    item = find(menu(TrayState([record], now=NOON), rec.actions), "CRITICAL · disk_full")
    assert item.enabled and item.action is None
    assert texts(item.submenu) == [
        "Level: critical",
        "disk / at 97%",
        f"since {hhmm(NOON - 720)} · 12 min",
        f"seen 3 times, last {hhmm(NOON - 60)}",
        "mount: /",
        "free: 1.2 GB",
        "-",
        "Clear",
    ]
    labels = [line for line in item.submenu if line.text not in ("-", "Clear")]
    assert all(not line.enabled and line.action is None for line in labels)


def test_alert_submenu_singular_and_durations(rec):
    record = event("api_down", Level.ERROR, ago=3 * 3600 + 5 * 60, seen=1)
    lines = texts(alert_submenu(record, NOON, rec.actions))
    assert lines[2] == f"since {hhmm(NOON - 3 * 3600 - 300)} · 3 h 5 min"
    assert lines[3] == f"seen 1 time, last {hhmm(NOON - 3 * 3600 - 300)}"
    assert lines[4:] == ["-", "Clear"]  # no context, no context lines


def test_alert_submenu_shows_at_most_ten_context_lines(rec):
    record = event("busy", context={f"key{i}": i for i in range(14)})
    lines = texts(alert_submenu(record, NOON, rec.actions))
    assert [line for line in lines if line.startswith("key")] == [f"key{i}: {i}" for i in range(10)]


def test_each_clear_clears_its_own_event(rec):
    items = menu(TrayState(two_alerts(), now=NOON), rec.actions)
    click(find(find(items, "ERROR · api_down").submenu, "Clear"))
    click(find(find(items, "CRITICAL · disk_full").submenu, "Clear"))
    assert rec.calls == [("clear", "api_down"), ("clear", "disk_full")]


def test_clear_all_calls_clear_all(rec):
    click(find(menu(TrayState(two_alerts(), now=NOON), rec.actions), "Clear all"))
    assert rec.calls == [("clear_all",)]


def test_at_most_fifteen_alerts_then_and_n_more(rec):
    active = [event(f"e{i:02}", Level.ERROR) for i in range(MAX_ALERTS_SHOWN + 3)]
    items = menu(TrayState(active, now=NOON), rec.actions)
    alert_items = [item for item in items if item.text.startswith("ERROR · ")]
    assert MAX_ALERTS_SHOWN == 15
    assert [item.text for item in alert_items] == [f"ERROR · e{i:02}" for i in range(15)]
    assert all(item.submenu for item in alert_items)
    more = find(items, "…and 3 more")
    assert not more.enabled and more.action is None
    assert texts(items).index("…and 3 more") == texts(items).index("ERROR · e14") + 1
    assert "Clear all" in texts(items)


def test_exactly_fifteen_alerts_have_no_more_line(rec):
    items = menu(TrayState([event(f"e{i}") for i in range(15)], now=NOON), rec.actions)
    assert sum(1 for item in items if item.submenu and item.text.startswith("WARNING · ")) == 15
    assert not any(text.startswith("…and") for text in texts(items))


# ---- snooze ------------------------------------------------------------------------------------------------

def test_snooze_submenu_items_and_resume_disabled_unless_snoozed(rec):
    items = menu(TrayState([], now=NOON), rec.actions)
    snooze = find(items, "Snooze notifications").submenu
    assert texts(snooze) == ["15 minutes", "1 hour", "Until tomorrow 09:00", "Resume"]
    assert not find(snooze, "Resume").enabled
    assert all(item.enabled for item in snooze[:3])
    snoozed = snooze_submenu(TrayState([], snoozed_until=NOON + 600, now=NOON), rec.actions)
    assert find(snoozed, "Resume").enabled


def test_snooze_actions_pass_when_to_wake(rec):
    state = TrayState([], snoozed_until=NOON + 600, now=NOON)
    snooze = find(menu(state, rec.actions), "Snooze notifications").submenu
    before = time.time()
    for item in snooze:
        click(item)
    after = time.time()
    assert [call[0] for call in rec.calls] == ["snooze"] * 4
    fifteen, hour, tomorrow, resume = (call[1] for call in rec.calls)
    assert before + 900 - 1 <= fifteen <= after + 900 + 1
    assert before + 3600 - 1 <= hour <= after + 3600 + 1
    assert tomorrow == next_morning(NOON)
    assert datetime.fromtimestamp(tomorrow) == (datetime.fromtimestamp(NOON) + timedelta(days=1)).replace(hour=9)
    assert resume is None


def test_snoozed_line_under_the_header(rec):
    until = NOON + 90 * 60
    items = menu(TrayState([event("a")], snoozed_until=until, now=NOON), rec.actions)
    assert items[1].text == f"Notifications snoozed until {hhmm(until)}"
    assert not items[1].enabled and items[1].action is None
    assert items[2].is_separator
    assert not any("snoozed until" in text for text in flatten(menu(TrayState([], now=NOON), rec.actions)))


# ---- monitors ----------------------------------------------------------------------------------------------

def test_monitors_submenu_shows_each_reading_and_check_now(rec):
    statuses = [
        MonitorStatus("disk_root", "disk", "disk /", Reading(Level.WARNING, "at 93% (warning at 80%)", 93.0), NOON),
        MonitorStatus("api", "http", "GET http://localhost:8080/health", Reading(None, "200 in 12 ms"), NOON),
        MonitorStatus("backup", "heartbeat", "heartbeat backup", None, None),
    ]
    items = menu(TrayState([], monitors=statuses, now=NOON), rec.actions)
    monitors = find(items, "Monitors").submenu
    assert texts(monitors) == [
        "disk_root — warning: disk / at 93% (warning at 80%)",
        "api — ok: GET http://localhost:8080/health 200 in 12 ms",
        "backup — not checked yet: heartbeat backup",
        "-",
        "Check now",
    ]
    assert all(not item.enabled for item in monitors[:3])
    click(find(monitors, "Check now"))
    assert rec.calls == [("check_now",)]


def test_a_reading_held_after_a_resume_says_until_when(rec):
    held = MonitorStatus("nas", "tcp", "tcp nas:445", Reading(Level.ERROR, "refused"), NOON,
                         held_until=today_at(12, 2))
    (line, *_) = monitors_submenu(TrayState([], monitors=[held], now=NOON), rec.actions)
    assert line.text == "nas — error: tcp nas:445 refused (not judged until 12:02: just woke from sleep)"


def test_no_monitors_configured(rec):
    monitors = monitors_submenu(TrayState([], now=NOON), rec.actions)
    assert texts(monitors) == ["No monitors configured"]
    assert not monitors[0].enabled and monitors[0].action is None


# ---- recent ------------------------------------------------------------------------------------------------

def entry(i: int, kind: str = "fired", *, channel: str | None = None, ok: bool | None = None, detail: str = "",
          message: str = "disk at 93%", level: Level = Level.WARNING, at: float | None = None) -> HistoryEntry:
    return HistoryEntry(i, from_timestamp(NOON + 61 if at is None else at), "disk_full", kind, level, message,
                        channel, ok, detail)


def test_describe_history_rows():
    when = datetime.fromtimestamp(NOON + 61).strftime("%H:%M:%S")
    assert describe_history(entry(1)) == f"{when} disk_full fired (warning): disk at 93%"
    assert describe_history(entry(2, "escalated", level=Level.CRITICAL, message="disk at 99%")) == \
        f"{when} disk_full escalated (critical): disk at 99%"
    assert describe_history(entry(3, "cleared", message="cleared by hand")) == \
        f"{when} disk_full cleared (warning): cleared by hand"
    assert describe_history(entry(4, "delivery", channel="slack", ok=True)) == \
        f"{when} disk_full: alert to slack delivered"
    assert describe_history(entry(5, "delivery", channel="email", ok=False, detail="HTTP 500")) == \
        f"{when} disk_full: alert to email failed: HTTP 500"
    assert describe_history(entry(6, "recovery", channel="sms", ok=True)) == \
        f"{when} disk_full: recovery to sms delivered"


def test_describe_history_cuts_long_lines_and_dates_other_days():
    long = describe_history(entry(1, message="x" * 200))
    assert len(long) == 90 and long.endswith("…")
    failed = describe_history(entry(2, "delivery", channel="webhook", ok=False, detail="y" * 200))
    assert len(failed) == 90 and failed.endswith("…") and ": alert to webhook failed: y" in failed
    old = datetime(2020, 2, 3, 4, 5, 6).timestamp()
    assert describe_history(entry(3, at=old)).startswith("Feb 03 04:05 disk_full fired")


def test_recent_submenu_shows_the_last_ten_entries_as_given(rec):
    kinds = ["fired", "cleared", "delivery", "delivery"] * 3
    history = [entry(100 - i, kinds[i], channel=None if i % 4 < 2 else "slack", ok=None if i % 4 < 2 else i % 4 == 2,
                     detail="HTTP 500", message=f"message {i}") for i in range(12)]
    items = menu(TrayState([], recent=history, now=NOON), rec.actions)
    recent = find(items, "Recent").submenu
    assert texts(recent) == [describe_history(h) for h in history[:10]]
    assert any(text.endswith("delivered") for text in texts(recent))
    assert any(text.endswith("failed: HTTP 500") for text in texts(recent))
    assert any(" cleared (warning): " in text for text in texts(recent))
    assert all(not item.enabled and item.action is None for item in recent)


def test_recent_submenu_when_empty():
    assert texts(recent_submenu(TrayState([], now=NOON))) == ["Nothing yet"]


# ---- next_morning ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 1, 31, 22, 30), datetime(2026, 2, 1, 9, 0)),
    (datetime(2026, 2, 28, 10, 0), datetime(2026, 3, 1, 9, 0)),  # not a leap year
    (datetime(2028, 2, 28, 10, 0), datetime(2028, 2, 29, 9, 0)),  # a leap year
    (datetime(2026, 4, 30, 0, 5), datetime(2026, 5, 1, 9, 0)),
    (datetime(2026, 12, 31, 23, 59, 59), datetime(2027, 1, 1, 9, 0)),
    (datetime(2026, 6, 15, 8, 0), datetime(2026, 6, 16, 9, 0)),  # tomorrow, even before 09:00 today
])
def test_next_morning_is_tomorrow_at_nine_across_month_and_year_ends(now, expected):
    assert datetime.fromtimestamp(next_morning(now.timestamp())) == expected
    assert datetime.fromtimestamp(next_morning(now.timestamp(), hour=7)) == expected.replace(hour=7)


@pytest.fixture
def berlin_time():
    if not hasattr(time, "tzset") or not os.path.exists("/usr/share/zoneinfo/Europe/Berlin"):
        pytest.skip("needs time.tzset and the tz database")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 3, 28, 20, 0), datetime(2026, 3, 29, 9, 0)),  # clocks go forward overnight
    (datetime(2026, 10, 24, 20, 0), datetime(2026, 10, 25, 9, 0)),  # clocks go back overnight
    (datetime(2026, 3, 31, 23, 0), datetime(2026, 4, 1, 9, 0)),
])
def test_next_morning_is_nine_on_the_wall_clock_across_daylight_saving(berlin_time, now, expected):
    until = next_morning(now.timestamp())
    assert datetime.fromtimestamp(until) == expected
    assert time.localtime(until).tm_hour == 9


# ---- the fixed entries -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, call", [("Open settings", "open_settings"), ("Open log", "open_log"),
                                        ("Reload settings", "reload"), ("Quit", "quit")])
def test_bottom_items_call_their_actions(rec, text, call):
    items = menu(TrayState(two_alerts(), now=NOON), rec.actions)
    click(find(items, text))
    assert rec.calls == [(call,)]


def test_building_the_menu_calls_nothing(rec):
    menu(TrayState(two_alerts(), monitors=[MonitorStatus("m", "disk", "disk /", None, None)], snoozed_until=NOON + 60,
                   now=NOON), rec.actions)
    assert rec.calls == []
    assert texts(menu(TrayState([], now=NOON), rec.actions))[-1] == "Quit"


def test_flatten_indents_submenus():
    items = [Item("top", submenu=(Item("child", submenu=(Item("grandchild"),)), separator("-"))), Item("last")]
    assert flatten(items) == ["top", "  child", "    grandchild", "  -", "last"]
    assert separator("sep").is_separator and not Item("x").is_separator


# ---- keys, acknowledgement, attention ------------------------------------------------------------------------


class AcknowledgingRecorder(Recorder):
    """A Recorder whose Actions can also acknowledge and mute."""

    def __init__(self) -> None:
        super().__init__()
        note = self.calls.append
        from dataclasses import replace

        self.actions = replace(self.actions, acknowledge=lambda name: note(("acknowledge", name)),
                               mute=lambda name, until: note(("mute", name)))


def busy_state(now: float = NOON) -> TrayState:
    from tray_alerts.monitors.base import Reading

    return TrayState([event("disk_root", Level.CRITICAL, context={"mount": "/", "used": "97%"}, now=now),
                      event("api", Level.ERROR, now=now)],
                     monitors=[MonitorStatus("disk", "disk", "disk /", Reading(Level.CRITICAL, "97%"), now)],
                     recent=[HistoryEntry(1, from_timestamp(now - 60), "api", "fired", Level.ERROR, "api down",
                                          None, None, "")],
                     snoozed_until=now + 600, now=now, mutes={"api": now + 3600})


def test_every_line_of_the_menu_has_its_own_key():
    from tray_alerts.traymenu import keys

    every = keys(menu(busy_state(), AcknowledgingRecorder().actions))
    assert all(every) and len(every) == len(set(every))


def test_keys_stay_the_same_while_only_times_and_counts_change():
    from tray_alerts.traymenu import keys

    actions = AcknowledgingRecorder().actions
    before = menu(busy_state(NOON), actions)
    later = menu(busy_state(NOON + 600), actions)  # "since … · 12 min" -> "22 min": text changes, keys do not
    assert keys(before) == keys(later) and flatten(before) != flatten(later)


def test_an_acknowledged_alert_is_listed_greyed_with_when_and_offers_no_second_acknowledge():
    from dataclasses import replace

    from tray_alerts.traymenu import alert_row

    rec = AcknowledgingRecorder()
    record = replace(event("disk_root", Level.CRITICAL), acknowledged_at=today_at(11, 50))
    row = alert_row(record, NOON, rec.actions)
    assert row.text == "CRITICAL · disk_root — acknowledged 11:50" and row.icon == "acknowledged"
    assert "Acknowledged 11:50" in [item.text for item in row.submenu]
    assert "Acknowledge" not in [item.text for item in row.submenu]
    assert row.key == "alert:disk_root"


def test_acknowledge_in_an_alerts_submenu_acknowledges_that_event():
    from tray_alerts.traymenu import alert_row

    rec = AcknowledgingRecorder()
    row = alert_row(event("api", Level.ERROR), NOON, rec.actions)
    (acknowledge,) = [item for item in row.submenu if item.text == "Acknowledge"]
    assert acknowledge.key == "alert:api/acknowledge" and row.icon == "error"
    acknowledge.action()
    assert rec.calls == [("acknowledge", "api")]


@pytest.mark.parametrize("levels, acknowledged, attention", [
    ([], [], False),
    ([Level.INFO, Level.WARNING], [], False),
    ([Level.ERROR], [], True),
    ([Level.CRITICAL], [], True),
    ([Level.CRITICAL], [0], False),
    ([Level.CRITICAL, Level.WARNING], [0], False),
    ([Level.CRITICAL, Level.ERROR], [0], True),
])
def test_attention_is_wanted_while_an_error_or_critical_is_not_acknowledged(levels, acknowledged, attention):
    from dataclasses import replace

    from tray_alerts.traymenu import needs_attention

    records = [event(f"e{i}", level) for i, level in enumerate(levels)]
    records = [replace(r, acknowledged_at=NOON) if i in acknowledged else r for i, r in enumerate(records)]
    assert needs_attention(TrayState(records, now=NOON)) is attention


def test_the_tooltip_lists_the_worst_alerts_first_acknowledged_ones_last():
    from dataclasses import replace

    from tray_alerts.traymenu import tooltip_lines, tooltip_title

    records = [event("a", Level.WARNING, "slow", ago=100), replace(event("b", Level.CRITICAL, "down"),
                                                                    acknowledged_at=NOON),
               event("c", Level.ERROR, "failing", ago=50), event("d", Level.ERROR, "older", ago=500)]
    state = TrayState(records, now=NOON)
    assert tooltip_title(state) == "tray-alerts — 4 active"
    assert tooltip_lines(state) == ["ERROR · d: older", "ERROR · c: failing", "WARNING · a: slow",
                                    "CRITICAL · b: down (acknowledged)"]
    assert tooltip_lines(state, limit=2)[-1] == "…and 2 more"
    assert tooltip_title(TrayState([], now=NOON)) == "tray-alerts — all clear"


def test_mute_says_what_the_pop_up_says_and_unmute_says_until_when():
    from tray_alerts.traymenu import mute_items

    rec = AcknowledgingRecorder()
    (mute,) = mute_items("api", NOON, rec.actions, None)
    assert mute.text == "Mute 1 h" and mute.key == "alert:api/mute"
    mute.action()
    shown, unmute = mute_items("api", NOON, rec.actions, today_at(13, 30))
    assert (shown.text, shown.enabled, unmute.text) == ("Muted until 13:30", False, "Unmute")
    assert rec.calls == [("mute", "api")]


def test_how_long_an_alert_fires_is_shown_in_whole_seconds():
    record = event("api", Level.ERROR, ago=0.4)
    since = alert_submenu(record, NOON, Recorder().actions)[2]
    assert since.text.endswith("· 0 s") and since.key == "alert:api/since"


def test_an_inhibited_alert_is_listed_greyed_naming_its_parent_and_wants_no_attention():
    from dataclasses import replace

    from tray_alerts.tray_view import icon_look
    from tray_alerts.traymenu import alert_row, needs_attention, tooltip_lines

    parent = event("router", Level.WARNING, "no link")
    child = replace(event("nas", Level.CRITICAL, "unreachable"), depends_on=("router",), inhibited_by="router")
    row = alert_row(child, NOON, AcknowledgingRecorder().actions)
    assert row.text == "CRITICAL · nas — inhibited by router" and row.icon == "acknowledged"
    assert "Inhibited by router: only the log is told until it recovers" in texts(row.submenu)
    state = TrayState([child, parent], now=NOON)
    assert not needs_attention(state)
    assert tooltip_lines(state) == ["WARNING · router: no link", "CRITICAL · nas: unreachable (inhibited by router)"]
    look = icon_look(state)
    assert (look.worst, look.count, look.acknowledged) == (Level.WARNING, 2, False)  # the parent's colour
    released = replace(child, inhibited_by=None)
    assert needs_attention(TrayState([released, parent], now=NOON))
    assert alert_row(released, NOON, AcknowledgingRecorder().actions).icon == "critical"


def test_open_dashboard_sits_first_among_the_apps_items_when_the_tray_offers_it(rec):
    from dataclasses import replace

    calls = []
    actions = replace(rec.actions, open_dashboard=lambda: calls.append("dashboard"))
    items = menu(TrayState([], now=NOON), actions)
    assert texts(items)[-len(BOTTOM) - 1:] == [*BOTTOM[:4], "Open dashboard", *BOTTOM[4:]]
    click(find(items, "Open dashboard"))
    assert calls == ["dashboard"] and find(items, "Open dashboard").key == "dashboard"

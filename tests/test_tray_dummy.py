"""tray_icons._to_pystray on pystray's dummy backend: the traymenu Items become pystray items that do the same.

The backend is chosen when pystray is imported, so PYSTRAY_BACKEND=dummy must be set first. Icon.run() is never
called (on the dummy backend it leaves a thread behind that hangs pytest), and tray.Tray is never built.
"""
from __future__ import annotations

import os
import sys
import time

import pytest

_we_set_backend = "PYSTRAY_BACKEND" not in os.environ
os.environ.setdefault("PYSTRAY_BACKEND", "dummy")
if "pystray" in sys.modules and "pystray._dummy" not in sys.modules:
    pytest.skip("pystray was already imported with another backend in this process", allow_module_level=True)
if os.environ["PYSTRAY_BACKEND"] != "dummy":
    pytest.skip(f"PYSTRAY_BACKEND={os.environ['PYSTRAY_BACKEND']} is set; these tests need the dummy backend",
                allow_module_level=True)
try:
    import pystray

    from tray_alerts import tray, tray_icons
finally:
    if _we_set_backend:  # chosen now; keep it out of subprocesses other tests start
        os.environ.pop("PYSTRAY_BACKEND", None)

from tray_alerts.model import Level  # noqa: E402
from tray_alerts.monitors.base import Reading  # noqa: E402
from tray_alerts.monitors.runner import MonitorStatus  # noqa: E402
from tray_alerts.state import ActiveEvent  # noqa: E402
from test_tray_refresh import Recorder  # noqa: E402
from tray_alerts.traymenu import Actions, Item, TrayState, menu, separator  # noqa: E402

NOW = 1_800_000_000.0




@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def icon():
    """A dummy-backend icon, never run."""
    return pystray.Icon("tray-alerts-test", title="test")


def state(snoozed: bool = False, monitors: bool = True) -> TrayState:
    active = [ActiveEvent("disk_full", Level.CRITICAL, "disk at 97%", {"mount": "/"}, NOW - 720, NOW - 720, 2, NOW),
              ActiveEvent("api_down", Level.ERROR, "HTTP 503", {}, NOW - 60, NOW - 60, 1, NOW - 60)]
    statuses = [MonitorStatus("disk_root", "disk", "disk /", Reading(Level.CRITICAL, "at 97%"), NOW)] if monitors else []
    return TrayState(active, statuses, [], NOW + 600 if snoozed else None, NOW)


def converted(tray_state: TrayState, actions: Actions) -> list:
    return [tray_icons._to_pystray(item) for item in menu(tray_state, actions)]


def by_text(items, text: str):
    matches = [item for item in items if item is not pystray.Menu.SEPARATOR and item.text == text]
    assert len(matches) == 1, f"{text!r} in {[item.text for item in items]}"
    return matches[0]


def test_the_dummy_backend_is_in_use():
    assert "pystray._dummy" in sys.modules
    assert pystray.Icon.__module__ == "pystray._base"


def test_separators_map_to_pystray_separator():
    assert tray_icons._to_pystray(separator("sep")) is pystray.Menu.SEPARATOR
    items = converted(state(), Recorder().actions)
    separators = [i for i, item in enumerate(menu(state(), Recorder().actions)) if item.is_separator]
    assert separators and all(items[i] is pystray.Menu.SEPARATOR for i in separators)


def test_top_level_texts_and_enabled(rec):
    items = converted(state(), rec.actions)
    assert [item.text for item in items] == [
        "2 active alerts", pystray.Menu.SEPARATOR.text, "CRITICAL · disk_full", "ERROR · api_down", "Clear all",
        pystray.Menu.SEPARATOR.text, "Snooze notifications", "Monitors", "Recent", pystray.Menu.SEPARATOR.text,
        "Open settings", "Open log", "Reload settings", "Quit"]
    assert all(isinstance(item, pystray.MenuItem) for item in items)
    assert not by_text(items, "2 active alerts").enabled
    for text in ("CRITICAL · disk_full", "Clear all", "Snooze notifications", "Monitors", "Recent", "Open settings",
                 "Quit"):
        assert by_text(items, text).enabled, text


def test_submenus_become_pystray_menus(rec):
    items = converted(state(), rec.actions)
    alert = by_text(items, "CRITICAL · disk_full")
    assert isinstance(alert.submenu, pystray.Menu)
    sub = alert.submenu.items
    assert [item.text for item in sub][:2] == ["Level: critical", "disk at 97%"]
    assert [item.text for item in sub][-4:] == [pystray.Menu.SEPARATOR.text, "Acknowledge", "Mute 1 h", "Clear"]
    assert sub[-4] is pystray.Menu.SEPARATOR
    assert "mount: /" in [item.text for item in sub]
    labels = [item for item in sub[:-4]]
    assert labels and all(not item.enabled for item in labels), "information lines are greyed out"
    assert by_text(sub, "Clear").enabled
    assert by_text(items, "Clear all").submenu is None


def test_disabled_and_enabled_survive_the_conversion(rec):
    snooze = by_text(converted(state(), rec.actions), "Snooze notifications").submenu.items
    assert [(item.text, item.enabled) for item in snooze] == [
        ("15 minutes", True), ("1 hour", True), ("Until tomorrow 09:00", True), ("Resume", False)]
    snoozed = converted(state(snoozed=True), rec.actions)
    assert by_text(by_text(snoozed, "Snooze notifications").submenu.items, "Resume").enabled
    line = snoozed[1]
    assert line.text.startswith("Notifications snoozed until ") and not line.enabled


def test_calling_an_item_runs_its_traymenu_action(rec, icon):
    items = converted(state(), rec.actions)
    by_text(by_text(items, "ERROR · api_down").submenu.items, "Clear")(icon)
    by_text(by_text(items, "CRITICAL · disk_full").submenu.items, "Clear")(icon)
    by_text(items, "Clear all")(icon)
    by_text(by_text(items, "Monitors").submenu.items, "Check now")(icon)
    for text in ("Open settings", "Open log", "Reload settings", "Quit"):
        by_text(items, text)(icon)
    assert rec.calls == [("clear", "api_down"), ("clear", "disk_full"), ("clear_all",), ("check_now",),
                         ("open_settings",), ("open_log",), ("reload",), ("quit",)]


def test_snooze_items_pass_their_times_through_pystray(rec, icon):
    items = converted(state(snoozed=True), rec.actions)
    for item in by_text(items, "Snooze notifications").submenu.items:
        item._action(icon, item)  # how a backend invokes a clicked item
    assert [call[0] for call in rec.calls] == ["snooze"] * 4
    assert rec.calls[-1] == ("snooze", None)
    assert all(isinstance(call[1], float) for call in rec.calls[:3])
    assert rec.calls[0][1] < rec.calls[1][1]


def test_label_items_do_nothing_when_called(rec, icon):
    items = converted(state(), rec.actions)
    header = by_text(items, "2 active alerts")
    assert header(icon) is None
    for item in by_text(items, "CRITICAL · disk_full").submenu.items[:-3]:  # all but Acknowledge, Mute, Clear
        item(icon)
    assert rec.calls == []


def test_no_monitors_line_is_disabled(rec):
    monitors = by_text(converted(state(monitors=False), rec.actions), "Monitors").submenu.items
    assert [(item.text, item.enabled) for item in monitors] == [("No monitors configured", False)]


def test_items_without_action_are_disabled_even_if_marked_enabled(icon):
    item = tray_icons._to_pystray(Item("just a label"))
    assert item.text == "just a label" and not item.enabled and item.submenu is None
    assert item(icon) is None


def test_default_flag_is_passed_through(icon):
    calls = []
    item = tray_icons._to_pystray(Item("open", lambda: calls.append("open"), default=True))
    assert item.default and item.enabled
    menu_ = pystray.Menu(item)
    menu_(icon)  # the platform's "activate the icon" runs the default item
    assert calls == ["open"]
    assert not tray_icons._to_pystray(Item("other", lambda: None)).default


def test_a_lazy_pystray_menu_like_the_trays_rebuilds_from_state(rec, icon):
    current = {"state": state()}
    lazy = pystray.Menu(lambda: [tray_icons._to_pystray(item) for item in menu(current["state"], rec.actions)])
    assert [item.text for item in lazy][0] == "2 active alerts"
    current["state"] = TrayState([], now=NOW)
    visible = list(lazy)  # pystray drops leading/trailing and doubled separators
    assert visible[0].text == "All clear"
    assert "Clear all" not in [item.text for item in visible]
    assert visible[-1].text == "Quit"
    pystray.Icon("lazy-test", menu=lazy)  # accepted by the (dummy) Icon without running it


# ---- Tray itself (built on the dummy backend, never run) ---------------------------------------------------

def _settings_file(tmp_path, port: int, extra: str = "") -> str:
    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                    f"api_port = {port}\n[channel.desktop]\nenabled = no\n[monitor.disk_root]\nenabled = no\n"
                    f"type = disk\n{extra}")
    return str(path)


@pytest.fixture
def built_tray(tmp_path, monkeypatch):
    from helpers_net import free_port
    from tray_alerts.config import load_settings

    config = _settings_file(tmp_path, free_port())
    built = tray.Tray(load_settings(config), config, backend="xembed")  # pystray's dummy backend here
    built.app.start()
    yield built, config
    built.quit()


def test_a_bad_settings_file_on_reload_keeps_the_running_app_and_says_why(built_tray, monkeypatch):
    built, config = built_tray
    told: list[str] = []
    monkeypatch.setattr(built, "tell", told.append)
    before = built.app
    with open(config, "a") as file:
        file.write("[routing]\ncritical = log, smss\n")
    built.reload()
    assert built.app is before
    assert len(told) == 1 and "Settings not reloaded" in told[0] and "unknown channel 'smss'" in told[0]


def test_a_good_settings_file_on_reload_replaces_the_app(built_tray):
    built, config = built_tray
    before = built.app
    with open(config, "a") as file:
        file.write("[monitor.backup]\ntype = file_age\npath = /nonexistent/backup\nwarning = 1d\n")
    built.reload()
    assert built.app is not before and "backup" in built.app.settings.monitors
    built.app.engine.raise_alert("reloaded", "error", "the new app works")
    assert "reloaded" in [a.event for a in built.app.engine.active()]


def test_clear_from_the_menu_sends_the_recovery_as_cleared_by_hand(built_tray):
    built, _ = built_tray
    engine = built.app.engine
    engine.raise_alert("disk_full", "error", "disk at 96%")
    built.clear("disk_full")
    deadline = time.time() + 5
    while engine.active() and time.time() < deadline:
        time.sleep(0.01)
    assert engine.active() == []
    cleared = [h for h in engine.history(event="disk_full") if h.kind == "cleared"]
    assert cleared and cleared[0].message == "cleared by hand"

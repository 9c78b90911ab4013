"""The tray's refresh discipline with no display: a fake state, a fake clock and a fake icon backend.

refresh() only marks; the Refresher builds at most every 0.25 s and pushes only a view that differs. Durations
("since 14:30 · 3 min") count to the last fresh build: a menu about to open (SNI), the minute recheck (pystray)
or a real change make one. Also: which backend desktop_env chooses, as a table, and the start-before-panel case.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field, replace

import pytest

from tray_alerts import desktop_env
from tray_alerts.desktop_env import HEADLESS, NATIVE, SNI, XEMBED, choose_backend
from tray_alerts.display import clock as time_of_day
from tray_alerts.lifecycle import ActiveEvent
from tray_alerts.model import Level, from_timestamp
from tray_alerts.tray_view import (REFRESH_INTERVAL, STATUS_ACTIVE, STATUS_ATTENTION, IconLook, Refresher, View,
                                   ViewBuilder, build_view, details, icon_look, past_details)
from tray_alerts.traymenu import Actions, Item, TrayState

NOW = 1_800_000_000.0
WAIT = 10.0  # bounded waits on events (never sleeps)


class FakeClock:
    """Monotonic time that moves only when told."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    """What the app knows, as the tray reads it; `wall` is the wall clock."""

    active: list[ActiveEvent] = field(default_factory=list)
    snoozed_until: float | None = None
    mutes: dict[str, float] = field(default_factory=dict)
    wall: float = NOW
    reads: int = 0

    def state(self, now: float) -> TrayState:
        self.reads += 1
        return TrayState(list(self.active), snoozed_until=self.snoozed_until, now=now, mutes=dict(self.mutes))

    def clock(self) -> float:
        return self.wall


class Recorder:
    """Actions that note what they were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        note = self.calls.append
        self.actions = Actions(
            clear=lambda name: note(("clear", name)), clear_all=lambda: note(("clear_all",)),
            snooze=lambda until: note(("snooze", until)), check_now=lambda: note(("check_now",)),
            open_settings=lambda: note(("open_settings",)), open_log=lambda: note(("open_log",)),
            reload=lambda: note(("reload",)), quit=lambda: note(("quit",)),
            mute=lambda name, until: note(("mute", name, until)), acknowledge=lambda name: note(("ack", name)))


class FakeIcon:
    """Records pushes; wakes waiters on each."""

    def __init__(self) -> None:
        self.pushed: list[View] = []
        self.changed = threading.Condition()

    def push(self, view: View, before: View | None) -> None:
        with self.changed:
            self.pushed.append(view)
            self.changed.notify_all()

    def wait_for(self, predicate, what: str) -> View:
        with self.changed:
            assert self.changed.wait_for(lambda: self.pushed and predicate(self.pushed[-1]), WAIT), \
                f"no push where {what} within {WAIT:g} s; last: {self.pushed[-1:]!r}"
            return self.pushed[-1]


def alert(event: str = "disk_full", level: Level = Level.ERROR, since: float = NOW - 120,
          acknowledged_at: float | None = None, **more) -> ActiveEvent:
    return ActiveEvent(event, level, f"{event} is bad", more.pop("context", {}), since, since, more.pop("seen", 1),
                       since, acknowledged_at=acknowledged_at, **more)


def find(items, key: str) -> Item:
    for item in items:
        if item.key == key:
            return item
        try:
            return find(item.submenu, key)
        except LookupError:
            pass
    raise LookupError(key)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def icon() -> FakeIcon:
    return FakeIcon()


def refresher(world: World, icon: FakeIcon, clock: FakeClock, recheck: float | None = None,
              run=None) -> tuple[Refresher, ViewBuilder]:
    views = ViewBuilder(lambda now: world.state(now), lambda: Recorder().actions, wall=world.clock, run=run)
    return Refresher(views, icon.push, recheck=recheck, clock=clock), views


def since_line(view: View, event: str = "disk_full") -> str:
    return find(view.menu, f"alert:{event}/since").text


# ---- coalescing ------------------------------------------------------------------------------------------------

def test_many_refreshes_with_no_change_build_once_and_push_nothing(world, icon, clock):
    world.active = [alert()]
    r, _ = refresher(world, icon, clock)
    assert r.tick() and len(icon.pushed) == 1  # the first view is always shown
    for _ in range(500):
        r.mark()
    assert r.delay(clock()) == pytest.approx(REFRESH_INTERVAL)  # paced after the last build
    clock.advance(REFRESH_INTERVAL)
    world.wall += 90  # time passes; durations alone are no change
    assert r.delay(clock()) == 0.0
    assert not r.tick()
    assert (r.builds, r.pushes, len(icon.pushed)) == (2, 1, 1)
    assert r.delay(clock()) is None, "nothing asks for another build"


def test_a_change_among_many_refreshes_pushes_once(world, icon, clock):
    r, _ = refresher(world, icon, clock)
    r.tick()
    for index in range(50):
        if index == 20:
            world.active = [alert(level=Level.CRITICAL)]
        r.mark()
    clock.advance(REFRESH_INTERVAL)
    assert r.tick()
    assert len(icon.pushed) == 2
    shown = icon.pushed[-1]
    assert shown.look == IconLook(Level.CRITICAL, 1) and shown.status == STATUS_ATTENTION
    assert "1 active" in shown.title
    assert r.delay(clock()) is None
    r.mark()
    clock.advance(REFRESH_INTERVAL)
    assert not r.tick() and len(icon.pushed) == 2


def test_builds_are_paced_a_quarter_second_apart(world, icon, clock):
    r, _ = refresher(world, icon, clock)
    r.tick()
    clock.advance(0.1)
    r.mark()
    assert r.delay(clock()) == pytest.approx(REFRESH_INTERVAL - 0.1)
    clock.advance(1.0)
    assert r.delay(clock()) == 0.0
    r.tick()
    r.mark()
    r.now(timeout=0)  # a menu about to open skips the pacing
    assert r.delay(clock()) == 0.0


def test_the_refresher_thread_coalesces_a_burst(world, icon, clock):
    r, _ = refresher(world, icon, clock)
    r.tick()
    r.start()
    try:
        world.active = [alert()]
        for _ in range(200):
            r.mark()
        clock.advance(REFRESH_INTERVAL)  # the thread sleeps its pacing on the fake clock's word
        assert r.now(timeout=WAIT)
        view = icon.wait_for(lambda view: view.look.count == 1, "one alert is shown")
        assert len(icon.pushed) == 2 and r.builds <= 3, (len(icon.pushed), r.builds)
        assert view.status == STATUS_ATTENTION
    finally:
        r.stop()


# ---- durations ------------------------------------------------------------------------------------------------

def test_durations_are_refreshed_when_a_menu_is_about_to_show(world, icon, clock):
    world.active = [alert(since=NOW - 120)]
    r, _ = refresher(world, icon, clock)
    r.tick()
    assert since_line(icon.pushed[-1]).endswith("· 2 min")
    world.wall += 180
    r.mark()
    clock.advance(REFRESH_INTERVAL)
    assert not r.tick(), "a plain refresh does not move durations"
    r.start()
    try:
        assert r.now(timeout=WAIT), "about-to-show waits for the fresh build"
        assert since_line(icon.pushed[-1]).endswith("· 5 min")
        assert len(icon.pushed) == 2
        assert r.now(timeout=WAIT) and len(icon.pushed) == 2, "nothing new to show the second time"
    finally:
        r.stop()


def test_a_real_change_is_shown_with_fresh_durations(world, icon, clock):
    world.active = [alert(since=NOW - 120)]
    r, _ = refresher(world, icon, clock)
    r.tick()
    world.wall += 600
    world.active = [alert(since=NOW - 120), alert("api_down", Level.WARNING, since=NOW + 590)]
    r.mark()
    clock.advance(REFRESH_INTERVAL)
    assert r.tick()
    assert since_line(icon.pushed[-1]).endswith("· 12 min")
    assert since_line(icon.pushed[-1], "api_down").endswith("· 10 s")


def test_the_pystray_recheck_pushes_once_a_minute_only_when_the_text_changed(world, icon, clock):
    r, _ = refresher(world, icon, clock, recheck=60.0)
    r.tick()
    assert r.delay(clock()) == pytest.approx(60.0)
    clock.advance(60)
    world.wall += 60
    assert r.delay(clock()) == 0.0
    assert not r.tick(), "all clear: a minute later it reads the same"
    world.active = [alert(since=NOW - 120)]
    r.mark()
    clock.advance(REFRESH_INTERVAL)
    assert r.tick() and since_line(icon.pushed[-1]).endswith("· 3 min")
    clock.advance(30)
    world.wall += 30
    assert r.delay(clock()) == pytest.approx(30.0), "a minute after the last fresh build (the change)"
    clock.advance(30)
    world.wall += 30
    assert r.tick() and since_line(icon.pushed[-1]).endswith("· 4 min")
    assert len(icon.pushed) == 3


def test_a_snooze_ending_is_noticed_with_no_refresh(world, icon, clock):
    world.snoozed_until = NOW + 100
    r, _ = refresher(world, icon, clock)
    r.tick()
    assert icon.pushed[-1].look.snoozed
    assert r.delay(clock()) == pytest.approx(100.5)
    clock.advance(100.5)
    world.wall += 100.5
    world.snoozed_until = None  # what the engine says once its clock passed the end
    assert r.tick() and not icon.pushed[-1].look.snoozed
    assert r.delay(clock()) is None


def test_a_failing_build_is_logged_once_and_refreshing_goes_on(world, icon, clock, caplog):
    logger = logging.getLogger("tray_alerts.tray_view")  # the app's logging setup may have stopped propagation
    logger.addHandler(caplog.handler)
    r, _ = refresher(world, icon, clock)
    r.tick()
    broken = {"on": True}
    real = world.state

    def state(now: float) -> TrayState:
        if broken["on"]:
            raise OSError("state file gone")
        return real(now)

    world.state = state  # type: ignore[method-assign]
    for _ in range(5):
        r.mark()
        clock.advance(REFRESH_INTERVAL)
        assert not r.tick()
    assert len({id(record) for record in caplog.records if "could not be refreshed" in record.message}) == 1
    broken["on"] = False
    world.active = [alert()]
    r.mark()
    clock.advance(REFRESH_INTERVAL)
    assert r.tick() and icon.pushed[-1].look.count == 1
    logger.removeHandler(caplog.handler)


# ---- clicks ---------------------------------------------------------------------------------------------------

def test_a_click_runs_the_newest_builds_action_for_its_line(world, icon, clock):
    ran = []
    recorder = Recorder()
    views = ViewBuilder(world.state, lambda: recorder.actions, wall=world.clock, run=lambda action: ran.append(action))
    r = Refresher(views, icon.push, clock=clock)
    r.tick()
    shown = icon.pushed[-1]
    tomorrow = find(shown.menu, "snooze/tomorrow")
    world.wall += 86_400  # a day later, and nothing pushed since (it looks the same)
    r.now(timeout=0)
    r.tick()
    assert len(icon.pushed) == 1
    tomorrow.action()  # the pushed line, clicked
    assert len(ran) == 1
    ran[0]()
    [(name, until)] = recorder.calls
    assert name == "snooze" and until > NOW + 86_400, "the newest build's 'tomorrow', not the first's"
    world.active = [alert()]
    ack = find(views(False).menu, "alert:disk_full/acknowledge")
    assert ack.action is find(views(False).menu, "alert:disk_full/acknowledge").action, "one callable per line"
    ack.action()
    ran[-1]()
    assert recorder.calls[-1] == ("ack", "disk_full")


def test_a_click_on_a_line_that_is_gone_does_nothing(world, clock, icon):
    ran = []
    views = ViewBuilder(world.state, lambda: Recorder().actions, wall=world.clock, run=ran.append)
    world.active = [alert()]
    clear = find(views(True).menu, "alert:disk_full/clear")
    world.active = []
    views(True)
    clear.action()
    assert ran == []


# ---- what the view says ---------------------------------------------------------------------------------------

def test_the_icon_shows_the_worst_alert_nobody_acknowledged():
    critical_acked = alert("a", Level.CRITICAL, acknowledged_at=NOW)
    warning = alert("b", Level.WARNING)
    assert icon_look(TrayState([critical_acked, warning], now=NOW)) == IconLook(Level.WARNING, 2)
    assert icon_look(TrayState([critical_acked], now=NOW)) == IconLook(Level.CRITICAL, 1, acknowledged=True)
    assert icon_look(TrayState([], snoozed_until=NOW + 60, now=NOW)) == IconLook(None, 0, snoozed=True)


@pytest.mark.parametrize("active, status", [
    ([], STATUS_ACTIVE),
    ([alert(level=Level.WARNING)], STATUS_ACTIVE),
    ([alert(level=Level.ERROR)], STATUS_ATTENTION),
    ([alert(level=Level.CRITICAL, acknowledged_at=NOW)], STATUS_ACTIVE),
])
def test_status_needs_attention_for_an_unacknowledged_error_or_worse(active, status):
    assert build_view(TrayState(active, now=NOW), Recorder().actions).status == status


def test_views_compare_by_what_is_seen_not_by_their_actions():
    state = TrayState([alert()], now=NOW)
    first, second = build_view(state, Recorder().actions), build_view(state, Recorder().actions)
    assert first == second
    assert replace(second, title="other") != first
    renamed = TrayState([alert("other")], now=NOW)
    assert build_view(renamed, Recorder().actions) != first


def hhmm(moment: float) -> str:
    return time.strftime("%H:%M", time.localtime(moment))


def test_details_say_what_the_alerts_submenu_says_and_who_was_told():
    record = alert(level=Level.CRITICAL, since=NOW - 720, seen=3, context={"mount": "/var", "used": "97%"},
                   told=frozenset({"log", "desktop"}))
    shown = details(record, NOW, Recorder().actions)
    assert (shown.event, shown.level, shown.resolved) == ("disk_full", Level.CRITICAL, False)
    fired = time_of_day(from_timestamp(NOW - 720), seconds=False)  # as the submenu says it (the date when not today)
    assert shown.message.splitlines() == [
        "Level: critical", "disk_full is bad", f"since {fired} · 12 min", f"seen 3 times, last {fired}",
        "mount: /var", "used: 97%", "told: desktop, log", "not acknowledged"]


def test_details_of_an_acknowledged_muted_alert_told_to_nobody():
    record = alert(acknowledged_at=NOW - 60)
    lines = details(record, NOW, Recorder().actions, muted_until=NOW + 1800).message.splitlines()
    assert lines[-3:] == ["told: no channel yet", f"Acknowledged {hhmm(NOW - 60)}", f"Muted until {hhmm(NOW + 1800)}"]
    assert "not acknowledged" not in lines


def test_past_details_list_the_events_newest_history():
    from datetime import datetime, timezone

    from tray_alerts.state import HistoryEntry

    at = datetime.fromtimestamp(NOW, timezone.utc)
    history = [HistoryEntry(2, at, "disk_full", "cleared", Level.ERROR, "cleared by hand", None, None, ""),
               HistoryEntry(1, at, "disk_full", "fired", Level.ERROR, "disk at 97%", None, None, "")]
    shown = past_details("disk_full", history)
    assert (shown.event, shown.level, shown.resolved) == ("disk_full", Level.ERROR, True)
    lines = shown.message.splitlines()
    assert lines[0] == "disk_full is no longer active" and len(lines) == 3
    assert lines[1].endswith("disk_full cleared (error): cleared by hand")
    assert lines[2].endswith("disk_full fired (error): disk at 97%")
    assert past_details("gone", []).message == "gone is no longer active"


# ---- which backend -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("platform, watcher, xembed, bus, display, wanted, backend, waits", [
    ("win32", False, False, False, True, "auto", NATIVE, False),
    ("darwin", False, False, False, True, "auto", NATIVE, False),
    ("linux", True, False, True, True, "auto", SNI, False),
    ("linux", True, True, True, True, "auto", SNI, False),  # xfce4-panel: both; SNI wins
    ("linux", False, True, True, True, "auto", XEMBED, False),  # trayer
    ("linux", False, True, False, True, "auto", XEMBED, False),  # XEmbed tray, no bus
    ("linux", False, False, True, True, "auto", SNI, True),  # started before the panel
    ("linux", False, False, False, True, "auto", HEADLESS, False),
    ("linux", True, True, True, False, "auto", HEADLESS, False),  # no display
    ("linux", True, True, True, True, "xembed", XEMBED, False),
    ("linux", False, True, True, True, "sni", SNI, True),
    ("linux", False, True, False, True, "sni", HEADLESS, False),
    ("linux", False, True, True, True, "bogus", XEMBED, False),
])
def test_the_backend_table(platform, watcher, xembed, bus, display, wanted, backend, waits):
    choice = choose_backend(platform, watcher, xembed, bus, display, wanted)
    assert (choice.backend, choice.waits) == (backend, waits), choice
    assert choice.why
    if wanted == "bogus":
        assert "'bogus'" in choice.why


def test_xembed_needs_x_not_only_wayland():
    assert choose_backend("linux", False, False, True, True, "xembed", has_x=False).backend == HEADLESS
    assert choose_backend("linux", False, False, True, True, "auto", has_x=False).backend == SNI


@pytest.fixture
def probed(monkeypatch):
    """desktop_env with the bus and the X tray faked; pystray must not be imported unless asked."""
    found = {"bus": True, "watcher": False, "xembed": False, "pystray": 0}
    monkeypatch.setattr(desktop_env, "_bus_probe", lambda timeout=0: (found["bus"], found["watcher"]))
    monkeypatch.setattr(desktop_env, "_has_xembed_tray", lambda: found["xembed"])

    def pystray_problem() -> None:
        found["pystray"] += 1

    monkeypatch.setattr(desktop_env, "pystray_problem", pystray_problem)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv(desktop_env.WANTED_VARIABLE, raising=False)
    monkeypatch.setattr(desktop_env, "_last", None)
    return found


def test_started_before_the_panel_the_tray_runs_and_waits_for_a_host(probed):
    assert desktop_env.tray_problem() is None
    choice = desktop_env.chosen()
    assert choice.backend == SNI and choice.waits
    assert probed["pystray"] == 0, "the SNI path never imports pystray"


def test_with_only_an_xembed_tray_pystray_is_asked(probed):
    probed["xembed"] = True
    assert desktop_env.tray_problem() is None
    assert desktop_env.chosen().backend == XEMBED and probed["pystray"] == 1


def test_no_bus_and_no_tray_runs_headless_and_says_why(probed):
    probed["bus"] = False
    problem = desktop_env.tray_problem()
    assert problem is not None and "no session D-Bus" in problem


def test_no_display_runs_headless(probed, monkeypatch):
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert desktop_env.tray_problem() == "no display (DISPLAY is not set)"


def test_the_sni_path_imports_no_toolkit():
    """Importing the tray module and the SNI item loads neither pystray nor GTK (a fresh interpreter)."""
    import subprocess

    code = ("import sys; import tray_alerts.tray, tray_alerts.tray_icons, tray_alerts.sni; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pystray', 'gi', 'Xlib')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---- the Tray itself: a real app in a temporary folder, a fake icon backend -------------------------------------

class FakeTrayIcon(FakeIcon):
    """A TrayIcon that shows nothing: run() calls ready and waits for stop()."""

    recheck = None

    def __init__(self) -> None:
        super().__init__()
        self.stopped = threading.Event()
        self.notified: list[str] = []
        self.can_notify = False

    def show(self, view: View, before: View | None) -> None:
        self.push(view, before)

    def run(self, ready, quit) -> None:
        ready()
        self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()

    def notify(self, message: str) -> bool:
        if self.can_notify:
            self.notified.append(message)
        return self.can_notify


class PopUpChannel:
    """A desktop channel that records what it is asked to show."""

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, alert) -> None:
        self.sent.append(alert)


@pytest.fixture
def running_tray(tmp_path):
    """Tray.run() on a thread of its own, with the wall clock moved by the test; yields (tray, icon, wall)."""
    from helpers_net import free_port
    from tray_alerts.config import load_settings
    from tray_alerts.tray import Tray

    config = tmp_path / "settings.ini"
    config.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                      f"api_port = {free_port()}\n[channel.desktop]\nenabled = no\n[monitor.disk_root]\nenabled = no\n")
    icon = FakeTrayIcon()
    offset = {"seconds": 0.0}
    import time as real_time

    def wall() -> float:
        return real_time.time() + offset["seconds"]

    built = Tray(load_settings(str(config)), str(config), icon=icon, wall=wall)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(built.run()), name="tray-run", daemon=True)
    runner.start()
    icon.wait_for(lambda view: True, "the first view")
    yield built, icon, offset, codes
    built.quit()
    runner.join(WAIT)
    assert not runner.is_alive(), "Tray.run did not return after quit"
    assert codes == [0]


def test_the_tray_pushes_a_change_acknowledge_and_quit_through_the_menu(running_tray):
    built, icon, _, codes = running_tray
    first = icon.pushed[-1]
    assert first.look == IconLook(None, 0) and first.status == STATUS_ACTIVE
    for _ in range(100):
        built.refresh()
    assert built.refresher.now(timeout=WAIT)
    assert len(icon.pushed) == 1, "refreshes with nothing new push nothing"

    built.app.engine.raise_alert("disk_full", "critical", "disk at 99%")
    view = icon.wait_for(lambda view: view.status == STATUS_ATTENTION, "Status NeedsAttention")
    find(view.menu, "alert:disk_full/acknowledge").action()  # what a click does, on the GUI or bus thread
    view = icon.wait_for(lambda view: view.look.acknowledged, "the acknowledged look")
    assert view.status == STATUS_ACTIVE
    assert [record.acknowledged for record in built.app.engine.active_events()] == [True]
    assert find(view.menu, "alert:disk_full/acknowledge").text.startswith("Acknowledged ")
    find(view.menu, "quit").action()
    assert icon.stopped.wait(WAIT)


def test_about_to_show_refreshes_the_tray_durations(running_tray):
    built, icon, offset, _ = running_tray
    built.app.engine.raise_alert("disk_full", "error", "disk at 96%")
    view = icon.wait_for(lambda view: view.look.count == 1, "the alert")
    assert since_line(view).endswith(" s"), since_line(view)
    offset["seconds"] = 7 * 60
    built.about_to_show()  # what SniTray calls (on a worker thread) when a host is about to show the menu
    assert since_line(icon.pushed[-1]).endswith("· 7 min"), since_line(icon.pushed[-1])


def test_open_on_a_pop_up_shows_the_trays_details_in_its_place_also_after_a_reload(running_tray, monkeypatch):
    """With no web browser for the dashboard (with one: tests/test_tray_sni_app_e2e.py)."""
    import webbrowser

    from tray_alerts.wiring import ChannelSet

    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    built, _, _, _ = running_tray
    engine = built.app.engine
    engine.raise_alert("disk_full", "error", "disk at 96%", mount="/var")
    popups = PopUpChannel()
    monkeypatch.setattr(built.app, "channels", ChannelSet({"desktop": popups}, {}))
    built.app.pop_up_action("disk_full", "default")  # Open, as the desktop channel's action thread calls it
    [shown] = popups.sent
    [record] = engine.active_events()
    assert (shown.event, shown.level, shown.resolved) == ("disk_full", Level.ERROR, False)
    lines = shown.message.splitlines()
    assert lines[:2] == ["Level: error", "disk at 96%"] and "mount: /var" in lines
    assert lines[-2:] == [f"told: {', '.join(sorted(record.told)) or 'no channel yet'}", "not acknowledged"]

    engine.acknowledge("disk_full")
    built.reload()  # a new App: Open still reaches the tray
    assert built.app.on_open == built.show_details
    monkeypatch.setattr(built.app, "channels", ChannelSet({"desktop": popups}, {}))
    built.app.pop_up_action("disk_full", "default")
    assert popups.sent[-1].message.splitlines()[-1].startswith("Acknowledged ")

    built.app.engine.clear_alert("disk_full", "cleared by hand")
    built.app.pop_up_action("disk_full", "default")  # Open on the recovery's pop-up
    gone = popups.sent[-1]
    assert gone.resolved and gone.message.splitlines()[0] == "disk_full is no longer active"
    assert any(line.endswith("cleared by hand") for line in gone.message.splitlines()[1:])


def test_with_no_desktop_channel_open_uses_the_icons_own_pop_up(running_tray):
    built, icon, _, _ = running_tray  # [channel.desktop] is off here, as on a desktop with no pop-up server
    icon.can_notify = True
    built.app.engine.raise_alert("api_down", "warning", "HTTP 503")
    built.app.pop_up_action("api_down", "default")
    [text] = icon.notified
    assert text.splitlines()[:3] == ["WARNING · api_down", "Level: warning", "HTTP 503"]

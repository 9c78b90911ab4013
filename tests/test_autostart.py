import configparser
import plistlib
import sys

from tray_alerts import autostart
from tray_alerts.cli import main


def test_linux_entry_is_a_valid_desktop_file_that_runs_this_python(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    settings = tmp_path / "my settings.ini"
    settings.write_text("[alerts]\n")
    assert main(["--config", str(settings), "autostart", "on"]) == 0
    path = tmp_path / "autostart" / "tray-alerts.desktop"
    assert str(path) in capsys.readouterr().out
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(path)
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Terminal"] == "false"
    assert desktop["Exec"].startswith(f"{sys.executable} -m tray_alerts --config ")
    assert f'"{settings}"' in desktop["Exec"] and desktop["Exec"].endswith(" run")
    assert main(["--config", str(settings), "autostart", "off"]) == 0
    assert not path.exists()
    assert main(["--config", str(settings), "autostart", "off"]) == 0
    assert "was not set" in capsys.readouterr().out


def test_macos_launch_agent_is_a_valid_plist():
    text = autostart.entry_text(["/opt/py/bin/python3", "-m", "tray_alerts", "run"], "darwin")
    plist = plistlib.loads(text.encode())
    assert plist["ProgramArguments"] == ["/opt/py/bin/python3", "-m", "tray_alerts", "run"]
    assert plist["RunAtLoad"] is True and plist["Label"] == "com.github.tray-alerts"
    assert autostart.entry_path("darwin").parts[-2:] == ("LaunchAgents", "com.github.tray-alerts.plist")


def test_windows_startup_script_uses_pythonw(monkeypatch, tmp_path):
    monkeypatch.setenv("APPDATA", str(tmp_path))
    text = autostart.entry_text([r"C:\Python311\python.exe", "-m", "tray_alerts", "run"], "win32")
    assert text.startswith("@echo off\r\n") and 'start "" "C:\\Python311\\pythonw.exe" "-m" "tray_alerts" "run"' in text
    assert autostart.entry_path("win32") == tmp_path / "Microsoft" / "Windows" / "Start Menu" / "Programs" / \
        "Startup" / "tray-alerts.cmd"


def test_the_launcher_the_pop_ups_name_is_written_once_and_kept_current(tmp_path, monkeypatch):
    from tray_alerts.channels.desktop import DESKTOP_ENTRY

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = autostart.install_launcher()
    assert path == tmp_path / "applications" / f"{DESKTOP_ENTRY}.desktop"  # what the desktop-entry hint names
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(path)
    desktop = entry["Desktop Entry"]
    assert desktop["Name"] == "tray-alerts" and desktop["Exec"].endswith("-m tray_alerts run")
    assert "X-GNOME-Autostart-enabled" not in desktop  # a launcher, not a login entry
    assert autostart.install_launcher() is None  # already current: not written again
    settings = tmp_path / "mine.ini"
    assert autostart.install_launcher(str(settings)) == path  # another settings file: brought up to date
    assert str(settings) in path.read_text()


def test_the_tray_app_writes_its_launcher_in_the_users_data_folder(tmp_path):
    from desktop_session import DesktopSession, skip_unless_tools
    from test_tray_e2e import TrayApp

    skip_unless_tools("Xvfb", "dbus-daemon")
    with DesktopSession(notifications=False) as session:
        app = TrayApp(session, tmp_path, tray="sni", channels="log")
        try:
            app.start()
            app.wait_for_line("running in the tray")
        finally:
            app.stop()
    launcher = tmp_path / "xdg" / "xdg_data_home" / "applications" / "tray-alerts.desktop"
    assert launcher.exists() and str(app.settings) in launcher.read_text()
